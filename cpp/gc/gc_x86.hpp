// Garbled-circuit helpers on 128-bit registers (AES-NI), shared by the avx2
// and avx512 tiers. Internal linkage on purpose: each including translation
// unit is built with different instruction-set flags and keeps its own copy.
//
// The N-instance routines run all their AES blocks in lock step (4N blocks
// for the garbler, 2N for the evaluator) so the aesenc latency is hidden.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "safelight/gc.hpp"

#define SL_GC_PRAGMA(x) _Pragma(#x)
#define SL_GC_UNROLL(n) SL_GC_PRAGMA(GCC unroll n)

namespace {

using safelight::gc::Operand;
using safelight::gc::RoundKeys;

struct XmmKeys {
    __m128i k[11];
};

inline XmmKeys load_keys(const RoundKeys& rk) {
    XmmKeys K;
    for (int r = 0; r < 11; ++r) K.k[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rk.w[r]));
    return K;
}

inline __m128i load_label(const uint64_t* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
inline void store_label(uint64_t* p, __m128i v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v);
}
// Non-temporal when kStream (p is then 16-byte aligned).
template <bool kStream>
inline void put_label(uint64_t* p, __m128i v) {
    if (kStream)
        _mm_stream_si128(reinterpret_cast<__m128i*>(p), v);
    else
        store_label(p, v);
}

// Label at word offset `off` of an operand: mask ^ XOR of its sources.
inline __m128i load_op128(const Operand& o, __m128i mask, size_t off) {
    __m128i v = mask;
    for (uint32_t s = 0; s < o.n; ++s) v = _mm_xor_si128(v, load_label(o.src[s] + off));
    return v;
}

// 2x in GF(2^128): shift the 128-bit value left by one, carry bit 63 into the
// high word and fold bit 127 back as 0x87. The sign of each 64-bit word is
// spread from its top dword and moved to the other word.
inline __m128i dbl128(__m128i x) {
    const __m128i red = _mm_set_epi64x(1, 0x87);
    const __m128i s = _mm_shuffle_epi32(_mm_srai_epi32(x, 31), 0x5F);  // [d3 d3 d1 d1]
    return _mm_xor_si128(_mm_slli_epi64(x, 1), _mm_and_si128(s, red));
}

// All ones when the colour bit (bit 0) of the label is set, else zero.
inline __m128i colour_mask128(__m128i x) {
    return _mm_shuffle_epi32(_mm_srai_epi32(_mm_slli_epi64(x, 63), 31), 0x55);
}

// h[j] = AES(x[j]) ^ x[j] for M blocks in lock step.
template <int M>
inline void mmo128(const XmmKeys& K, const __m128i* x, __m128i* h) {
    __m128i s[M];
    SL_GC_UNROLL(16)
    for (int j = 0; j < M; ++j) s[j] = _mm_xor_si128(x[j], K.k[0]);
    SL_GC_UNROLL(9)
    for (int r = 1; r < 10; ++r) {
        const __m128i k = K.k[r];
        SL_GC_UNROLL(16)
        for (int j = 0; j < M; ++j) s[j] = _mm_aesenc_si128(s[j], k);
    }
    SL_GC_UNROLL(16)
    for (int j = 0; j < M; ++j) h[j] = _mm_xor_si128(_mm_aesenclast_si128(s[j], K.k[10]), x[j]);
}

// Tweak of instance `inst` for AND index k: (lo = inst, hi = 2k); the
// evaluator half flips bit 0 of the high word (2k + 1).
inline __m128i tweak128(uint64_t inst, uint64_t k) {
    return _mm_set_epi64x(static_cast<long long>(2 * k), static_cast<long long>(inst));
}

