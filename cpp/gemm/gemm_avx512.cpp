#define SL_ISA_NS avx512
#define SL_GEMM_LEVEL 2
#include "gemm_impl.hpp"
