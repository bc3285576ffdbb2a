// AVX-512 kernels of the BFV engine, for primes up to 61 bits, without
// 64x64-bit vector multiplies (a 64-bit lane product is built from 32x32-bit
// vpmuludq products, see below).
//
// dot2: plaintext-matrix x ciphertext-vector product. Each product
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

// ---------------------------------------------------------------------------
// RNS conversions (ConvKernels), eight coefficients per step; the maths and
// the scalar reference are in kernels_scalar.cpp / bfv.hpp. Every output is
// one Montgomery reduction of a 3-word sum (constants in Montgomery form).
// ---------------------------------------------------------------------------
constexpr size_t kMaxBase = 64;

struct ModV {
    V q, q2, q4, neg_inv, ratio_hi, ratio_lo;
};

inline ModV mod_v(const Modulus& m) {
    return {_mm512_set1_epi64((long long)m.value), _mm512_set1_epi64((long long)(2 * m.value)),
            _mm512_set1_epi64((long long)(4 * m.value)), _mm512_set1_epi64((long long)m.mont_neg_inv),
            _mm512_set1_epi64((long long)m.ratio_hi), _mm512_set1_epi64((long long)m.ratio_lo)};
}

inline V mulhi(V a, V b, V lo32) {
    V hi, lo;
    mul_wide(a, b, hi, lo, lo32);
    return hi;
}

// (hi 2^64 + lo) 2^-64 mod q for hi < q.
inline V redc_m(V hi, V lo, const ModV& m, V lo32, V one) {
    const V t = mullo(lo, m.neg_inv);
    const V th = mulhi(t, m.q, lo32);
    const __mmask8 nz = _mm512_test_epi64_mask(lo, lo);
    V r = _mm512_add_epi64(hi, th);
    r = _mm512_mask_add_epi64(r, nz, r, one);
    return csub(r, m.q);
}

// X = A2 2^64 + A1 2^32 + A0 < 8 q 2^64 -> X 2^-64 mod q.
inline V reduce_mont(const Acc& acc, const ModV& m, V lo32, V one) {
    const V lo = _mm512_add_epi64(acc.a0, slli32(acc.a1));
    const __mmask8 carry = _mm512_cmplt_epu64_mask(lo, acc.a0);
    V hi = _mm512_add_epi64(acc.a2, srli32(acc.a1));
    hi = _mm512_mask_add_epi64(hi, carry, hi, one);
    hi = csub(csub(csub(hi, m.q4), m.q2), m.q);
    return redc_m(hi, lo, m, lo32, one);
}

// acc += a c for a lane vector a and a scalar constant c
inline void madd_c(Acc& acc, V a, V a_hi, uint64_t c, V lo32) {
    madd(acc, a, a_hi, _mm512_set1_epi64((long long)c), _mm512_set1_epi64((long long)(c >> 32)), lo32);
}

// [x w]_q with Shoup's w' (x any word): in [0, q)
inline V mul_shoup_v(V x, uint64_t w, uint64_t ws, const ModV& m, V lo32) {
    const V qt = mulhi(x, _mm512_set1_epi64((long long)ws), lo32);
    const V r = _mm512_sub_epi64(mullo(x, _mm512_set1_epi64((long long)w)), mullo(qt, m.q));
    return csub(r, m.q);
}

// (hi, lo) += v (64-bit lanes, carry counted in hi)
inline void add_carry(V& lo, V& hi, V v, V one) {
    const V s = _mm512_add_epi64(lo, v);
    hi = _mm512_mask_add_epi64(hi, _mm512_cmplt_epu64_mask(s, v), hi, one);
    lo = s;
}

// y / a as a 64-bit binary fraction: y floor(2^128 / a) / 2^64 (mod 2^64)
inline V frac64(V y, const ModV& m, V lo32) {
    return _mm512_add_epi64(mullo(y, m.ratio_hi), mulhi(y, m.ratio_lo, lo32));
}

void convert(const uint64_t* in, uint64_t* out, size_t n, const ConvView& c) noexcept {
    const size_t r = c.r, b = c.b;
    const V lo32 = _mm512_set1_epi64(0xffffffffLL), one = _mm512_set1_epi64(1);
    const V zero = _mm512_setzero_si512(), half = _mm512_set1_epi64((long long)(uint64_t(1) << 63));
    ModV from[kMaxBase], to[kMaxBase];
    for (size_t i = 0; i < r; ++i) from[i] = mod_v(c.from[i]);
    for (size_t j = 0; j < b; ++j) to[j] = mod_v(c.to[j]);
    V y[kMaxBase], yh[kMaxBase];
    for (size_t x = 0; x < n; x += 8) {
        V flo = half, fhi = zero;
        for (size_t i = 0; i < r; ++i) {
            const V xv = _mm512_loadu_si512(in + i * n + x);
            const V yv = mul_shoup_v(xv, c.ahat_inv[i], c.ahat_inv_shoup[i], from[i], lo32);
            y[i] = yv;
            yh[i] = srli32(yv);
            add_carry(flo, fhi, frac64(yv, from[i], lo32), one);
        }
        const V v = fhi;  // round(sum_i y_i / a_i), < r + 1
        for (size_t j = 0; j < b; ++j) {
            const uint64_t* cj = c.ahat_mod + j * r;
            Acc acc{zero, zero, zero};
            madd_c(acc, v, zero, c.neg_a_mod[j], lo32);
            for (size_t i = 0; i < r; ++i) madd_c(acc, y[i], yh[i], cj[i], lo32);
            _mm512_storeu_si512(out + j * n + x, reduce_mont(acc, to[j], lo32, one));
        }
    }
}

