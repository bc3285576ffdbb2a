// Garbled-circuit kernels with VAES on 512-bit registers (the avx512 tier).
//
// One zmm holds the labels of four consecutive instances (one per 128-bit
// lane). The garbler hashes four blocks per instance: with kGarbleZ zmm of
// instances per step, 4 * kGarbleZ zmm (16 * kGarbleZ AES blocks) are in
// flight; the evaluator hashes two per instance. Colour bits become AVX-512
// mask registers (vptestmq, widened to both words of each lane) that drive
// masked xors and blends. Table rows [TG, TE] are (de)interleaved with
// vpermt2q. Operands are XOR combinations of stored labels (see gc.hpp),
// folded in at load time. Table rows, and output rows nobody reads again,
// go out with non-temporal stores once 64-byte aligned (up to three
// instances are peeled for that); fewer than four leftover instances take
// the 128-bit path.
#include "gc_x86.hpp"

#if !(defined(__AVX512F__) && defined(__AVX512BW__) && defined(__VAES__))
#error "gc_avx512.cpp must be built with -mavx512f -mavx512bw -mvaes"
#endif

namespace safelight::gc::avx512 {

namespace {

#ifndef SL_GC_GARBLE_Z
#define SL_GC_GARBLE_Z 2
#endif
#ifndef SL_GC_EVAL_Z
#define SL_GC_EVAL_Z 2
#endif
constexpr int kGarbleZ = SL_GC_GARBLE_Z;  // zmm of instances (4 each) per garbling step
constexpr int kEvalZ = SL_GC_EVAL_Z;      // zmm of instances per evaluation step

inline __m512i bcast(__m128i x) { return _mm512_maskz_broadcast_i32x4(0xffff, x); }

struct ZmmKeys {
    __m512i k[11];
};

inline ZmmKeys zmm_keys(const RoundKeys& rk) {
    ZmmKeys Z;
    for (int r = 0; r < 11; ++r)
        Z.k[r] = bcast(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rk.w[r])));
    return Z;
}

inline __m512i load4(const uint64_t* p) { return _mm512_loadu_si512(p); }
inline void store4(uint64_t* p, __m512i v) { _mm512_storeu_si512(p, v); }

// Labels of four instances at word offset `off` of an operand.
inline __m512i load_op512(const Operand& o, __m512i mask, size_t off) {
    __m512i v = mask;
    for (uint32_t s = 0; s < o.n; ++s) v = _mm512_xor_si512(v, load4(o.src[s] + off));
    return v;
}

// 2x in GF(2^128) in each 128-bit lane (see dbl128).
inline __m512i dbl512(__m512i x) {
    const __m512i red = _mm512_set_epi64(1, 0x87, 1, 0x87, 1, 0x87, 1, 0x87);
    // (The all-ones zero-masking forms avoid GCC 12's spurious
    // -Wmaybe-uninitialized from the unmasked shift/shuffle intrinsics.)
    const __m512i sign = _mm512_maskz_srai_epi64(0xff, x, 63);
    const __m512i s = _mm512_maskz_shuffle_epi32(0xffff, sign, _MM_PERM_BADC);
    return _mm512_ternarylogic_epi64(_mm512_maskz_slli_epi64(0xff, x, 1), s, red, 0x78);  // a ^ (b & c)
}

// Mask of the 64-bit words (both words of each lane) whose lane has colour 1.
inline __mmask8 colour_mask512(__m512i x) {
    const __m512i lsb = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    const unsigned m = _mm512_test_epi64_mask(x, lsb);
    return static_cast<__mmask8>(m | (m << 1));
}

// Tweaks of four consecutive instances: lanes (lo = inst + j, hi = 2k).
inline __m512i tweak512(uint64_t inst, uint64_t k) {
    const auto s = [](uint64_t v) { return static_cast<long long>(v); };
    return _mm512_set_epi64(s(2 * k), s(inst + 3), s(2 * k), s(inst + 2), s(2 * k), s(inst + 1),
                            s(2 * k), s(inst));
}

