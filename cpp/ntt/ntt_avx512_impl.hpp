// AVX-512 NTT kernels, written once for two modular multipliers:
//   SL_NTT_IFMA 0 (ntt_avx512.cpp): 64-bit lanes, q < 2^62; the Shoup
//     quotient floor(w' y / 2^64) from 32x32 vpmuludq products, the low
//     words w y and Q q with vpmullq (exact mod 2^64, all that is needed
//     since w y - Q q < 4q); see Consts for the two lazy schemes;
//   SL_NTT_IFMA 1 (ntt_avx512ifma.cpp, built with -mavx512ifma): q < 2^50,
//     52-bit Shoup companions, one vpmadd52huq for the quotient and two
//     vpmadd52luq for the remainder (the 52-bit butterfly of Boemer et al.,
//     "Intel HEXL", 2021).
// The including file defines SL_ISA_NS (namespace of its copy) and SL_NTT_IFMA.
//
// Passes over the data (the kernels are bound by vector arithmetic, then by
// loads and stores, so stages are fused where that cuts memory traffic):
//   forward: [one radix-2 stage if log2(n) - 4 is odd], radix-4 passes (two
//     stages with t >= 16, broadcast twiddles), then the last four stages
//     t = 8, 4, 2, 1 fused per block of 16 values held in two registers
//     (lane shuffles between stages, see Shuffles), with the final reduction;
//   inverse: the mirror image, the first four stages fused per block of 16,
//     then radix-2 / radix-4 passes, n^-1 folded into the last stage.
// The fused 16-value blocks are processed kBlocks at a time, interleaved: one
// block is a chain of four dependent butterflies, too long for the
// out-of-order window to overlap on its own.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "safelight/ntt.hpp"

#ifndef SL_ISA_NS
#error "define SL_ISA_NS before including ntt_avx512_impl.hpp"
#endif
#ifndef SL_NTT_IFMA
#error "define SL_NTT_IFMA (0 or 1) before including ntt_avx512_impl.hpp"
#endif

