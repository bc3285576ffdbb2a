// Ring engine: elementwise arithmetic on Z_2^64 (wrap-around uint64) and the
// fixed-point codec between float64 and the ring.
#pragma once
#include <cstddef>
#include <cstdint>

#include "safelight/isa.hpp"

namespace safelight::ring {

// One table of kernels per instruction set. Every kernel works on a range
// [0, n) of caller-provided buffers, never allocates and never throws.
struct Kernels {
    void (*add)(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n) noexcept;
    void (*sub)(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n) noexcept;
    void (*neg)(const uint64_t* a, uint64_t* out, size_t n) noexcept;
    void (*mul_scalar)(const uint64_t* a, uint64_t s, uint64_t* out, size_t n) noexcept;
    void (*mul)(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n) noexcept;
    // float64 -> ring: round(x * 2^f) in two's complement. Returns the number of
    // inputs that were NaN/inf or had |x * 2^f| >= 2^63 (those outputs are 0).
    size_t (*encode_fixed)(const double* x, uint64_t* out, size_t n, int frac_bits) noexcept;
    // ring -> float64: signed value * 2^-f.
    void (*decode_fixed)(const uint64_t* x, double* out, size_t n, int frac_bits) noexcept;
    // Arithmetic shift right of the signed interpretation (local truncation).
    void (*shift_right_signed)(const uint64_t* x, uint64_t* out, size_t n, int bits) noexcept;
    // Valid 2-D correlation of `channels` planes (each in_h x in_w, row-major)
    // with per-channel int64 kernels (kh x kw, row-major): out is
    // channels x (in_h-kh+1) x (in_w-kw+1). Rows [row_begin, row_end) of the
    // flattened (channel, output row) index are computed.
    // Elementwise Beaver recombination: out = c + e * (b + [with_f] f) + a * f.
    void (*beaver_combine)(const uint64_t* c, const uint64_t* e, const uint64_t* b, const uint64_t* a,
                           const uint64_t* f, uint64_t* out, size_t n, bool with_f) noexcept;
    void (*correlate2d)(const uint64_t* in, size_t in_h, size_t in_w, const uint64_t* kernel,
                        size_t kh, size_t kw, uint64_t* out, size_t row_begin,
                        size_t row_end) noexcept;
};

const Kernels& kernels(Isa isa);

namespace scalar { extern const Kernels table; }
namespace avx2 { extern const Kernels table; }
namespace avx512 { extern const Kernels table; }

}  // namespace safelight::ring
