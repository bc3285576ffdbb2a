// AES-128-CTR keystream with AES-NI on 128-bit registers (the avx2 tier).
//
// Eight independent blocks are in flight per iteration so that the 4-5 cycle
// latency of aesenc is hidden behind its 1-2 per cycle throughput. The counter
// lives in a register as two little-endian 64-bit lanes (nonce, counter) and a
// byte shuffle turns it into the big-endian IV block nonce || counter.
#include <immintrin.h>

#include <cstring>

#include "aesni_key_schedule.hpp"
#include "safelight/prg.hpp"

namespace safelight::prg::aesni {

void ctr_fill(const uint8_t key[16], uint64_t nonce, uint64_t counter, uint8_t* out,
              size_t nbytes) noexcept {
    if (nbytes == 0) return;
    alignas(16) __m128i rk[11];
    aesni_expand_key(key, rk);

    // Reverses the bytes of each 64-bit lane: (nonce, ctr) LE -> nonce BE || ctr BE.
    const __m128i bswap = _mm_setr_epi8(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
    const __m128i one = _mm_set_epi64x(1, 0);
    const __m128i eight = _mm_set_epi64x(8, 0);
    __m128i ctr = _mm_set_epi64x(static_cast<long long>(counter), static_cast<long long>(nonce));

    const __m128i k0 = rk[0], k1 = rk[1], k2 = rk[2], k3 = rk[3], k4 = rk[4], k5 = rk[5],
                  k6 = rk[6], k7 = rk[7], k8 = rk[8], k9 = rk[9], k10 = rk[10];

    while (nbytes >= 8 * 16) {
        const __m128i c1 = _mm_add_epi64(ctr, one);
        const __m128i c2 = _mm_add_epi64(c1, one);
        const __m128i c3 = _mm_add_epi64(c2, one);
        __m128i b[8];
        b[0] = _mm_xor_si128(_mm_shuffle_epi8(ctr, bswap), k0);
        b[1] = _mm_xor_si128(_mm_shuffle_epi8(c1, bswap), k0);
        b[2] = _mm_xor_si128(_mm_shuffle_epi8(c2, bswap), k0);
        b[3] = _mm_xor_si128(_mm_shuffle_epi8(c3, bswap), k0);
        const __m128i c4 = _mm_add_epi64(c3, one);
        const __m128i c5 = _mm_add_epi64(c4, one);
        const __m128i c6 = _mm_add_epi64(c5, one);
        const __m128i c7 = _mm_add_epi64(c6, one);
        b[4] = _mm_xor_si128(_mm_shuffle_epi8(c4, bswap), k0);
        b[5] = _mm_xor_si128(_mm_shuffle_epi8(c5, bswap), k0);
        b[6] = _mm_xor_si128(_mm_shuffle_epi8(c6, bswap), k0);
        b[7] = _mm_xor_si128(_mm_shuffle_epi8(c7, bswap), k0);
        ctr = _mm_add_epi64(ctr, eight);
#define SL_ROUND(k) \
    for (int j = 0; j < 8; ++j) b[j] = _mm_aesenc_si128(b[j], k)
        SL_ROUND(k1);
        SL_ROUND(k2);
        SL_ROUND(k3);
        SL_ROUND(k4);
        SL_ROUND(k5);
        SL_ROUND(k6);
        SL_ROUND(k7);
        SL_ROUND(k8);
        SL_ROUND(k9);
#undef SL_ROUND
        for (int j = 0; j < 8; ++j)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out) + j, _mm_aesenclast_si128(b[j], k10));
        out += 8 * 16;
        nbytes -= 8 * 16;
    }

    // Tail: fewer than 8 blocks, the last one possibly partial.
    while (nbytes > 0) {
        __m128i b = _mm_xor_si128(_mm_shuffle_epi8(ctr, bswap), k0);
        b = _mm_aesenc_si128(b, k1);
        b = _mm_aesenc_si128(b, k2);
        b = _mm_aesenc_si128(b, k3);
        b = _mm_aesenc_si128(b, k4);
        b = _mm_aesenc_si128(b, k5);
        b = _mm_aesenc_si128(b, k6);
        b = _mm_aesenc_si128(b, k7);
        b = _mm_aesenc_si128(b, k8);
        b = _mm_aesenc_si128(b, k9);
        b = _mm_aesenclast_si128(b, k10);
        ctr = _mm_add_epi64(ctr, one);
        if (nbytes >= 16) {
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out), b);
            out += 16;
            nbytes -= 16;
        } else {
            alignas(16) uint8_t tmp[16];
            _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b);
            std::memcpy(out, tmp, nbytes);
            secure_wipe(tmp, sizeof tmp);
            nbytes = 0;
        }
    }
    secure_wipe(rk, sizeof rk);
}

}  // namespace safelight::prg::aesni
