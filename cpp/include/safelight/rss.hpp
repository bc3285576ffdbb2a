// Replicated-sharing engine (three servers, 2-out-of-3 shares): the local parts of
// products on arithmetic shares (Z_2^64) and of AND gates on bit-sliced boolean
// shares, and the transposition between values and bit planes.
#pragma once
#include <cstddef>
#include <cstdint>

#include "safelight/isa.hpp"

namespace safelight::rss {

// One table per instruction set; every kernel works on [0, n) of caller buffers.
struct Kernels {
    // out = x0 (y0 + y1) + x1 y0: a server's part of x y from its shares (x_i, x_i+1), (y_i, y_i+1).
    void (*mul)(const uint64_t* x0, const uint64_t* x1, const uint64_t* y0, const uint64_t* y1,
                uint64_t* out, size_t n) noexcept;
    // out = x0 & (y0 ^ y1) ^ x1 & y0: the AND of 64 bit-sliced gates per word.
    void (*and_words)(const uint64_t* x0, const uint64_t* x1, const uint64_t* y0, const uint64_t* y1,
                      uint64_t* out, size_t n) noexcept;
    // Bit planes of values [64 w_begin, 64 w_end): planes[j * words + w] holds bit j of values
    // 64 w .. 64 w + 63 (value 64 w + t in bit t); values past n count as 0.
    void (*bit_planes)(const uint64_t* values, size_t n, int nbits, uint64_t* planes, size_t words,
                       size_t w_begin, size_t w_end) noexcept;
    // out[e] = bit e of the word array (0 or 1), e in [begin, end).
    void (*unpack_bits)(const uint64_t* words, uint64_t* out, size_t begin, size_t end) noexcept;
};

const Kernels& kernels(Isa isa);

namespace scalar { extern const Kernels table; }
namespace avx2 { extern const Kernels table; }
namespace avx512 { extern const Kernels table; }

}  // namespace safelight::rss