namespace safelight::ntt::SL_ISA_NS {
namespace {

using V = __m512i;

// Unmasked operations spelled as their all-ones zero-masking forms: the same
// instructions, without GCC 12's spurious -Wmaybe-uninitialized from the
// plain intrinsics' undefined pass-through operand.
constexpr __mmask8 kAll = 0xff;
inline V srli32(V x) { return _mm512_maskz_srli_epi64(kAll, x, 32); }
inline V mul32(V a, V b) { return _mm512_maskz_mul_epu32(kAll, a, b); }
inline V mullo(V a, V b) { return _mm512_maskz_mullo_epi64(kAll, a, b); }
inline V minu(V a, V b) { return _mm512_maskz_min_epu64(kAll, a, b); }
inline V perm(V idx, V a) { return _mm512_maskz_permutexvar_epi64(kAll, idx, a); }
inline V perm2(V a, V idx, V b) { return _mm512_maskz_permutex2var_epi64(kAll, a, idx, b); }

constexpr int kBlocks = 4;  // 16-value blocks interleaved in the fused passes

inline V idx8(long long a0, long long a1, long long a2, long long a3, long long a4, long long a5,
              long long a6, long long a7) {
    return _mm512_set_epi64(a7, a6, a5, a4, a3, a2, a1, a0);
}

// Lazy bound: between stages the values stay below L q (forward: 2 L q,
// see fwd_bfly). L = 2 is Harvey's exact scheme: the Shoup product lies in
// [0, 2q). L = 4 (64-bit lanes, q < 2^61) takes the quotient from three of the
// four 32x32 partial products, dropping the low one and the carries of the
// middle ones: the estimate is at most 3 below floor(w y / q) (2 from the
// dropped carries, 1 from Shoup), so the product lies in [0, 4q), and with
// every bound doubled (8q < 2^64) no extra correction is needed.
struct Consts {
    V q, q2, q4;
#if SL_NTT_IFMA
    V neg_q;   // 2^52 - q: Q (2^52 - q) = -Q q mod 2^52
    V mask52;  // 2^52 - 1
#endif
    explicit Consts(uint64_t qv) {
        q = _mm512_set1_epi64((long long)qv);
        q2 = _mm512_set1_epi64((long long)(2 * qv));
        q4 = _mm512_set1_epi64((long long)(4 * qv));
#if SL_NTT_IFMA
        neg_q = _mm512_set1_epi64((long long)((uint64_t(1) << 52) - qv));
        mask52 = _mm512_set1_epi64((long long)((uint64_t(1) << 52) - 1));
#endif
    }
    // L q
    template <int L>
    const V& bound() const {
        return L == 4 ? q4 : q2;
    }
};

// A twiddle per lane with its Shoup companion (and, for the 64-bit multiply,
// the companion's high half, shared by every product with it).
struct Tw {
    V w, ws;
#if !SL_NTT_IFMA
    V ws_hi;
#endif
};

inline Tw make_tw(V w, V ws) {
#if SL_NTT_IFMA
    return {w, ws};
#else
    return {w, ws, srli32(ws)};
#endif
}

inline Tw broadcast_tw(uint64_t w, uint64_t ws) {
    return make_tw(_mm512_set1_epi64((long long)w), _mm512_set1_epi64((long long)ws));
}

// The Shoup companions this multiplier uses.
inline const uint64_t* fwd_shoup(const Tables& t) {
    return SL_NTT_IFMA ? t.w_shoup52 : t.w_shoup;
}
inline const uint64_t* inv_shoup(const Tables& t) {
    return SL_NTT_IFMA ? t.iw_shoup52 : t.iw_shoup;
}

// w y - Q q with Q ~ floor(w' y / 2^k): in [0, 2q) for L = 2, [0, 4q) for
// L = 4; y < 2^64 (k = 64) or y < 2^52 (IFMA, L = 2 only).
template <int L>
inline V mul_shoup(V y, const Tw& t, const Consts& c) {
#if SL_NTT_IFMA
    static_assert(L == 2, "the IFMA multiplier is exact");
    const V zero = _mm512_setzero_si512();
    V qt = _mm512_maskz_madd52hi_epu64(kAll, zero, t.ws, y);
    V r = _mm512_maskz_madd52lo_epu64(kAll, zero, t.w, y);
    r = _mm512_maskz_madd52lo_epu64(kAll, r, qt, c.neg_q);
    return _mm512_and_si512(r, c.mask52);
#else
    V y_hi = srli32(y);
    V lh = mul32(y, t.ws_hi);
    V hl = mul32(y_hi, t.ws);
    V hh = mul32(y_hi, t.ws_hi);
    V qt;
    if (L == 4) {
        qt = _mm512_add_epi64(hh, _mm512_add_epi64(srli32(lh), srli32(hl)));
    } else {
        // the exact high word; the partial sums cannot overflow
        const V lo32 = _mm512_set1_epi64(0xffffffffLL);
        V ll = mul32(y, t.ws);
        V mid = _mm512_add_epi64(srli32(ll), lh);
        V mid2 = _mm512_add_epi64(_mm512_and_si512(mid, lo32), hl);
        qt = _mm512_add_epi64(hh, _mm512_add_epi64(srli32(mid), srli32(mid2)));
    }
    return _mm512_sub_epi64(mullo(t.w, y), mullo(qt, c.q));
#endif
}

// x - m where x >= m, else x (unsigned min: x - m wraps above x otherwise).
inline V csub(V x, V m) { return minu(x, _mm512_sub_epi64(x, m)); }

// [0, 2 L q) -> [0, q)
template <int L>
inline V reduce_full(V x, const Consts& c) {
    if (L == 4) x = csub(x, c.q4);
    return csub(csub(x, c.q2), c.q);
}

// Forward (Cooley-Tukey) butterfly on [0, 2 L q) values; kReduceX false when
// x < L q already (first stage).
template <int L, bool kReduceX>
inline void fwd_bfly(V& x, V& y, const Tw& t, const Consts& c) {
    const V& b = c.bound<L>();
    V u = kReduceX ? csub(x, b) : x;  // [0, L q)
    V v = mul_shoup<L>(y, t, c);      // [0, L q)
    x = _mm512_add_epi64(u, v);
    y = _mm512_add_epi64(_mm512_sub_epi64(u, v), b);
}

// Inverse (Gentleman-Sande) butterfly on [0, L q) values.
template <int L>
inline void inv_bfly(V& x, V& y, const Tw& t, const Consts& c) {
    const V& b = c.bound<L>();
    V s = csub(_mm512_add_epi64(x, y), b);
    V d = _mm512_add_epi64(_mm512_sub_epi64(x, y), b);
    x = s;
    y = mul_shoup<L>(d, t, c);
}

// The four stages with t = 8, 4, 2, 1 run on blocks of 16 values in two
// registers, with one lane shuffle between stages (forward order below; the
// inverse walks the same layouts backwards). Lanes list the block's values:
//   t = 8:  X = 0..7                   Y = 8..15          (the two loads)
//   t = 4:  X = 0-3, 8-11              Y = 4-7, 12-15     (vpermt2q)
//   t = 2:  X = 0 1 4 5 8 9 12 13      Y = 2 3 6 7 ...    (vpermt2q)
//   t = 1:  X = 0 2 4 .. 14            Y = 1 3 5 .. 15    (vpunpck{l,h}qdq)
// so the X lanes of a stage with t < 8 meet the groups of 8 / t consecutive
// twiddles in order: spread() loads them and repeats each t times.
struct Shuffles {
    V t4_x, t4_y;    // t = 8 layout <-> t = 4 layout
    V t2_x, t2_y;    // t = 4 layout <-> t = 2 layout (the same both ways)
    V even, odd;     // natural order -> t = 1 layout
    V out_lo, out_hi;  // t = 1 layout -> natural order
    V rep2, rep4;    // twiddle spreads for t = 2 and t = 4
    Shuffles()
        : t4_x(idx8(0, 1, 2, 3, 8, 9, 10, 11)),
          t4_y(idx8(4, 5, 6, 7, 12, 13, 14, 15)),
          t2_x(idx8(0, 1, 8, 9, 4, 5, 12, 13)),
          t2_y(idx8(2, 3, 10, 11, 6, 7, 14, 15)),
          even(idx8(0, 2, 4, 6, 8, 10, 12, 14)),
          odd(idx8(1, 3, 5, 7, 9, 11, 13, 15)),
          out_lo(idx8(0, 8, 1, 9, 2, 10, 3, 11)),
          out_hi(idx8(4, 12, 5, 13, 6, 14, 7, 15)),
          rep2(idx8(0, 0, 1, 1, 2, 2, 3, 3)),
          rep4(idx8(0, 0, 0, 0, 1, 1, 1, 1)) {}

