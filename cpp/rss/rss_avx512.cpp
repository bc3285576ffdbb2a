#define SL_ISA_NS avx512
#include "rss_impl.hpp"
