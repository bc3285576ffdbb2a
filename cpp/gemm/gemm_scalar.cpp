#define SL_ISA_NS scalar
#define SL_GEMM_LEVEL 0
#include "gemm_impl.hpp"
