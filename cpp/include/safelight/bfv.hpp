// BFV homomorphic encryption in RNS form (Brakerski 2012, Fan-Vercauteren 2012),
// over R = Z[X] / (X^n + 1), n a power of two.
//
// Moduli. The ciphertext modulus q = q_0 q_1 ... q_{L-1} is a product of
// distinct NTT primes (q_i = 1 mod 2n, q_i < 2^62); every polynomial mod q is
// held as its L residue polynomials ("limbs", one row of n words per prime,
// never a big integer). Key switching adds K special primes P = p_0 ... p_{K-1}
// (milestone 2). The plaintext modulus t is either a power of two 2^k,
// 1 <= k <= 64 (coefficient encoding; t = 2^64 is Z_2^64 itself, stored as
// t_bits = 64), or a prime t = 1 mod 2n below 2^60 (batch / SIMD encoding).
//
// Levels. A ciphertext at level l uses the first L - l primes; mod switching
// (divide and round by the last prime) moves it one level down. Keys live at
// level 0 (over q, and over q P for key-switching keys) and are used at lower
// levels through their first rows (a residue mod q_i is valid for every
// sub-product of q that contains q_i).
//
// Encryption of m in R_t (secret key s, uniform ternary):
//     c1 = a (uniform in R_q),  c0 = -(a s) + e + D(m)   (mod q)
// with the exact scaling D(m) = round(q m / t) coefficient-wise, computed as
//     D(m) = floor(q / t) m + round((q mod t) m / t)
// (floor(q/t) mod q_i = -(q mod t) t^-1 mod q_i, so no big integer is needed).
// With the cruder D(m) = floor(q/t) m, a product by a plaintext p would add
// (q mod t) m p / t ~ (q mod t) |p| of noise, which for t = 2^64 is as large
// as q itself; with the exact rounding it adds only the rounding error |p|/2.
// Public-key encryption: c0 = pk0 u + e0 + D(m), c1 = pk1 u + e1, with
// u ternary and pk = (-(a s + e), a).
//
// Decryption: x = c0 + c1 s (+ c2 s^2) mod q, then m = round(t x / q) mod t,
// exactly, in RNS. With y_i = x_i (q/q_i)^-1 mod q_i, x = sum_i y_i (q/q_i) - k q
// for an integer k, so
//     t x / q = sum_i y_i t / q_i   (mod t).
// Each t / q_i is precomputed as an integer part floor(t/q_i) and a 128-bit
// binary fraction; y_i t / q_i then splits into an integer (accumulated mod t,
// wrapping for t = 2^64) and a 64-bit fraction. The fractions are summed
// (error below L 2^-63) and rounded. The centred sum of fractions is v / q
// where v = t x mod q (centred) is the invariant noise: decryption is correct
// while |v| / q < 1/2 for every coefficient.
//
// Noise budget (as in SEAL): floor(log2(q) - log2(||v||_inf) - 1) bits, from
// an exact CRT composition of v (Garner's mixed-radix digits, compared and
// centred digit-wise, the magnitude taken in floating point from the top).
// It reaches 0 when ||v|| > q/4. Decryption with checking refuses ciphertexts
// whose budget is 0 (||v|| > q/4 from the fractions above): at that point the
// result may still be right, but it is no longer guaranteed by a margin, and
// a ciphertext whose noise has wrapped past q/2 decrypts to garbage that
// looks like any other value. Refusing at q/4 turns that silent failure into
// an error with overwhelming probability (exhausted noise is near-uniform).
//
// Errors: centred binomial distribution with eta = 21 (e = popcount(a) -
// popcount(b) for two 21-bit uniform words), standard deviation sqrt(10.5) =
// 3.24, |e| <= 21; the distribution SEAL uses by default for its sigma = 3.2
// error. Ternary values: floor(3 r / 2^64) - 1 for a uniform 64-bit r
// (statistical distance 2^-64 from uniform). Uniform residues mod q_i:
// floor(r q_i / 2^128) for a uniform 128-bit r (distance < 2^-66). All
// randomness is AES-128-CTR keystream (safelight::prg) from 16-byte seeds:
// the caller supplies fresh seeds (the Python layer uses os.urandom) or fixed
// ones for reproducible tests. No branch or table index depends on secrets.
//
// Ciphertext multiplication (milestone 2) follows Halevi, Polyakov and Shoup,
// "An Improved RNS Variant of the BFV Homomorphic Encryption Scheme" (2019),
// with integer-only corrections instead of floating point:
//   1. each input polynomial (mod Q = q_0 ... q_{k-1}) is lifted exactly to an
//      auxiliary base P = p_0 ... p_{A-1} (the centred representative, see
//      BaseConverter), so it is known mod Q P;
//   2. the tensor product d = (a0 b0, a0 b1 + a1 b0, a1 b1) is taken in the NTT
//      domain over Q P (exact: |d| < n Q^2 / 2 < Q P / 2);
//   3. y = round(t d / Q) is computed mod each p_j straight from the residues:
//      with x_i' = [d_i (Q P / q_i)^-1]_{q_i} and t P / q_i = w_i + th_i
//      (integer + fraction),
//          y = sum_i x_i' w_i + round(sum_i x_i' th_i) + d_{p_j} [t Q^-1]_{p_j}   (mod p_j)
//      (the fractions as 64-bit fixed point; the rounding may be off by one,
//      which only adds a unit of noise);
//   4. y (|y| < t n Q / 2 < P / 2) is converted exactly back to base Q.
// P is chosen with log2 P >= log2 Q + log2 t + log2 n + 3; its primes carry
// no key material, so they do not count towards the security bound.
//
// Key switching (relinearisation, Galois automorphisms) is the hybrid RNS
// variant with one digit per prime of Q and the special primes P_s (as in
// SEAL): a key from s' to s is, for each digit i,
//     (b_i, a_i) = (-(a_i s + e_i) + P_s g_i s', a_i)   mod Q P_s,
// g_i = (Q/q_i) [(Q/q_i)^-1]_{q_i} (1 mod q_i, 0 mod the other q_j). For c
// decrypting under s', sum_i [c]_{q_i} (b_i, a_i) decrypts to P_s c s' + small
// noise; dividing by P_s (exactly: subtract the centred residue mod P_s, then
// multiply by P_s^-1) gives a pair decrypting to c s' under s, with noise
// ~ sum_i q_i |e_i| / P_s. Relinearisation uses s' = s^2, the Galois
// automorphism X -> X^g uses s' = s(X^g).
//
// Batch encoding (t prime, t = 1 mod 2n): n slots seen as a 2 x n/2 matrix,
// slot (r, j) the evaluation at zeta^(+-3^j), so that X -> X^(3^k) rotates
// both rows by k and X -> X^(2n-1) swaps them (SEAL's layout).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "safelight/ntt.hpp"