    // Twiddles of 8 / T groups starting at w, each repeated T times.
    template <int T>
    V spread(const uint64_t* w) const {
        if (T == 1) return _mm512_loadu_si512(w);
        if (T == 2)
            return perm(rep2, _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w))));
        return perm(rep4, _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
    }
    template <int T>
    Tw twiddles(const uint64_t* w, const uint64_t* ws, size_t g) const {
        return make_tw(spread<T>(w + g), spread<T>(ws + g));
    }
};

inline V unpacklo(V a, V b) { return _mm512_maskz_unpacklo_epi64(kAll, a, b); }
inline V unpackhi(V a, V b) { return _mm512_maskz_unpackhi_epi64(kAll, a, b); }

// ---------------------------------------------------------------------------
// forward
// ---------------------------------------------------------------------------

// One radix-2 stage with t >= 8 (m groups), from src to dst.
template <int L, bool kReduceX>
void fwd_radix2(const uint64_t* src, uint64_t* dst, size_t m, size_t t, const uint64_t* w,
                const uint64_t* ws, const Consts& c) {
    for (size_t i = 0; i < m; ++i) {
        const Tw tw = broadcast_tw(w[m + i], ws[m + i]);
        const uint64_t* s = src + 2 * i * t;
        uint64_t* d = dst + 2 * i * t;
        for (size_t j = 0; j < t; j += 8) {
            V x = _mm512_loadu_si512(s + j);
            V y = _mm512_loadu_si512(s + j + t);
            fwd_bfly<L, kReduceX>(x, y, tw, c);
            _mm512_storeu_si512(d + j, x);
            _mm512_storeu_si512(d + j + t, y);
        }
    }
}

