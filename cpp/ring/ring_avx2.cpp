#define SL_ISA_NS avx2
#include "ring_impl.hpp"