namespace safelight::bfv {

constexpr size_t kMinN = 1024;
constexpr size_t kMaxN = 32768;
constexpr unsigned kMaxPrimeBits = 61;        // q_i < 2^61 (lazy sums and Barrett bounds)
constexpr unsigned kMaxPrimeTBits = 60;       // prime plaintext modulus t < 2^60
constexpr size_t kMaxPrimes = 32;             // limbs of q P together
constexpr unsigned kMaxFloodBits = 1024;

// HomomorphicEncryption.org standard (2018), classical 128-bit security,
// uniform ternary secret: the largest log2(q P) for each n.
int max_modulus_bits_128(size_t n);

// A word-size modulus with the constants the kernels need. Plain data.
struct Modulus {
    uint64_t value = 0;
    unsigned bits = 0;
    // floor(2^128 / q) as two words: Barrett reduction of 128-bit values.
    uint64_t ratio_hi = 0, ratio_lo = 0;
    // How many products (< q^2) a 128-bit accumulator that starts below q
    // can take without overflow (at least 16 for q < 2^61).
    unsigned lazy_terms = 0;
    // Montgomery: -q^-1 mod 2^64 (REDC of 128-bit sums whose high word is < q),
    // and 2^128 mod q (a second REDC by it undoes the first one's 2^-64).
    uint64_t mont_neg_inv = 0;
    uint64_t r128 = 0;
    // IFMA dot product (q < 2^50 only): r52 = 2^52 mod q and the 52-bit Shoup
    // companions of r52 and of 1 (floor(w 2^52 / q)).
    uint64_t r52 = 0, r52_shoup52 = 0, one_shoup52 = 0;

