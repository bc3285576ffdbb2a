// AVX-512 BFV plaintext-matrix x ciphertext-vector product (Kernels::dot2)
// for primes up to 61 bits, without 64x64-bit vector multiplies: each product
// a b (a, b < 2^61) is taken from four 32x32-bit vpmuludq products
//     a b = hh 2^64 + (lh + hl) 2^32 + ll     (a = a1 2^32 + a0, ...)
// and summed exactly into three 64-bit accumulators per lane:
//     A0 += lo32(ll)                       (< 2^32 a term)
//     A1 += hi32(ll) + lo32(lh) + lo32(hl)  (< 3 2^32 a term)
//     A2 += hh + hi32(lh) + hi32(hl)        (< 2^58 + 2^31 a term)
// so that sum X = A2 2^64 + A1 2^32 + A0 exactly. Every kFlush = 32 terms
// (and at the end) X < 33 q^2 is reduced in the vector registers:
//     (hi, lo) = X;  hi -= multiples of q until hi < q   (X < 8 q 2^64);
//     r1 = REDC(hi, lo) = X 2^-64 mod q;  r = REDC(r1 [2^128]_q) = X mod q,
// with Montgomery's REDC(x) = (x + (x_lo (-q^-1) mod 2^64) q) / 2^64 and the
// 64x64 -> 128-bit products of REDC built from vpmuludq as above. The
// residue seeds A0 of the next run.
#include <immintrin.h>

#include "modarith.hpp"

namespace safelight::bfv::avx512 {
namespace {

using V = __m512i;
constexpr __mmask8 kAll = 0xff;
constexpr size_t kVecs = 2;     // 16 coefficients per block
constexpr size_t kFlush = 32;   // 33 q^2 < 8 q 2^64 for q < 2^61

inline V srli32(V x) { return _mm512_maskz_srli_epi64(kAll, x, 32); }
inline V slli32(V x) { return _mm512_maskz_slli_epi64(kAll, x, 32); }
inline V mul32(V a, V b) { return _mm512_maskz_mul_epu32(kAll, a, b); }
inline V mullo(V a, V b) { return _mm512_maskz_mullo_epi64(kAll, a, b); }
inline V minu(V a, V b) { return _mm512_maskz_min_epu64(kAll, a, b); }
inline V csub(V x, V m) { return minu(x, _mm512_sub_epi64(x, m)); }

struct Acc {
    V a0, a1, a2;
};

struct Consts {
    V lo32, q, q2, q4, neg_inv, r128, one;
    explicit Consts(const Modulus& m) {
        lo32 = _mm512_set1_epi64(0xffffffffLL);
        q = _mm512_set1_epi64((long long)m.value);
        q2 = _mm512_set1_epi64((long long)(2 * m.value));
        q4 = _mm512_set1_epi64((long long)(4 * m.value));
        neg_inv = _mm512_set1_epi64((long long)m.mont_neg_inv);
        r128 = _mm512_set1_epi64((long long)m.r128);
        one = _mm512_set1_epi64(1);
    }
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

// The full 128-bit product a b of two 64-bit lanes, as (hi, lo).
inline void mul_wide(V a, V b, V& hi, V& lo, V lo32) {
    const V a_hi = srli32(a), b_hi = srli32(b);
    const V ll = mul32(a, b);
    const V lh = mul32(a, b_hi);
    const V hl = mul32(a_hi, b);
    const V hh = mul32(a_hi, b_hi);
    const V mid = _mm512_add_epi64(_mm512_add_epi64(srli32(ll), _mm512_and_si512(lh, lo32)),
                                   _mm512_and_si512(hl, lo32));
    hi = _mm512_add_epi64(_mm512_add_epi64(hh, srli32(lh)), _mm512_add_epi64(srli32(hl), srli32(mid)));
    lo = _mm512_or_si512(slli32(mid), _mm512_and_si512(ll, lo32));
}

// (hi 2^64 + lo) 2^-64 mod q for hi < q: Montgomery's REDC, in [0, q).
inline V redc(V hi, V lo, const Consts& c) {
    const V t = mullo(lo, c.neg_inv);
    V th, tl;
    mul_wide(t, c.q, th, tl, c.lo32);
    // lo + tl = 0 mod 2^64: it carries exactly when lo != 0
    const __mmask8 nz = _mm512_test_epi64_mask(lo, lo);
    V r = _mm512_add_epi64(hi, th);
    r = _mm512_mask_add_epi64(r, nz, r, c.one);
    return csub(r, c.q);
}

// X = A2 2^64 + A1 2^32 + A0 (< 8 q 2^64) -> X mod q.
inline V reduce(const Acc& acc, const Consts& c) {
    const V lo = _mm512_add_epi64(acc.a0, slli32(acc.a1));
    const __mmask8 carry = _mm512_cmplt_epu64_mask(lo, acc.a0);
    V hi = _mm512_add_epi64(acc.a2, srli32(acc.a1));
    hi = _mm512_mask_add_epi64(hi, carry, hi, c.one);
    hi = csub(csub(csub(hi, c.q4), c.q2), c.q);
    const V r1 = redc(hi, lo, c);  // X 2^-64
    V ph, pl;
    mul_wide(r1, c.r128, ph, pl, c.lo32);  // < q^2: ph < q
    return redc(ph, pl, c);
}

void dot2(const uint64_t* ct, size_t ct_stride, size_t c1_off, const uint64_t* pt, size_t pt_stride,
          size_t m, uint64_t* out0, uint64_t* out1, size_t n, const Modulus& q) noexcept {
    const Consts c(q);
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
                madd(c0[v], av0, srli32(av0), bv, bh, c.lo32);
                madd(c1[v], av1, srli32(av1), bv, bh, c.lo32);
            }
            if (++pending == kFlush && r + 1 < m) {  // depends on m only
                for (size_t v = 0; v < kVecs; ++v) {
                    c0[v] = Acc{reduce(c0[v], c), zero, zero};
                    c1[v] = Acc{reduce(c1[v], c), zero, zero};
                }
                pending = 0;
            }
        }
        for (size_t v = 0; v < kVecs; ++v) {
            _mm512_storeu_si512(out0 + x0 + 8 * v, reduce(c0[v], c));
            _mm512_storeu_si512(out1 + x0 + 8 * v, reduce(c1[v], c));
        }
    }
}

}  // namespace

const Kernels table = {dot2};

}  // namespace safelight::bfv::avx512
