// Portable AES-128-CTR keystream: the reference path (SAFELIGHT_ISA=scalar, or
// CPUs without AES-NI). No intrinsics, no tables.
//
// Constant-time formulation: the S-box is *computed*, never looked up. Bytes
// are processed eight at a time in 64-bit words (SWAR): the GF(2^8) inverse is
// x^254 built from branch-free carry-less multiplications (bit masks instead of
// conditional jumps), followed by the affine map of FIPS-197 5.1.1. No memory
// address or branch depends on key or data, so there is no cache-timing
// channel. It is slow (about 15 MB/s per core on Zen 4) and is only meant as a
// reference.
#include <cstring>

#include "safelight/prg.hpp"
#include "safelight/secure_wipe.hpp"

namespace safelight::prg::scalar {

namespace {

constexpr uint64_t kLow1 = 0x0101010101010101ull;   // bit 0 of every byte
constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full;   // bits 0..6 of every byte

// Multiplication by x in GF(2^8) (poly x^8+x^4+x^3+x+1) of 8 bytes at once.
inline uint64_t xtime8(uint64_t a) {
    const uint64_t carry = (a >> 7) & kLow1;            // 0 or 1 per byte
    return ((a & kLow7) << 1) ^ (carry * 0x1bu);       // 0x1b < 0x100: no cross-byte carry
}

// Byte-wise GF(2^8) product of 8 byte pairs, branch-free.
inline uint64_t gmul8(uint64_t a, uint64_t b) {
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) {
        const uint64_t mask = ((b >> i) & kLow1) * 0xffu;   // 0x00 or 0xff per byte
        r ^= a & mask;
        a = xtime8(a);
    }
    return r;
}

// Byte-wise rotate left by k (1..7) inside every byte.
template <int k>
inline uint64_t rotl_bytes(uint64_t b) {
    constexpr uint64_t hi = kLow1 * ((0xffu << k) & 0xffu);
    constexpr uint64_t lo = kLow1 * (0xffu >> (8 - k));
    return ((b << k) & hi) | ((b >> (8 - k)) & lo);
}

// Squaring is linear over GF(2): b^2 = sum b_i x^(2i). The low nibble spreads
// to the even bits; x^8, x^10, x^12, x^14 reduce to 0x1b, 0x6c, 0xab, 0x9a.
inline uint64_t gsq8(uint64_t b) {
    uint64_t t = b & (kLow1 * 0x0fu);
    t = (t | (t << 2)) & (kLow1 * 0x33u);
    t = (t | (t << 1)) & (kLow1 * 0x55u);
    t ^= ((b >> 4) & kLow1) * 0x1bu;
    t ^= ((b >> 5) & kLow1) * 0x6cu;
    t ^= ((b >> 6) & kLow1) * 0xabu;
    t ^= ((b >> 7) & kLow1) * 0x9au;
    return t;
}

// AES S-box on W words of 8 bytes each: inverse (x^254, which maps 0 to 0)
// then the affine map. The words go in lock step so that each step offers W
// independent dependency chains to a superscalar core.
template <int W>
inline void sub_bytes_n(uint64_t* s) {
    uint64_t x2[W], x3[W], x12[W], t[W];
    for (int i = 0; i < W; ++i) x2[i] = gsq8(s[i]);
    for (int i = 0; i < W; ++i) x3[i] = gmul8(x2[i], s[i]);
    for (int i = 0; i < W; ++i) x12[i] = gsq8(gsq8(x3[i]));
    for (int i = 0; i < W; ++i) t[i] = gmul8(x12[i], x3[i]);            // x^15
    for (int i = 0; i < W; ++i) t[i] = gsq8(gsq8(gsq8(gsq8(t[i]))));    // x^240
    for (int i = 0; i < W; ++i) t[i] = gmul8(t[i], x12[i]);             // x^252
    for (int i = 0; i < W; ++i) {
        const uint64_t inv = gmul8(t[i], x2[i]);                         // x^254
        s[i] = inv ^ rotl_bytes<1>(inv) ^ rotl_bytes<2>(inv) ^ rotl_bytes<3>(inv) ^
               rotl_bytes<4>(inv) ^ (kLow1 * 0x63u);
    }
}

// Within each 32-bit column (little-endian byte r = row r): byte r <- byte r+k.
inline uint64_t col_rot1(uint64_t w) {
    return ((w >> 8) & 0x00ffffff00ffffffull) | ((w << 24) & 0xff000000ff000000ull);
}
inline uint64_t col_rot2(uint64_t w) {
    return ((w >> 16) & 0x0000ffff0000ffffull) | ((w << 16) & 0xffff0000ffff0000ull);
}
inline uint64_t col_rot3(uint64_t w) {
    return ((w >> 24) & 0x000000ff000000ffull) | ((w << 8) & 0xffffff00ffffff00ull);
}

// MixColumns on two columns: out_r = 2 a_r ^ 3 a_{r+1} ^ a_{r+2} ^ a_{r+3}.
inline uint64_t mix_columns8(uint64_t w) {
    const uint64_t r1 = col_rot1(w);
    return xtime8(w ^ r1) ^ r1 ^ col_rot2(w) ^ col_rot3(w);
}

inline uint64_t bswap64(uint64_t v) {
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r = (r << 8) | ((v >> (8 * i)) & 0xff);
    return r;
}

// A block is two little-endian words: a = bytes 0..7 (columns 0, 1), b = bytes
// 8..15 (columns 2, 3); state byte 4c + r is row r of column c. ShiftRows moves
// (r, c) <- (r, c + r mod 4), done with masks on the two words.
inline void shift_rows(uint64_t& a, uint64_t& b) {
    constexpr uint64_t m0 = 0x000000ff000000ffull, m1 = m0 << 8, m2 = m0 << 16, m3 = m0 << 24;
    const uint64_t x = (a >> 32) | (b << 32);  // columns 1, 2
    const uint64_t y = (b >> 32) | (a << 32);  // columns 3, 0
    const uint64_t na = (a & m0) | (x & m1) | (b & m2) | (y & m3);
    const uint64_t nb = (b & m0) | (y & m1) | (a & m2) | (x & m3);
    a = na;
    b = nb;
}

// S-box on the 4 bytes of a key-schedule word (kept apart from the round
// function so that the latter's inlining is not disturbed).
uint64_t sub_word(uint64_t t) {
    sub_bytes_n<1>(&t);
    return t;
}

struct Schedule {
    uint64_t w[11][2];  // round keys as two little-endian 64-bit words each
};

void expand_key(const uint8_t key[16], Schedule& ks) {
    uint32_t w[44];
    for (int i = 0; i < 4; ++i)
        w[i] = uint32_t(key[4 * i]) | uint32_t(key[4 * i + 1]) << 8 |
               uint32_t(key[4 * i + 2]) << 16 | uint32_t(key[4 * i + 3]) << 24;
    uint32_t rcon = 1;
    for (int i = 4; i < 44; ++i) {
        uint32_t t = w[i - 1];
        if (i % 4 == 0) {  // public schedule position, not secret
            t = (t >> 8) | (t << 24);                          // RotWord
            t = uint32_t(sub_word(t));                         // SubWord (low 4 bytes)
            t ^= rcon;
            rcon = uint32_t(xtime8(rcon) & 0xff);
        }
        w[i] = w[i - 4] ^ t;
    }
    for (int r = 0; r < 11; ++r) {
        ks.w[r][0] = uint64_t(w[4 * r]) | uint64_t(w[4 * r + 1]) << 32;
        ks.w[r][1] = uint64_t(w[4 * r + 2]) | uint64_t(w[4 * r + 3]) << 32;
    }
    volatile uint32_t* vw = w;
    for (int i = 0; i < 44; ++i) vw[i] = 0;
}

// Blocks per batch. One block (two words in lock step) measured fastest on
// Zen 4; more blocks spill registers.
constexpr int kBlocks = 1;

// Encrypts kBlocks blocks in place; block j is words s[2j], s[2j+1].
void encrypt_blocks(const Schedule& ks, uint64_t s[2 * kBlocks]) {
    for (int j = 0; j < kBlocks; ++j) {
        s[2 * j] ^= ks.w[0][0];
        s[2 * j + 1] ^= ks.w[0][1];
    }
    for (int round = 1; round <= 10; ++round) {
        sub_bytes_n<2 * kBlocks>(s);
        for (int j = 0; j < kBlocks; ++j) shift_rows(s[2 * j], s[2 * j + 1]);
        if (round != 10)
            for (int i = 0; i < 2 * kBlocks; ++i) s[i] = mix_columns8(s[i]);
        for (int j = 0; j < kBlocks; ++j) {
            s[2 * j] ^= ks.w[round][0];
            s[2 * j + 1] ^= ks.w[round][1];
        }
    }
}

}  // namespace