// Stages m (half-width t) and 2m (t / 2) in one pass, t >= 16: each group of
// stage m is a block of quarters A B C D (t / 2 each); stage m pairs (A, C)
// and (B, D), stage 2m pairs (A, B) and (C, D).
template <int L, bool kFirst>
void fwd_radix4(const uint64_t* src, uint64_t* dst, size_t m, size_t t, const uint64_t* w,
                const uint64_t* ws, const Consts& c) {
    const size_t h = t / 2;
    for (size_t i = 0; i < m; ++i) {
        const Tw t1 = broadcast_tw(w[m + i], ws[m + i]);
        const Tw t2 = broadcast_tw(w[2 * m + 2 * i], ws[2 * m + 2 * i]);
        const Tw t3 = broadcast_tw(w[2 * m + 2 * i + 1], ws[2 * m + 2 * i + 1]);
        const uint64_t* s = src + 2 * i * t;
        uint64_t* d = dst + 2 * i * t;
        for (size_t j = 0; j < h; j += 8) {
            V a = _mm512_loadu_si512(s + j);
            V b = _mm512_loadu_si512(s + j + h);
            V e = _mm512_loadu_si512(s + j + 2 * h);
            V f = _mm512_loadu_si512(s + j + 3 * h);
            fwd_bfly<L, !kFirst>(a, e, t1, c);
            fwd_bfly<L, !kFirst>(b, f, t1, c);
            fwd_bfly<L, true>(a, b, t2, c);
            fwd_bfly<L, true>(e, f, t3, c);
            _mm512_storeu_si512(d + j, a);
            _mm512_storeu_si512(d + j + h, b);
            _mm512_storeu_si512(d + j + 2 * h, e);
            _mm512_storeu_si512(d + j + 3 * h, f);
        }
    }
}

// The last four stages (t = 8, 4, 2, 1) on K blocks of 16 starting at block
// b, then [0, 2 L q) -> [0, q). The K blocks are independent chains of four
// dependent butterflies: interleaving them keeps the multipliers busy.
template <int L, int K>
inline void fwd_last4_blocks(const uint64_t* src, uint64_t* dst, size_t n, size_t b, const uint64_t* w,
                             const uint64_t* ws, const Consts& c, const Shuffles& sh) {
    V x[K], y[K];
    for (int k = 0; k < K; ++k) {
        x[k] = _mm512_loadu_si512(src + 16 * (b + k));
        y[k] = _mm512_loadu_si512(src + 16 * (b + k) + 8);
        fwd_bfly<L, true>(x[k], y[k], broadcast_tw(w[n / 16 + b + k], ws[n / 16 + b + k]), c);
    }
    for (int k = 0; k < K; ++k) {
        V x4 = perm2(x[k], sh.t4_x, y[k]), y4 = perm2(x[k], sh.t4_y, y[k]);
        fwd_bfly<L, true>(x4, y4, sh.twiddles<4>(w, ws, n / 8 + 2 * (b + k)), c);
        x[k] = x4;
        y[k] = y4;
    }
    for (int k = 0; k < K; ++k) {
        V x2 = perm2(x[k], sh.t2_x, y[k]), y2 = perm2(x[k], sh.t2_y, y[k]);
        fwd_bfly<L, true>(x2, y2, sh.twiddles<2>(w, ws, n / 4 + 4 * (b + k)), c);
        x[k] = x2;
        y[k] = y2;
    }
    for (int k = 0; k < K; ++k) {
        V x1 = unpacklo(x[k], y[k]), y1 = unpackhi(x[k], y[k]);
        fwd_bfly<L, true>(x1, y1, sh.twiddles<1>(w, ws, n / 2 + 8 * (b + k)), c);
        x1 = reduce_full<L>(x1, c);
        y1 = reduce_full<L>(y1, c);
        _mm512_storeu_si512(dst + 16 * (b + k), perm2(x1, sh.out_lo, y1));
        _mm512_storeu_si512(dst + 16 * (b + k) + 8, perm2(x1, sh.out_hi, y1));
    }
}

