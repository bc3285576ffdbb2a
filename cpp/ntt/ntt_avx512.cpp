// AVX-512 NTT kernels with 64-bit lanes (any NTT prime q < 2^62).
#define SL_ISA_NS avx512
#define SL_NTT_IFMA 0
#include "ntt_avx512_impl.hpp"
