// Word-size modular arithmetic for the BFV engine (internal header).
//
// Everything here has internal linkage (anonymous namespace): the header is
// included by translation units compiled for different instruction sets, and
// an inline function shared between them could be linked to the copy built
// with instructions the CPU lacks. Every helper is branch-free in its data.
#pragma once
#include <cstddef>
#include <cstdint>

#include "safelight/bfv.hpp"

namespace safelight::bfv {
namespace {

using u128 = unsigned __int128;

inline uint64_t hi64(u128 x) noexcept { return uint64_t(x >> 64); }

// All ones when the condition bit is 1 (b in {0, 1}).
inline uint64_t mask_of(uint64_t b) noexcept { return uint64_t(0) - b; }

// x - m if x >= m else x, for x < 2m <= 2^64 (no wrap of the comparison:
// the borrow of x - m selects).
inline uint64_t csub(uint64_t x, uint64_t m) noexcept {
    const uint64_t d = x - m;
    const uint64_t borrow = uint64_t(d > x);  // x < m
    return d + (m & mask_of(borrow));
}

inline uint64_t add_mod(uint64_t a, uint64_t b, uint64_t q) noexcept { return csub(a + b, q); }
inline uint64_t sub_mod(uint64_t a, uint64_t b, uint64_t q) noexcept { return csub(a + q - b, q); }
inline uint64_t neg_mod(uint64_t a, uint64_t q) noexcept {
    // q - a, except 0 -> 0
    return (q - a) & mask_of(uint64_t(a != 0));
}

// x mod q for any 128-bit x (Barrett with floor(2^128 / q); the quotient
// estimate is at most 2 below the true quotient, so the remainder is < 3q,
// which fits a word for q < 2^62, then two conditional subtractions).
inline uint64_t reduce128(u128 x, const Modulus& m) noexcept {
    const uint64_t lo = uint64_t(x), hi = hi64(x);
    const uint64_t q = m.value;
    // floor(x * ratio / 2^128), without the carry of the low x low product
    const uint64_t carry = hi64(u128(lo) * m.ratio_lo);
    const u128 t2 = u128(lo) * m.ratio_hi;
    const u128 mid = u128(uint64_t(t2)) + carry;
    uint64_t t3 = hi64(t2) + uint64_t(mid >> 64);
    const u128 t4 = u128(hi) * m.ratio_lo;
    const u128 mid2 = u128(uint64_t(mid)) + uint64_t(t4);
    t3 += hi64(t4) + uint64_t(mid2 >> 64);
    const uint64_t est = hi * m.ratio_hi + t3;
    uint64_t r = lo - est * q;
    r = csub(r, q);
    return csub(r, q);
}

// x mod q for a word x: Shoup's product by 1 with 1' = floor(2^64 / q) =
// ratio_hi gives x - floor(x 1' / 2^64) q in [0, 2q), then one subtraction.
inline uint64_t reduce64(uint64_t x, const Modulus& m) noexcept {
    return csub(x - hi64(u128(x) * m.ratio_hi) * m.value, m.value);
}

inline uint64_t mul_mod(uint64_t a, uint64_t b, const Modulus& m) noexcept {
    return reduce128(u128(a) * b, m);
}

// Montgomery REDC: x 2^-64 mod q in [0, q) for x < q 2^64.
inline uint64_t redc(u128 x, const Modulus& m) noexcept {
    const uint64_t lo = uint64_t(x), hi = hi64(x);
    const uint64_t t = lo * m.mont_neg_inv;
    const uint64_t r = hi + hi64(u128(t) * m.value) + uint64_t(lo != 0);
    return csub(r, m.value);
}
// REDC of sums of up to 8 q 2^64 (the high word brought below q first:
// subtracting multiples of q 2^64 does not change x 2^-64 mod q); q < 2^61.
inline uint64_t redc_wide(u128 x, const Modulus& m) noexcept {
    const uint64_t q = m.value;
    uint64_t hi = hi64(x);
    hi = csub(csub(csub(hi, 4 * q), 2 * q), q);
    return redc((u128(hi) << 64) | uint64_t(x), m);
}
// c 2^64 mod q: a constant in Montgomery form.
inline uint64_t to_mont(uint64_t c, const Modulus& m) noexcept { return reduce128(u128(c) << 64, m); }

// Quotient and remainder of x < t 2^64 by the modulus t (branch-free).
inline uint64_t divrem128(u128 x, const Modulus& t, uint64_t& rem) noexcept {
    const uint64_t r = reduce128(x, t);
    rem = r;
    // (x - r) / t is exact; recover it from the low words with t^-1 mod 2^64
    // would need t odd; instead divide the 128-bit difference by Barrett once
    // more: (x - r) = Q t with Q < 2^64, so Q = floor((x - r) ratio / 2^128)
    // up to +2, fixed by comparing Q t with x - r.
    const u128 d = x - r;
    const uint64_t lo = uint64_t(d), hi = hi64(d);
    const uint64_t carry = hi64(u128(lo) * t.ratio_lo);
    const u128 t2 = u128(lo) * t.ratio_hi;
    const u128 mid = u128(uint64_t(t2)) + carry;
    uint64_t t3 = hi64(t2) + uint64_t(mid >> 64);
    const u128 t4 = u128(hi) * t.ratio_lo;
    const u128 mid2 = u128(uint64_t(mid)) + uint64_t(t4);
    t3 += hi64(t4) + uint64_t(mid2 >> 64);
    uint64_t est = hi * t.ratio_hi + t3;
    // est in {Q-2, Q-1, Q}: the low word of d - est t is 0, t or 2t.
    const uint64_t left = lo - est * t.value;
    est += uint64_t(left >= t.value);
    est += uint64_t(left >= 2 * t.value);
    return est;
}

// Shoup: w' = floor(w 2^64 / q) for a constant w < q; then
// w y - floor(w' y / 2^64) q lies in [0, 2q) for any word y.
inline uint64_t shoup(uint64_t w, uint64_t q) noexcept { return uint64_t((u128(w) << 64) / q); }
inline uint64_t mul_shoup_lazy(uint64_t y, uint64_t w, uint64_t ws, uint64_t q) noexcept {
    return w * y - hi64(u128(ws) * y) * q;
}
inline uint64_t mul_shoup(uint64_t y, uint64_t w, uint64_t ws, uint64_t q) noexcept {
    return csub(mul_shoup_lazy(y, w, ws, q), q);
}

inline uint64_t pow_mod(uint64_t a, uint64_t e, const Modulus& m) noexcept {
    uint64_t r = 1 % m.value;
    a = reduce64(a, m);
    while (e) {  // public exponents only
        if (e & 1) r = mul_mod(r, a, m);
        a = mul_mod(a, a, m);
        e >>= 1;
    }
    return r;
}

// a^-1 mod a prime q (a != 0 mod q).
inline uint64_t inv_mod(uint64_t a, const Modulus& m) noexcept { return pow_mod(a, m.value - 2, m); }

// A small signed value (|v| < q) as a residue mod q.
inline uint64_t lift_signed(int64_t v, uint64_t q) noexcept {
    return uint64_t(v) + (q & uint64_t(v >> 63));
}

// Branch-free popcount (no table, no libgcc call).
inline uint64_t popcount64(uint64_t x) noexcept {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (x * 0x0101010101010101ULL) >> 56;
}

}  // namespace
}  // namespace safelight::bfv
