// GEMM / convolution kernels over Z_2^64, written once and compiled per ISA.
//
// Included by gemm_scalar.cpp, gemm_avx2.cpp and gemm_avx512.cpp, each built
// with its own flags and defining SL_ISA_NS (namespace of this copy) and
// SL_GEMM_LEVEL (0 = scalar reference, 1 = AVX2, 2 = AVX-512).
//
// Level 0 is plain loops (the TU is built without vectorisation): the
// reference every other path is tested against.
//
// Levels 1 and 2 follow the Goto/BLIS layering: B is packed kc x nc into
// nr-wide column panels (for convolution the im2col matrix is packed straight
// from the image, never materialised), A is packed mc x kc into mr-high row
// panels, and a register-blocked micro-kernel keeps an mr x nr tile of C in
// vector registers over the whole kc loop. Thin shapes skip the packing:
// few rows stream B in place (small_m), few columns take dot products
// against a transposed B (skinny), and thin convolution groups (depthwise)
// use direct loops. The 64-bit products:
//   * AVX-512: one vpmullq + vpaddq per 8 products (vpmullq is a single
//     full-rate instruction on Zen 4).
//   * AVX2 has no 64-bit multiply-low. With a = ah*2^32 + al, b = bh*2^32 + bl:
//       a*b mod 2^64 = al*bl + 2^32 * (al*bh + ah*bl mod 2^32).
//     The micro-kernel keeps two accumulators per C vector: L += al*bl
//     (vpmuludq, exact 64-bit) and X += the two cross products at once with
//     one vpmulld of a by b with its 32-bit halves swapped (low half al*bh,
//     high half ah*bl, each mod 2^32, summed with vpaddd). The shift and the
//     fold of the two halves happen once per tile: C = L + ((X + (X >> 32)) << 32).
//
// Nothing here allocates, throws, starts threads or calls into the standard
// library's templates (their out-of-line copies would be shared between the
// differently compiled TUs).
#pragma once
#include <cstddef>
#include <cstdint>

#include "safelight/gemm.hpp"

#ifndef SL_ISA_NS
#error "define SL_ISA_NS before including gemm_impl.hpp"
#endif
#ifndef SL_GEMM_LEVEL
#error "define SL_GEMM_LEVEL before including gemm_impl.hpp"
#endif

#if SL_GEMM_LEVEL >= 1
#include <immintrin.h>
#endif
#if SL_GEMM_LEVEL == 1 && !defined(__AVX2__)
#error "gemm_avx2.cpp must be built with -mavx2"
#endif
#if SL_GEMM_LEVEL == 2 && !(defined(__AVX512F__) && defined(__AVX512DQ__))
#error "gemm_avx512.cpp must be built with -mavx512f -mavx512dq"
#endif

#define SL_PRAGMA(x) _Pragma(#x)
#define SL_UNROLL(n) SL_PRAGMA(GCC unroll n)

