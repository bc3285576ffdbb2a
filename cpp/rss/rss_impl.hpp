// Replicated-sharing kernels, written once and compiled per instruction set (see
// ring_impl.hpp for the scheme). The elementwise loops vectorise as written; the bit
// transposition has explicit AVX2 and AVX-512 paths (movemask / test-mask gather one
// bit of 4 or 8 values per instruction) and a plain loop as the reference.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "safelight/rss.hpp"

#ifndef SL_ISA_NS
#error "define SL_ISA_NS before including rss_impl.hpp"
#endif

namespace safelight::rss::SL_ISA_NS {
namespace {

void mul(const uint64_t* __restrict x0, const uint64_t* __restrict x1, const uint64_t* __restrict y0,
         const uint64_t* __restrict y1, uint64_t* __restrict out, size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) out[i] = x0[i] * (y0[i] + y1[i]) + x1[i] * y0[i];
}

void and_words(const uint64_t* __restrict x0, const uint64_t* __restrict x1, const uint64_t* __restrict y0,
               const uint64_t* __restrict y1, uint64_t* __restrict out, size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) out[i] = (x0[i] & (y0[i] ^ y1[i])) ^ (x1[i] & y0[i]);
}

// The 64 values of one block (zero past the end), then one word per bit plane.
inline void load_block(const uint64_t* values, size_t n, size_t w, uint64_t (&block)[64]) noexcept {
    const size_t base = 64 * w;
    if (base + 64 <= n) {
        std::memcpy(block, values + base, sizeof block);
    } else {
        for (size_t t = 0; t < 64; ++t) block[t] = base + t < n ? values[base + t] : 0;
    }
}

void bit_planes(const uint64_t* __restrict values, size_t n, int nbits, uint64_t* __restrict planes,
                size_t words, size_t w_begin, size_t w_end) noexcept {
    alignas(64) uint64_t block[64];
    for (size_t w = w_begin; w < w_end; ++w) {
        load_block(values, n, w, block);
#if defined(__AVX512F__)
        __m512i v[8];
        for (int q = 0; q < 8; ++q) v[q] = _mm512_load_si512(reinterpret_cast<const void*>(block + 8 * q));
        for (int j = 0; j < nbits; ++j) {
            const __m512i bit = _mm512_set1_epi64(int64_t(uint64_t(1) << j));
            uint64_t word = 0;
            for (int q = 0; q < 8; ++q) word |= uint64_t(_mm512_test_epi64_mask(v[q], bit)) << (8 * q);
            planes[size_t(j) * words + w] = word;
        }
#elif defined(__AVX2__)
        __m256i v[16];
        for (int q = 0; q < 16; ++q) v[q] = _mm256_load_si256(reinterpret_cast<const __m256i*>(block + 4 * q));
        for (int j = 0; j < nbits; ++j) {
            const __m128i shift = _mm_cvtsi32_si128(63 - j);  // bit j to the sign bit
            uint64_t word = 0;
            for (int q = 0; q < 16; ++q) {
                const __m256d top = _mm256_castsi256_pd(_mm256_sll_epi64(v[q], shift));
                word |= uint64_t(unsigned(_mm256_movemask_pd(top))) << (4 * q);
            }
            planes[size_t(j) * words + w] = word;
        }
#else
        for (int j = 0; j < nbits; ++j) {
            uint64_t word = 0;
            for (int t = 0; t < 64; ++t) word |= ((block[t] >> j) & 1u) << t;
            planes[size_t(j) * words + w] = word;
        }
#endif
    }
}

void unpack_bits(const uint64_t* __restrict words, uint64_t* __restrict out, size_t begin, size_t end) noexcept {
    for (size_t e = begin; e < end; ++e) out[e] = (words[e >> 6] >> (e & 63)) & 1u;
}

}  // namespace

extern const Kernels table = {mul, and_words, bit_planes, unpack_bits};

}  // namespace safelight::rss::SL_ISA_NS
