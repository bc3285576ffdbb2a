// AVX-512 IFMA BFV plaintext-matrix x ciphertext-vector product
// (Kernels::dot2) for primes q < 2^50. vpmadd52luq / vpmadd52huq add the low
// and high 52-bit halves of a 104-bit product to 64-bit lanes, so a product
// costs two instructions and sums need no carries:
//     sum = H 2^52 + Lo,   Lo += lo52(a b),  H += hi52(a b)  (< 2^48 a term).
// Every kFlush = 15 terms (H < 15 2^48 + 16 < 2^52 after moving the carries
// of Lo into H) the sum is reduced with two 52-bit Shoup products,
//     H 2^52 + Lo = H r52 + Lo 1  (mod q),   r52 = 2^52 mod q,
// each in [0, 2q), then two conditional subtractions; the residue seeds Lo of
// the next run (and is the output at the end). Built with -mavx512ifma only.
#include <immintrin.h>

#include "modarith.hpp"

namespace safelight::bfv::avx512ifma {
namespace {

using V = __m512i;
constexpr __mmask8 kAll = 0xff;
constexpr size_t kVecs = 4;    // 32 coefficients per block
constexpr size_t kFlush = 15;

inline V madd_lo(V acc, V a, V b) { return _mm512_madd52lo_epu64(acc, a, b); }
inline V madd_hi(V acc, V a, V b) { return _mm512_madd52hi_epu64(acc, a, b); }
inline V minu(V a, V b) { return _mm512_maskz_min_epu64(kAll, a, b); }
inline V csub(V x, V m) { return minu(x, _mm512_sub_epi64(x, m)); }

struct Consts {
    V q, q2, neg_q, mask52, r52, r52s, ones;
    explicit Consts(const Modulus& m) {
        q = _mm512_set1_epi64((long long)m.value);
        q2 = _mm512_set1_epi64((long long)(2 * m.value));
        neg_q = _mm512_set1_epi64((long long)((uint64_t(1) << 52) - m.value));
        mask52 = _mm512_set1_epi64((long long)((uint64_t(1) << 52) - 1));
        r52 = _mm512_set1_epi64((long long)m.r52);
        r52s = _mm512_set1_epi64((long long)m.r52_shoup52);
        ones = _mm512_set1_epi64((long long)m.one_shoup52);
    }
};

// w y - floor(w' y / 2^52) q in [0, 2q), y < 2^52.
inline V mul_shoup52(V y, V w, V ws, const Consts& c) {
    const V zero = _mm512_setzero_si512();
    const V qt = madd_hi(zero, ws, y);
    V r = madd_lo(zero, w, y);
    r = madd_lo(r, qt, c.neg_q);
    return _mm512_and_si512(r, c.mask52);
}

inline V reduce(V lo, V hi, const Consts& c) {
    hi = _mm512_add_epi64(hi, _mm512_maskz_srli_epi64(kAll, lo, 52));
    lo = _mm512_and_si512(lo, c.mask52);
    // lo * 1 mod q: lo - floor(lo floor(2^52/q) / 2^52) q
    const V zero = _mm512_setzero_si512();
    const V qt = madd_hi(zero, c.ones, lo);
    V rl = madd_lo(lo, qt, c.neg_q);
    rl = _mm512_and_si512(rl, c.mask52);
    V s = _mm512_add_epi64(mul_shoup52(hi, c.r52, c.r52s, c), rl);  // < 4q
    return csub(csub(s, c.q2), c.q);
}

void dot2(const uint64_t* ct, size_t ct_stride, size_t c1_off, const uint64_t* pt, size_t pt_stride,
          size_t m, uint64_t* out0, uint64_t* out1, size_t n, const Modulus& q) noexcept {
    const Consts c(q);
    const V zero = _mm512_setzero_si512();
    for (size_t x0 = 0; x0 < n; x0 += 8 * kVecs) {
        V lo0[kVecs], hi0[kVecs], lo1[kVecs], hi1[kVecs];
        for (size_t v = 0; v < kVecs; ++v) lo0[v] = hi0[v] = lo1[v] = hi1[v] = zero;
        size_t pending = 0;
        for (size_t r = 0; r < m; ++r) {
            const uint64_t* a0 = ct + r * ct_stride + x0;
            const uint64_t* a1 = a0 + c1_off;
            const uint64_t* b = pt + r * pt_stride + x0;
            for (size_t v = 0; v < kVecs; ++v) {
                const V bv = _mm512_loadu_si512(b + 8 * v);
                const V av0 = _mm512_loadu_si512(a0 + 8 * v);
                const V av1 = _mm512_loadu_si512(a1 + 8 * v);
                lo0[v] = madd_lo(lo0[v], av0, bv);
                hi0[v] = madd_hi(hi0[v], av0, bv);
                lo1[v] = madd_lo(lo1[v], av1, bv);
                hi1[v] = madd_hi(hi1[v], av1, bv);
            }
            if (++pending == kFlush) {  // depends on m only
                for (size_t v = 0; v < kVecs; ++v) {
                    lo0[v] = reduce(lo0[v], hi0[v], c);
                    lo1[v] = reduce(lo1[v], hi1[v], c);
                    hi0[v] = hi1[v] = zero;
                }
                pending = 0;
            }
        }
        for (size_t v = 0; v < kVecs; ++v) {
            _mm512_storeu_si512(out0 + x0 + 8 * v, reduce(lo0[v], hi0[v], c));
            _mm512_storeu_si512(out1 + x0 + 8 * v, reduce(lo1[v], hi1[v], c));
        }
    }
}

}  // namespace

const Kernels table = {dot2};

}  // namespace safelight::bfv::avx512ifma
