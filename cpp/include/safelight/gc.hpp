// Garbled-circuit engine: free-XOR + half-gates garbling and evaluation of one
// Boolean circuit over many independent instances (tensor elements) at once.
//
// Labels are 128-bit values stored as two little-endian uint64 words (lo, hi);
// label arrays are [wire][instance][2]. The garbler's global offset Delta has
// colour bit (bit 0 of lo) set, so the two labels of a wire have opposite
// colours (point-and-permute).
//
// Hash (Bellare-Hoang-Keelveedhi-Rogaway style, fixed-key AES):
//     H(x, T) = pi(2x ^ T) ^ 2x ^ T
// with pi = AES-128 under the public key kFixedKey (schedule expanded once),
// 2x = doubling in GF(2^128) mod x^128 + x^7 + x^2 + x + 1 on the 128-bit
// integer lo + 2^64 hi, and the tweak T = (lo: absolute instance index,
// hi: 2 * and_index + half), half 0 for the garbler half-gate and 1 for the
// evaluator half-gate. Tweaks depend only on the absolute instance index, so
// any split of the instances (chunks, threads, calls with instance_offset)
// produces the same bytes. Tweaks repeat across calls that reuse a Delta with
// overlapping instance ranges: use a fresh Delta per garbling, or disjoint
// ranges. (Security note: the margin of fixed-key hashes of this form shrinks
// with the number of hash calls an adversary sees, see Guo-Katz-Wang-Yu 2020
// on multi-instance attacks; their TMMO hash avoids that at twice the AES
// work per call.)
//
// AND gate k (half-gates, Zahur-Rosulek-Evans 2015), garbler with zero labels
// A, B, colours pa, pb:
//     TG = H(A, tg) ^ H(A ^ D, tg) ^ pb * D
//     TE = H(B, te) ^ H(B ^ D, te) ^ A
//     C  = H(A, tg) ^ pa * TG ^ H(B, te) ^ pb * (TE ^ A)
// table row (instance i) = [TG, TE]. Evaluator with labels A, B, colours sa, sb:
//     C  = H(A, tg) ^ sa * TG ^ H(B, te) ^ sb * (TE ^ A)
// XOR: C = A ^ B on both sides. INV: garbler C = A ^ D, evaluator C = A.
//
// Per-ISA kernels (gc_scalar.cpp, gc_avx2.cpp, gc_avx512.cpp) work on n
// contiguous instances of one gate; they never allocate, throw or start
// threads. make_plan validates the circuit; the drivers (gc_dispatch.cpp)
// trust the array shapes: the bindings check them first.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "safelight/isa.hpp"