namespace safelight::gemm::SL_ISA_NS {
namespace {

inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
inline size_t round_up(size_t a, size_t b) { return (a + b - 1) / b * b; }
inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

#if SL_GEMM_LEVEL == 0
// ---------------------------------------------------------------------------
// Scalar reference.
// ---------------------------------------------------------------------------
constexpr Blocking kBlocking = {0, 0, 0, 0, 0, 0};

size_t matmul_workspace(size_t, size_t, size_t) noexcept { return 0; }
size_t conv2d_workspace(size_t, size_t, size_t) noexcept { return 0; }

void matmul(const uint64_t* __restrict a, size_t lda, const uint64_t* __restrict b, size_t ldb,
            uint64_t* __restrict c, size_t ldc, size_t m, size_t n, size_t k, bool accumulate,
            uint64_t*) noexcept {
    for (size_t i = 0; i < m; ++i) {
        uint64_t* crow = c + i * ldc;
        if (!accumulate)
            for (size_t j = 0; j < n; ++j) crow[j] = 0;
        for (size_t p = 0; p < k; ++p) {
            const uint64_t av = a[i * lda + p];
            const uint64_t* brow = b + p * ldb;
            for (size_t j = 0; j < n; ++j) crow[j] += av * brow[j];
        }
    }
}

constexpr auto conv2d_gemm = nullptr;  // the reference convolution is conv2d_direct

#else
// ---------------------------------------------------------------------------
// Micro-kernels: c[MR x NR] (=|+=) sum_k apanel[k][0..MR) (x) bpanel[k][0..NR).
// apanel is MR values per k, bpanel NR values per k (64-byte aligned).
// ---------------------------------------------------------------------------
// Both micro-kernels run kc >= 1 steps and add the old C through an
// all-or-nothing load mask instead of a branch per vector: with the branch,
// GCC keeps stack copies of the accumulators updated inside the k loop.
#if SL_GEMM_LEVEL == 2
// 8 x 24 tile: 24 zmm accumulators, 3 for the B row, the rest for products.
constexpr size_t MR = 8, NV = 3, VL = 8, NR = NV * VL;
constexpr size_t MC = 192, KC = 256, NC = 2016;
// Crossovers measured on Zen 4: matmuls with at most SMALL_M rows or
// SKINNY_N columns, and convolutions with fewer than GEMM_MIN_OG output
// channels per group, do better without the packed GEMM.
constexpr size_t SMALL_M = 8, SKINNY_N = 8, GEMM_MIN_OG = 6;

__attribute__((noinline)) void micro(size_t kc, const uint64_t* __restrict ap,
                                     const uint64_t* __restrict bp, uint64_t* __restrict c,
                                     size_t ldc, bool add) noexcept {
    __m512i acc[MR][NV];
    SL_UNROLL(8) for (size_t r = 0; r < MR; ++r) {
        // The C tile is read at the end: start fetching it now.
        const char* row = reinterpret_cast<const char*>(c + r * ldc);
        SL_UNROLL(4) for (size_t off = 0; off < NR * sizeof(uint64_t); off += 64)
            _mm_prefetch(row + off, _MM_HINT_T0);
        _mm_prefetch(row + NR * sizeof(uint64_t) - 1, _MM_HINT_T0);
        SL_UNROLL(4) for (size_t v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();
    }
    do {
        __m512i bv[NV];
        SL_UNROLL(4) for (size_t v = 0; v < NV; ++v)
            bv[v] = _mm512_load_si512(reinterpret_cast<const void*>(bp + v * VL));
        SL_UNROLL(8) for (size_t r = 0; r < MR; ++r) {
            const __m512i av = _mm512_set1_epi64(static_cast<long long>(ap[r]));
            SL_UNROLL(4) for (size_t v = 0; v < NV; ++v)
                acc[r][v] = _mm512_add_epi64(acc[r][v], _mm512_mullo_epi64(av, bv[v]));
        }
        ap += MR;
        bp += NR;
    } while (--kc);
    const __mmask8 keep = add ? 0xFF : 0;
    SL_UNROLL(8) for (size_t r = 0; r < MR; ++r)
        SL_UNROLL(4) for (size_t v = 0; v < NV; ++v) {
            uint64_t* dst = c + r * ldc + v * VL;
            _mm512_storeu_si512(dst,
                                _mm512_add_epi64(acc[r][v], _mm512_maskz_loadu_epi64(keep, dst)));
        }
}

inline void copy_panel_row(uint64_t* __restrict dst, const uint64_t* __restrict src) noexcept {
    SL_UNROLL(4) for (size_t v = 0; v < NV; ++v)
        _mm512_store_si512(reinterpret_cast<void*>(dst + v * VL),
                           _mm512_loadu_si512(reinterpret_cast<const void*>(src + v * VL)));
}

#else  // SL_GEMM_LEVEL == 1
// 2 x 8 tile: 2 x 2 ymm vectors of C, each with two accumulators (8), plus
// the B row and its half-swapped copy (4): fits the 16 ymm registers.
constexpr size_t MR = 2, NV = 2, VL = 4, NR = NV * VL;
constexpr size_t MC = 128, KC = 256, NC = 2048;
// Crossovers (see the AVX-512 constants).
constexpr size_t SMALL_M = 3, SKINNY_N = 4, GEMM_MIN_OG = 3;

__attribute__((noinline)) void micro(size_t kc, const uint64_t* __restrict ap,
                                     const uint64_t* __restrict bp, uint64_t* __restrict c,
                                     size_t ldc, bool add) noexcept {
    __m256i lo[MR][NV], cross[MR][NV];
    SL_UNROLL(8) for (size_t r = 0; r < MR; ++r) {
        // The C tile is read at the end: start fetching it now.
        const char* row = reinterpret_cast<const char*>(c + r * ldc);
        _mm_prefetch(row, _MM_HINT_T0);
        _mm_prefetch(row + NR * sizeof(uint64_t) - 1, _MM_HINT_T0);
        SL_UNROLL(4) for (size_t v = 0; v < NV; ++v) {
            lo[r][v] = _mm256_setzero_si256();
            cross[r][v] = _mm256_setzero_si256();
        }
    }
    do {
        __m256i bv[NV], bs[NV];
        SL_UNROLL(4) for (size_t v = 0; v < NV; ++v) {
            bv[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(bp + v * VL));
            bs[v] = _mm256_shuffle_epi32(bv[v], 0xB1);  // swap the 32-bit halves
        }
        SL_UNROLL(8) for (size_t r = 0; r < MR; ++r) {
            const __m256i av = _mm256_set1_epi64x(static_cast<long long>(ap[r]));
            SL_UNROLL(4) for (size_t v = 0; v < NV; ++v) {
                lo[r][v] = _mm256_add_epi64(lo[r][v], _mm256_mul_epu32(av, bv[v]));
                cross[r][v] = _mm256_add_epi32(cross[r][v], _mm256_mullo_epi32(av, bs[v]));
            }
        }
        ap += MR;
        bp += NR;
    } while (--kc);
    const __m256i keep = _mm256_set1_epi64x(add ? -1 : 0);
    SL_UNROLL(8) for (size_t r = 0; r < MR; ++r)
        SL_UNROLL(4) for (size_t v = 0; v < NV; ++v) {
            long long* dst = reinterpret_cast<long long*>(c + r * ldc + v * VL);
            const __m256i x = cross[r][v];
            const __m256i val = _mm256_add_epi64(
                lo[r][v], _mm256_slli_epi64(_mm256_add_epi32(x, _mm256_srli_epi64(x, 32)), 32));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                                _mm256_add_epi64(val, _mm256_maskload_epi64(dst, keep)));
        }
}

inline void copy_panel_row(uint64_t* __restrict dst, const uint64_t* __restrict src) noexcept {
    SL_UNROLL(4) for (size_t v = 0; v < NV; ++v)
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + v * VL),
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + v * VL)));
}
#endif

