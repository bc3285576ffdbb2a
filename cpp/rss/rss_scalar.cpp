#define SL_ISA_NS scalar
#include "rss_impl.hpp"