namespace safelight::gc {

enum : int32_t { kOpXor = 0, kOpAnd = 1, kOpInv = 2 };

// The fixed public AES-128 key of the hash: the first 128 bits of the
// fractional part of pi (0x243F6A88 85A308D3 13198A2E 03707344), bytes in
// that order.
extern const uint8_t kFixedKey[16];

// AES-128 round keys, each as the two little-endian words of its 16 bytes.
struct RoundKeys {
    uint64_t w[11][2];
};

// The expanded kFixedKey (computed once, on first use).
const RoundKeys& fixed_round_keys();

// An operand of a kernel: per instance i, the label
//     mask ^ src[0][i] ^ ... ^ src[n-1][i]
// (labels [n][2] of the chunk). XOR and INV gates never run as passes of their
// own: the plan keeps each wire as such a combination of stored labels (the
// garbler's INV flips show up as mask = Delta) and the kernels fold it in.
constexpr int kMaxSources = 8;
struct Operand {
    const uint64_t* src[kMaxSources];
    uint32_t n;        // 0..kMaxSources
    uint64_t mask[2];  // XOR-ed into every label
};

struct Kernels {
    // n AND gates (one per instance) of AND index k for instances
    // [instance, instance + n): c is labels [n][2], table is [n][2][2].
    // stream_c: c is not read again soon (a path may use non-temporal stores;
    // the garbler's tables always may).
    void (*garble_and)(const RoundKeys& rk, const Operand& a, const Operand& b, uint64_t* c,
                       uint64_t* table, size_t n, uint64_t instance, uint64_t k,
                       const uint64_t delta[2], bool stream_c) noexcept;
    void (*evaluate_and)(const RoundKeys& rk, const Operand& a, const Operand& b, uint64_t* c,
                         const uint64_t* table, size_t n, uint64_t instance, uint64_t k,
                         bool stream_c) noexcept;
    // c = the operand's labels (c never overlaps its sources).
    void (*xor_labels)(const Operand& a, uint64_t* c, size_t n, bool stream_c) noexcept;
    // out[i] = H(x[i], T_i), T_i = (instance + i) + 2^64 * tweak_hi (for tests).
    void (*hash)(const RoundKeys& rk, const uint64_t* x, uint64_t* out, size_t n,
                 uint64_t instance, uint64_t tweak_hi) noexcept;
};

const Kernels& kernels(Isa isa);

namespace scalar {
extern const Kernels table;
// Portable AES-128 key expansion (also used once for the fixed key).
void expand_key(const uint8_t key[16], RoundKeys& rk) noexcept;
}  // namespace scalar
namespace avx2 { extern const Kernels table; }
namespace avx512 { extern const Kernels table; }

// A validated circuit turned into passes over stored labels. A storage
// reference r < n_inputs names input wire r (read in place from the input
// array); kOutputRef | j names row j of the output array; any other r names
// slot r - n_inputs of a per-chunk scratch table. Slots are reused once a
// label is dead, so the scratch holds only the live labels.
//
// Ops: kOpAnd (out = AND of operands a and b; tables row and_index) and
// kOpXor (out = operand a: materialises a long XOR combination, or writes an
// output row). An operand's `flip` becomes mask = Delta on the garbler side.
constexpr uint64_t kOutputRef = uint64_t(1) << 63;

struct PlanOperand {
    uint32_t n = 0;
    bool flip = false;
    uint64_t ref[kMaxSources] = {};
};

struct PlanOp {
    int32_t op;
    PlanOperand a, b;
    uint64_t out;
    uint64_t and_index;
    bool stream_out;  // out is an output row no later op reads
};

struct Plan {
    size_t n_inputs = 0, n_wires = 0, n_and = 0, n_outputs = 0, n_slots = 0;
    std::vector<PlanOp> ops;
    std::vector<uint64_t> input_rows;  // distinct input wires read, first use first
};

// Checks the circuit (ops 0..2, wires in range, every wire written once
// after the inputs, read only once written, outputs defined), folds the XOR
// and INV gates into operands and assigns storage. Throws
// std::invalid_argument naming the first problem.
Plan make_plan(const int32_t* gates, size_t n_gates, size_t n_wires, size_t n_inputs,
               const int32_t* outputs, size_t n_outputs);

// Garbler: input_zero [n_inputs][batch][2] -> tables [n_and][batch][2][2],
// output_zero [n_outputs][batch][2]. threads == 0 picks automatically.
void garble(const Plan& plan, const uint64_t* input_zero, size_t batch, const uint64_t delta[2],
            uint64_t instance_offset, uint64_t* tables, uint64_t* output_zero, unsigned threads);

// Evaluator: input_labels [n_inputs][batch][2], tables -> output labels.
void evaluate(const Plan& plan, const uint64_t* input_labels, size_t batch,
              const uint64_t* tables, uint64_t instance_offset, uint64_t* output_labels,
              unsigned threads);

// out[i] = zero[i] ^ (bits[i] & 1) * Delta for n labels ([n][2] words each):
// the labels of given bit values (constant time in the bits).
void encode_labels(const uint64_t* zero, const uint64_t delta[2], const uint8_t* bits,
                   uint64_t* out, size_t n);

// out[b * n + i] = bit b of values[i], b < bits (uint8 0/1 planes, little-endian bit order).
void bit_planes(const uint64_t* values, size_t n, unsigned bits, uint8_t* out);

// Instances per chunk and threads the drivers would use (for tests/benchmarks).
size_t chunk_size(const Plan& plan, size_t batch);
unsigned thread_count(const Plan& plan, size_t batch, unsigned requested);

}  // namespace safelight::gc