// o[x] += sum_t w[t] * src[t][x]: the multiply-add of several shifted rows
// into one output row, shared by the direct convolution and the few-rows
// matmul. Up to kTapChunk rows per call, accumulated in registers.
constexpr size_t kTapChunk = 16;
struct Taps {
    const uint64_t* src[kTapChunk];  // input for output column 0 of the middle
    uint64_t w[kTapChunk];
    size_t n;
};

#if SL_GEMM_LEVEL == 2
// o[x] += sum_t w[t] * src[t][x] for x in [0, n).
inline void sum_taps(uint64_t* __restrict o, const Taps& t, size_t n) noexcept {
    __m512i wv[kTapChunk];
    for (size_t k = 0; k < t.n; ++k) wv[k] = _mm512_set1_epi64(static_cast<long long>(t.w[k]));
    size_t x = 0;
    for (; x + VL <= n; x += VL) {
        __m512i acc = _mm512_loadu_si512(o + x);
        for (size_t k = 0; k < t.n; ++k)
            acc = _mm512_add_epi64(acc, _mm512_mullo_epi64(wv[k], _mm512_loadu_si512(t.src[k] + x)));
        _mm512_storeu_si512(o + x, acc);
    }
    if (x < n) {
        const __mmask8 m = __mmask8((1u << (n - x)) - 1u);
        __m512i acc = _mm512_maskz_loadu_epi64(m, o + x);
        for (size_t k = 0; k < t.n; ++k)
            acc = _mm512_add_epi64(
                acc, _mm512_mullo_epi64(wv[k], _mm512_maskz_loadu_epi64(m, t.src[k] + x)));
        _mm512_mask_storeu_epi64(o + x, m, acc);
    }
}
#else
// o[x] += sum_t w[t] * src[t][x] for x in [0, n). 64-bit products from
// three vpmuludq: lo(w)*lo(s) + ((hi(w)*lo(s) + lo(w)*hi(s)) << 32).
inline void sum_taps(uint64_t* __restrict o, const Taps& t, size_t n) noexcept {
    __m256i wl[kTapChunk], wh[kTapChunk];
    for (size_t k = 0; k < t.n; ++k) {
        wl[k] = _mm256_set1_epi64x(static_cast<long long>(t.w[k]));
        wh[k] = _mm256_set1_epi64x(static_cast<long long>(t.w[k] >> 32));
    }
    size_t x = 0;
    for (; x + VL <= n; x += VL) {
        __m256i acc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + x));
        for (size_t k = 0; k < t.n; ++k) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.src[k] + x));
            const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(v, wh[k]),
                                                   _mm256_mul_epu32(_mm256_srli_epi64(v, 32), wl[k]));
            acc = _mm256_add_epi64(acc, _mm256_add_epi64(_mm256_mul_epu32(v, wl[k]),
                                                         _mm256_slli_epi64(cross, 32)));
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + x), acc);
    }
    for (; x < n; ++x) {
        uint64_t acc = o[x];
        for (size_t k = 0; k < t.n; ++k) acc += t.w[k] * t.src[k][x];
        o[x] = acc;
    }
}
#endif

constexpr Blocking kBlocking = {MR, NR, MC, KC, NC, GEMM_MIN_OG};

// Full tiles go straight to C; edge tiles through a small stack buffer.
inline void tile(size_t kc, const uint64_t* ap, const uint64_t* bp, uint64_t* c, size_t ldc,
                 size_t rows, size_t cols, bool add) noexcept {
    if (rows == MR && cols == NR) {
        micro(kc, ap, bp, c, ldc, add);
        return;
    }
    alignas(64) uint64_t tmp[MR * NR];
    micro(kc, ap, bp, tmp, NR, false);
    for (size_t r = 0; r < rows; ++r) {
        uint64_t* crow = c + r * ldc;
        const uint64_t* trow = tmp + r * NR;
        if (add)
            for (size_t j = 0; j < cols; ++j) crow[j] += trow[j];
        else
            for (size_t j = 0; j < cols; ++j) crow[j] = trow[j];
    }
}

// k is split into near-equal blocks of at most KC.
inline size_t k_block(size_t k) { return k == 0 ? 0 : ceil_div(k, ceil_div(k, KC)); }

// Packed A block, rounded to whole cache lines so the B panels after it stay
// 64-byte aligned.
inline size_t a_elems(size_t m, size_t kc) { return round_up(round_up(min_sz(MC, m), MR) * kc, 8); }

size_t conv2d_workspace(size_t m, size_t n, size_t k) noexcept {
    const size_t kc = k_block(k);
    return a_elems(m, kc) + kc * (m <= MC ? NR : round_up(min_sz(NC, n), NR));
}

size_t matmul_workspace(size_t m, size_t n, size_t k) noexcept {
    if (n <= SKINNY_N) return round_up(n * k, 8);  // transposed B
    if (m <= SMALL_M) return 0;                    // B read in place
    return conv2d_workspace(m, n, k);
}

// A block rows [0, mc) x cols [0, kc) of a (leading dimension lda) into
// MR-high panels: panel q holds, for each k, rows q*MR .. q*MR+MR-1 (zeros
// past mc).
void pack_a(const uint64_t* __restrict a, size_t lda, size_t mc, size_t kc,
            uint64_t* __restrict dst) noexcept {
    for (size_t ir = 0; ir < mc; ir += MR) {
        const size_t rows = min_sz(MR, mc - ir);
        for (size_t r = 0; r < MR; ++r) {
            uint64_t* d = dst + r;
            if (r < rows) {
                const uint64_t* src = a + (ir + r) * lda;
                for (size_t p = 0; p < kc; ++p) d[p * MR] = src[p];
            } else {
                for (size_t p = 0; p < kc; ++p) d[p * MR] = 0;
            }
        }
        dst += MR * kc;
    }
}