template <int L>
void fwd_last4(const uint64_t* src, uint64_t* dst, size_t n, const uint64_t* w, const uint64_t* ws,
               const Consts& c) {
    const Shuffles sh;
    constexpr int K = kBlocks;
    size_t b = 0;
    for (; b + K <= n / 16; b += K) fwd_last4_blocks<L, K>(src, dst, n, b, w, ws, c, sh);
    for (; b < n / 16; ++b) fwd_last4_blocks<L, 1>(src, dst, n, b, w, ws, c, sh);
}

template <int L>
void forward_impl(const uint64_t* in, uint64_t* out, const Tables& tb) {
    const size_t n = tb.n;
    const Consts c(tb.q);
    const uint64_t* w = tb.w;
    const uint64_t* ws = fwd_shoup(tb);
    // The first pass reads `in` (values < q: no reduction of X), the others
    // work on `out` in place.
    bool first = true;
    size_t m = 1, t = n / 2;
    if ((tb.log_n - 4) % 2) {  // an odd number of stages before the last four
        fwd_radix2<L, false>(in, out, m, t, w, ws, c);
        first = false;
        m <<= 1;
        t >>= 1;
    }
    for (; t >= 16; m <<= 2, t >>= 2) {
        if (first)
            fwd_radix4<L, true>(in, out, m, t, w, ws, c);
        else
            fwd_radix4<L, false>(out, out, m, t, w, ws, c);
        first = false;
    }
    fwd_last4<L>(first ? in : out, out, n, w, ws, c);
}

// ---------------------------------------------------------------------------
// inverse
// ---------------------------------------------------------------------------

// Stage m = 1 (t = n/2) with n^-1 folded in: [0, L q) -> [0, q).
template <int L>
inline void inv_last_bfly(V& x, V& y, const Tw& tn, const Tw& tl, const Consts& c) {
    const V& b = c.bound<L>();
    V s = mul_shoup<L>(_mm512_add_epi64(x, y), tn, c);                          // < L q
    V d = mul_shoup<L>(_mm512_add_epi64(_mm512_sub_epi64(x, y), b), tl, c);     // < L q
    if (L == 4) {
        s = csub(s, c.q2);
        d = csub(d, c.q2);
    }
    x = csub(s, c.q);
    y = csub(d, c.q);
}

struct LastStage {
    Tw tn, tl;
    explicit LastStage(const Tables& tb)
        : tn(broadcast_tw(tb.n_inv, SL_NTT_IFMA ? tb.n_inv_shoup52 : tb.n_inv_shoup)),
          tl(broadcast_tw(tb.last_w, SL_NTT_IFMA ? tb.last_w_shoup52 : tb.last_w_shoup)) {}
};

