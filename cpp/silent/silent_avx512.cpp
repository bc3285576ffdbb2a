// Silent OT kernels for the avx512 tier: the GGM PRG with VAES (sixteen
// parents, 32 AES blocks in 8 zmm per batch), the LPN keystream with the PRG
// engine's VAES CTR.
#include <immintrin.h>

#define SL_ISA_NS avx512
#include "silent_impl.hpp"
#include "../prg/aesni_key_schedule.hpp"
#include "aesni_children.hpp"
#include "safelight/prg.hpp"

namespace safelight::silent::avx512 {
namespace {

inline __m512i bcast(__m128i x) { return _mm512_maskz_broadcast_i32x4(0xffff, x); }

// Four parents per zmm; children interleaved into dst (left, right, left, ...).
inline void store_children(uint8_t* dst, __m512i left, __m512i right) {
    // lanes: left = (L0 L1 L2 L3), right = (R0 R1 R2 R3) -> (L0 R0 L1 R1), (L2 R2 L3 R3)
    const __m512i lo = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    const __m512i hi = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    _mm512_storeu_si512(dst, _mm512_permutex2var_epi64(left, lo, right));
    _mm512_storeu_si512(dst + 64, _mm512_permutex2var_epi64(left, hi, right));
}

void children(const uint8_t* src, size_t count, uint8_t* dst) noexcept {
    alignas(16) __m128i kl128[11], kr128[11];
    aesni_expand_key(kGgmLeft, kl128);
    aesni_expand_key(kGgmRight, kr128);
    __m512i kl[11], kr[11];
    for (int r = 0; r < 11; ++r) {
        kl[r] = bcast(kl128[r]);
        kr[r] = bcast(kr128[r]);
    }
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512i x[4], a[4], b[4];
        for (int k = 0; k < 4; ++k) {
            x[k] = _mm512_loadu_si512(src + 16 * (i + 4 * k));
            a[k] = _mm512_xor_si512(x[k], kl[0]);
            b[k] = _mm512_xor_si512(x[k], kr[0]);
        }
        for (int r = 1; r < 10; ++r)
            for (int k = 0; k < 4; ++k) {
                a[k] = _mm512_aesenc_epi128(a[k], kl[r]);
                b[k] = _mm512_aesenc_epi128(b[k], kr[r]);
            }
        for (int k = 0; k < 4; ++k)
            store_children(dst + 16 * 2 * (i + 4 * k), _mm512_xor_si512(_mm512_aesenclast_epi128(a[k], kl[10]), x[k]),
                           _mm512_xor_si512(_mm512_aesenclast_epi128(b[k], kr[10]), x[k]));
    }
    for (; i < count; ++i)  // fewer than 16 parents (the tree's first levels): AES-NI
        aesni_children_of(kl128, kr128, src + 16 * i, dst + 32 * i);
}

void keystream(const uint8_t key[16], uint64_t counter, uint8_t* out, size_t nbytes) noexcept {
    prg::vaes::ctr_fill(key, 0, counter, out, nbytes);
}

}  // namespace
}  // namespace safelight::silent::avx512
