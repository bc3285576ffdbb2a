// OT kernels written once and compiled per instruction set.
//
// Included by ot_scalar.cpp, ot_avx2.cpp and ot_avx512.cpp, each built with
// its own flags and defining SL_ISA_NS first, so every copy lives in its own
// namespace (no ODR clash between differently compiled inline code). The
// tier files add the parts that need intrinsics (transpose, fixed-key AES).
#pragma once
#include <cstdint>
#include <cstring>

#include "safelight/ot.hpp"
#include "safelight/secure_wipe.hpp"

#ifndef SL_ISA_NS
#error "define SL_ISA_NS before including ot_impl.hpp"
#endif

namespace safelight::ot::SL_ISA_NS {
namespace {

// Zeroes secret scratch at memset speed; the empty asm that "reads" the
// buffer keeps the compiler from dropping the memset as a dead store.
inline void wipe(void* p, size_t n) noexcept {
    std::memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

inline uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

inline void store64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

void correlate(const uint8_t* __restrict q, const uint8_t* __restrict choice,
               const uint8_t delta[16], uint8_t* __restrict out, size_t n) noexcept {
    const uint64_t d0 = load64(delta), d1 = load64(delta + 8);
    for (size_t j = 0; j < n; ++j) {
        const uint64_t m = uint64_t(0) - uint64_t(choice[j] & 1);
        store64(out + 16 * j, load64(q + 16 * j) ^ (d0 & m));
        store64(out + 16 * j + 8, load64(q + 16 * j + 8) ^ (d1 & m));
    }
}

// Transposes one 128 x 128 tile (rows at in + i*stride, 16 bytes each) into
// 128 blocks of 16 bytes. The tier supplies transpose_tile().
void transpose_tile(const uint8_t* in, size_t stride, uint8_t* out) noexcept;

void transpose(const uint8_t* in, size_t stride, size_t col_begin, size_t col_end, uint8_t* out,
               size_t nout) noexcept {
    for (size_t c0 = col_begin; c0 < col_end && c0 < nout; c0 += 128) {
        if (c0 + 128 <= nout) {
            transpose_tile(in + c0 / 8, stride, out + 16 * c0);
        } else {  // last, partial tile: never write past block nout
            alignas(64) uint8_t tmp[128 * 16];
            transpose_tile(in + c0 / 8, stride, tmp);
            std::memcpy(out + 16 * c0, tmp, 16 * (nout - c0));
            wipe(tmp, sizeof tmp);
        }
    }
}

// The fused extension kernels walk the columns in tiles of kTileCols: rows(c0, w)
// fills `tile` (128 rows of w bits, kTileStride bytes apart) for the columns
// [c0, c0 + w) and writes whatever else the role produces (the receiver's u),
// then the tile is transposed into out. The tile stays in L1/L2.
template <class Rows>
void tiled(uint8_t* out, size_t nout, size_t col_begin, size_t col_end, uint8_t* tile, Rows rows) noexcept {
    for (size_t c0 = col_begin; c0 < col_end; c0 += kTileCols) {
        const size_t w = col_end - c0 < kTileCols ? col_end - c0 : kTileCols;
        rows(c0, w);
        if (c0 < nout) transpose(tile, kTileStride, 0, w, out + 16 * c0, nout - c0);
    }
}

inline uint64_t bit_of(const uint8_t bytes[16], size_t i) { return (bytes[i / 8] >> (i % 8)) & 1; }

}  // namespace
}  // namespace safelight::ot::SL_ISA_NS