// B block rows [pc, pc+kc) x cols [jc, jc+nc) of a row-major matrix into
// NR-wide panels (zeros past nc).
struct MatrixB {
    const uint64_t* b;
    size_t ldb;
    void pack(size_t pc, size_t kc, size_t jc, size_t nc, uint64_t* __restrict dst) const noexcept {
        for (size_t jr = 0; jr < nc; jr += NR) {
            const size_t cols = min_sz(NR, nc - jr);
            const uint64_t* src = b + pc * ldb + jc + jr;
            if (cols == NR) {
                for (size_t p = 0; p < kc; ++p) copy_panel_row(dst + p * NR, src + p * ldb);
            } else {
                for (size_t p = 0; p < kc; ++p) {
                    uint64_t* d = dst + p * NR;
                    const uint64_t* s = src + p * ldb;
                    size_t j = 0;
                    for (; j < cols; ++j) d[j] = s[j];
                    for (; j < NR; ++j) d[j] = 0;
                }
            }
            dst += NR * kc;
        }
    }
};

// Prefetches the NR values from address `at` (which may lie past the array:
// a prefetch never faults).
inline void prefetch_panel_row(uintptr_t at) noexcept {
    SL_UNROLL(4) for (size_t off = 0; off < NR * sizeof(uint64_t); off += 64)
        _mm_prefetch(reinterpret_cast<const char*>(at + off), _MM_HINT_T0);
}

// dst[u] = row[ix0 + u*sw] where 0 <= ix0 + u*sw < in_w, else 0, for u in
// [0, len), len <= NR; row == nullptr gives zeros. Vector lanes outside the
// valid range are masked, so nothing outside the row is read.
inline void pack_run(uint64_t* __restrict dst, const uint64_t* row, ptrdiff_t ix0, ptrdiff_t sw,
                     size_t len, ptrdiff_t in_w) noexcept {
    // Valid u: [lo, hi), clamped to [0, len].
    ptrdiff_t lo = 0, hi = 0;
    if (row != nullptr) {
        lo = ix0 >= 0 ? 0 : (-ix0 + sw - 1) / sw;
        hi = in_w - 1 - ix0 < 0 ? 0 : (in_w - 1 - ix0) / sw + 1;
        if (hi > ptrdiff_t(len)) hi = ptrdiff_t(len);
        if (lo > hi) lo = hi;
    }
    if (sw != 1) {
        ptrdiff_t u = 0;
        for (; u < lo; ++u) dst[u] = 0;
        for (; u < hi; ++u) dst[u] = row[ix0 + u * sw];
        for (; u < ptrdiff_t(len); ++u) dst[u] = 0;
        return;
    }
    // Address of row[ix0 + v] without forming an out-of-range pointer.
    const uintptr_t base = reinterpret_cast<uintptr_t>(row) + uintptr_t(ix0) * sizeof(uint64_t);
#if SL_GEMM_LEVEL == 2
    for (ptrdiff_t v = 0; v < ptrdiff_t(len); v += VL) {
        auto lanes_below = [](ptrdiff_t n) -> unsigned {
            return n <= 0 ? 0u : n >= ptrdiff_t(VL) ? 0xFFu : (1u << n) - 1u;
        };
        const __mmask8 keep = __mmask8(lanes_below(ptrdiff_t(len) - v));
        const __mmask8 valid = __mmask8(lanes_below(hi - v) & ~lanes_below(lo - v));
        const __m512i val = _mm512_maskz_loadu_epi64(
            valid, reinterpret_cast<const void*>(base + uintptr_t(v) * sizeof(uint64_t)));
        _mm512_mask_storeu_epi64(dst + v, keep, val);
    }
#else
    const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    const __m256i vlo = _mm256_set1_epi64x(lo), vhi = _mm256_set1_epi64x(hi);
    const __m256i vlen = _mm256_set1_epi64x(ptrdiff_t(len));
    for (ptrdiff_t v = 0; v < ptrdiff_t(len); v += VL) {
        const __m256i u = _mm256_add_epi64(lane, _mm256_set1_epi64x(v));
        const __m256i keep = _mm256_cmpgt_epi64(vlen, u);
        // lo <= u < hi
        const __m256i valid = _mm256_andnot_si256(_mm256_cmpgt_epi64(vlo, u),
                                                  _mm256_cmpgt_epi64(vhi, u));
        const __m256i val = _mm256_maskload_epi64(
            reinterpret_cast<const long long*>(base + uintptr_t(v) * sizeof(uint64_t)), valid);
        _mm256_maskstore_epi64(reinterpret_cast<long long*>(dst + v), keep, val);
    }
#endif
}

// The im2col matrix of one (image, group), packed on the fly: row
// kk = (ci, i, j) (ci-major, as the weights), column = output position
// oy * out_w + ox, value x[ci][oy*sh + i*dh - ph][ox*sw + j*dw - pw] or 0.
struct Im2colB {
    const ConvShape* s;
    const uint64_t* x;  // first input channel of the group in this image

