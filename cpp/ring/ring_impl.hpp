// Ring kernels, written once and compiled per instruction set.
//
// Included by ring_scalar.cpp, ring_avx2.cpp and ring_avx512.cpp, each built
// with its own flags and defining SL_ISA_NS, so every copy lives in its own
// namespace (no ODR clash between differently compiled inline code). The loops
// are simple enough that the compiler vectorises them for the target; the
// scalar TU is built with vectorisation disabled so it stays a true reference.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "safelight/ring.hpp"

#ifndef SL_ISA_NS
#error "define SL_ISA_NS before including ring_impl.hpp"
#endif

namespace safelight::ring::SL_ISA_NS {
namespace {

void add(const uint64_t* __restrict a, const uint64_t* __restrict b, uint64_t* __restrict out,
         size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void sub(const uint64_t* __restrict a, const uint64_t* __restrict b, uint64_t* __restrict out,
         size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) out[i] = a[i] - b[i];
}

void neg(const uint64_t* __restrict a, uint64_t* __restrict out, size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) out[i] = uint64_t(0) - a[i];
}

void mul_scalar(const uint64_t* __restrict a, uint64_t s, uint64_t* __restrict out,
                size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) out[i] = a[i] * s;
}

void mul(const uint64_t* __restrict a, const uint64_t* __restrict b, uint64_t* __restrict out,
         size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}

size_t encode_fixed(const double* __restrict x, uint64_t* __restrict out, size_t n,
                    int frac_bits) noexcept {
    const double scale = std::ldexp(1.0, frac_bits);
    const double limit = 9223372036854775808.0;  // 2^63
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
        double v = std::nearbyint(x[i] * scale);
        // NaN fails both comparisons; +-inf and out-of-range fail one.
        bool ok = (v < limit) & (v >= -limit);
        bad += !ok;
        out[i] = ok ? uint64_t(int64_t(v)) : 0;
    }
    return bad;
}

void decode_fixed(const uint64_t* __restrict x, double* __restrict out, size_t n,
                  int frac_bits) noexcept {
    const double scale = std::ldexp(1.0, -frac_bits);
    for (size_t i = 0; i < n; ++i) out[i] = double(int64_t(x[i])) * scale;
}

void shift_right_signed(const uint64_t* __restrict x, uint64_t* __restrict out, size_t n,
                        int bits) noexcept {
    for (size_t i = 0; i < n; ++i) out[i] = uint64_t(int64_t(x[i]) >> bits);
}

void beaver_combine(const uint64_t* __restrict c, const uint64_t* __restrict e,
                    const uint64_t* __restrict b, const uint64_t* __restrict a,
                    const uint64_t* __restrict f, uint64_t* __restrict out, size_t n,
                    bool with_f) noexcept {
    // One pass instead of five: the operands are too large for cache.
    if (with_f) {
        for (size_t i = 0; i < n; ++i) out[i] = c[i] + e[i] * (b[i] + f[i]) + a[i] * f[i];
    } else {
        for (size_t i = 0; i < n; ++i) out[i] = c[i] + e[i] * b[i] + a[i] * f[i];
    }
}

void correlate2d(const uint64_t* __restrict in, size_t in_h, size_t in_w,
                 const uint64_t* __restrict kernel, size_t kh, size_t kw, uint64_t* __restrict out,
                 size_t row_begin, size_t row_end) noexcept {
    const size_t out_h = in_h - kh + 1, out_w = in_w - kw + 1;
    for (size_t r = row_begin; r < row_end; ++r) {
        const size_t c = r / out_h, y = r % out_h;
        const uint64_t* plane = in + c * in_h * in_w;
        const uint64_t* k = kernel + c * kh * kw;
        uint64_t* o = out + r * out_w;
        for (size_t x = 0; x < out_w; ++x) o[x] = 0;
        // One kernel tap at a time over the whole row: a contiguous
        // multiply-accumulate the compiler vectorises.
        for (size_t i = 0; i < kh; ++i) {
            const uint64_t* row = plane + (y + i) * in_w;
            for (size_t j = 0; j < kw; ++j) {
                const uint64_t w = k[i * kw + j];
                const uint64_t* src = row + j;
                for (size_t x = 0; x < out_w; ++x) o[x] += w * src[x];
            }
        }
    }
}

}  // namespace

extern const Kernels table = {add,          sub,          neg,
                              mul_scalar,   mul,          encode_fixed,
                              decode_fixed, shift_right_signed, beaver_combine,
                              correlate2d};

}  // namespace safelight::ring::SL_ISA_NS
