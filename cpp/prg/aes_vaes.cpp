// AES-128-CTR keystream with VAES on 512-bit registers (the avx512 tier).
//
// One zmm holds four counter blocks; kLanes zmm (kLanes * 4 blocks) are in
// flight per iteration to cover the vaesenc latency. Each 128-bit lane keeps
// (nonce, counter + j) as little-endian 64-bit words and a per-lane byte
// shuffle forms the big-endian IV block. The key schedule uses AES-NI
// keygenassist once per call and is broadcast to all four lanes. The final
// partial group (< 64 bytes) is written with a byte-masked store, so nothing
// past out + nbytes is touched.
#include <immintrin.h>

#include "aesni_key_schedule.hpp"
#include "safelight/prg.hpp"

namespace safelight::prg::vaes {

namespace {

#ifndef SL_VAES_LANES
#define SL_VAES_LANES 8
#endif
constexpr int kLanes = SL_VAES_LANES;  // zmm registers in flight (4 blocks each)

// Same 128-bit value in all four lanes. (The zero-masking form avoids GCC 12's
// spurious -Wmaybe-uninitialized from _mm512_broadcast_i32x4.)
inline __m512i bcast(__m128i x) { return _mm512_maskz_broadcast_i32x4(0xffff, x); }

}  // namespace

void ctr_fill(const uint8_t key[16], uint64_t nonce, uint64_t counter, uint8_t* out,
              size_t nbytes) noexcept {
    if (nbytes == 0) return;
    alignas(16) __m128i rk[11];
    aesni_expand_key(key, rk);

    const __m512i k0 = bcast(rk[0]);
    const __m512i k1 = bcast(rk[1]);
    const __m512i k2 = bcast(rk[2]);
    const __m512i k3 = bcast(rk[3]);
    const __m512i k4 = bcast(rk[4]);
    const __m512i k5 = bcast(rk[5]);
    const __m512i k6 = bcast(rk[6]);
    const __m512i k7 = bcast(rk[7]);
    const __m512i k8 = bcast(rk[8]);
    const __m512i k9 = bcast(rk[9]);
    const __m512i k10 = bcast(rk[10]);

    // Per 128-bit lane: reverse the bytes of each 64-bit word.
    const __m512i bswap = bcast(
        _mm_setr_epi8(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8));
    const __m512i four = _mm512_set_epi64(4, 0, 4, 0, 4, 0, 4, 0);
    const __m512i step = _mm512_set_epi64(4 * kLanes, 0, 4 * kLanes, 0, 4 * kLanes, 0,
                                          4 * kLanes, 0);
    // 64-bit elements, low first: (n, c), (n, c+1), (n, c+2), (n, c+3); the
    // additions are done unsigned (wrapping) before the cast.
    const auto s64 = [](uint64_t v) { return static_cast<long long>(v); };
    __m512i ctr = _mm512_set_epi64(s64(counter + 3), s64(nonce), s64(counter + 2), s64(nonce),
                                   s64(counter + 1), s64(nonce), s64(counter), s64(nonce));

#define SL_ROUND(k) \
    for (int j = 0; j < kLanes; ++j) b[j] = _mm512_aesenc_epi128(b[j], k)

    constexpr size_t kGroup = size_t(kLanes) * 64;
    while (nbytes >= kGroup) {
        __m512i b[kLanes];
        __m512i cj = ctr;
        for (int j = 0; j < kLanes; ++j) {
            b[j] = _mm512_xor_si512(_mm512_shuffle_epi8(cj, bswap), k0);
            cj = _mm512_add_epi64(cj, four);
        }
        ctr = _mm512_add_epi64(ctr, step);
        SL_ROUND(k1);
        SL_ROUND(k2);
        SL_ROUND(k3);
        SL_ROUND(k4);
        SL_ROUND(k5);
        SL_ROUND(k6);
        SL_ROUND(k7);
        SL_ROUND(k8);
        SL_ROUND(k9);
        for (int j = 0; j < kLanes; ++j)
            _mm512_storeu_si512(out + 64 * j, _mm512_aesenclast_epi128(b[j], k10));
        out += kGroup;
        nbytes -= kGroup;
    }
#undef SL_ROUND

    // Tail: fewer than kLanes * 4 blocks, one zmm (4 blocks) at a time.
    while (nbytes > 0) {
        __m512i b = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, bswap), k0);
        ctr = _mm512_add_epi64(ctr, four);
        b = _mm512_aesenc_epi128(b, k1);
        b = _mm512_aesenc_epi128(b, k2);
        b = _mm512_aesenc_epi128(b, k3);
        b = _mm512_aesenc_epi128(b, k4);
        b = _mm512_aesenc_epi128(b, k5);
        b = _mm512_aesenc_epi128(b, k6);
        b = _mm512_aesenc_epi128(b, k7);
        b = _mm512_aesenc_epi128(b, k8);
        b = _mm512_aesenc_epi128(b, k9);
        b = _mm512_aesenclast_epi128(b, k10);
        if (nbytes >= 64) {
            _mm512_storeu_si512(out, b);
            out += 64;
            nbytes -= 64;
        } else {
            // Byte-masked store: bytes at and after out + nbytes are not written.
            const __mmask64 m = (__mmask64(1) << nbytes) - 1;
            _mm512_mask_storeu_epi8(out, m, b);
            nbytes = 0;
        }
    }
    secure_wipe(rk, sizeof rk);
}

}  // namespace safelight::prg::vaes