    static Modulus make(uint64_t q);
};

// One instruction-set path of the hot BFV kernels. Per-ISA translation units
// fill these tables; every path computes identical, fully reduced outputs.
struct Kernels {
    // Plaintext-matrix times ciphertext-vector, one limb:
    //   out0[x] = sum_{r < m} ct[r*ct_stride + x]          * pt[r*pt_stride + x]  (mod q)
    //   out1[x] = sum_{r < m} ct[r*ct_stride + c1_off + x] * pt[r*pt_stride + x]  (mod q)
    // for x < n; inputs in [0, q); products accumulated lazily (reduced once
    // per q.lazy_terms terms). Never allocates or throws.
    void (*dot2)(const uint64_t* ct, size_t ct_stride, size_t c1_off, const uint64_t* pt,
                 size_t pt_stride, size_t m, uint64_t* out0, uint64_t* out1, size_t n,
                 const Modulus& q) noexcept;
};

namespace scalar { extern const Kernels table; }
namespace avx512 { extern const Kernels table; }
namespace avx512ifma { extern const Kernels table; }

enum class DotPath { scalar, avx512, avx512ifma };
const char* dot_path_name(DotPath p);
// The path dot_plain uses for modulus q under the active ISA (IFMA for q <
// 2^50 where the CPU has it and SAFELIGHT_NTT_IFMA does not forbid it).
DotPath choose_dot_path(Isa isa, const Modulus& q);
const Kernels& dot_kernels(DotPath p);

struct Params {
    size_t n = 0;
    std::vector<uint64_t> q;        // ciphertext primes, level 0 first
    std::vector<uint64_t> special;  // key-switching primes (may be empty)
    // Plaintext modulus: t = 2^t_bits when t_pow2 (1..64), else the prime t.
    bool t_pow2 = true;
    unsigned t_bits = 64;
    uint64_t t = 0;
};

// Why the parameters are unusable (empty when they are fine); security is
// checked separately (the caller may allow insecure parameters for tests).
std::string params_problem(const Params& p);
// log2(q P), fractional.
double modulus_log2(const Params& p);

// Precomputed constants of one level (the first k primes of q).
struct LevelData {
    size_t k = 0;
    double log2_q = 0;
    // Encryption scaling: floor(q/t) mod q_i, and q mod t.
    std::vector<uint64_t> delta_floor;
    uint64_t q_mod_t = 0;
    // Decryption: (q/q_i)^-1 mod q_i with Shoup companions; t / q_i as
    // integer part floor(t / q_i) (mod t) and 128-bit fraction (hi, lo).
    std::vector<uint64_t> qhat_inv, qhat_inv_shoup;
    std::vector<uint64_t> t_int, t_frac_hi, t_frac_lo;
    // Garner (mixed radix): inv[i * k + j] = q_j^-1 mod q_i for j < i; the
    // digits of (q - 1) / 2.
    std::vector<uint64_t> garner_inv;
    std::vector<uint64_t> half_digits;
    // Mod switching to the next level (k > 1): q_last^-1 mod q_i (+ Shoup),
    // floor(q_last / 2) mod q_i.
    std::vector<uint64_t> last_inv, last_inv_shoup, last_half;
};

// Exact conversion of a polynomial known mod A = a_0 ... a_{r-1} to the
// centred representative mod each b_j (|x| < A/2; values within r 2^-60 A
// of +-A/2 may land on the other side, a negligible event for ciphertexts):
//     y_i = [x_i (A/a_i)^-1]_{a_i},   v = round(sum_i y_i / a_i),
//     [x]_{b_j} = sum_i y_i [A/a_i]_{b_j} - v [A]_{b_j},
// with y_i / a_i as a 64-bit binary fraction (y_i floor(2^128 / a_i) / 2^64).
struct BaseConverter {
    std::vector<size_t> from, to;  // indices into the context's moduli
    std::vector<Modulus> from_mod, to_mod;
    std::vector<uint64_t> ahat_inv, ahat_inv_shoup;  // (A/a_i)^-1 mod a_i
    // [A/a_i 2^64]_{b_j} at j * r + i and [-A 2^64]_{b_j}: Montgomery form, so
    // that one REDC reduces the sum and removes the 2^64.
    std::vector<uint64_t> ahat_mod;
    std::vector<uint64_t> neg_a_mod;
};

// Multiplication constants of one level (k primes of Q, the auxiliary base P).
struct MulLevel {
    BaseConverter q_to_p, p_to_q, s_to_q;  // s_to_q: special primes -> Q (mod down)
    std::vector<uint64_t> x_inv, x_inv_shoup;  // (Q P / q_i)^-1 2^64 mod q_i (2^64: see tensor)
    std::vector<uint64_t> theta;               // frac(t P / q_i) 2^64
    std::vector<uint64_t> omega;               // [floor(t P / q_i) 2^64]_{p_j} at j * k + i
    std::vector<uint64_t> t_q_inv;             // [t Q^-1 2^128]_{p_j}
    std::vector<uint64_t> one_mont, two128_mont;  // [2^64]_{p_j}, [2^128]_{p_j}
    std::vector<uint64_t> ps_inv, ps_inv_shoup;  // P_s^-1 mod q_i
    std::vector<uint64_t> ps_mod_q;              // [P_s]_{q_i}
    std::vector<Modulus> q_mod, p_mod;           // the k primes of Q, the A of P
};

// Plain-data views of the constants above for the per-ISA kernels (no
// std::vector code is shared between translation units built for different
// instruction sets).
struct ConvView {
    size_t r = 0, b = 0;  // primes in the source and target bases
    const Modulus* from = nullptr;
    const Modulus* to = nullptr;
    const uint64_t* ahat_inv = nullptr;
    const uint64_t* ahat_inv_shoup = nullptr;
    const uint64_t* ahat_mod = nullptr;   // b x r
    const uint64_t* neg_a_mod = nullptr;  // b
};
struct ScaleView {
    size_t k = 0, a = 0;  // primes of Q and of the auxiliary base P
    const Modulus* q = nullptr;
    const Modulus* p = nullptr;
    const uint64_t* x_inv = nullptr;
    const uint64_t* x_inv_shoup = nullptr;
    const uint64_t* theta = nullptr;
    const uint64_t* omega = nullptr;  // a x k
    const uint64_t* t_q_inv = nullptr;
    const uint64_t* one_mont = nullptr;
    const uint64_t* two128_mont = nullptr;
    ConvView p_to_q;  // P -> Q, fed with the y_j' the scaling produces
};

// Per-ISA kernels of the RNS conversions in ciphertext multiplication and key
// switching (scalar reference and AVX-512; identical outputs).
struct ConvKernels {
    // out (b rows) = the centred lift of in (r rows), n coefficients.
    void (*convert)(const uint64_t* in, uint64_t* out, size_t n, const ConvView& c) noexcept;
    // d (k + a rows, coefficient form, the tensor product mod Q P) -> out (k
    // rows) = round(t d / Q) mod Q: the HPS scaling into P fused with the
    // conversion back to Q.
    void (*scale_convert)(const uint64_t* d, uint64_t* out, size_t n, const ScaleView& s) noexcept;
    // Tensor product of one row (NTT domain) in Montgomery form, in place:
    //   a0 <- a0 b0 2^-64,  a1 <- (a0 b1 + a1 b0) 2^-64,  d2 <- a1 b1 2^-64  (mod q)
    // or, with b0 = b1 = nullptr, the square (a0^2, 2 a0 a1, a1^2) 2^-64. The
    // 2^-64 is folded into the scaling constants (x_inv, t_q_inv).
    void (*tensor)(uint64_t* a0, uint64_t* a1, const uint64_t* b0, const uint64_t* b1, uint64_t* d2, size_t n,
                   const Modulus& q) noexcept;
};
namespace scalar { extern const ConvKernels conv_table; }
namespace avx512 { extern const ConvKernels conv_table; }
const ConvKernels& conv_kernels(Isa isa);

// A BFV context: parameters, NTT tables and every precomputed constant.
// Immutable after construction; every method is thread-safe. Array
// arguments are raw, C-contiguous uint64 buffers whose layout is given per
// method; sizes are validated by the caller (the Python binding).
//
// Layouts. A polynomial at level l is k = L - l rows of n residues. A
// ciphertext is `size` (2, or 3 after a product) polynomials; a batch of
// `count` ciphertexts is (count, size, k, n). "ntt" says whether the rows
// are in the NTT domain (bit-reversed evaluation order, see ntt.hpp) or hold
// coefficients. Keys: the secret key is (L + K, n) in NTT form (q rows, then
// P rows); the public key is (2, L, n) in NTT form.
class Context {
public:
    explicit Context(const Params& p);  // throws std::invalid_argument

