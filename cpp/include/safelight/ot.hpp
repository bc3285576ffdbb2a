// Oblivious-transfer engine: the hot loops of IKNP correlated-OT extension.
//
// Conventions (shared by every tier and by the Python layer):
//  * A 128-bit block is 16 bytes in memory; read as two little-endian uint64
//    words (lo, hi), bit i of the block is bit i%8 of byte i/8. The least
//    significant bit of a label is bit 0 of byte 0.
//  * A bit matrix of 128 rows x ncols columns (ncols a multiple of 128) is
//    row-major: row i is ncols/8 bytes at in + i*stride, and column j of a row
//    is bit j%8 of byte j/8. Its transpose is ncols blocks of 16 bytes: bit i of
//    block j is element (i, j).
//  * Row i of the base-seed expansion G(k_i) is the AES-128-CTR keystream of
//    key k_i (nonce 0), byte for byte the stream of prg::ctr_fill: columns
//    [c, c+128) of the whole stream are keystream block c/128. A chunk of an
//    extension starts at block `counter`. The scalar tier calls
//    prg::scalar::ctr_fill; the avx2/avx512 tiers run the same AES-CTR inline
//    (key schedules expanded once per call, 16 blocks per row per tile) so the
//    expansion is fused with the transpose and never leaves the cache.
//
// The IKNP extension (receiver with choice bits c, sender with offset Delta,
// whose bits are the sender's base-OT choices):
//    receiver:  t_i = G(k0_i),  u_i = G(k0_i) ^ G(k1_i) ^ c   (rows i < 128)
//    sender:    q_i = G(k_{Delta_i, i}) ^ Delta_i * u_i
// and after transposition block j satisfies  t_j = q_j ^ c_j * Delta.
#pragma once
#include <cstddef>
#include <cstdint>

#include "safelight/isa.hpp"

namespace safelight::ot {

constexpr size_t kBaseOts = 128;     // security parameter: rows of the extension matrix
constexpr size_t kSeedBytes = 16;    // one base-OT seed (AES-128 key)
constexpr size_t kColumnGrain = 128; // ncols of every chunk is a multiple of this
constexpr size_t kTileCols = 2048;   // columns per cache-resident tile of the fused kernels
constexpr size_t kTileStride = kTileCols / 8 + 64;  // bytes between tile rows (not a power of two)
// Scratch of one receiver_cols/sender_cols call (64-byte aligned): 256 AES key
// schedules and one 128 x kTileCols bit tile. Holds secrets: wiped on return.
constexpr size_t kWorkBytes = 256 * 11 * 16 + 128 * kTileStride;

// One table of kernels per instruction set. Kernels never allocate, never
// throw, and touch nothing outside the ranges they are given.
struct Kernels {
    // out = transpose of the 128 x ncols bit matrix `in` (row stride `stride`
    // bytes), columns [col_begin, col_end) only (multiples of 128), and of those
    // only the blocks j < nout are written (block j at out + 16*j). (avx512: a
    // 64-byte aligned out is written with streaming stores, fenced on return.)
    void (*transpose)(const uint8_t* in, size_t stride, size_t col_begin, size_t col_end,
                      uint8_t* out, size_t nout) noexcept;
    // IKNP receiver, columns [col_begin, col_end) (multiples of 128) of a chunk
    // of ncols columns whose first column is PRG block `counter`. k0, k1: the
    // 128 seed pairs (128 x 16 bytes each); choice: the chunk's packed choice
    // bits (ncols/8 bytes). Writes those columns of u (row i at u + i*ncols/8)
    // and the blocks j < nout of t = transpose(G(k0)) (block j at t + 16*j).
    // `work`: kWorkBytes of 64-byte aligned scratch.
    void (*receiver_cols)(const uint8_t* k0, const uint8_t* k1, uint64_t counter, const uint8_t* choice,
                          size_t ncols, uint8_t* u, uint8_t* t, size_t nout, size_t col_begin,
                          size_t col_end, uint8_t* work) noexcept;
    // IKNP sender, same column range: q = transpose(G(ks) ^ Delta_i * u_i),
    // branch-free in the secret bits of delta (16 bytes).
    void (*sender_cols)(const uint8_t* ks, const uint8_t delta[16], uint64_t counter, const uint8_t* u,
                        size_t ncols, uint8_t* q, size_t nout, size_t col_begin, size_t col_end,
                        uint8_t* work) noexcept;
    // Tweakable correlation-robust hash, H(x, w) = pi(pi(x) ^ w) ^ pi(x) with pi
    // the fixed-key AES-128 permutation (key kFixedKey) and tweak block
    // w = (tweak + j, domain) for element j. Writes out0[j] = H(in[j], w_j) and,
    // when delta is non-null, out1[j] = H(in[j] ^ delta, w_j).
    void (*tccr)(const uint8_t* in, uint8_t* out0, uint8_t* out1, const uint8_t* delta, size_t n,
                 uint64_t tweak, uint64_t domain) noexcept;
    // out[j] = q[j] ^ (choice[j] & 1) * delta, branch-free.
    void (*correlate)(const uint8_t* q, const uint8_t* choice, const uint8_t delta[16], uint8_t* out,
                      size_t n) noexcept;
};

// Public, fixed AES key of the correlation-robust hash (a "nothing up my
// sleeve" constant: the first 16 bytes of SHA-256("safelight ot tccr v1")).
extern const uint8_t kFixedKey[16];

const Kernels& kernels(Isa isa);

namespace scalar { extern const Kernels table; }
namespace avx2 { extern const Kernels table; }
namespace avx512 {
extern const Kernels table;
// The avx512 tier transposes with GFNI + AVX512-VBMI when the CPU has them,
// else with vpmovb2m. force_movemask: 1 forces vpmovb2m, 0 restores the
// automatic choice, -1 leaves it. Returns the variant now in use.
const char* transpose_impl(int force_movemask);
}  // namespace avx512

}  // namespace safelight::ot

namespace safelight::ot {

// The sender's tables of the millionaires' leaf OTs (1-out-of-16 from 4 random OTs, see
// safelight/protocols/ot_compare.py). Digit j: r0, r1 + 64 j hold the random-OT strings
// of its 4 OTs (most significant bit first), flips + 4 j the receiver's corrections,
// a[j] the sender's digit, lt[j] / eq[j] its random output shares. Entry v's key is the
// XOR over i of r_{bit_i(v) ^ flip_i}[i], its pad the low 2 bits of
// H(key, (tweak + j, domain)); out[j] packs the 16 entries (2 bits each, entry v at bit 2v):
// ([a < v] ^ lt, [a == v] ^ eq) ^ pad. The hash runs on `kernels`' tccr.
void millionaire_tables(const Kernels& kernels, const uint8_t* r0, const uint8_t* r1, const uint8_t* flips,
                        const uint8_t* a, const uint8_t* lt, const uint8_t* eq, size_t m, uint64_t tweak,
                        uint64_t domain, uint32_t* out) noexcept;

}  // namespace safelight::ot