template <int M>
inline void mmo512(const ZmmKeys& Z, const __m512i* x, __m512i* h) {
    __m512i s[M];
    SL_GC_UNROLL(16)
    for (int j = 0; j < M; ++j) s[j] = _mm512_xor_si512(x[j], Z.k[0]);
    SL_GC_UNROLL(9)
    for (int r = 1; r < 10; ++r) {
        const __m512i k = Z.k[r];
        SL_GC_UNROLL(16)
        for (int j = 0; j < M; ++j) s[j] = _mm512_aesenc_epi128(s[j], k);
    }
    SL_GC_UNROLL(16)
    for (int j = 0; j < M; ++j) h[j] = _mm512_xor_si512(_mm512_aesenclast_epi128(s[j], Z.k[10]), x[j]);
}

// Interleave / split table rows: row i = [TG_i, TE_i].
inline void interleave(__m512i tg, __m512i te, __m512i& lo, __m512i& hi) {
    const __m512i i0 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    const __m512i i1 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    lo = _mm512_permutex2var_epi64(tg, i0, te);
    hi = _mm512_permutex2var_epi64(tg, i1, te);
}
inline void split(__m512i lo, __m512i hi, __m512i& tg, __m512i& te) {
    const __m512i ig = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0);
    const __m512i ie = _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2);
    tg = _mm512_permutex2var_epi64(lo, ig, hi);
    te = _mm512_permutex2var_epi64(lo, ie, hi);
}

// 64-byte store, non-temporal when kStream (p then 64-byte aligned).
template <bool kStream>
inline void put(uint64_t* p, __m512i v) {
    if (kStream)
        _mm512_stream_si512(reinterpret_cast<__m512i*>(p), v);
    else
        store4(p, v);
}

// Instances i .. i + 4 NZ - 1. kStreamT / kStreamC: table rows / output
// labels go out with non-temporal stores (aligned): nobody here reads them
// again, and streaming saves the read-for-ownership of every line.
template <int NZ, bool kStreamT, bool kStreamC>
inline void garble_step(const ZmmKeys& Z, const Operand& a, const Operand& b, __m512i ma_,
                        __m512i mb_, uint64_t* c, uint64_t* table, size_t i, uint64_t inst,
                        uint64_t k, __m512i D, __m512i DD) {
    const __m512i eflip = _mm512_set_epi64(1, 0, 1, 0, 1, 0, 1, 0);
    __m512i A[NZ], B[NZ], x[4 * NZ], h[4 * NZ];
    SL_GC_UNROLL(8)
    for (int j = 0; j < NZ; ++j) {
        A[j] = load_op512(a, ma_, 2 * i + 8 * j);
        B[j] = load_op512(b, mb_, 2 * i + 8 * j);
        const __m512i t = tweak512(inst + i + 4 * uint64_t(j), k);
        x[4 * j] = _mm512_xor_si512(dbl512(A[j]), t);
        x[4 * j + 1] = _mm512_xor_si512(x[4 * j], DD);
        x[4 * j + 2] = _mm512_ternarylogic_epi64(dbl512(B[j]), t, eflip, 0x96);
        x[4 * j + 3] = _mm512_xor_si512(x[4 * j + 2], DD);
    }
    mmo512<4 * NZ>(Z, x, h);
    SL_GC_UNROLL(8)
    for (int j = 0; j < NZ; ++j) {
        const __mmask8 ma = colour_mask512(A[j]), mb = colour_mask512(B[j]);
        const __m512i ha0 = h[4 * j], ha1 = h[4 * j + 1], hb0 = h[4 * j + 2], hb1 = h[4 * j + 3];
        const __m512i s = _mm512_xor_si512(ha0, ha1);
        const __m512i tg = _mm512_mask_xor_epi64(s, mb, s, D);
        const __m512i te = _mm512_ternarylogic_epi64(hb0, hb1, A[j], 0x96);
        const __m512i wg = _mm512_mask_xor_epi64(ha0, ma, ha0, tg);
        const __m512i we = _mm512_mask_blend_epi64(mb, hb0, hb1);
        put<kStreamC>(c + 2 * i + 8 * j, _mm512_xor_si512(wg, we));
        __m512i lo, hi;
        interleave(tg, te, lo, hi);
        put<kStreamT>(table + 4 * i + 16 * j, lo);
        put<kStreamT>(table + 4 * i + 16 * j + 8, hi);
    }
}