    const Params& params() const { return params_; }
    size_t n() const { return params_.n; }
    size_t num_q() const { return L_; }
    size_t num_special() const { return K_; }
    size_t primes_at(size_t level) const { return L_ - level; }
    const Modulus& modulus(size_t i) const { return mod_[i]; }
    const LevelData& level(size_t l) const { return levels_[l]; }
    const ntt::Tables& ntt_tables(size_t i) const { return *ntt_[i]; }
    // t mod q_i (every prime: q, special, auxiliary).
    uint64_t t_mod(size_t i) const { return t_mod_q_[i]; }

    // ---- keys -------------------------------------------------------------
    // sk: (L + K, n), the ternary secret in NTT form over q and P.
    void keygen_secret(const uint8_t seed[16], uint64_t* sk) const;
    // pk: (2, L, n) NTT form; pk1 = a expanded from `seed` (uniform_ntt(seed)),
    // pk0 = -(a s + e) with e from `error_seed`.
    void keygen_public(const uint64_t* sk, const uint8_t seed[16], const uint8_t error_seed[16],
                       uint64_t* pk) const;

    // Uniform polynomial over the first k primes (rows of n), taken to be in
    // NTT form, from a 16-byte seed: row i uses AES-CTR nonce `nonce_base + i`.
    void uniform_rows(const uint8_t seed[16], uint64_t nonce_base, size_t k, uint64_t* out) const;

