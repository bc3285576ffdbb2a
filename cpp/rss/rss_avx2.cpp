#define SL_ISA_NS avx2
#include "rss_impl.hpp"
