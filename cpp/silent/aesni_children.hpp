// One parent's two GGM children with AES-NI, shared by the avx2 and avx512 tiers (the
// avx512 tier for the first levels of a tree, under 16 parents). Internal linkage on
// purpose: each tier builds its own copy with its own flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace {

// dst[0] = pi_L(x) ^ x, dst[1] = pi_R(x) ^ x for the block at src (kl, kr: the schedules).
inline void aesni_children_of(const __m128i kl[11], const __m128i kr[11], const uint8_t* src, uint8_t* dst) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    __m128i a = _mm_xor_si128(x, kl[0]), b = _mm_xor_si128(x, kr[0]);
    for (int r = 1; r < 10; ++r) {
        a = _mm_aesenc_si128(a, kl[r]);
        b = _mm_aesenc_si128(b, kr[r]);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_xor_si128(_mm_aesenclast_si128(a, kl[10]), x));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), _mm_xor_si128(_mm_aesenclast_si128(b, kr[10]), x));
}

}  // namespace