    // ---- encryption (level 0) ---------------------------------------------
    // values: (count, n) plaintext coefficients in [0, t) (t = 2^64: any word).
    // out: (count, 2, L, n). Secret-key encryption: c1 of ciphertext j is
    // uniform_rows(seed_j, 0, L) in NTT form, where the seeds_j (count, 16) are
    // derived from `seed` and written to `seeds_out`; errors come from `seed`.
    void encrypt_sk(const uint64_t* values, size_t count, const uint64_t* sk, const uint8_t seed[16],
                    bool ntt_out, uint8_t* seeds_out, uint64_t* out) const;
    void encrypt_pk(const uint64_t* values, size_t count, const uint64_t* pk, const uint8_t seed[16],
                    bool ntt_out, uint64_t* out) const;
    // c1 (count, k rows) of seeded ciphertexts from their seeds, written at
    // `out + j * stride` for ciphertext j (coefficient form unless ntt).
    void expand_seeded_c1(const uint8_t* seeds, size_t count, size_t k, bool ntt, uint64_t* out,
                          size_t stride) const;

    // ---- decryption --------------------------------------------------------
    // ct: (count, size, k, n) at `level`. out: (count, n) in [0, t). For each
    // ciphertext, worst[j] = max_x |v_x| / q in units of 2^-64 (v the
    // invariant noise; decryption is guaranteed while it is below 2^63 and
    // the budget is positive while below 2^62), computed from the fractions.
    void decrypt(const uint64_t* ct, size_t count, size_t size, size_t level, bool ntt,
                 const uint64_t* sk, uint64_t* out, uint64_t* worst) const;
    // The phase x = c0 + c1 s (+ c2 s^2) mod q of each ciphertext, coefficient
    // form, out (count, k, n): x = D(m) + e, for noise inspection in tests.
    void phase(const uint64_t* ct, size_t count, size_t size, size_t level, bool ntt, const uint64_t* sk,
               uint64_t* out) const;
    // budget[j] = floor(log2 q - log2 ||v||_inf - 1), at least 0.
    void noise_budget(const uint64_t* ct, size_t count, size_t size, size_t level, bool ntt,
                      const uint64_t* sk, int64_t* budget) const;

    // ---- arithmetic ----------------------------------------------------------
    // Row-wise mod-q arithmetic on `polys` polynomials of k rows:
    // out = a + b, a - b, -a (in place allowed).
    void add(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t polys, size_t k) const;
    void sub(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t polys, size_t k) const;
    void negate(const uint64_t* a, uint64_t* out, size_t polys, size_t k) const;
    // Forward / inverse NTT of `polys` polynomials of k rows, in place.
    void to_ntt(uint64_t* a, size_t polys, size_t k) const;
    void from_ntt(uint64_t* a, size_t polys, size_t k) const;
    // out (polys, k, n) = D(values) = round(q_level m / t), values (polys, n).
    void scale_plain(const uint64_t* values, size_t polys, size_t level, uint64_t* out) const;
    // out (polys, k, n) = the centred lift of values (polys, n): m in (-t/2, t/2]
    // taken mod each q_i (coefficient form).
    void lift_plain(const uint64_t* values, size_t polys, size_t k, uint64_t* out) const;
    // ct (count, size, k, n) NTT form times pt (count or 1, k, n) NTT form,
    // pointwise per polynomial: out = ct * pt (in place allowed).
    void multiply_plain_ntt(const uint64_t* ct, size_t count, size_t size, size_t k,
                            const uint64_t* pt, bool broadcast, uint64_t* out) const;
    // out (kk, 2, k, n) = sum_r ct[r] * pt[j, r]: ct (m, 2, k, n), pt (kk, m, k, n),
    // all NTT form. Threads over (j, limb) when `threads` allows.
    void dot_plain(const uint64_t* ct, size_t m, const uint64_t* pt, size_t kk, size_t k,
                   uint64_t* out, bool threads) const;
    // Adds to each ciphertext (count, 2, k, n) a fresh public-key encryption of
    // zero, and to c0 a uniform integer in [-2^flood_bits, 2^flood_bits)
    // (flood_bits = 0: none), randomness from `seed`. In place.
    void rerandomize(uint64_t* ct, size_t count, size_t level, bool ntt, const uint64_t* pk,
                     const uint8_t seed[16], unsigned flood_bits) const;
    // in (count, size, k, n) at `level` -> out (count, size, k - 1, n): c' =
    // round(c / q_last) per polynomial; ntt tells the form of both.
    void mod_switch_to_next(const uint64_t* in, size_t count, size_t size, size_t level, bool ntt,
                            uint64_t* out) const;

