// Silent OT kernels written once and compiled per instruction set.
//
// Included by silent_scalar.cpp, silent_avx2.cpp and silent_avx512.cpp after
// each defines SL_ISA_NS and the tier's two primitives in that namespace:
//   void children(const uint8_t* src, size_t count, uint8_t* dst) noexcept;
//       dst[2i] = pi_L(src[i]) ^ src[i], dst[2i + 1] = pi_R(src[i]) ^ src[i]
//   void keystream(const uint8_t key[16], uint64_t counter, uint8_t* out, size_t nbytes) noexcept;
//       AES-128-CTR, nonce 0 (the PRG engine's ctr_fill of the tier)
#pragma once
#include <cstdint>
#include <cstring>

#include "safelight/secure_wipe.hpp"
#include "safelight/silent.hpp"

#ifndef SL_ISA_NS
#error "define SL_ISA_NS before including silent_impl.hpp"
#endif

namespace safelight::silent::SL_ISA_NS {
namespace {

inline uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

inline void store64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

inline void xor_into(uint8_t* dst, const uint8_t* src) {
    store64(dst, load64(dst) ^ load64(src));
    store64(dst + 8, load64(dst + 8) ^ load64(src + 8));
}

// XOR of the blocks at src + 16 * (2i + side), i < half.
inline void side_sum(const uint8_t* src, size_t half, unsigned side, uint8_t out[16]) {
    uint64_t a = 0, b = 0;
    for (size_t i = 0; i < half; ++i) {
        a ^= load64(src + 16 * (2 * i + side));
        b ^= load64(src + 16 * (2 * i + side) + 8);
    }
    store64(out, a);
    store64(out + 8, b);
}

inline void clear_lsbs(uint8_t* blocks, size_t n) {
    for (size_t i = 0; i < n; ++i) blocks[16 * i] &= 0xfe;
}

inline void block_sum(const uint8_t* blocks, size_t n, uint8_t out[16]) {
    uint64_t a = 0, b = 0;
    for (size_t i = 0; i < n; ++i) {
        a ^= load64(blocks + 16 * i);
        b ^= load64(blocks + 16 * i + 8);
    }
    store64(out, a);
    store64(out + 8, b);
}

void children(const uint8_t* src, size_t count, uint8_t* dst) noexcept;
void keystream(const uint8_t key[16], uint64_t counter, uint8_t* out, size_t nbytes) noexcept;

// Level 0 in the buffer that makes level `depth` land in `leaves` (ping-pong
// with `work`, which holds at most level depth - 1: 2^(depth-1) blocks).
inline uint8_t* level_buffer(unsigned level, unsigned depth, uint8_t* leaves, uint8_t* work) {
    return ((depth - level) % 2 == 0) ? leaves : work;
}

void ggm_expand(const uint8_t* roots, size_t trees, unsigned depth, const uint8_t delta[16], uint8_t* leaves,
                uint8_t* sums, uint8_t* psi, uint8_t* work) noexcept {
    const size_t width = size_t(1) << depth;
    for (size_t t = 0; t < trees; ++t) {
        uint8_t* out = leaves + 16 * width * t;
        std::memcpy(level_buffer(0, depth, out, work), roots + 16 * t, 16);
        for (unsigned l = 0; l < depth; ++l) {
            uint8_t* src = level_buffer(l, depth, out, work);
            uint8_t* dst = level_buffer(l + 1, depth, out, work);
            children(src, size_t(1) << l, dst);
            for (unsigned side = 0; side < 2; ++side)
                side_sum(dst, size_t(1) << l, side, sums + 16 * (2 * (depth * t + l) + side));
        }
        clear_lsbs(out, width);
        block_sum(out, width, psi + 16 * t);
        xor_into(psi + 16 * t, delta);
    }
    secure_wipe(work, 16 * (width / 2));
}

void ggm_punctured(const uint8_t* keys, const uint32_t* alphas, const uint8_t* psi, size_t trees, unsigned depth,
                   uint8_t* leaves, uint8_t* work) noexcept {
    const size_t width = size_t(1) << depth;
    for (size_t t = 0; t < trees; ++t) {
        uint8_t* out = leaves + 16 * width * t;
        const uint32_t alpha = alphas[t];
        const uint8_t* key = keys + 16 * depth * t;
        // level 1: the sibling of the path is the level's key, the path node unknown (0)
        uint8_t* first = level_buffer(1, depth, out, work);
        const unsigned b1 = (alpha >> (depth - 1)) & 1;
        std::memcpy(first + 16 * (1 - b1), key, 16);
        std::memset(first + 16 * b1, 0, 16);
        size_t path = b1;
        for (unsigned l = 1; l < depth; ++l) {
            uint8_t* src = level_buffer(l, depth, out, work);
            uint8_t* dst = level_buffer(l + 1, depth, out, work);
            children(src, size_t(1) << l, dst);  // the path node's children are garbage
            const unsigned b = (alpha >> (depth - 1 - l)) & 1, side = 1 - b;
            uint8_t s[16];
            side_sum(dst, size_t(1) << l, side, s);  // includes the garbage at 2 path + side
            uint8_t* sibling = dst + 16 * (2 * path + side);
            xor_into(sibling, s);
            xor_into(sibling, key + 16 * l);
            path = 2 * path + b;
            std::memset(dst + 16 * path, 0, 16);
        }
        clear_lsbs(out, width);
        uint8_t* hole = out + 16 * path;
        block_sum(out, width, hole);  // the hole is 0: the XOR of the others
        xor_into(hole, psi + 16 * t);
    }
    secure_wipe(work, 16 * (width / 2));
}

// The base table (k blocks, 9.4 MB for Ferret's k) outgrows L2, so each row's ten
// loads miss; the columns of a chunk are computed first, so that the loop that sums
// them has nothing but independent loads for the core to overlap. (Software
// prefetching a few rows ahead measured slower on an EPYC: the loads already overlap.)
void lpn_encode(const uint8_t* base, size_t k, const uint8_t seed[16], size_t row_begin, size_t rows,
                uint8_t* out) noexcept {
    constexpr size_t kChunk = 256;  // rows per keystream fill: 12 KiB
    alignas(64) uint8_t ks[kChunk * kLpnBlocksPerRow * 16];
    uint32_t cols[kChunk * kLpnWeight];
    for (size_t r0 = 0; r0 < rows; r0 += kChunk) {
        const size_t m = rows - r0 < kChunk ? rows - r0 : kChunk;
        keystream(seed, kLpnBlocksPerRow * (row_begin + r0), ks, m * kLpnBlocksPerRow * 16);
        for (size_t r = 0; r < m; ++r)
            for (unsigned j = 0; j < kLpnWeight; ++j) {
                uint32_t w;
                std::memcpy(&w, ks + r * kLpnBlocksPerRow * 16 + 4 * j, 4);
                cols[r * kLpnWeight + j] = uint32_t((uint64_t(w) * k) >> 32);
            }
        for (size_t r = 0; r < m; ++r) {
            uint64_t a = load64(out + 16 * (r0 + r)), b = load64(out + 16 * (r0 + r) + 8);
            for (unsigned j = 0; j < kLpnWeight; ++j) {
                const uint8_t* col = base + 16 * size_t(cols[r * kLpnWeight + j]);
                a ^= load64(col);
                b ^= load64(col + 8);
            }
            store64(out + 16 * (r0 + r), a);
            store64(out + 16 * (r0 + r) + 8, b);
        }
    }
}

}  // namespace

const Kernels table = {ggm_expand, ggm_punctured, lpn_encode};

}  // namespace safelight::silent::SL_ISA_NS
