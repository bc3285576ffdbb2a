// AES-128 key schedule with AES-NI, shared by the AES-NI and VAES paths.
// Internal linkage on purpose: each
// including translation unit is built with different instruction-set flags,
// so each must keep its own copy (no ODR merging across ISA tiers).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "safelight/secure_wipe.hpp"

namespace {

inline __m128i aesni_expand_step(__m128i k, __m128i assist) {
    assist = _mm_shuffle_epi32(assist, 0xff);  // SubWord(RotWord(w3)) ^ rcon in every word
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    return _mm_xor_si128(k, assist);
}

inline void aesni_expand_key(const uint8_t key[16], __m128i rk[11]) {
    rk[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
#define SL_EXPAND(i, rcon) rk[i] = aesni_expand_step(rk[i - 1], _mm_aeskeygenassist_si128(rk[i - 1], rcon))
    SL_EXPAND(1, 0x01);
    SL_EXPAND(2, 0x02);
    SL_EXPAND(3, 0x04);
    SL_EXPAND(4, 0x08);
    SL_EXPAND(5, 0x10);
    SL_EXPAND(6, 0x20);
    SL_EXPAND(7, 0x40);
    SL_EXPAND(8, 0x80);
    SL_EXPAND(9, 0x1b);
    SL_EXPAND(10, 0x36);
#undef SL_EXPAND
}

}  // namespace
