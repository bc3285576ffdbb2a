// Silent OT kernels for the avx2 tier: the GGM PRG with AES-NI (four parents,
// eight AES blocks in flight per batch), the LPN keystream with the PRG
// engine's AES-NI CTR.
#include <immintrin.h>

#define SL_ISA_NS avx2
#include "silent_impl.hpp"
#include "../prg/aesni_key_schedule.hpp"
#include "aesni_children.hpp"
#include "safelight/prg.hpp"

namespace safelight::silent::avx2 {
namespace {

inline __m128i ld(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline void st(uint8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }

void children(const uint8_t* src, size_t count, uint8_t* dst) noexcept {
    alignas(16) __m128i kl[11], kr[11];
    aesni_expand_key(kGgmLeft, kl);
    aesni_expand_key(kGgmRight, kr);
    size_t i = 0;
    for (; i + 4 <= count; i += 4) {
        __m128i x[4], a[4], b[4];
        for (int k = 0; k < 4; ++k) {
            x[k] = ld(src + 16 * (i + k));
            a[k] = _mm_xor_si128(x[k], kl[0]);
            b[k] = _mm_xor_si128(x[k], kr[0]);
        }
        for (int r = 1; r < 10; ++r)
            for (int k = 0; k < 4; ++k) {
                a[k] = _mm_aesenc_si128(a[k], kl[r]);
                b[k] = _mm_aesenc_si128(b[k], kr[r]);
            }
        for (int k = 0; k < 4; ++k) {
            st(dst + 16 * (2 * (i + k)), _mm_xor_si128(_mm_aesenclast_si128(a[k], kl[10]), x[k]));
            st(dst + 16 * (2 * (i + k) + 1), _mm_xor_si128(_mm_aesenclast_si128(b[k], kr[10]), x[k]));
        }
    }
    for (; i < count; ++i)
        aesni_children_of(kl, kr, src + 16 * i, dst + 32 * i);
}

void keystream(const uint8_t key[16], uint64_t counter, uint8_t* out, size_t nbytes) noexcept {
    prg::aesni::ctr_fill(key, 0, counter, out, nbytes);
}

}  // namespace
}  // namespace safelight::silent::avx2