void scale_convert(const uint64_t* d, uint64_t* out, size_t n, const ScaleView& s) noexcept {
    const size_t k = s.k, a = s.a;
    const ConvView& cv = s.p_to_q;
    const V lo32 = _mm512_set1_epi64(0xffffffffLL), one = _mm512_set1_epi64(1);
    const V zero = _mm512_setzero_si512(), half = _mm512_set1_epi64((long long)(uint64_t(1) << 63));
    ModV qm[kMaxBase], pm[kMaxBase];
    for (size_t i = 0; i < k; ++i) qm[i] = mod_v(s.q[i]);
    for (size_t j = 0; j < a; ++j) pm[j] = mod_v(s.p[j]);
    V xi[kMaxBase], xih[kMaxBase], yj[kMaxBase], yjh[kMaxBase];
    for (size_t x = 0; x < n; x += 8) {
        // x_i' and R = round(sum_i x_i' th_i) as (r_hi, r_lo)
        V ip_lo = zero, ip_hi = zero, fr_lo = half, fr_hi = zero;
        for (size_t i = 0; i < k; ++i) {
            const V dv = _mm512_loadu_si512(d + i * n + x);
            const V v = mul_shoup_v(dv, s.x_inv[i], s.x_inv_shoup[i], qm[i], lo32);
            xi[i] = v;
            xih[i] = srli32(v);
            V ph, pl;
            mul_wide(v, _mm512_set1_epi64((long long)s.theta[i]), ph, pl, lo32);
            add_carry(ip_lo, ip_hi, ph, one);
            add_carry(fr_lo, fr_hi, pl, one);
        }
        V r_lo = ip_lo, r_hi = ip_hi;
        add_carry(r_lo, r_hi, fr_hi, one);
        const V r_lo_hi = srli32(r_lo);
        // y_j' and the conversion's v
        V flo = half, fhi = zero;
        for (size_t j = 0; j < a; ++j) {
            const uint64_t* om = s.omega + j * k;
            Acc acc{zero, zero, zero};
            const V dp = _mm512_loadu_si512(d + (k + j) * n + x);
            madd_c(acc, dp, srli32(dp), s.t_q_inv[j], lo32);
            madd_c(acc, r_lo, r_lo_hi, s.one_mont[j], lo32);
            madd_c(acc, r_hi, zero, s.two128_mont[j], lo32);
            for (size_t i = 0; i < k; ++i) madd_c(acc, xi[i], xih[i], om[i], lo32);
            const V y = reduce_mont(acc, pm[j], lo32, one);
            yj[j] = y;
            yjh[j] = srli32(y);
            add_carry(flo, fhi, frac64(y, pm[j], lo32), one);
        }
        const V v = fhi;
        for (size_t i = 0; i < k; ++i) {
            const uint64_t* ci = cv.ahat_mod + i * a;
            Acc acc{zero, zero, zero};
            madd_c(acc, v, zero, cv.neg_a_mod[i], lo32);
            for (size_t j = 0; j < a; ++j) madd_c(acc, yj[j], yjh[j], ci[j], lo32);
            _mm512_storeu_si512(out + i * n + x, reduce_mont(acc, qm[i], lo32, one));
        }
    }
}

// (hi, lo) = a b + c d
inline void mul_add_wide(V a, V b, V c, V d, V& hi, V& lo, V lo32, V one) {
    V h1, l1, h2, l2;
    mul_wide(a, b, h1, l1, lo32);
    mul_wide(c, d, h2, l2, lo32);
    lo = _mm512_add_epi64(l1, l2);
    hi = _mm512_add_epi64(h1, h2);
    hi = _mm512_mask_add_epi64(hi, _mm512_cmplt_epu64_mask(lo, l1), hi, one);
}

void tensor(uint64_t* a0, uint64_t* a1, const uint64_t* b0, const uint64_t* b1, uint64_t* d2, size_t n,
            const Modulus& q) noexcept {
    const V lo32 = _mm512_set1_epi64(0xffffffffLL), one = _mm512_set1_epi64(1);
    const ModV m = mod_v(q);
    for (size_t x = 0; x < n; x += 8) {
        const V u0 = _mm512_loadu_si512(a0 + x), u1 = _mm512_loadu_si512(a1 + x);
        const V v0 = b0 ? _mm512_loadu_si512(b0 + x) : u0;  // squaring: b = a (data independent)
        const V v1 = b1 ? _mm512_loadu_si512(b1 + x) : u1;
        V h, l;
        mul_wide(u0, v0, h, l, lo32);
        const V r0 = redc_m(h, l, m, lo32, one);
        mul_add_wide(u0, v1, u1, v0, h, l, lo32, one);
        const V r1 = redc_m(h, l, m, lo32, one);  // < 2 q^2: h < q
        mul_wide(u1, v1, h, l, lo32);
        const V r2 = redc_m(h, l, m, lo32, one);
        _mm512_storeu_si512(a0 + x, r0);
        _mm512_storeu_si512(a1 + x, r1);
        _mm512_storeu_si512(d2 + x, r2);
    }
}

}  // namespace

const Kernels table = {dot2};
const ConvKernels conv_table = {convert, scale_convert, tensor};

}  // namespace safelight::bfv::avx512
