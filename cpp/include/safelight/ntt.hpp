// NTT engine: negacyclic number-theoretic transform over word-size primes,
// the polynomial-multiplication core of lattice HE (R_q = Z_q[X] / (X^N + 1)).
//
// Definitions. N = 2^L (16 <= N <= 2^17), q an "NTT prime": prime, q < 2^62
// and q = 1 (mod 2N), so Z_q has primitive 2N-th roots of unity. psi is the
// smallest one (deterministic, as in SEAL). With br(j) the L-bit reversal of j:
//
//     forward:  A[j] = sum_i a[i] * psi^((2 br(j) + 1) i)  (mod q)
//
// i.e. natural order in, bit-reversed order out: A[j] is a(X) evaluated at the
// root psi^(2 br(j) + 1). The inverse takes that order back to the
// coefficients, N^-1 scaling included, so inverse(forward(a)) == a, and
// forward(a) * forward(b) (pointwise) == forward(a * b mod X^N + 1).
// Inputs and outputs are fully reduced, in [0, q).
//
// Algorithm (Harvey, "Faster arithmetic for number-theoretic transforms",
// 2014): forward is Cooley-Tukey decimation in time, stage m = 1, 2, ..., N/2
// with m groups of butterflies of half-width t = N / (2m), group i using
// W = psi^br(m + i):
//     X' = X + W Y,  Y' = X - W Y
// inverse is Gentleman-Sande, stage m = N/2, ..., 1, with W = psi^-br(m + i):
//     X' = X + Y,    Y' = W (X - Y)
// and the factor N^-1 folded into the last stage. Products by a twiddle use
// Shoup's precomputed companion W' = floor(W 2^64 / q) (or 2^52 for IFMA):
// Q = floor(W' Y / 2^64), W Y - Q q lies in [0, 2q) for any Y < 2^64. Values
// stay lazily reduced between stages, forward in [0, 4q) and inverse in
// [0, 2q) (so q < 2^62 keeps 4q in a word), with one final correction fused
// into the last stage. No branch or table index depends on the data.
//
// Paths: scalar (portable, unsigned __int128), AVX2 (4 x 64-bit lanes, every
// product from 32x32 multiplies), AVX-512 (8 x 64-bit lanes, low products
// with vpmullq; for q < 2^61 a cheaper quotient estimate with values kept
// below 8q, see ntt_avx512_impl.hpp), and AVX-512 IFMA (52-bit
// vpmadd52{lo,hi}uq) for q < 2^50 on CPUs with avx512ifma. Every path
// produces identical, fully reduced outputs.
//
// The per-ISA kernels transform one row (one prime) from `in` to `out`
// (in == out allowed); they never allocate, throw or start threads. The
// tables come from ntt::tables(n, q) (ntt_dispatch.cpp), which validates the
// prime and caches the tables per (n, q).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "safelight/isa.hpp"

namespace safelight::ntt {

constexpr unsigned kMinLogN = 4;
constexpr unsigned kMaxLogN = 17;
constexpr unsigned kMaxModulusBits = 62;   // q < 2^62
constexpr unsigned kMaxIfmaModulusBits = 50;  // IFMA path: q < 2^50

// Precomputed twiddles of one (n, q). Plain data: no inline code is shared
// between translation units compiled for different instruction sets.
//
// Forward twiddles are indexed by k = m + i (stage m, group i), so the
// kernels read one contiguous run per stage: w[k] = psi^br(k), k in [1, n).
// Inverse twiddles likewise: iw[k] = psi^-br(k). *_shoup are the 64-bit
// Shoup companions floor(w 2^64 / q); *_shoup52 the 52-bit ones
// floor(w 2^52 / q), filled only when q < 2^50 (else null).
struct Tables {
    uint64_t q = 0;
    size_t n = 0;
    unsigned log_n = 0;
    uint64_t psi = 0;  // the primitive 2n-th root of unity used
    const uint64_t* w = nullptr;
    const uint64_t* w_shoup = nullptr;
    const uint64_t* w_shoup52 = nullptr;
    const uint64_t* iw = nullptr;
    const uint64_t* iw_shoup = nullptr;
    const uint64_t* iw_shoup52 = nullptr;
    // Last inverse stage: X' = n^-1 (X + Y), Y' = (n^-1 psi^-br(1)) (X - Y).
    uint64_t n_inv = 0, n_inv_shoup = 0, n_inv_shoup52 = 0;
    uint64_t last_w = 0, last_w_shoup = 0, last_w_shoup52 = 0;
    // Barrett constant for pointwise products: floor(2^(2b) / q), b = bit length of q.
    uint64_t barrett = 0;
    unsigned q_bits = 0;
    std::vector<uint64_t> storage;  // owns the arrays above (64-byte aligned runs)
};

struct Kernels {
    // out = forward(in) / inverse(in) for one row of t.n values in [0, q).
    void (*forward)(const uint64_t* in, uint64_t* out, const Tables& t) noexcept;
    void (*inverse)(const uint64_t* in, uint64_t* out, const Tables& t) noexcept;
    // True when every a[i] < bound (a branch-free scan, for input validation).
    bool (*all_below)(const uint64_t* a, size_t n, uint64_t bound) noexcept;
};

namespace scalar { extern const Kernels table; }
namespace avx2 { extern const Kernels table; }
namespace avx512 { extern const Kernels table; }
namespace avx512ifma { extern const Kernels table; }

// Whether this CPU has AVX-512 IFMA (and the AVX-512 path's other features).
bool cpu_has_ifma();
// Whether SAFELIGHT_NTT_IFMA allows the IFMA path ("0" disables it), read once.
bool ifma_enabled_by_env();

enum class Path { scalar, avx2, avx512, avx512ifma };
const char* path_name(Path p);
// The path a call with the given ISA uses for modulus q: IFMA when the ISA is
// avx512, the CPU has IFMA, `allow_ifma` and the environment allow it, and q < 2^50.
Path choose_path(Isa isa, uint64_t q, bool allow_ifma);
const Kernels& kernels(Path p);

// Why q is not an NTT prime for n (empty string when it is).
std::string ntt_prime_problem(size_t n, uint64_t q);
// Deterministic Miller-Rabin for 64-bit integers.
bool is_prime(uint64_t q);

// The tables of (n, q), built on first use and cached (thread-safe). Throws
// std::invalid_argument when n is not a power of two in range or q is not an
// NTT prime for n.
std::shared_ptr<const Tables> tables(size_t n, uint64_t q);

// out[i] = a[i] * b[i] mod q for one row (inputs in [0, q)), Barrett reduction.
void pointwise_mul(const uint64_t* a, const uint64_t* b, uint64_t* out, const Tables& t) noexcept;

}  // namespace safelight::ntt
