// OT kernels for the avx512 tier: AVX-512BW bit-matrix transpose, VAES hash.
//
// Transpose of a 128 x 128 bit tile, 64 rows at a time: each zmm holds the
// 16-byte slices of four rows (lane L = row r + 16L). Four rounds of
// byte/word/dword/qword unpacks transpose the four 16 x 16 byte matrices in
// the lanes; loading the rows in bit-reversed order makes register c end up
// holding byte c of rows 0..63 in natural order. vpmovb2m then collects bit 7
// of those 64 bytes (64 rows of one column) and a byte-wise doubling moves the
// next bit up: 8 masks per register give 8 output columns.
#include <immintrin.h>

#include <atomic>

#define SL_ISA_NS avx512
#include "ot_impl.hpp"
#include "../prg/aesni_key_schedule.hpp"

namespace safelight::ot::avx512 {
namespace {

constexpr int kRev4[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};

// (dword/qword: zero-masking forms, which avoid GCC 12's spurious -Wuninitialized.)
template <int W>
inline void unpack_stage(__m512i x[16]) {
    __m512i y[16];
    for (int i = 0; i < 8; ++i) {
        if constexpr (W == 8) {
            y[2 * i] = _mm512_unpacklo_epi8(x[i], x[i + 8]);
            y[2 * i + 1] = _mm512_unpackhi_epi8(x[i], x[i + 8]);
        } else if constexpr (W == 16) {
            y[2 * i] = _mm512_unpacklo_epi16(x[i], x[i + 8]);
            y[2 * i + 1] = _mm512_unpackhi_epi16(x[i], x[i + 8]);
        } else if constexpr (W == 32) {
            y[2 * i] = _mm512_maskz_unpacklo_epi32(0xffff, x[i], x[i + 8]);
            y[2 * i + 1] = _mm512_maskz_unpackhi_epi32(0xffff, x[i], x[i + 8]);
        } else {
            y[2 * i] = _mm512_maskz_unpacklo_epi64(0xff, x[i], x[i + 8]);
            y[2 * i + 1] = _mm512_maskz_unpackhi_epi64(0xff, x[i], x[i + 8]);
        }
    }
    for (int i = 0; i < 16; ++i) x[i] = y[i];
}

inline __m128i ld(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// Same 128-bit value in all four lanes (zero-masking form: see aes_vaes.cpp).
inline __m512i bcast(__m128i x) { return _mm512_maskz_broadcast_i32x4(0xffff, x); }

}  // namespace

namespace {

// Loads the 16-byte slices of rows 64h + 16L + order[i] (lane L of x[i]) and
// runs the unpack network: x[c] then holds byte c of rows 64h + order'(p) at
// byte p, where kRev4 makes order' the identity.
template <const int* kOrder>
inline void byte_columns(const uint8_t* in, size_t stride, int h, __m512i x[16]) {
    for (int i = 0; i < 16; ++i) {
        const uint8_t* r = in + size_t(64 * h + kOrder[i]) * stride;
        __m512i v = _mm512_castsi128_si512(ld(r));
        v = _mm512_inserti32x4(v, ld(r + 16 * stride), 1);
        v = _mm512_inserti32x4(v, ld(r + 32 * stride), 2);
        x[i] = _mm512_inserti32x4(v, ld(r + 48 * stride), 3);
    }
    unpack_stage<8>(x);
    unpack_stage<16>(x);
    unpack_stage<32>(x);
    unpack_stage<64>(x);
}

// Portable AVX-512BW variant: one vpmovb2m per 64 bits of output.
void transpose_tile_movemask(const uint8_t* in, size_t stride, uint8_t* out) noexcept {
    for (int h = 0; h < 2; ++h) {
        __m512i x[16];
        byte_columns<kRev4>(in, stride, h, x);
        for (int c = 0; c < 16; ++c) {
            __m512i v = x[c];
            for (int b = 7; b >= 0; --b) {
                _store_mask64(reinterpret_cast<__mmask64*>(out + 16 * (8 * c + b) + 8 * h),
                              _mm512_movepi8_mask(v));
                v = _mm512_add_epi8(v, v);
            }
        }
    }
}

// GFNI + VBMI variant (Ice Lake and later, Zen 4 and later). After the byte
// transpose each qword of x[c] is an 8 x 8 bit block: 8 rows (one per byte) of
// 8 columns (the bits of byte c). vgf2p8affineqb with the data as the matrix
// and the unit vectors 2^j as the input transposes all eight blocks at once:
// result byte j, bit i = bit j of matrix byte 7 - i, so the rows are loaded
// in reversed order within each group of 8 (kRev4Flip) to come out straight.
// Two vpermt2b then interleave the halves (rows 0..63 and 64..127) into the
// eight output blocks of byte column c.
constexpr int kRev4Flip[16] = {7, 15, 3, 11, 5, 13, 1, 9, 6, 14, 2, 10, 4, 12, 0, 8};  // kRev4[i] ^ 7

struct PermIdx {
    alignas(64) uint8_t lo[64];
    alignas(64) uint8_t hi[64];
    constexpr PermIdx() : lo(), hi() {
        for (int b = 0; b < 4; ++b)
            for (int g = 0; g < 16; ++g) {
                // Output byte 16b + g: half (g / 8), qword g % 8, byte b (lo) or b + 4 (hi).
                const int src = (g < 8 ? 0 : 64) + 8 * (g % 8);
                lo[16 * b + g] = uint8_t(src + b);
                hi[16 * b + g] = uint8_t(src + b + 4);
            }
    }
};
constexpr PermIdx kPerm{};

// kStream: non-temporal stores (out 64-byte aligned): the labels go to a big
// output array that is not read again soon, and streaming them keeps the
// caches for the u matrix (which the transport reads next) and the tile.
template <bool kStream>
__attribute__((target("gfni,avx512vbmi")))
void transpose_tile_gfni(const uint8_t* in, size_t stride, uint8_t* out) noexcept {
    const __m512i unit = _mm512_set1_epi64(0x8040201008040201ll);
    const __m512i ilo = _mm512_load_si512(kPerm.lo), ihi = _mm512_load_si512(kPerm.hi);
    __m512i half0[16];
    for (int h = 0; h < 2; ++h) {
        __m512i x[16];
        byte_columns<kRev4Flip>(in, stride, h, x);
        for (int c = 0; c < 16; ++c) {
            const __m512i y = _mm512_gf2p8affine_epi64_epi8(unit, x[c], 0);
            if (h == 0) {
                half0[c] = y;
            } else {
                __m512i* o = reinterpret_cast<__m512i*>(out + 16 * 8 * c);
                const __m512i lo = _mm512_permutex2var_epi8(half0[c], ilo, y);
                const __m512i hi = _mm512_permutex2var_epi8(half0[c], ihi, y);
                if constexpr (kStream) {
                    _mm512_stream_si512(o, lo);
                    _mm512_stream_si512(o + 1, hi);
                } else {
                    _mm512_storeu_si512(o, lo);
                    _mm512_storeu_si512(o + 1, hi);
                }
            }
        }
    }
}

bool cpu_has_gfni_vbmi() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("gfni") && __builtin_cpu_supports("avx512vbmi");
}

// 0: GFNI when the CPU has it, 1: always the movemask variant (tests).
std::atomic<int> g_force_movemask{0};

void transpose_tile(const uint8_t* in, size_t stride, uint8_t* out) noexcept {
    static const bool gfni = cpu_has_gfni_vbmi();
    if (gfni && !g_force_movemask.load(std::memory_order_relaxed))
        (reinterpret_cast<uintptr_t>(out) % 64 == 0 ? transpose_tile_gfni<true> : transpose_tile_gfni<false>)(
            in, stride, out);
    else
        transpose_tile_movemask(in, stride, out);
}

// Eight zmm (32 blocks) through AES-128, interleaved to hide vaesenc latency.
inline void aes8(__m512i b[8], const __m512i rk[11]) {
    for (int k = 0; k < 8; ++k) b[k] = _mm512_xor_si512(b[k], rk[0]);
    for (int r = 1; r < 10; ++r)
        for (int k = 0; k < 8; ++k) b[k] = _mm512_aesenc_epi128(b[k], rk[r]);
    for (int k = 0; k < 8; ++k) b[k] = _mm512_aesenclast_epi128(b[k], rk[10]);
}

// 32 hash evaluations per batch: 32 elements, or (kDelta) 16 elements in
// registers 0..3 and their images under ^delta in registers 4..7. Register k
// covers elements 4*(k % regs) .. +3 of the batch; a partial batch uses
// masked loads and stores (two qword mask bits per element).
template <bool kDelta>
void tccr_impl(const uint8_t* in, uint8_t* out0, uint8_t* out1, __m512i d, size_t n,
               uint64_t tweak, uint64_t domain, const __m512i rk[11]) {
    constexpr size_t regs = kDelta ? 4 : 8;
    constexpr size_t per = 4 * regs;
    // Lane words (lo, hi) = (0..3, domain); the running index is added to the lo words.
    const __m512i wbase = _mm512_set_epi64(static_cast<long long>(domain), 3,
                                           static_cast<long long>(domain), 2,
                                           static_cast<long long>(domain), 1,
                                           static_cast<long long>(domain), 0);
    for (size_t j = 0; j < n; j += per) {
        const size_t cnt = n - j < per ? n - j : per;
        __m512i y[8], z[8];
        __mmask8 m[8];
        for (size_t k = 0; k < 8; ++k) {
            const size_t e = 4 * (k % regs);
            const size_t valid = cnt > e ? (cnt - e < 4 ? cnt - e : 4) : 0;
            m[k] = static_cast<__mmask8>((1u << (2 * valid)) - 1);
            const __m512i x = _mm512_maskz_loadu_epi64(m[k], in + 16 * (j + e));
            y[k] = k < regs ? x : _mm512_xor_si512(x, d);
        }
        aes8(y, rk);
        for (size_t k = 0; k < 8; ++k) {
            const size_t e = 4 * (k % regs);
            const __m512i w = _mm512_mask_add_epi64(
                wbase, 0x55, wbase, _mm512_set1_epi64(static_cast<long long>(tweak + j + e)));
            z[k] = _mm512_xor_si512(y[k], w);
        }
        aes8(z, rk);
        for (size_t k = 0; k < 8; ++k) {
            const size_t e = 4 * (k % regs);
            uint8_t* dst = (k < regs ? out0 : out1) + 16 * (j + e);
            _mm512_mask_storeu_epi64(dst, m[k], _mm512_xor_si512(z[k], y[k]));
        }
    }
}

void tccr(const uint8_t* in, uint8_t* out0, uint8_t* out1, const uint8_t* delta, size_t n,
          uint64_t tweak, uint64_t domain) noexcept {
    alignas(16) __m128i rk128[11];
    aesni_expand_key(kFixedKey, rk128);
    __m512i rk[11];
    for (int r = 0; r < 11; ++r) rk[r] = bcast(rk128[r]);
    if (delta)
        tccr_impl<true>(in, out0, out1, bcast(ld(delta)), n, tweak, domain, rk);
    else
        tccr_impl<false>(in, out0, nullptr, _mm512_setzero_si512(), n, tweak, domain, rk);
}

}  // namespace

namespace {

// ---- fused IKNP extension ------------------------------------------------
//
// Per tile of kTileCols = 2048 columns, every row needs 16 keystream blocks
// (4 zmm) of its seed at the same counters, so the 16 counter blocks are
// formed once per tile and the 128 (sender) or 256 (receiver) key schedules,
// expanded once per call, are broadcast from memory round by round. Two
// schedules are interleaved (8 zmm in flight) to cover the vaesenc latency.

constexpr int kZ = int(kTileCols / 512);  // zmm per row per tile (4 blocks each)
static_assert(kZ == 4, "the kernels below assume 2048-column tiles");

inline __m512i rk_at(const __m128i* rk, int r) {
    return bcast(_mm_load_si128(rk + r));
}

// a = AES_A(ctr), b = AES_B(ctr), kZ zmm each.
inline void ctr_pair(const __m128i* rka, const __m128i* rkb, const __m512i ctr[kZ], __m512i a[kZ],
                     __m512i b[kZ]) {
    const __m512i ka = rk_at(rka, 0), kb = rk_at(rkb, 0);
    for (int j = 0; j < kZ; ++j) {
        a[j] = _mm512_xor_si512(ctr[j], ka);
        b[j] = _mm512_xor_si512(ctr[j], kb);
    }
    for (int r = 1; r < 10; ++r) {
        const __m512i xa = rk_at(rka, r), xb = rk_at(rkb, r);
        for (int j = 0; j < kZ; ++j) {
            a[j] = _mm512_aesenc_epi128(a[j], xa);
            b[j] = _mm512_aesenc_epi128(b[j], xb);
        }
    }
    const __m512i la = rk_at(rka, 10), lb = rk_at(rkb, 10);
    for (int j = 0; j < kZ; ++j) {
        a[j] = _mm512_aesenclast_epi128(a[j], la);
        b[j] = _mm512_aesenclast_epi128(b[j], lb);
    }
}

// Counter blocks first .. first+15 of nonce 0, big-endian (see aes_vaes.cpp).
inline void counter_blocks(uint64_t first, __m512i ctr[kZ]) {
    const __m512i bswap = bcast(_mm_setr_epi8(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8));
    const auto s64 = [](uint64_t v) { return static_cast<long long>(v); };
    for (int j = 0; j < kZ; ++j) {
        const uint64_t c = first + 4 * uint64_t(j);
        ctr[j] = _mm512_shuffle_epi8(_mm512_set_epi64(s64(c + 3), 0, s64(c + 2), 0, s64(c + 1), 0, s64(c), 0), bswap);
    }
}

// Byte mask of the first nbytes (<= 256) of a 4-zmm row segment, per zmm.
inline void row_masks(size_t nbytes, __mmask64 m[kZ]) {
    for (int j = 0; j < kZ; ++j) {
        const size_t lo = 64 * size_t(j);
        const size_t n = nbytes > lo ? (nbytes - lo < 64 ? nbytes - lo : 64) : 0;
        m[j] = n == 64 ? ~__mmask64(0) : ((__mmask64(1) << n) - 1);
    }
}

void expand(const uint8_t* seeds, size_t count, __m128i* rk) {
    for (size_t i = 0; i < count; ++i) aesni_expand_key(seeds + 16 * i, rk + 11 * i);
}

void receiver_cols(const uint8_t* k0, const uint8_t* k1, uint64_t counter, const uint8_t* choice, size_t ncols,
                   uint8_t* u, uint8_t* t, size_t nout, size_t col_begin, size_t col_end,
                   uint8_t* work) noexcept {
    auto* rk = reinterpret_cast<__m128i*>(work);  // k0 schedules, then k1 schedules
    uint8_t* tile = work + 256 * 11 * 16;
    expand(k0, 128, rk);
    expand(k1, 128, rk + 128 * 11);
    const size_t row = ncols / 8;
    tiled(t, nout, col_begin, col_end, tile, [&](size_t c0, size_t w) {
        __m512i ctr[kZ], c[kZ];
        __mmask64 m[kZ];
        counter_blocks(counter + c0 / 128, ctr);
        row_masks(w / 8, m);
        for (int j = 0; j < kZ; ++j) c[j] = _mm512_maskz_loadu_epi8(m[j], choice + c0 / 8 + 64 * j);
        for (size_t i = 0; i < 128; ++i) {
            __m512i g0[kZ], g1[kZ];
            ctr_pair(rk + 11 * i, rk + 11 * (128 + i), ctr, g0, g1);
            uint8_t* ti = tile + i * kTileStride;
            uint8_t* ui = u + i * row + c0 / 8;
            for (int j = 0; j < kZ; ++j) {
                _mm512_store_si512(ti + 64 * j, g0[j]);  // tile rows are 64-byte aligned
                _mm512_mask_storeu_epi8(ui + 64 * j, m[j], _mm512_ternarylogic_epi64(g0[j], g1[j], c[j], 0x96));
            }
        }
    });
    wipe(work, kWorkBytes);
}

void sender_cols(const uint8_t* ks, const uint8_t delta[16], uint64_t counter, const uint8_t* u, size_t ncols,
                 uint8_t* q, size_t nout, size_t col_begin, size_t col_end, uint8_t* work) noexcept {
    auto* rk = reinterpret_cast<__m128i*>(work);
    uint8_t* tile = work + 256 * 11 * 16;
    expand(ks, 128, rk);
    const size_t row = ncols / 8;
    tiled(q, nout, col_begin, col_end, tile, [&](size_t c0, size_t w) {
        __m512i ctr[kZ];
        __mmask64 m[kZ];
        counter_blocks(counter + c0 / 128, ctr);
        row_masks(w / 8, m);
        for (size_t i = 0; i < 128; i += 2) {
            __m512i ga[kZ], gb[kZ];
            ctr_pair(rk + 11 * i, rk + 11 * (i + 1), ctr, ga, gb);
            // Secret bits of delta become all-ones/zero masks: no branch, no secret index.
            const __m512i sa = _mm512_set1_epi64(static_cast<long long>(uint64_t(0) - bit_of(delta, i)));
            const __m512i sb = _mm512_set1_epi64(static_cast<long long>(uint64_t(0) - bit_of(delta, i + 1)));
            const uint8_t* ua = u + i * row + c0 / 8;
            const uint8_t* ub = ua + row;
            uint8_t* ta = tile + i * kTileStride;
            uint8_t* tb = ta + kTileStride;
            for (int j = 0; j < kZ; ++j) {
                const __m512i xa = _mm512_maskz_loadu_epi8(m[j], ua + 64 * j);
                const __m512i xb = _mm512_maskz_loadu_epi8(m[j], ub + 64 * j);
                _mm512_store_si512(ta + 64 * j, _mm512_xor_si512(ga[j], _mm512_and_si512(xa, sa)));
                _mm512_store_si512(tb + 64 * j, _mm512_xor_si512(gb[j], _mm512_and_si512(xb, sb)));
            }
        }
    });
    wipe(work, kWorkBytes);
}


// Every entry point that may have streamed ends with a store fence, so the
// labels are visible to other threads (and to Python) on return.
void transpose_fenced(const uint8_t* in, size_t stride, size_t col_begin, size_t col_end, uint8_t* out,
                      size_t nout) noexcept {
    transpose(in, stride, col_begin, col_end, out, nout);
    _mm_sfence();
}

void receiver_fenced(const uint8_t* k0, const uint8_t* k1, uint64_t counter, const uint8_t* choice, size_t ncols,
                     uint8_t* u, uint8_t* t, size_t nout, size_t col_begin, size_t col_end,
                     uint8_t* work) noexcept {
    receiver_cols(k0, k1, counter, choice, ncols, u, t, nout, col_begin, col_end, work);
    _mm_sfence();
}

void sender_fenced(const uint8_t* ks, const uint8_t delta[16], uint64_t counter, const uint8_t* u, size_t ncols,
                   uint8_t* q, size_t nout, size_t col_begin, size_t col_end, uint8_t* work) noexcept {
    sender_cols(ks, delta, counter, u, ncols, q, nout, col_begin, col_end, work);
    _mm_sfence();
}

}  // namespace

const Kernels table = {transpose_fenced, receiver_fenced, sender_fenced, tccr, correlate};


const char* transpose_impl(int force_movemask) {
    if (force_movemask >= 0) g_force_movemask.store(force_movemask ? 1 : 0);
    return cpu_has_gfni_vbmi() && !g_force_movemask.load() ? "gfni" : "movemask";
}

}  // namespace safelight::ot::avx512
