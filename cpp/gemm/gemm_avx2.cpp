#define SL_ISA_NS avx2
#define SL_GEMM_LEVEL 1
#include "gemm_impl.hpp"