void ctr_fill(const uint8_t key[16], uint64_t nonce, uint64_t counter, uint8_t* out,
              size_t nbytes) noexcept {
    if (nbytes == 0) return;
    Schedule ks;
    expand_key(key, ks);
    uint64_t st[2 * kBlocks];
    uint8_t bytes[16 * kBlocks];
    const uint64_t nonce_word = bswap64(nonce);  // little-endian view of nonce (big-endian)
    while (nbytes > 0) {
        // Blocks past the end of the request are computed and discarded; their
        // counter may wrap (unsigned, harmless) because they are never output.
        for (int j = 0; j < kBlocks; ++j) {
            st[2 * j] = nonce_word;
            st[2 * j + 1] = bswap64(counter + uint64_t(j));
        }
        encrypt_blocks(ks, st);
        for (int i = 0; i < 2 * kBlocks; ++i)
            for (int k = 0; k < 8; ++k) bytes[8 * i + k] = uint8_t(st[i] >> (8 * k));
        const size_t n = nbytes < sizeof bytes ? nbytes : sizeof bytes;
        std::memcpy(out, bytes, n);
        out += n;
        nbytes -= n;
        counter += kBlocks;
    }
    secure_wipe(st, sizeof st);
    secure_wipe(bytes, sizeof bytes);
    secure_wipe(&ks, sizeof ks);
}

void encrypt_block(const uint8_t key[16], const uint8_t in[16], uint8_t out[16]) noexcept {
    uint64_t nonce = 0, counter = 0;
    for (int k = 0; k < 8; ++k) {
        nonce = (nonce << 8) | in[k];
        counter = (counter << 8) | in[8 + k];
    }
    ctr_fill(key, nonce, counter, out, 16);
}

}  // namespace safelight::prg::scalar
