// OT kernels for the avx2 tier: AVX2 bit-matrix transpose, AES-NI hash.
//
// Transpose of a 128 x 128 bit tile, 32 rows at a time: each ymm holds the
// 16-byte slices of two rows (lanes 0 and 1 = rows r and r + 16). Four rounds
// of byte/word/dword/qword unpacks transpose the two 16 x 16 byte matrices
// in the lanes; loading the rows in bit-reversed order makes register c end up
// holding byte c of rows 0..31 in natural order. vpmovmskb then collects bit 7
// of those 32 bytes (32 rows of one column) and a byte-wise doubling moves the
// next bit up: 8 movemasks per register give 8 output columns.
#include <immintrin.h>

#define SL_ISA_NS avx2
#include "ot_impl.hpp"
#include "../prg/aesni_key_schedule.hpp"

namespace safelight::ot::avx2 {
namespace {

constexpr int kRev4[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};

template <int W>
inline void unpack_stage(__m256i x[16]) {
    __m256i y[16];
    for (int i = 0; i < 8; ++i) {
        if constexpr (W == 8) {
            y[2 * i] = _mm256_unpacklo_epi8(x[i], x[i + 8]);
            y[2 * i + 1] = _mm256_unpackhi_epi8(x[i], x[i + 8]);
        } else if constexpr (W == 16) {
            y[2 * i] = _mm256_unpacklo_epi16(x[i], x[i + 8]);
            y[2 * i + 1] = _mm256_unpackhi_epi16(x[i], x[i + 8]);
        } else if constexpr (W == 32) {
            y[2 * i] = _mm256_unpacklo_epi32(x[i], x[i + 8]);
            y[2 * i + 1] = _mm256_unpackhi_epi32(x[i], x[i + 8]);
        } else {
            y[2 * i] = _mm256_unpacklo_epi64(x[i], x[i + 8]);
            y[2 * i + 1] = _mm256_unpackhi_epi64(x[i], x[i + 8]);
        }
    }
    for (int i = 0; i < 16; ++i) x[i] = y[i];
}

inline __m128i ld(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

}  // namespace

namespace {

void transpose_tile(const uint8_t* in, size_t stride, uint8_t* out) noexcept {
    for (int g = 0; g < 4; ++g) {
        __m256i x[16];
        for (int i = 0; i < 16; ++i) {
            const uint8_t* r = in + size_t(32 * g + kRev4[i]) * stride;
            x[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(ld(r)), ld(r + 16 * stride), 1);
        }
        unpack_stage<8>(x);
        unpack_stage<16>(x);
        unpack_stage<32>(x);
        unpack_stage<64>(x);
        for (int c = 0; c < 16; ++c) {
            __m256i v = x[c];
            for (int b = 7; b >= 0; --b) {
                const uint32_t m = static_cast<uint32_t>(_mm256_movemask_epi8(v));
                std::memcpy(out + 16 * (8 * c + b) + 4 * g, &m, 4);
                v = _mm256_add_epi8(v, v);
            }
        }
    }
}

// Eight blocks through AES-128 (keys rk), interleaved to hide aesenc latency.
inline void aes8(__m128i b[8], const __m128i rk[11]) {
    for (int k = 0; k < 8; ++k) b[k] = _mm_xor_si128(b[k], rk[0]);
    for (int r = 1; r < 10; ++r)
        for (int k = 0; k < 8; ++k) b[k] = _mm_aesenc_si128(b[k], rk[r]);
    for (int k = 0; k < 8; ++k) b[k] = _mm_aesenclast_si128(b[k], rk[10]);
}

// Eight hash evaluations per batch: 8 elements, or (kDelta) 4 elements and
// their images under ^delta in slots 4..7.
template <bool kDelta>
void tccr_impl(const uint8_t* in, uint8_t* out0, uint8_t* out1, __m128i d, size_t n,
               uint64_t tweak, long long dom, const __m128i rk[11]) {
    constexpr size_t per = kDelta ? 4 : 8;
    for (size_t j = 0; j < n; j += per) {
        const size_t cnt = n - j < per ? n - j : per;
        __m128i y[8], z[8];
        for (size_t k = 0; k < 8; ++k) {
            const size_t e = k % per;  // element of this slot
            const __m128i x = e < cnt ? ld(in + 16 * (j + e)) : _mm_setzero_si128();
            y[k] = k < per ? x : _mm_xor_si128(x, d);
        }
        aes8(y, rk);
        for (size_t k = 0; k < 8; ++k) {
            const size_t e = k % per;
            z[k] = _mm_xor_si128(y[k], _mm_set_epi64x(dom, static_cast<long long>(tweak + j + e)));
        }
        aes8(z, rk);
        for (size_t k = 0; k < 8; ++k) {
            const size_t e = k % per;
            if (e >= cnt) continue;
            uint8_t* dst = (k < per ? out0 : out1) + 16 * (j + e);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_xor_si128(z[k], y[k]));
        }
    }
}

void tccr(const uint8_t* in, uint8_t* out0, uint8_t* out1, const uint8_t* delta, size_t n,
          uint64_t tweak, uint64_t domain) noexcept {
    alignas(16) __m128i rk[11];
    aesni_expand_key(kFixedKey, rk);
    const long long dom = static_cast<long long>(domain);
    if (delta)
        tccr_impl<true>(in, out0, out1, ld(delta), n, tweak, dom, rk);
    else
        tccr_impl<false>(in, out0, nullptr, _mm_setzero_si128(), n, tweak, dom, rk);
}

}  // namespace

namespace {

// ---- fused IKNP extension ------------------------------------------------
//
// Per tile of kTileCols = 2048 columns every row needs 16 keystream blocks of
// its seed at the same counters: the counter blocks are formed once per tile,
// the key schedules expanded once per call and read from L1 round by round.
// Eight blocks are in flight per batch to cover the aesenc latency.

constexpr size_t kB = kTileCols / 128;  // blocks per row per tile
static_assert(kB == 16, "the kernels below assume 2048-column tiles");

inline void counter_blocks(uint64_t first, __m128i ctr[kB]) {
    const __m128i bswap = _mm_setr_epi8(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
    for (size_t j = 0; j < kB; ++j)
        ctr[j] = _mm_shuffle_epi8(_mm_set_epi64x(static_cast<long long>(first + j), 0), bswap);
}

// Eight blocks: x[0..3] under schedule A, x[4..7] under schedule B.
inline void aes_4_4(const __m128i* rka, const __m128i* rkb, __m128i x[8]) {
    for (int k = 0; k < 4; ++k) {
        x[k] = _mm_xor_si128(x[k], _mm_load_si128(rka));
        x[k + 4] = _mm_xor_si128(x[k + 4], _mm_load_si128(rkb));
    }
    for (int r = 1; r < 10; ++r) {
        const __m128i ka = _mm_load_si128(rka + r), kb = _mm_load_si128(rkb + r);
        for (int k = 0; k < 4; ++k) {
            x[k] = _mm_aesenc_si128(x[k], ka);
            x[k + 4] = _mm_aesenc_si128(x[k + 4], kb);
        }
    }
    for (int k = 0; k < 4; ++k) {
        x[k] = _mm_aesenclast_si128(x[k], _mm_load_si128(rka + 10));
        x[k + 4] = _mm_aesenclast_si128(x[k + 4], _mm_load_si128(rkb + 10));
    }
}

inline void st(uint8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }

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
        __m128i ctr[kB];
        counter_blocks(counter + c0 / 128, ctr);
        const size_t nb = w / 128;
        const uint8_t* ch = choice + c0 / 8;
        for (size_t i = 0; i < 128; ++i) {
            uint8_t* ti = tile + i * kTileStride;
            uint8_t* ui = u + i * row + c0 / 8;
            for (size_t g = 0; g < kB; g += 4) {
                __m128i x[8];
                for (size_t k = 0; k < 4; ++k) x[k] = x[k + 4] = ctr[g + k];
                aes_4_4(rk + 11 * i, rk + 11 * (128 + i), x);
                for (size_t k = 0; k < 4; ++k) {
                    const size_t blk = g + k;
                    _mm_store_si128(reinterpret_cast<__m128i*>(ti + 16 * blk), x[k]);
                    if (blk < nb)
                        st(ui + 16 * blk, _mm_xor_si128(_mm_xor_si128(x[k], x[k + 4]), ld(ch + 16 * blk)));
                }
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
        __m128i ctr[kB];
        counter_blocks(counter + c0 / 128, ctr);
        const size_t nb = w / 128;
        for (size_t i = 0; i < 128; i += 2) {
            // Secret bits of delta become all-ones/zero masks: no branch, no secret index.
            const __m128i sa = _mm_set1_epi64x(static_cast<long long>(uint64_t(0) - bit_of(delta, i)));
            const __m128i sb = _mm_set1_epi64x(static_cast<long long>(uint64_t(0) - bit_of(delta, i + 1)));
            const uint8_t* ua = u + i * row + c0 / 8;
            const uint8_t* ub = ua + row;
            uint8_t* ta = tile + i * kTileStride;
            uint8_t* tb = ta + kTileStride;
            for (size_t g = 0; g < kB; g += 4) {
                __m128i x[8];
                for (size_t k = 0; k < 4; ++k) x[k] = x[k + 4] = ctr[g + k];
                aes_4_4(rk + 11 * i, rk + 11 * (i + 1), x);
                for (size_t k = 0; k < 4; ++k) {
                    const size_t blk = g + k;
                    const __m128i xa = blk < nb ? ld(ua + 16 * blk) : _mm_setzero_si128();
                    const __m128i xb = blk < nb ? ld(ub + 16 * blk) : _mm_setzero_si128();
                    _mm_store_si128(reinterpret_cast<__m128i*>(ta + 16 * blk), _mm_xor_si128(x[k], _mm_and_si128(xa, sa)));
                    _mm_store_si128(reinterpret_cast<__m128i*>(tb + 16 * blk), _mm_xor_si128(x[k + 4], _mm_and_si128(xb, sb)));
                }
            }
        }
    });
    wipe(work, kWorkBytes);
}

}  // namespace

const Kernels table = {transpose, receiver_cols, sender_cols, tccr, correlate};

}  // namespace safelight::ot::avx2
