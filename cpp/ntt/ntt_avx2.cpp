// AVX2 NTT kernels: four 64-bit lanes, q < 2^62. AVX2 has no 64-bit low
// multiply, so every word product is assembled from 32x32 vpmuludq products:
// four (or three, see below) for the Shoup quotient's high word, three each
// for the low words of w y and Q q. Stages with t >= 4 vectorise over X and
// Y; t = 2 and t = 1 split blocks of 8 values with vperm2i128 /
// vpunpck{l,h}qdq.
//
// Lazy bound L, as in ntt_avx512_impl.hpp: L = 2 is Harvey's exact scheme
// (products in [0, 2q), forward values below 4q, inverse below 2q); for
// q < 2^61, L = 4 estimates the quotient without the low partial product
// and the middle carries (at most 3 below floor(w y / q): products in
// [0, 4q), every bound doubled, 8q < 2^64).
#include <immintrin.h>

#include <cstdint>

#include "safelight/ntt.hpp"

namespace safelight::ntt::avx2 {
namespace {

using V = __m256i;

struct Consts {
    V q, q_hi, q2, q4;
    explicit Consts(uint64_t qv)
        : q(_mm256_set1_epi64x((long long)qv)),
          q_hi(_mm256_set1_epi64x((long long)(qv >> 32))),
          q2(_mm256_set1_epi64x((long long)(2 * qv))),
          q4(_mm256_set1_epi64x((long long)(4 * qv))) {}
    template <int L>
    const V& bound() const {  // L q
        return L == 4 ? q4 : q2;
    }
};

struct Tw {
    V w, w_hi, ws, ws_hi;
};

inline Tw make_tw(V w, V ws) { return {w, _mm256_srli_epi64(w, 32), ws, _mm256_srli_epi64(ws, 32)}; }

inline Tw broadcast_tw(uint64_t w, uint64_t ws) {
    return make_tw(_mm256_set1_epi64x((long long)w), _mm256_set1_epi64x((long long)ws));
}

// a b mod 2^64 from 32-bit halves (a_hi = a >> 32, b_hi = b >> 32).
inline V mullo64(V a, V a_hi, V b, V b_hi) {
    V cross = _mm256_add_epi64(_mm256_mul_epu32(a, b_hi), _mm256_mul_epu32(a_hi, b));
    return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

// w y - Q q with Q ~ floor(w' y / 2^64): in [0, L q) for any y.
template <int L>
inline V mul_shoup(V y, const Tw& t, const Consts& c) {
    V y_hi = _mm256_srli_epi64(y, 32);
    V lh = _mm256_mul_epu32(y, t.ws_hi);
    V hl = _mm256_mul_epu32(y_hi, t.ws);
    V hh = _mm256_mul_epu32(y_hi, t.ws_hi);
    V qt;
    if (L == 4) {
        qt = _mm256_add_epi64(hh, _mm256_add_epi64(_mm256_srli_epi64(lh, 32), _mm256_srli_epi64(hl, 32)));
    } else {
        const V lo32 = _mm256_set1_epi64x(0xffffffffLL);
        V ll = _mm256_mul_epu32(y, t.ws);
        V mid = _mm256_add_epi64(_mm256_srli_epi64(ll, 32), lh);
        V mid2 = _mm256_add_epi64(_mm256_and_si256(mid, lo32), hl);
        qt = _mm256_add_epi64(hh, _mm256_add_epi64(_mm256_srli_epi64(mid, 32), _mm256_srli_epi64(mid2, 32)));
    }
    V wy = mullo64(t.w, t.w_hi, y, y_hi);
    V qq = mullo64(qt, _mm256_srli_epi64(qt, 32), c.q, c.q_hi);
    return _mm256_sub_epi64(wy, qq);
}

// x - m where x >= m, else x; x < 2m < 2^64 with m < 2^63, so the sign of
// x - m tells which (vblendvpd picks by the sign bit).
inline V csub(V x, V m) {
    V d = _mm256_sub_epi64(x, m);
    return _mm256_castpd_si256(
        _mm256_blendv_pd(_mm256_castsi256_pd(d), _mm256_castsi256_pd(x), _mm256_castsi256_pd(d)));
}

// [0, 2 L q) -> [0, q)
template <int L>
inline V reduce_full(V x, const Consts& c) {
    if (L == 4) x = csub(x, c.q4);
    return csub(csub(x, c.q2), c.q);
}

// Forward butterfly on [0, 2 L q) values (kReduceX false: x < L q already).
template <int L, bool kReduceX>
inline void fwd_bfly(V& x, V& y, const Tw& t, const Consts& c) {
    const V& b = c.bound<L>();
    V u = kReduceX ? csub(x, b) : x;
    V v = mul_shoup<L>(y, t, c);
    x = _mm256_add_epi64(u, v);
    y = _mm256_add_epi64(_mm256_sub_epi64(u, v), b);
}

// Inverse butterfly on [0, L q) values.
template <int L>
inline void inv_bfly(V& x, V& y, const Tw& t, const Consts& c) {
    const V& b = c.bound<L>();
    V s = csub(_mm256_add_epi64(x, y), b);
    V d = _mm256_add_epi64(_mm256_sub_epi64(x, y), b);
    x = s;
    y = mul_shoup<L>(d, t, c);
}

inline V load(const uint64_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline void store(uint64_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }

// Split of a block of 8 values (v0 = 0..3, v1 = 4..7) into X and Y lanes for
// half-width T (2 or 1), its inverse, and the twiddles of the X lanes.
//   T = 2: X = values 0 1 4 5, Y = 2 3 6 7; groups g g g+1 g+1
//   T = 1: X = values 0 4 2 6, Y = 1 5 3 7; groups g g+2 g+1 g+3
template <int T>
inline void split(V v0, V v1, V& x, V& y) {
    if (T == 2) {
        x = _mm256_permute2x128_si256(v0, v1, 0x20);
        y = _mm256_permute2x128_si256(v0, v1, 0x31);
    } else {
        x = _mm256_unpacklo_epi64(v0, v1);
        y = _mm256_unpackhi_epi64(v0, v1);
    }
}

template <int T>
inline void merge(V x, V y, V& v0, V& v1) {
    if (T == 2) {
        v0 = _mm256_permute2x128_si256(x, y, 0x20);
        v1 = _mm256_permute2x128_si256(x, y, 0x31);
    } else {
        v0 = _mm256_unpacklo_epi64(x, y);
        v1 = _mm256_unpackhi_epi64(x, y);
    }
}

template <int T>
inline V spread(const uint64_t* w) {
    if (T == 2)
        return _mm256_permute4x64_epi64(
            _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))), 0x50);
    return _mm256_permute4x64_epi64(load(w), 0xD8);
}

template <int L, bool kReduceX>
void fwd_wide(const uint64_t* src, uint64_t* dst, size_t m, size_t t, const uint64_t* w,
              const uint64_t* ws, const Consts& c) {
    for (size_t i = 0; i < m; ++i) {
        const Tw tw = broadcast_tw(w[m + i], ws[m + i]);
        const size_t base = 2 * i * t;
        for (size_t j = base; j < base + t; j += 4) {
            V x = load(src + j), y = load(src + j + t);
            fwd_bfly<L, kReduceX>(x, y, tw, c);
            store(dst + j, x);
            store(dst + j + t, y);
        }
    }
}

template <int L, int T, bool kLast>
void fwd_narrow(uint64_t* a, size_t n, const uint64_t* w, const uint64_t* ws, const Consts& c) {
    const size_t m = n / (2 * T);
    constexpr size_t groups = 4 / T;  // per block of 8 values
    for (size_t b = 0; b < n / 8; ++b) {
        const size_t g = m + b * groups;
        const Tw tw = make_tw(spread<T>(w + g), spread<T>(ws + g));
        V x, y, v0 = load(a + 8 * b), v1 = load(a + 8 * b + 4);
        split<T>(v0, v1, x, y);
        fwd_bfly<L, true>(x, y, tw, c);
        if (kLast) {
            x = reduce_full<L>(x, c);
            y = reduce_full<L>(y, c);
        }
        merge<T>(x, y, v0, v1);
        store(a + 8 * b, v0);
        store(a + 8 * b + 4, v1);
    }
}

template <int L>
void forward_impl(const uint64_t* in, uint64_t* out, const Tables& tb) {
    const size_t n = tb.n;
    const Consts c(tb.q);
    const uint64_t* w = tb.w;
    const uint64_t* ws = tb.w_shoup;
    fwd_wide<L, false>(in, out, 1, n / 2, w, ws, c);
    for (size_t m = 2, t = n / 4; t >= 4; m <<= 1, t >>= 1) fwd_wide<L, true>(out, out, m, t, w, ws, c);
    fwd_narrow<L, 2, false>(out, n, w, ws, c);
    fwd_narrow<L, 1, true>(out, n, w, ws, c);
}

template <int L, int T>
void inv_narrow(const uint64_t* src, uint64_t* dst, size_t n, const uint64_t* w, const uint64_t* ws,
                const Consts& c) {
    const size_t m = n / (2 * T);
    constexpr size_t groups = 4 / T;
    for (size_t b = 0; b < n / 8; ++b) {
        const size_t g = m + b * groups;
        const Tw tw = make_tw(spread<T>(w + g), spread<T>(ws + g));
        V x, y, v0 = load(src + 8 * b), v1 = load(src + 8 * b + 4);
        split<T>(v0, v1, x, y);
        inv_bfly<L>(x, y, tw, c);
        merge<T>(x, y, v0, v1);
        store(dst + 8 * b, v0);
        store(dst + 8 * b + 4, v1);
    }
}

template <int L>
void inverse_impl(const uint64_t* in, uint64_t* out, const Tables& tb) {
    const size_t n = tb.n;
    const Consts c(tb.q);
    const uint64_t* w = tb.iw;
    const uint64_t* ws = tb.iw_shoup;
    inv_narrow<L, 1>(in, out, n, w, ws, c);
    inv_narrow<L, 2>(out, out, n, w, ws, c);
    size_t t = 4;
    for (size_t m = n / 8; m > 1; m >>= 1, t <<= 1) {
        for (size_t i = 0; i < m; ++i) {
            const Tw tw = broadcast_tw(w[m + i], ws[m + i]);
            const size_t base = 2 * i * t;
            for (size_t j = base; j < base + t; j += 4) {
                V x = load(out + j), y = load(out + j + t);
                inv_bfly<L>(x, y, tw, c);
                store(out + j, x);
                store(out + j + t, y);
            }
        }
    }
    // Last stage (m = 1, t = n/2) with n^-1 folded in: products below L q.
    const Tw tn = broadcast_tw(tb.n_inv, tb.n_inv_shoup);
    const Tw tl = broadcast_tw(tb.last_w, tb.last_w_shoup);
    for (size_t j = 0; j < t; j += 4) {
        V x = load(out + j), y = load(out + j + t);
        V s = mul_shoup<L>(_mm256_add_epi64(x, y), tn, c);
        V d = mul_shoup<L>(_mm256_add_epi64(_mm256_sub_epi64(x, y), c.bound<L>()), tl, c);
        if (L == 4) {
            s = csub(s, c.q2);
            d = csub(d, c.q2);
        }
        store(out + j, csub(s, c.q));
        store(out + j + t, csub(d, c.q));
    }
}

void forward(const uint64_t* in, uint64_t* out, const Tables& tb) noexcept {
    if (tb.q < (uint64_t(1) << 61))
        forward_impl<4>(in, out, tb);
    else
        forward_impl<2>(in, out, tb);
}

void inverse(const uint64_t* in, uint64_t* out, const Tables& tb) noexcept {
    if (tb.q < (uint64_t(1) << 61))
        inverse_impl<4>(in, out, tb);
    else
        inverse_impl<2>(in, out, tb);
}

bool all_below(const uint64_t* a, size_t n, uint64_t bound) noexcept {
    // unsigned x >= bound  <=>  (x ^ 2^63) >= (bound ^ 2^63) signed
    const V flip = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    const V lim = _mm256_xor_si256(_mm256_set1_epi64x((long long)(bound - 1)), flip);
    V bad = _mm256_setzero_si256();
    size_t i = 0;
    if (bound == 0) return n == 0;
    for (; i + 4 <= n; i += 4)
        bad = _mm256_or_si256(bad, _mm256_cmpgt_epi64(_mm256_xor_si256(load(a + i), flip), lim));
    uint64_t tail = 0;
    for (; i < n; ++i) tail |= uint64_t(a[i] >= bound);
    return _mm256_testz_si256(bad, bad) && tail == 0;
}

}  // namespace

const Kernels table = {forward, inverse, all_below};

}  // namespace safelight::ntt::avx2