template <int NZ, bool kStreamC>
inline void evaluate_step(const ZmmKeys& Z, const Operand& a, const Operand& b, __m512i ma_,
                          __m512i mb_, uint64_t* c, const uint64_t* table, size_t i,
                          uint64_t inst, uint64_t k) {
    const __m512i eflip = _mm512_set_epi64(1, 0, 1, 0, 1, 0, 1, 0);
    __m512i A[NZ], B[NZ], x[2 * NZ], h[2 * NZ];
    SL_GC_UNROLL(8)
    for (int j = 0; j < NZ; ++j) {
        A[j] = load_op512(a, ma_, 2 * i + 8 * j);
        B[j] = load_op512(b, mb_, 2 * i + 8 * j);
        const __m512i t = tweak512(inst + i + 4 * uint64_t(j), k);
        x[2 * j] = _mm512_xor_si512(dbl512(A[j]), t);
        x[2 * j + 1] = _mm512_ternarylogic_epi64(dbl512(B[j]), t, eflip, 0x96);
    }
    mmo512<2 * NZ>(Z, x, h);
    SL_GC_UNROLL(8)
    for (int j = 0; j < NZ; ++j) {
        const __mmask8 ma = colour_mask512(A[j]), mb = colour_mask512(B[j]);
        __m512i tg, te;
        split(load4(table + 4 * i + 16 * j), load4(table + 4 * i + 16 * j + 8), tg, te);
        __m512i v = _mm512_xor_si512(h[2 * j], h[2 * j + 1]);
        v = _mm512_mask_xor_epi64(v, ma, v, tg);
        v = _mm512_mask_ternarylogic_epi64(v, mb, te, A[j], 0x96);  // v ^ te ^ A where mb
        put<kStreamC>(c + 2 * i + 8 * j, v);
    }
}

inline bool aligned64(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 63) == 0; }

// The zmm loops of the garbler from instance i on, with the given stores.
template <bool kStreamT, bool kStreamC>
size_t garble_zmm(const ZmmKeys& Z, const Operand& a, const Operand& b, __m512i maZ,
                  __m512i mbZ, uint64_t* c, uint64_t* table, size_t i, size_t n,
                  uint64_t instance, uint64_t k, __m512i D, __m512i DD) {
    constexpr size_t kStep = 4 * kGarbleZ;
    for (; i + kStep <= n; i += kStep)
        garble_step<kGarbleZ, kStreamT, kStreamC>(Z, a, b, maZ, mbZ, c, table, i, instance, k,
                                                  D, DD);
    for (; i + 4 <= n; i += 4)
        garble_step<1, kStreamT, kStreamC>(Z, a, b, maZ, mbZ, c, table, i, instance, k, D, DD);
    if (kStreamT || kStreamC) _mm_sfence();
    return i;
}