// The first four stages (t = 1, 2, 4, 8) on K blocks of 16 starting at
// block b (interleaved, as in fwd_last4); kLast when t = 8 is also the last
// stage (n = 16).
template <int L, int K, bool kLast>
inline void inv_first4_blocks(const uint64_t* src, uint64_t* dst, size_t n, size_t b, const uint64_t* w,
                              const uint64_t* ws, const Consts& c, const LastStage& ls,
                              const Shuffles& sh) {
    V x[K], y[K];
    for (int k = 0; k < K; ++k) {
        V v0 = _mm512_loadu_si512(src + 16 * (b + k));
        V v1 = _mm512_loadu_si512(src + 16 * (b + k) + 8);
        x[k] = perm2(v0, sh.even, v1);
        y[k] = perm2(v0, sh.odd, v1);
        inv_bfly<L>(x[k], y[k], sh.twiddles<1>(w, ws, n / 2 + 8 * (b + k)), c);
    }
    for (int k = 0; k < K; ++k) {
        V x2 = unpacklo(x[k], y[k]), y2 = unpackhi(x[k], y[k]);
        inv_bfly<L>(x2, y2, sh.twiddles<2>(w, ws, n / 4 + 4 * (b + k)), c);
        x[k] = x2;
        y[k] = y2;
    }
    for (int k = 0; k < K; ++k) {
        V x4 = perm2(x[k], sh.t2_x, y[k]), y4 = perm2(x[k], sh.t2_y, y[k]);
        inv_bfly<L>(x4, y4, sh.twiddles<4>(w, ws, n / 8 + 2 * (b + k)), c);
        x[k] = x4;
        y[k] = y4;
    }
    for (int k = 0; k < K; ++k) {
        V x8 = perm2(x[k], sh.t4_x, y[k]), y8 = perm2(x[k], sh.t4_y, y[k]);
        if (kLast)
            inv_last_bfly<L>(x8, y8, ls.tn, ls.tl, c);
        else
            inv_bfly<L>(x8, y8, broadcast_tw(w[n / 16 + b + k], ws[n / 16 + b + k]), c);
        _mm512_storeu_si512(dst + 16 * (b + k), x8);
        _mm512_storeu_si512(dst + 16 * (b + k) + 8, y8);
    }
}

template <int L, bool kLast>
void inv_first4(const uint64_t* src, uint64_t* dst, size_t n, const uint64_t* w, const uint64_t* ws,
                const Consts& c, const LastStage& ls) {
    const Shuffles sh;
    constexpr int K = kBlocks;
    size_t b = 0;
    for (; b + K <= n / 16; b += K) inv_first4_blocks<L, K, kLast>(src, dst, n, b, w, ws, c, ls, sh);
    for (; b < n / 16; ++b) inv_first4_blocks<L, 1, kLast>(src, dst, n, b, w, ws, c, ls, sh);
}

// One radix-2 stage with t >= 8 in place (kLast: m = 1, with the scaling).
template <int L, bool kLast>
void inv_radix2(uint64_t* a, size_t m, size_t t, const uint64_t* w, const uint64_t* ws, const Consts& c,
                const LastStage& ls) {
    for (size_t i = 0; i < m; ++i) {
        const Tw tw = broadcast_tw(w[m + i], ws[m + i]);
        uint64_t* p = a + 2 * i * t;
        for (size_t j = 0; j < t; j += 8) {
            V x = _mm512_loadu_si512(p + j);
            V y = _mm512_loadu_si512(p + j + t);
            if (kLast)
                inv_last_bfly<L>(x, y, ls.tn, ls.tl, c);
            else
                inv_bfly<L>(x, y, tw, c);
            _mm512_storeu_si512(p + j, x);
            _mm512_storeu_si512(p + j + t, y);
        }
    }
}