    // ---- multiplication, key switching, automorphisms (milestone 2) -------
    size_t num_aux() const { return A_; }
    const Modulus& aux_modulus(size_t j) const { return mod_[L_ + K_ + j]; }
    // a, b: (count, 2, k, n) at `level` (the same array for squaring), either
    // form; out: (count, 3, k, n) coefficient form, decrypting to a * b.
    void multiply(const uint64_t* a, const uint64_t* b, size_t count, size_t level, bool ntt_in,
                  uint64_t* out) const;
    // Key-switching key from s' to s: out (L, 2, L + K, n) NTT form, one
    // (b_i, a_i) pair per digit; s_prime: (L, n) NTT form. Needs K >= 1.
    void keygen_switch(const uint64_t* sk, const uint64_t* s_prime, const uint8_t seed[16], uint64_t* out) const;
    void keygen_relin(const uint64_t* sk, const uint8_t seed[16], uint64_t* out) const;
    void keygen_galois(const uint64_t* sk, uint64_t g, const uint8_t seed[16], uint64_t* out) const;
    // ct (count, 3, k, n) coefficient form -> out (count, 2, k, n) coefficient form.
    void relinearize(const uint64_t* ct, size_t count, size_t level, const uint64_t* rk, uint64_t* out) const;
    // ct (count, 2, k, n) coefficient form -> out: X -> X^g applied, switched back to s.
    void apply_galois(const uint64_t* ct, size_t count, size_t level, uint64_t g, const uint64_t* gk,
                      uint64_t* out) const;
    // out = a(X^g) mod X^n + 1 for `rows` rows of n coefficients (any residues).
    void galois_permute(const uint64_t* a, size_t rows, uint64_t g, uint64_t* out) const;

private:
    Params params_;
    size_t L_ = 0, K_ = 0;
    size_t A_ = 0;                                          // auxiliary primes
    std::vector<Modulus> mod_;                              // q, then P_s, then aux P
    std::vector<std::shared_ptr<const ntt::Tables>> ntt_;  // per prime
    std::vector<uint64_t> t_mod_q_;
    std::vector<LevelData> levels_;
    uint64_t t_mask_ = 0;  // t - 1 for a power of two (all ones for 2^64)
    Modulus t_modulus_;    // prime t only
    std::vector<MulLevel> mul_;

    BaseConverter make_converter(const std::vector<size_t>& from, const std::vector<size_t>& to) const;
    void convert(const BaseConverter& c, const uint64_t* in, uint64_t* out) const;
    ScaleView scale_view(size_t level) const;
    void init_multiplication();
    void ntt_row(uint64_t* row, size_t mod_index, bool forward) const;
    // (out0, out1) (k rows each, coefficient form) += key switch of c (k rows,
    // coefficient form) with `key` (L, 2, L + K, n).
    void key_switch_add(const uint64_t* c, size_t level, const uint64_t* key, uint64_t* out0, uint64_t* out1,
                        uint64_t* scratch) const;
    size_t key_switch_scratch(size_t level) const;

    void ntt_rows(uint64_t* a, size_t k, bool forward) const;  // one polynomial
    void decrypt_one(const uint64_t* ct, size_t size, size_t level, bool ntt, const uint64_t* sk,
                     uint64_t* x, uint64_t* tmp) const;
};

}  // namespace safelight::bfv