void garble_and(const RoundKeys& rk, const Operand& a, const Operand& b, uint64_t* c,
                uint64_t* table, size_t n, uint64_t instance, uint64_t k,
                const uint64_t delta[2], bool stream_c) noexcept {
    const ZmmKeys Z = zmm_keys(rk);
    const XmmKeys K = load_keys(rk);
    const __m128i d = load_label(delta), dd = dbl128(d);
    const __m128i ma = load_label(a.mask), mb = load_label(b.mask);
    const __m512i D = bcast(d), DD = bcast(dd), maZ = bcast(ma), mbZ = bcast(mb);
    // Peel 0..3 instances (one at a time) so that the streamed rows start on
    // 64-byte boundaries: a table row is 32 bytes per instance, a label 16.
    size_t peel = 0;
    bool st = false, sc = false;
    for (size_t p = 0; p < 4 && p < n; ++p) {
        const bool t_ok = aligned64(table + 4 * p), c_ok = stream_c && aligned64(c + 2 * p);
        if (t_ok && (c_ok || !stream_c)) {
            peel = p, st = true, sc = c_ok;
            break;
        }
        if (t_ok && !st) peel = p, st = true;
    }
    size_t i = 0;
    for (; i < peel; ++i) garble_and128<1>(K, a, b, ma, mb, c, table, i, instance, k, d, dd);
    if (st && sc)
        i = garble_zmm<true, true>(Z, a, b, maZ, mbZ, c, table, i, n, instance, k, D, DD);
    else if (st)
        i = garble_zmm<true, false>(Z, a, b, maZ, mbZ, c, table, i, n, instance, k, D, DD);
    else
        i = garble_zmm<false, false>(Z, a, b, maZ, mbZ, c, table, i, n, instance, k, D, DD);
    for (; i < n; ++i) garble_and128<1>(K, a, b, ma, mb, c, table, i, instance, k, d, dd);
}

template <bool kStreamC>
size_t evaluate_zmm(const ZmmKeys& Z, const Operand& a, const Operand& b, __m512i maZ,
                    __m512i mbZ, uint64_t* c, const uint64_t* table, size_t i, size_t n,
                    uint64_t instance, uint64_t k) {
    constexpr size_t kStep = 4 * kEvalZ;
    for (; i + kStep <= n; i += kStep)
        evaluate_step<kEvalZ, kStreamC>(Z, a, b, maZ, mbZ, c, table, i, instance, k);
    for (; i + 4 <= n; i += 4)
        evaluate_step<1, kStreamC>(Z, a, b, maZ, mbZ, c, table, i, instance, k);
    if (kStreamC) _mm_sfence();
    return i;
}

void evaluate_and(const RoundKeys& rk, const Operand& a, const Operand& b, uint64_t* c,
                  const uint64_t* table, size_t n, uint64_t instance, uint64_t k,
                  bool stream_c) noexcept {
    const ZmmKeys Z = zmm_keys(rk);
    const XmmKeys K = load_keys(rk);
    const __m512i maZ = bcast(load_label(a.mask)), mbZ = bcast(load_label(b.mask));
    size_t i = 0;
    if (stream_c) {
        for (; i < n && !aligned64(c + 2 * i) && i < 4; ++i)
            evaluate_and128<1>(K, a, b, c, table, i, instance, k);
        if (aligned64(c + 2 * i))
            i = evaluate_zmm<true>(Z, a, b, maZ, mbZ, c, table, i, n, instance, k);
    }
    i = evaluate_zmm<false>(Z, a, b, maZ, mbZ, c, table, i, n, instance, k);
    for (; i < n; ++i) evaluate_and128<1>(K, a, b, c, table, i, instance, k);
}

void xor_labels(const Operand& a, uint64_t* c, size_t n, bool stream_c) noexcept {
    const __m512i m = bcast(load_label(a.mask));
    size_t i = 0;
    if (stream_c) {
        for (; i < n && i < 4 && !aligned64(c + 2 * i); ++i) {
        }
        xor_labels128(a, c, 0, i);
        if (aligned64(c + 2 * i)) {
            for (; i + 4 <= n; i += 4) put<true>(c + 2 * i, load_op512(a, m, 2 * i));
            _mm_sfence();
        }
    }
    for (; i + 4 <= n; i += 4) store4(c + 2 * i, load_op512(a, m, 2 * i));
    xor_labels128(a, c, i, n);
}

void hash(const RoundKeys& rk, const uint64_t* x, uint64_t* out, size_t n, uint64_t instance,
          uint64_t tweak_hi) noexcept {
    hash128(rk, x, out, n, instance, tweak_hi);
}

}  // namespace

const Kernels table = {garble_and, evaluate_and, xor_labels, hash};

}  // namespace safelight::gc::avx512
