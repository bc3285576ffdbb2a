// AVX-512 BFV plaintext-matrix x ciphertext-vector product (Kernels::dot2)
// for primes up to 61 bits, without 64x64-bit vector multiplies: each product
// a b (a, b < 2^61) is taken from four 32x32-bit vpmuludq products
//     a b = hh 2^64 + (lh + hl) 2^32 + ll     (a = a1 2^32 + a0, ...)
// and summed exactly into three 64-bit accumulators per lane:
//     A0 += lo32(ll)                       (< 2^32 a term)
//     A1 += hi32(ll) + lo32(lh) + lo32(hl)  (< 3 2^32 a term)
//     A2 += hh + hi32(lh) + hi32(hl)        (< 2^58 + 2^31 a term)
// so that sum = A2 2^64 + A1 2^32 + A0 exactly. kFlush terms keep A2 below
// 2^64; a flush (and the end) combines the three words into a 128-bit value
// and reduces it (Barrett, scalar), the result seeding A0 of the next run.
#include <immintrin.h>

#include "modarith.hpp"

namespace safelight::bfv::avx512 {
namespace {

using V = __m512i;
constexpr __mmask8 kAll = 0xff;
constexpr size_t kVecs = 2;     // 16 coefficients per block
constexpr size_t kFlush = 32;   // 32 (2^58 + 2^31) < 2^64

inline V srli32(V x) { return _mm512_maskz_srli_epi64(kAll, x, 32); }
inline V mul32(V a, V b) { return _mm512_maskz_mul_epu32(kAll, a, b); }

struct Acc {
    V a0, a1, a2;
};

inline void madd(Acc& acc, V a, V a_hi, V b, V b_hi, V lo32) {
    const V ll = mul32(a, b);
    const V lh = mul32(a, b_hi);
    const V hl = mul32(a_hi, b);
    const V hh = mul32(a_hi, b_hi);
    acc.a0 = _mm512_add_epi64(acc.a0, _mm512_and_si512(ll, lo32));
    acc.a1 = _mm512_add_epi64(acc.a1, _mm512_add_epi64(srli32(ll), _mm512_and_si512(lh, lo32)));
    acc.a1 = _mm512_add_epi64(acc.a1, _mm512_and_si512(hl, lo32));
    acc.a2 = _mm512_add_epi64(acc.a2, _mm512_add_epi64(hh, srli32(lh)));
    acc.a2 = _mm512_add_epi64(acc.a2, srli32(hl));
}

// Reduces the 8 sums of `acc` into out[0..8) (and returns them as a vector).
inline V flush(const Acc& acc, uint64_t* out, const Modulus& q) {
    alignas(64) uint64_t w0[8], w1[8], w2[8];
    _mm512_store_si512(reinterpret_cast<V*>(w0), acc.a0);
    _mm512_store_si512(reinterpret_cast<V*>(w1), acc.a1);
    _mm512_store_si512(reinterpret_cast<V*>(w2), acc.a2);
    for (int l = 0; l < 8; ++l) {
        const u128 x = (u128(w2[l]) << 64) + (u128(w1[l]) << 32) + w0[l];
        out[l] = reduce128(x, q);
    }
    return _mm512_loadu_si512(out);
}

void dot2(const uint64_t* ct, size_t ct_stride, size_t c1_off, const uint64_t* pt, size_t pt_stride,
          size_t m, uint64_t* out0, uint64_t* out1, size_t n, const Modulus& q) noexcept {
    const V lo32 = _mm512_set1_epi64(0xffffffffLL);
    const V zero = _mm512_setzero_si512();
    for (size_t x0 = 0; x0 < n; x0 += 8 * kVecs) {
        Acc c0[kVecs], c1[kVecs];
        for (size_t v = 0; v < kVecs; ++v) c0[v] = c1[v] = Acc{zero, zero, zero};
        size_t pending = 0;
        for (size_t r = 0; r < m; ++r) {
            const uint64_t* a0 = ct + r * ct_stride + x0;
            const uint64_t* a1 = a0 + c1_off;
            const uint64_t* b = pt + r * pt_stride + x0;
            for (size_t v = 0; v < kVecs; ++v) {
                const V bv = _mm512_loadu_si512(b + 8 * v);
                const V bh = srli32(bv);
                const V av0 = _mm512_loadu_si512(a0 + 8 * v);
                const V av1 = _mm512_loadu_si512(a1 + 8 * v);
                madd(c0[v], av0, srli32(av0), bv, bh, lo32);
                madd(c1[v], av1, srli32(av1), bv, bh, lo32);
            }
            if (++pending == kFlush && r + 1 < m) {  // depends on m only
                for (size_t v = 0; v < kVecs; ++v) {
                    c0[v] = Acc{flush(c0[v], out0 + x0 + 8 * v, q), zero, zero};
                    c1[v] = Acc{flush(c1[v], out1 + x0 + 8 * v, q), zero, zero};
                }
                pending = 0;
            }
        }
        for (size_t v = 0; v < kVecs; ++v) {
            flush(c0[v], out0 + x0 + 8 * v, q);
            flush(c1[v], out1 + x0 + 8 * v, q);
        }
    }
}

}  // namespace

const Kernels table = {dot2};

}  // namespace safelight::bfv::avx512
