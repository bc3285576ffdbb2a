// Garbled-circuit kernels, portable reference path (SAFELIGHT_ISA=scalar or
// CPUs without AES-NI). Built with -fno-tree-vectorize; no intrinsics.
//
// AES-128 is computed in constant time without tables: bytes are handled
// eight per 64-bit word (SWAR), the S-box is the GF(2^8) inverse x^254 from
// branch-free multiplications followed by the FIPS-197 affine map. Labels are
// secret, so nothing here indexes memory or branches on them; the colour bits
// select through masks. Slow (about 1 M blocks/s per core): a reference.
#include "safelight/gc.hpp"

namespace safelight::gc::scalar {

namespace {

constexpr uint64_t kB1 = 0x0101010101010101ull;  // bit 0 of each byte

// x * b in GF(2^8) for 8 bytes at once (modulus x^8 + x^4 + x^3 + x + 1).
inline uint64_t mul_x(uint64_t b) {
    const uint64_t top = (b >> 7) & kB1;
    return ((b << 1) & (kB1 * 0xfe)) ^ (top * 0x1b);
}

// Byte-wise product in GF(2^8) of 8 byte pairs (shift-and-add over masks).
inline uint64_t gf_mul(uint64_t a, uint64_t b) {
    uint64_t acc = 0;
    for (int bit = 0; bit < 8; ++bit) {
        acc ^= a & (((b >> bit) & kB1) * 0xff);
        a = mul_x(a);
    }
    return acc;
}

// Byte-wise square: the bits spread to even positions; the high nibble
// contributes x^8, x^10, x^12, x^14 = 0x1b, 0x6c, 0xab, 0x9a.
inline uint64_t gf_sq(uint64_t b) {
    uint64_t lo = b & (kB1 * 0x0f);
    lo = (lo | (lo << 2)) & (kB1 * 0x33);
    lo = (lo | (lo << 1)) & (kB1 * 0x55);
    return lo ^ (((b >> 4) & kB1) * 0x1b) ^ (((b >> 5) & kB1) * 0x6c) ^
           (((b >> 6) & kB1) * 0xab) ^ (((b >> 7) & kB1) * 0x9a);
}

template <int k>
inline uint64_t rot_in_bytes(uint64_t b) {
    return ((b << k) & (kB1 * ((0xffu << k) & 0xffu))) | ((b >> (8 - k)) & (kB1 * (0xffu >> (8 - k))));
}

// S-box of the 16 bytes in (w0, w1), the two words in lock step.
inline void sub_bytes(uint64_t& w0, uint64_t& w1) {
    uint64_t s[2] = {w0, w1};
    for (int i = 0; i < 2; ++i) {
        const uint64_t x = s[i];
        const uint64_t x2 = gf_sq(x);
        const uint64_t x3 = gf_mul(x2, x);
        const uint64_t x12 = gf_sq(gf_sq(x3));
        const uint64_t x15 = gf_mul(x12, x3);
        const uint64_t x240 = gf_sq(gf_sq(gf_sq(gf_sq(x15))));
        const uint64_t inv = gf_mul(gf_mul(x240, x12), x2);  // x^254 (0 -> 0)
        s[i] = inv ^ rot_in_bytes<1>(inv) ^ rot_in_bytes<2>(inv) ^ rot_in_bytes<3>(inv) ^
               rot_in_bytes<4>(inv) ^ (kB1 * 0x63);
    }
    w0 = s[0];
    w1 = s[1];
}

// State byte 4c + r = row r of column c; w0 holds columns 0, 1 and w1 columns
// 2, 3. ShiftRows: row r of column c takes row r of column c + r (mod 4).
inline void shift_rows(uint64_t& w0, uint64_t& w1) {
    constexpr uint64_t r0 = 0x000000ff000000ffull, r1 = r0 << 8, r2 = r0 << 16, r3 = r0 << 24;
    const uint64_t c12 = (w0 >> 32) | (w1 << 32);
    const uint64_t c30 = (w1 >> 32) | (w0 << 32);
    const uint64_t n0 = (w0 & r0) | (c12 & r1) | (w1 & r2) | (c30 & r3);
    const uint64_t n1 = (w1 & r0) | (c30 & r1) | (w0 & r2) | (c12 & r3);
    w0 = n0;
    w1 = n1;
}

// Rotations of the rows inside each 32-bit column: byte r takes byte r + k.
inline uint64_t col_down(uint64_t w, int k) {
    const int s = 8 * k;
    const uint64_t keep = 0xffffffffull >> s;  // per column, bytes that move down
    const uint64_t m_lo = keep | (keep << 32);
    return ((w >> s) & m_lo) | ((w << (32 - s)) & ~m_lo);
}

// MixColumns on two columns: out_r = 2 a_r ^ 3 a_{r+1} ^ a_{r+2} ^ a_{r+3}.
inline uint64_t mix(uint64_t w) {
    const uint64_t d1 = col_down(w, 1);
    return mul_x(w ^ d1) ^ d1 ^ col_down(w, 2) ^ col_down(w, 3);
}

inline void aes_encrypt(const RoundKeys& rk, uint64_t& w0, uint64_t& w1) {
    w0 ^= rk.w[0][0];
    w1 ^= rk.w[0][1];
    for (int round = 1; round < 10; ++round) {
        sub_bytes(w0, w1);
        shift_rows(w0, w1);
        w0 = mix(w0) ^ rk.w[round][0];
        w1 = mix(w1) ^ rk.w[round][1];
    }
    sub_bytes(w0, w1);
    shift_rows(w0, w1);
    w0 ^= rk.w[10][0];
    w1 ^= rk.w[10][1];
}

// 2x in GF(2^128) on (lo, hi).
inline void dbl(uint64_t lo, uint64_t hi, uint64_t& out_lo, uint64_t& out_hi) {
    out_hi = (hi << 1) | (lo >> 63);
    out_lo = (lo << 1) ^ ((0 - (hi >> 63)) & 0x87);
}

// H on an already doubled-and-tweaked input k = 2x ^ T: pi(k) ^ k.
inline void mmo(const RoundKeys& rk, uint64_t k0, uint64_t k1, uint64_t& h0, uint64_t& h1) {
    h0 = k0;
    h1 = k1;
    aes_encrypt(rk, h0, h1);
    h0 ^= k0;
    h1 ^= k1;
}

// Label i of an operand: mask ^ XOR of its sources.
inline void load_op(const Operand& o, size_t i, uint64_t& lo, uint64_t& hi) {
    lo = o.mask[0];
    hi = o.mask[1];
    for (uint32_t s = 0; s < o.n; ++s) {
        lo ^= o.src[s][2 * i];
        hi ^= o.src[s][2 * i + 1];
    }
}

void garble_and(const RoundKeys& rk, const Operand& a, const Operand& b, uint64_t* c,
                uint64_t* table, size_t n, uint64_t instance, uint64_t k,
                const uint64_t delta[2], bool /*stream_c*/) noexcept {
    const uint64_t d0 = delta[0], d1 = delta[1];
    uint64_t dd0, dd1;
    dbl(d0, d1, dd0, dd1);  // 2(x ^ D) = 2x ^ 2D
    const uint64_t tg_hi = 2 * k, te_hi = 2 * k + 1;
    for (size_t i = 0; i < n; ++i) {
        uint64_t a0, a1, b0, b1;
        load_op(a, i, a0, a1);
        load_op(b, i, b0, b1);
        const uint64_t t_lo = instance + i;
        uint64_t x0, x1, y0, y1;
        dbl(a0, a1, x0, x1);
        dbl(b0, b1, y0, y1);
        x0 ^= t_lo;
        x1 ^= tg_hi;
        y0 ^= t_lo;
        y1 ^= te_hi;
        uint64_t ha0[2], ha1[2], hb0[2], hb1[2];
        mmo(rk, x0, x1, ha0[0], ha0[1]);
        mmo(rk, x0 ^ dd0, x1 ^ dd1, ha1[0], ha1[1]);
        mmo(rk, y0, y1, hb0[0], hb0[1]);
        mmo(rk, y0 ^ dd0, y1 ^ dd1, hb1[0], hb1[1]);
        const uint64_t ma = 0 - (a0 & 1), mb = 0 - (b0 & 1);
        const uint64_t tg0 = ha0[0] ^ ha1[0] ^ (d0 & mb), tg1 = ha0[1] ^ ha1[1] ^ (d1 & mb);
        const uint64_t te0 = hb0[0] ^ hb1[0] ^ a0, te1 = hb0[1] ^ hb1[1] ^ a1;
        // pb * (TE ^ A) = pb * (H(B) ^ H(B ^ D)): select H(B ^ D) when pb.
        const uint64_t we0 = hb0[0] ^ ((hb0[0] ^ hb1[0]) & mb);
        const uint64_t we1 = hb0[1] ^ ((hb0[1] ^ hb1[1]) & mb);
        c[2 * i] = ha0[0] ^ (tg0 & ma) ^ we0;
        c[2 * i + 1] = ha0[1] ^ (tg1 & ma) ^ we1;
        table[4 * i] = tg0;
        table[4 * i + 1] = tg1;
        table[4 * i + 2] = te0;
        table[4 * i + 3] = te1;
    }
}

void evaluate_and(const RoundKeys& rk, const Operand& a, const Operand& b, uint64_t* c,
                  const uint64_t* table, size_t n, uint64_t instance, uint64_t k,
                  bool /*stream_c*/) noexcept {
    const uint64_t tg_hi = 2 * k, te_hi = 2 * k + 1;
    for (size_t i = 0; i < n; ++i) {
        uint64_t a0, a1, b0, b1;
        load_op(a, i, a0, a1);
        load_op(b, i, b0, b1);
        const uint64_t t_lo = instance + i;
        uint64_t x0, x1, y0, y1, ha0, ha1, hb0, hb1;
        dbl(a0, a1, x0, x1);
        dbl(b0, b1, y0, y1);
        mmo(rk, x0 ^ t_lo, x1 ^ tg_hi, ha0, ha1);
        mmo(rk, y0 ^ t_lo, y1 ^ te_hi, hb0, hb1);
        const uint64_t ma = 0 - (a0 & 1), mb = 0 - (b0 & 1);
        c[2 * i] = ha0 ^ hb0 ^ (table[4 * i] & ma) ^ ((table[4 * i + 2] ^ a0) & mb);
        c[2 * i + 1] = ha1 ^ hb1 ^ (table[4 * i + 1] & ma) ^ ((table[4 * i + 3] ^ a1) & mb);
    }
}

void xor_labels(const Operand& a, uint64_t* c, size_t n, bool /*stream_c*/) noexcept {
    for (size_t i = 0; i < n; ++i) load_op(a, i, c[2 * i], c[2 * i + 1]);
}

void hash(const RoundKeys& rk, const uint64_t* x, uint64_t* out, size_t n, uint64_t instance,
          uint64_t tweak_hi) noexcept {
    for (size_t i = 0; i < n; ++i) {
        uint64_t k0, k1;
        dbl(x[2 * i], x[2 * i + 1], k0, k1);
        mmo(rk, k0 ^ (instance + i), k1 ^ tweak_hi, out[2 * i], out[2 * i + 1]);
    }
}

// SubWord on the low 4 bytes of a word (outside the inlined round function).
uint32_t sub_word(uint32_t w) {
    uint64_t a = w, b = 0;
    sub_bytes(a, b);
    return uint32_t(a);
}

}  // namespace

void expand_key(const uint8_t key[16], RoundKeys& rk) noexcept {
    uint32_t w[44];
    for (int i = 0; i < 4; ++i)
        w[i] = uint32_t(key[4 * i]) | uint32_t(key[4 * i + 1]) << 8 |
               uint32_t(key[4 * i + 2]) << 16 | uint32_t(key[4 * i + 3]) << 24;
    uint32_t rcon = 1;
    for (int i = 4; i < 44; ++i) {
        uint32_t t = w[i - 1];
        if (i % 4 == 0) {
            t = sub_word((t >> 8) | (t << 24)) ^ rcon;
            rcon = uint32_t(mul_x(rcon) & 0xff);
        }
        w[i] = w[i - 4] ^ t;
    }
    for (int r = 0; r < 11; ++r) {
        rk.w[r][0] = uint64_t(w[4 * r]) | uint64_t(w[4 * r + 1]) << 32;
        rk.w[r][1] = uint64_t(w[4 * r + 2]) | uint64_t(w[4 * r + 3]) << 32;
    }
}

const Kernels table = {garble_and, evaluate_and, xor_labels, hash};

}  // namespace safelight::gc::scalar
