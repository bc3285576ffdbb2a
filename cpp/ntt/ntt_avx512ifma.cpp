// AVX-512 IFMA NTT kernels (q < 2^50, 52-bit multiply-add). The only
// translation unit built with -mavx512ifma; its table is chosen at run time
// when the CPU has avx512ifma (ntt::choose_path).
#define SL_ISA_NS avx512ifma
#define SL_NTT_IFMA 1
#include "ntt_avx512_impl.hpp"