    void pack(size_t pc, size_t kc, size_t jc, size_t nc, uint64_t* __restrict dst) const noexcept {
        const ConvShape& g = *s;
        const size_t out_w = g.out_w, khw = g.kh * g.kw;
        const ptrdiff_t in_h = ptrdiff_t(g.in_h), in_w = ptrdiff_t(g.in_w);
        const ptrdiff_t sh = ptrdiff_t(g.stride_h), sw = ptrdiff_t(g.stride_w);
        const size_t in_plane = g.in_h * g.in_w;
        for (size_t jr = 0; jr < nc; jr += NR) {
            const size_t cols = min_sz(NR, nc - jr);
            const size_t p0 = jc + jr;
            const size_t oy0 = p0 / out_w, ox0 = p0 % out_w;
            // Whole panel inside one output row: one run.
            const bool one_run = ox0 + cols <= out_w;
            size_t ci = pc / khw, rem = pc % khw;
            size_t i = rem / g.kw, j = rem % g.kw;
            for (size_t p = 0; p < kc; ++p) {
                uint64_t* __restrict d = dst + p * NR;
                const uint64_t* plane = x + ci * in_plane;
                const ptrdiff_t ro = ptrdiff_t(i * g.dil_h) - ptrdiff_t(g.pad_h);
                const ptrdiff_t co = ptrdiff_t(j * g.dil_w) - ptrdiff_t(g.pad_w);
                if (one_run) {
                    const ptrdiff_t iy = ptrdiff_t(oy0) * sh + ro;
                    const ptrdiff_t ix0 = ptrdiff_t(ox0) * sw + co;
                    const bool row_ok = iy >= 0 && iy < in_h;
                    if (row_ok && cols == NR && sw == 1 && ix0 >= 0 &&
                        ix0 + ptrdiff_t(NR) <= in_w) {
                        const uint64_t* src = plane + iy * in_w + ix0;
                        copy_panel_row(d, src);
                        // The next panel reads the same rows NR further on;
                        // fetch them now (the input planes are too many
                        // streams for the hardware prefetcher).
                        prefetch_panel_row(reinterpret_cast<uintptr_t>(src) +
                                           NR * sizeof(uint64_t));
                    } else
                        pack_run(d, row_ok ? plane + iy * in_w : nullptr, ix0, sw, cols, in_w);
                } else {
                    size_t t = 0, oy = oy0, ox = ox0;
                    while (t < cols) {
                        const size_t run = min_sz(cols - t, out_w - ox);
                        const ptrdiff_t iy = ptrdiff_t(oy) * sh + ro;
                        const bool row_ok = iy >= 0 && iy < in_h;
                        pack_run(d + t, row_ok ? plane + iy * in_w : nullptr,
                                 ptrdiff_t(ox) * sw + co, sw, run, in_w);
                        t += run;
                        ox = 0;
                        ++oy;
                    }
                }
                for (size_t t = cols; t < NR; ++t) d[t] = 0;
                if (++j == g.kw) {
                    j = 0;
                    if (++i == g.kh) {
                        i = 0;
                        ++ci;
                    }
                }
            }
            dst += NR * kc;
        }
    }
};

// c[m x n] (=|+=) a[m x k] @ B, B supplied by a packer.
template <class PackB>
void gemm(const uint64_t* a, size_t lda, const PackB& b, uint64_t* c, size_t ldc, size_t m,
          size_t n, size_t k, bool accumulate, uint64_t* work) noexcept {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (!accumulate)
            for (size_t i = 0; i < m; ++i)
                for (size_t j = 0; j < n; ++j) c[i * ldc + j] = 0;
        return;
    }
    const size_t kcb = k_block(k);
    uint64_t* apack = work;
    uint64_t* bpack = work + a_elems(m, kcb);
    const bool single_m_block = m <= MC;
    for (size_t jc = 0; jc < n; jc += NC) {
        const size_t nc = min_sz(NC, n - jc);
        for (size_t pc = 0; pc < k; pc += kcb) {
            const size_t kc = min_sz(kcb, k - pc);
            const bool add = accumulate || pc > 0;
            for (size_t ic = 0; ic < m; ic += MC) {
                const size_t mc = min_sz(MC, m - ic);
                pack_a(a + ic * lda + pc, lda, mc, kc, apack);
                for (size_t jr = 0; jr < nc; jr += NR) {
                    const size_t cols = min_sz(NR, nc - jr);
                    // Each B panel is packed just before its first use (so it
                    // is still in L1 for the micro-kernel) and kept for later
                    // m blocks; with a single m block one panel slot is
                    // reused, which keeps the packed data in cache.
                    uint64_t* bp = single_m_block ? bpack : bpack + jr * kc;
                    if (ic == 0) b.pack(pc, kc, jc + jr, cols, bp);
                    for (size_t ir = 0; ir < mc; ir += MR)
                        tile(kc, apack + ir * kc, bp, c + (ic + ir) * ldc + jc + jr, ldc,
                             min_sz(MR, mc - ir), cols, add);
                }
            }
        }
    }
}

// Few columns (matrix-vector products and the like): a micro-tile would be
// mostly padding and packing A would cost more than the products. Instead
// B is transposed into bt (n x k) and each C entry is a dot product of an A
// row with a bt row, SR x SQ entries per pass over the rows, reduced across
// the vector lanes at the end.
#if SL_GEMM_LEVEL == 2
constexpr size_t SR = 4, SQ = 4;  // 16 zmm accumulators