// Stages with half-width t (m groups) and 2t (m / 2 groups) in one pass, in
// place: per block of quarters A B C D (t each), stage t pairs (A, B) and
// (C, D), stage 2t pairs (A, C) and (B, D). kLast: m = 2, the second stage
// is the last one.
template <int L, bool kLast>
void inv_radix4(uint64_t* a, size_t m, size_t t, const uint64_t* w, const uint64_t* ws, const Consts& c,
                const LastStage& ls) {
    for (size_t i = 0; i < m / 2; ++i) {
        const Tw t1 = broadcast_tw(w[m + 2 * i], ws[m + 2 * i]);
        const Tw t2 = broadcast_tw(w[m + 2 * i + 1], ws[m + 2 * i + 1]);
        const Tw t3 = broadcast_tw(w[m / 2 + i], ws[m / 2 + i]);
        uint64_t* p = a + 4 * i * t;
        for (size_t j = 0; j < t; j += 8) {
            V x0 = _mm512_loadu_si512(p + j);
            V x1 = _mm512_loadu_si512(p + j + t);
            V x2 = _mm512_loadu_si512(p + j + 2 * t);
            V x3 = _mm512_loadu_si512(p + j + 3 * t);
            inv_bfly<L>(x0, x1, t1, c);
            inv_bfly<L>(x2, x3, t2, c);
            if (kLast) {
                inv_last_bfly<L>(x0, x2, ls.tn, ls.tl, c);
                inv_last_bfly<L>(x1, x3, ls.tn, ls.tl, c);
            } else {
                inv_bfly<L>(x0, x2, t3, c);
                inv_bfly<L>(x1, x3, t3, c);
            }
            _mm512_storeu_si512(p + j, x0);
            _mm512_storeu_si512(p + j + t, x1);
            _mm512_storeu_si512(p + j + 2 * t, x2);
            _mm512_storeu_si512(p + j + 3 * t, x3);
        }
    }
}

template <int L>
void inverse_impl(const uint64_t* in, uint64_t* out, const Tables& tb) {
    const size_t n = tb.n;
    const Consts c(tb.q);
    const uint64_t* w = tb.iw;
    const uint64_t* ws = inv_shoup(tb);
    const LastStage ls(tb);
    if (n == 16) {
        inv_first4<L, true>(in, out, n, w, ws, c, ls);
        return;
    }
    inv_first4<L, false>(in, out, n, w, ws, c, ls);
    size_t m = n / 32, t = 16;
    if ((tb.log_n - 4) % 2) {
        if (m == 1)
            inv_radix2<L, true>(out, m, t, w, ws, c, ls);
        else
            inv_radix2<L, false>(out, m, t, w, ws, c, ls);
        m >>= 1;
        t <<= 1;
    }
    for (; m >= 2; m >>= 2, t <<= 2) {
        if (m == 2)
            inv_radix4<L, true>(out, m, t, w, ws, c, ls);
        else
            inv_radix4<L, false>(out, m, t, w, ws, c, ls);
    }
}

// The 64-bit path takes the cheaper L = 4 scheme where 8q fits a word.
void forward(const uint64_t* in, uint64_t* out, const Tables& tb) noexcept {
    if (!SL_NTT_IFMA && tb.q < (uint64_t(1) << 61))
        forward_impl<SL_NTT_IFMA ? 2 : 4>(in, out, tb);
    else
        forward_impl<2>(in, out, tb);
}

void inverse(const uint64_t* in, uint64_t* out, const Tables& tb) noexcept {
    if (!SL_NTT_IFMA && tb.q < (uint64_t(1) << 61))
        inverse_impl<SL_NTT_IFMA ? 2 : 4>(in, out, tb);
    else
        inverse_impl<2>(in, out, tb);
}

bool all_below(const uint64_t* a, size_t n, uint64_t bound) noexcept {
    const V b = _mm512_set1_epi64((long long)bound);
    __mmask8 bad = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) bad |= _mm512_cmpge_epu64_mask(_mm512_loadu_si512(a + i), b);
    uint64_t tail = 0;
    for (; i < n; ++i) tail |= uint64_t(a[i] >= bound);
    return bad == 0 && tail == 0;
}

}  // namespace

const Kernels table = {forward, inverse, all_below};

}  // namespace safelight::ntt::SL_ISA_NS