// Garbles instances i .. i + N - 1 (operand masks ma_, mb_ preloaded).
// kStreamT / kStreamC: table rows / output labels with non-temporal stores.
template <int N, bool kStreamT = false, bool kStreamC = false>
inline void garble_and128(const XmmKeys& K, const Operand& a, const Operand& b, __m128i ma_,
                          __m128i mb_, uint64_t* c, uint64_t* table, size_t i, uint64_t inst,
                          uint64_t k, __m128i D, __m128i DD) {
    const __m128i eflip = _mm_set_epi64x(1, 0);
    __m128i A[N], B[N], x[4 * N], h[4 * N];
    SL_GC_UNROLL(8)
    for (int j = 0; j < N; ++j) {
        A[j] = load_op128(a, ma_, 2 * (i + j));
        B[j] = load_op128(b, mb_, 2 * (i + j));
        const __m128i t = tweak128(inst + i + uint64_t(j), k);
        x[4 * j] = _mm_xor_si128(dbl128(A[j]), t);
        x[4 * j + 1] = _mm_xor_si128(x[4 * j], DD);
        x[4 * j + 2] = _mm_xor_si128(dbl128(B[j]), _mm_xor_si128(t, eflip));
        x[4 * j + 3] = _mm_xor_si128(x[4 * j + 2], DD);
    }
    mmo128<4 * N>(K, x, h);
    SL_GC_UNROLL(8)
    for (int j = 0; j < N; ++j) {
        const __m128i ma = colour_mask128(A[j]), mb = colour_mask128(B[j]);
        const __m128i ha0 = h[4 * j], ha1 = h[4 * j + 1], hb0 = h[4 * j + 2], hb1 = h[4 * j + 3];
        const __m128i tg = _mm_xor_si128(_mm_xor_si128(ha0, ha1), _mm_and_si128(D, mb));
        const __m128i te = _mm_xor_si128(_mm_xor_si128(hb0, hb1), A[j]);
        const __m128i we = _mm_xor_si128(hb0, _mm_and_si128(_mm_xor_si128(hb0, hb1), mb));
        const __m128i cz = _mm_xor_si128(_mm_xor_si128(ha0, _mm_and_si128(tg, ma)), we);
        put_label<kStreamC>(c + 2 * (i + j), cz);
        put_label<kStreamT>(table + 4 * (i + j), tg);
        put_label<kStreamT>(table + 4 * (i + j) + 2, te);
    }
}

template <int N, bool kStreamC = false>
inline void evaluate_and128(const XmmKeys& K, const Operand& a, const Operand& b, uint64_t* c,
                            const uint64_t* table, size_t i, uint64_t inst, uint64_t k) {
    const __m128i eflip = _mm_set_epi64x(1, 0);
    const __m128i ma_ = load_label(a.mask), mb_ = load_label(b.mask);
    __m128i A[N], B[N], x[2 * N], h[2 * N];
    SL_GC_UNROLL(8)
    for (int j = 0; j < N; ++j) {
        A[j] = load_op128(a, ma_, 2 * (i + j));
        B[j] = load_op128(b, mb_, 2 * (i + j));
        const __m128i t = tweak128(inst + i + uint64_t(j), k);
        x[2 * j] = _mm_xor_si128(dbl128(A[j]), t);
        x[2 * j + 1] = _mm_xor_si128(dbl128(B[j]), _mm_xor_si128(t, eflip));
    }
    mmo128<2 * N>(K, x, h);
    SL_GC_UNROLL(8)
    for (int j = 0; j < N; ++j) {
        const __m128i ma = colour_mask128(A[j]), mb = colour_mask128(B[j]);
        const __m128i tg = load_label(table + 4 * (i + j)), te = load_label(table + 4 * (i + j) + 2);
        __m128i v = _mm_xor_si128(h[2 * j], h[2 * j + 1]);
        v = _mm_xor_si128(v, _mm_and_si128(tg, ma));
        v = _mm_xor_si128(v, _mm_and_si128(_mm_xor_si128(te, A[j]), mb));
        put_label<kStreamC>(c + 2 * (i + j), v);
    }
}

inline void hash128(const RoundKeys& rk, const uint64_t* x, uint64_t* out, size_t n,
                    uint64_t instance, uint64_t tweak_hi) {
    const XmmKeys K = load_keys(rk);
    for (size_t i = 0; i < n; ++i) {
        const __m128i t = _mm_set_epi64x(static_cast<long long>(tweak_hi),
                                         static_cast<long long>(instance + i));
        __m128i v = _mm_xor_si128(dbl128(load_label(x + 2 * i)), t), h;
        mmo128<1>(K, &v, &h);
        store_label(out + 2 * i, h);
    }
}

// c[i] = operand label i for i in [lo, n).
inline void xor_labels128(const Operand& a, uint64_t* c, size_t lo, size_t n) {
    const __m128i m = load_label(a.mask);
    for (size_t i = lo; i < n; ++i) store_label(c + 2 * i, load_op128(a, m, 2 * i));
}

}  // namespace