inline void dot_block(const uint64_t* const* ar, const uint64_t* const* br, size_t k,
                      uint64_t out[SR][SQ]) noexcept {
    __m512i acc[SR][SQ];
    SL_UNROLL(4) for (size_t r = 0; r < SR; ++r)
        SL_UNROLL(4) for (size_t q = 0; q < SQ; ++q) acc[r][q] = _mm512_setzero_si512();
    for (size_t p = 0; p < k; p += VL) {
        const __mmask8 m = k - p >= VL ? __mmask8(0xFF) : __mmask8((1u << (k - p)) - 1u);
        __m512i av[SR], bv[SQ];
        SL_UNROLL(4) for (size_t r = 0; r < SR; ++r) av[r] = _mm512_maskz_loadu_epi64(m, ar[r] + p);
        SL_UNROLL(4) for (size_t q = 0; q < SQ; ++q) bv[q] = _mm512_maskz_loadu_epi64(m, br[q] + p);
        SL_UNROLL(4) for (size_t r = 0; r < SR; ++r)
            SL_UNROLL(4) for (size_t q = 0; q < SQ; ++q)
                acc[r][q] = _mm512_add_epi64(acc[r][q], _mm512_mullo_epi64(av[r], bv[q]));
    }
    SL_UNROLL(4) for (size_t r = 0; r < SR; ++r)
        SL_UNROLL(4) for (size_t q = 0; q < SQ; ++q) {
            alignas(64) uint64_t lanes[VL];
            _mm512_store_si512(lanes, acc[r][q]);
            uint64_t sum = 0;
            for (size_t t = 0; t < VL; ++t) sum += lanes[t];
            out[r][q] = sum;
        }
}
#else
constexpr size_t SR = 2, SQ = 2;  // 2 x 2 x (low, cross) ymm accumulators

inline void dot_block(const uint64_t* const* ar, const uint64_t* const* br, size_t k,
                      uint64_t out[SR][SQ]) noexcept {
    __m256i lo[SR][SQ], cross[SR][SQ];
    SL_UNROLL(4) for (size_t r = 0; r < SR; ++r)
        SL_UNROLL(4) for (size_t q = 0; q < SQ; ++q) {
            lo[r][q] = _mm256_setzero_si256();
            cross[r][q] = _mm256_setzero_si256();
        }
    size_t p = 0;
    for (; p + VL <= k; p += VL) {
        __m256i av[SR], bv[SQ], bs[SQ];
        SL_UNROLL(4) for (size_t r = 0; r < SR; ++r)
            av[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar[r] + p));
        SL_UNROLL(4) for (size_t q = 0; q < SQ; ++q) {
            bv[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(br[q] + p));
            bs[q] = _mm256_shuffle_epi32(bv[q], 0xB1);
        }
        SL_UNROLL(4) for (size_t r = 0; r < SR; ++r)
            SL_UNROLL(4) for (size_t q = 0; q < SQ; ++q) {
                lo[r][q] = _mm256_add_epi64(lo[r][q], _mm256_mul_epu32(av[r], bv[q]));
                cross[r][q] = _mm256_add_epi32(cross[r][q], _mm256_mullo_epi32(av[r], bs[q]));
            }
    }
    SL_UNROLL(4) for (size_t r = 0; r < SR; ++r)
        SL_UNROLL(4) for (size_t q = 0; q < SQ; ++q) {
            const __m256i x = cross[r][q];
            const __m256i v = _mm256_add_epi64(
                lo[r][q], _mm256_slli_epi64(_mm256_add_epi32(x, _mm256_srli_epi64(x, 32)), 32));
            alignas(32) uint64_t lanes[VL];
            _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
            uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
            for (size_t t = p; t < k; ++t) sum += ar[r][t] * br[q][t];
            out[r][q] = sum;
        }
}
#endif

void skinny(const uint64_t* a, size_t lda, const uint64_t* b, size_t ldb, uint64_t* c,
            size_t ldc, size_t m, size_t n, size_t k, bool accumulate,
            uint64_t* __restrict bt) noexcept {
    for (size_t p = 0; p < k; ++p)
        for (size_t j = 0; j < n; ++j) bt[j * k + p] = b[p * ldb + j];
    for (size_t i0 = 0; i0 < m; i0 += SR) {
        // Missing rows/columns of an edge block repeat the last one; their
        // results are dropped.
        const uint64_t* ar[SR];
        for (size_t r = 0; r < SR; ++r) ar[r] = a + min_sz(i0 + r, m - 1) * lda;
        for (size_t j0 = 0; j0 < n; j0 += SQ) {
            const uint64_t* br[SQ];
            for (size_t q = 0; q < SQ; ++q) br[q] = bt + min_sz(j0 + q, n - 1) * k;
            uint64_t sums[SR][SQ];
            dot_block(ar, br, k, sums);
            for (size_t r = 0; r < SR && i0 + r < m; ++r)
                for (size_t q = 0; q < SQ && j0 + q < n; ++q) {
                    uint64_t& dst = c[(i0 + r) * ldc + j0 + q];
                    dst = accumulate ? dst + sums[r][q] : sums[r][q];
                }
        }
    }
}

// Few rows (m <= SMALL_M): each B value is used at most SMALL_M times, so
// packing B (a strided walk down 24-column strips) costs more than it saves.
// Instead B is streamed in place, SK rows at a time: each B vector is loaded
// once and multiplied into all m rows of an L1-resident JB-wide block of C.
constexpr size_t SK = 8, JB = 128;

