#define SL_ISA_NS avx512
#include "ring_impl.hpp"
