// Silent OT engine: the hot loops of Ferret-style correlated-OT extension from LPN.
//
// Blocks are 16 bytes as in ot.hpp. A GGM tree of depth h has 2^h leaves; its
// PRG is fixed-key AES, G(x) = (pi_L(x) ^ x, pi_R(x) ^ x), with the public keys
// kGgmLeft / kGgmRight: child 2i of node i is the left image, 2i + 1 the right.
//
// Single-point COT (sender with offset Delta, lsb(Delta) = 1; receiver with a
// secret leaf alpha): the sender expands a random root, clears every leaf's
// least significant bit (v), and per level l = 1..h gives the XOR of the
// level's left children and of its right children (sums). The receiver gets,
// per level, the XOR of the side its path does NOT take (through a COT), and
// rebuilds every leaf but alpha; psi = Delta ^ XOR(v) then gives it leaf alpha
// as v[alpha] ^ Delta. So w = v ^ e_alpha * Delta with lsb(w) = e_alpha.
//
// LPN with a local linear code: row r of the public n x k matrix has kLpnWeight
// ones at columns (word * k) >> 32, the first kLpnWeight 32-bit words of the
// AES-128-CTR keystream blocks 3r, 3r + 1, 3r + 2 under the public matrix seed
// (nonce 0). lpn_encode XORs those base blocks into out[r].
#pragma once
#include <cstddef>
#include <cstdint>

#include "safelight/isa.hpp"

namespace safelight::silent {

constexpr unsigned kMaxDepth = 24;
constexpr unsigned kLpnWeight = 10;       // ones per row of the local code
constexpr size_t kLpnBlocksPerRow = 3;    // keystream blocks per row (12 words, 10 used)

extern const uint8_t kGgmLeft[16];
extern const uint8_t kGgmRight[16];

struct Kernels {
    // Sender: for each of `trees` roots (16 bytes each) expand 2^depth leaves
    // into leaves + tree * 2^depth * 16 (least significant bits cleared),
    // write sums[tree][l][0/1] (depth x 2 blocks per tree: the XOR of the left
    // / right children at level l + 1) and psi[tree] = delta ^ XOR of the tree's
    // leaves. work: 2^(depth-1) blocks of scratch.
    void (*ggm_expand)(const uint8_t* roots, size_t trees, unsigned depth, const uint8_t delta[16],
                       uint8_t* leaves, uint8_t* sums, uint8_t* psi, uint8_t* work) noexcept;
    // Receiver: keys[tree][l] (depth blocks per tree) is the XOR of the children
    // at level l + 1 on the side its path does not take; alphas[tree] the
    // punctured leaf (its bit depth - 1 - l is the path's side at level l + 1).
    // Writes all leaves (lsb cleared), leaf alpha = psi ^ XOR of the others.
    void (*ggm_punctured)(const uint8_t* keys, const uint32_t* alphas, const uint8_t* psi, size_t trees,
                          unsigned depth, uint8_t* leaves, uint8_t* work) noexcept;
    // out[r - row_begin] ^= XOR of base[col] over row r's columns, for r in
    // [row_begin, row_begin + rows); base holds k blocks (k < 2^32).
    void (*lpn_encode)(const uint8_t* base, size_t k, const uint8_t seed[16], size_t row_begin, size_t rows,
                       uint8_t* out) noexcept;
};

namespace scalar { extern const Kernels table; }
namespace avx2 { extern const Kernels table; }
namespace avx512 { extern const Kernels table; }

const Kernels& kernels(Isa isa);

}  // namespace safelight::silent