#if SL_GEMM_LEVEL == 2
// c[i][x .. x+VL) += sum_q w[i][q] * bv[q] for i < m, masked to `mask` lanes.
inline void small_m_step(uint64_t* c, size_t ldc, size_t m, const uint64_t (*w)[SK],
                         const uint64_t* const* br, size_t x, __mmask8 mask) noexcept {
    __m512i bv[SK];
    SL_UNROLL(8) for (size_t q = 0; q < SK; ++q) bv[q] = _mm512_maskz_loadu_epi64(mask, br[q] + x);
    for (size_t i = 0; i < m; ++i) {
        uint64_t* crow = c + i * ldc + x;
        __m512i acc = _mm512_maskz_loadu_epi64(mask, crow);
        SL_UNROLL(8) for (size_t q = 0; q < SK; ++q)
            acc = _mm512_add_epi64(
                acc, _mm512_mullo_epi64(_mm512_set1_epi64(static_cast<long long>(w[i][q])), bv[q]));
        _mm512_mask_storeu_epi64(crow, mask, acc);
    }
}
#else
inline __m256i mul64(__m256i v, __m256i wl, __m256i wh) noexcept {
    const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(v, wh),
                                           _mm256_mul_epu32(_mm256_srli_epi64(v, 32), wl));
    return _mm256_add_epi64(_mm256_mul_epu32(v, wl), _mm256_slli_epi64(cross, 32));
}
#endif

void small_m(const uint64_t* a, size_t lda, const uint64_t* b, size_t ldb, uint64_t* c,
             size_t ldc, size_t m, size_t n, size_t k, bool accumulate) noexcept {
    uint64_t w[SMALL_M][SK];
#if SL_GEMM_LEVEL == 1
    uint64_t wh[SMALL_M][SK];  // high halves, for the emulated 64-bit product
#endif
    const uint64_t* br[SK];
    for (size_t j0 = 0; j0 < n; j0 += JB) {
        const size_t jb = min_sz(JB, n - j0);
        uint64_t* cb = c + j0;
        if (!accumulate)
            for (size_t i = 0; i < m; ++i)
                for (size_t j = 0; j < jb; ++j) cb[i * ldc + j] = 0;
        for (size_t p0 = 0; p0 < k; p0 += SK) {
            const size_t kk = min_sz(SK, k - p0);
            // Rows past k repeat row p0 with weight 0.
            for (size_t q = 0; q < SK; ++q) br[q] = b + (p0 + (q < kk ? q : 0)) * ldb + j0;
            for (size_t i = 0; i < m; ++i)
                for (size_t q = 0; q < SK; ++q) {
                    w[i][q] = q < kk ? a[i * lda + p0 + q] : 0;
#if SL_GEMM_LEVEL == 1
                    wh[i][q] = w[i][q] >> 32;
#endif
                }
#if SL_GEMM_LEVEL == 2
            size_t x = 0;
            for (; x + VL <= jb; x += VL) small_m_step(cb, ldc, m, w, br, x, 0xFF);
            if (x < jb) small_m_step(cb, ldc, m, w, br, x, __mmask8((1u << (jb - x)) - 1u));
#else
            size_t x = 0;
            for (; x + VL <= jb; x += VL) {
                __m256i bv[SK];
                SL_UNROLL(8) for (size_t q = 0; q < SK; ++q)
                    bv[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(br[q] + x));
                for (size_t i = 0; i < m; ++i) {
                    __m256i* crow = reinterpret_cast<__m256i*>(cb + i * ldc + x);
                    __m256i acc = _mm256_loadu_si256(crow);
                    SL_UNROLL(8) for (size_t q = 0; q < SK; ++q)
                        acc = _mm256_add_epi64(
                            acc, mul64(bv[q], _mm256_set1_epi64x(static_cast<long long>(w[i][q])),
                                       _mm256_set1_epi64x(static_cast<long long>(wh[i][q]))));
                    _mm256_storeu_si256(crow, acc);
                }
            }
            for (; x < jb; ++x)
                for (size_t i = 0; i < m; ++i) {
                    uint64_t acc = cb[i * ldc + x];
                    for (size_t q = 0; q < SK; ++q) acc += w[i][q] * br[q][x];
                    cb[i * ldc + x] = acc;
                }
#endif
        }
    }
}

void matmul(const uint64_t* a, size_t lda, const uint64_t* b, size_t ldb, uint64_t* c,
            size_t ldc, size_t m, size_t n, size_t k, bool accumulate, uint64_t* work) noexcept {
    if (m == 0 || n == 0) return;
    if (k > 0 && n <= SKINNY_N)
        skinny(a, lda, b, ldb, c, ldc, m, n, k, accumulate, work);
    else if (k > 0 && m <= SMALL_M)
        small_m(a, lda, b, ldb, c, ldc, m, n, k, accumulate);
    else
        gemm(a, lda, MatrixB{b, ldb}, c, ldc, m, n, k, accumulate, work);
}

void conv2d_gemm(const ConvShape& s, const uint64_t* x, const uint64_t* w, uint64_t* out,
                 size_t image, size_t group, size_t p_begin, size_t p_end, bool accumulate,
                 uint64_t* work) noexcept {
    const size_t og = s.out_per_group, plane = s.out_plane;
    const Im2colB packer{&s, x + (image * s.in_ch + group * s.in_per_group) * s.in_h * s.in_w};
    // Columns are absolute output positions; shift the packer by p_begin.
    struct Shifted {
        const Im2colB& inner;
        size_t shift;
        void pack(size_t pc, size_t kc, size_t jc, size_t nc, uint64_t* dst) const noexcept {
            inner.pack(pc, kc, jc + shift, nc, dst);
        }
    };
    gemm(w + group * og * s.patch, s.patch, Shifted{packer, p_begin},
         out + (image * s.out_ch + group * og) * plane + p_begin, plane, og, p_end - p_begin,
         s.patch, accumulate, work);
}
#endif

// ---------------------------------------------------------------------------
// Direct convolution (every level): depthwise and thin groups, and the whole
// scalar reference. Output rows [row_begin, row_end) of the flattened
// (image, out channel, out row) index. Each tap (input channel, i, j) adds
// w * (a shifted input row) to the output row over the columns where it is
// inside the input. Above level 0, with stride 1, the columns where every tap
// of the kernel is inside (the middle) go through sum_taps: up to kTapChunk
// taps per pass, accumulated in registers, one load/store of the output per
// pass; the few edge columns stay per tap.
// ---------------------------------------------------------------------------
void conv2d_direct(const ConvShape& s, const uint64_t* __restrict x,
                   const uint64_t* __restrict w, uint64_t* __restrict out, size_t row_begin,
                   size_t row_end, bool accumulate) noexcept {
    const ptrdiff_t in_h = ptrdiff_t(s.in_h), in_w = ptrdiff_t(s.in_w);
    const ptrdiff_t sh = ptrdiff_t(s.stride_h), sw = ptrdiff_t(s.stride_w);
    const ptrdiff_t dh = ptrdiff_t(s.dil_h), dw = ptrdiff_t(s.dil_w);
    const ptrdiff_t ph = ptrdiff_t(s.pad_h), pw = ptrdiff_t(s.pad_w);
    const size_t out_w = s.out_w, kh = s.kh, kw = s.kw, cg = s.in_per_group;
    const size_t in_plane = s.in_h * s.in_w;
    // Middle columns [mid_lo, mid_hi): every tap inside the input. Empty at
    // level 0 and for strided convolutions: all columns take the per-tap loops.
    ptrdiff_t mid_lo = ptrdiff_t(out_w), mid_hi = ptrdiff_t(out_w);
#if SL_GEMM_LEVEL >= 1
    if (sw == 1) {
        mid_lo = pw < ptrdiff_t(out_w) ? pw : ptrdiff_t(out_w);
        mid_hi = in_w + pw - ptrdiff_t(kw - 1) * dw;
        if (mid_hi > ptrdiff_t(out_w)) mid_hi = ptrdiff_t(out_w);
        if (mid_hi < mid_lo) mid_hi = mid_lo;
    }
    Taps taps;
#endif
    for (size_t r = row_begin; r < row_end; ++r) {
        const size_t oy = r % s.out_h;
        const size_t t = r / s.out_h;
        const size_t oc = t % s.out_ch, image = t / s.out_ch;
        const size_t g = oc / s.out_per_group;
        uint64_t* __restrict o = out + r * out_w;
        if (!accumulate)
            for (size_t ox = 0; ox < out_w; ++ox) o[ox] = 0;
#if SL_GEMM_LEVEL >= 1
        taps.n = 0;
#endif
        for (size_t ci = 0; ci < cg; ++ci) {
            const uint64_t* plane = x + (image * s.in_ch + g * cg + ci) * in_plane;
            const uint64_t* wk = w + (oc * cg + ci) * kh * kw;
            for (size_t i = 0; i < kh; ++i) {
                const ptrdiff_t iy = ptrdiff_t(oy) * sh + ptrdiff_t(i) * dh - ph;
                if (iy < 0 || iy >= in_h) continue;
                const uint64_t* row = plane + iy * in_w;
                for (size_t j = 0; j < kw; ++j) {
                    const uint64_t wv = wk[i * kw + j];
                    const ptrdiff_t off = ptrdiff_t(j) * dw - pw;  // ix = ox * sw + off
                    // Valid ox: 0 <= ox*sw + off <= in_w - 1.
                    const ptrdiff_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                    ptrdiff_t hi = in_w - 1 - off < 0 ? 0 : (in_w - 1 - off) / sw + 1;
                    if (hi > ptrdiff_t(out_w)) hi = ptrdiff_t(out_w);
                    // Edge columns, outside the middle.
                    const ptrdiff_t e1 = hi < mid_lo ? hi : mid_lo;
                    const ptrdiff_t e2 = lo > mid_hi ? lo : mid_hi;
                    for (ptrdiff_t ox = lo; ox < e1; ++ox) o[ox] += wv * row[ox * sw + off];
                    for (ptrdiff_t ox = e2; ox < hi; ++ox) o[ox] += wv * row[ox * sw + off];
#if SL_GEMM_LEVEL >= 1
                    if (mid_hi > mid_lo) {
                        taps.src[taps.n] = row + off + mid_lo;
                        taps.w[taps.n] = wv;
                        if (++taps.n == kTapChunk) {
                            sum_taps(o + mid_lo, taps, size_t(mid_hi - mid_lo));
                            taps.n = 0;
                        }
                    }
#endif
                }
            }
        }
#if SL_GEMM_LEVEL >= 1
        if (taps.n) sum_taps(o + mid_lo, taps, size_t(mid_hi - mid_lo));
#endif
    }
}

}  // namespace

extern const Kernels table = {kBlocking,   matmul_workspace, conv2d_workspace,
                              matmul,      conv2d_gemm,      conv2d_direct};

}  // namespace safelight::gemm::SL_ISA_NS
