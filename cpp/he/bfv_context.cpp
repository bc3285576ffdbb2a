// BFV context: parameter validation, per-level constants, the security
// table and dot-product path selection (see bfv.hpp for the maths).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>

#include "modarith.hpp"

namespace safelight::bfv {

namespace {

unsigned bit_length(uint64_t x) { return x ? 64 - unsigned(__builtin_clzll(x)) : 0; }

}  // namespace

int max_modulus_bits_128(size_t n) {
    switch (n) {
        case 1024: return 27;
        case 2048: return 54;
        case 4096: return 109;
        case 8192: return 218;
        case 16384: return 438;
        case 32768: return 881;
        default: return 0;
    }
}

Modulus Modulus::make(uint64_t q) {
    Modulus m;
    m.value = q;
    m.bits = bit_length(q);
    // floor(2^128 / q) = floor((2^128 - 1) / q) for q not a power of two
    const u128 all = ~u128(0);
    const u128 ratio = all / q;
    m.ratio_hi = uint64_t(ratio >> 64);
    m.ratio_lo = uint64_t(ratio);
    // acc < q + T (q-1)^2 < 2^128
    const u128 sq = u128(q - 1) * (q - 1);
    const u128 room = (all - q) / (sq ? sq : 1);
    m.lazy_terms = unsigned(room > 4096 ? 4096 : room);
    uint64_t inv = q;  // Newton: q^-1 mod 2^64 (q odd)
    for (int i = 0; i < 6; ++i) inv *= 2 - q * inv;
    m.mont_neg_inv = uint64_t(0) - inv;
    const uint64_t r64 = uint64_t(((u128(1) << 64)) % q);
    m.r128 = uint64_t(u128(r64) * r64 % q);
    if (q < (uint64_t(1) << ntt::kMaxIfmaModulusBits)) {
        m.r52 = (uint64_t(1) << 52) % q;
        m.r52_shoup52 = uint64_t((u128(m.r52) << 52) / q);
        m.one_shoup52 = uint64_t((u128(1) << 52) / q);
    }
    return m;
}

double modulus_log2(const Params& p) {
    double s = 0;
    for (uint64_t q : p.q) s += std::log2(double(q));
    for (uint64_t q : p.special) s += std::log2(double(q));
    return s;
}

std::string params_problem(const Params& p) {
    const size_t n = p.n;
    if (n < kMinN || n > kMaxN || (n & (n - 1)))
        return "n must be a power of two from " + std::to_string(kMinN) + " to " +
               std::to_string(kMaxN) + ", got " + std::to_string(n);
    if (p.q.empty()) return "the ciphertext modulus needs at least one prime";
    if (p.q.size() + p.special.size() > kMaxPrimes)
        return "at most " + std::to_string(kMaxPrimes) + " primes in q and P together";
    std::set<uint64_t> seen;
    auto check_prime = [&](uint64_t q) -> std::string {
        if (q >= (uint64_t(1) << kMaxPrimeBits))
            return "prime " + std::to_string(q) + " has " + std::to_string(bit_length(q)) +
                   " bits; BFV primes must be below 2^" + std::to_string(kMaxPrimeBits);
        std::string why = ntt::ntt_prime_problem(n, q);
        if (!why.empty()) return why;
        if (!seen.insert(q).second) return "prime " + std::to_string(q) + " appears twice";
        return {};
    };
    for (uint64_t q : p.q)
        if (auto w = check_prime(q); !w.empty()) return w;
    for (uint64_t q : p.special)
        if (auto w = check_prime(q); !w.empty()) return w;
    if (p.t_pow2) {
        if (p.t_bits < 1 || p.t_bits > 64)
            return "a power-of-two plaintext modulus must be 2^k with 1 <= k <= 64, got k = " +
                   std::to_string(p.t_bits);
    } else {
        if (p.t < 3 || p.t >= (uint64_t(1) << kMaxPrimeTBits) || !ntt::is_prime(p.t))
            return "plaintext modulus " + std::to_string(p.t) +
                   " must be a power of two or a prime below 2^" + std::to_string(kMaxPrimeTBits);
        if (seen.count(p.t)) return "the plaintext modulus must differ from every ciphertext prime";
    }
    double log_q = 0;
    for (uint64_t q : p.q) log_q += std::log2(double(q));
    const double log_t = p.t_pow2 ? double(p.t_bits) : std::log2(double(p.t));
    if (log_q < log_t + 8)
        return "q (" + std::to_string(int(log_q)) + " bits) must exceed t (" +
               std::to_string(int(log_t)) + " bits) by a noise margin of at least 8 bits";
    return {};
}

Context::Context(const Params& p) : params_(p) {
    std::string why = params_problem(p);
    if (!why.empty()) throw std::invalid_argument(why);
    L_ = p.q.size();
    K_ = p.special.size();
    const size_t n = p.n;
    std::vector<uint64_t> all(p.q);
    all.insert(all.end(), p.special.begin(), p.special.end());
    for (uint64_t q : all) {
        mod_.push_back(Modulus::make(q));
        ntt_.push_back(ntt::tables(n, q));
    }
    if (p.t_pow2) {
        t_mask_ = p.t_bits == 64 ? ~uint64_t(0) : (uint64_t(1) << p.t_bits) - 1;
    } else {
        t_modulus_ = Modulus::make(p.t);
    }
    // t mod q_i
    for (const Modulus& m : mod_) {
        uint64_t r;
        if (p.t_pow2) {
            r = p.t_bits == 64 ? reduce128(u128(1) << 64, m) : reduce64(uint64_t(1) << p.t_bits, m);
        } else {
            r = reduce64(p.t, m);
        }
        t_mod_q_.push_back(r);
    }

    levels_.resize(L_);
    for (size_t l = 0; l < L_; ++l) {
        LevelData& d = levels_[l];
        const size_t k = L_ - l;
        d.k = k;
        for (size_t i = 0; i < k; ++i) d.log2_q += std::log2(double(mod_[i].value));
        // q mod t
        if (p.t_pow2) {
            uint64_t prod = 1;
            for (size_t i = 0; i < k; ++i) prod *= mod_[i].value;  // mod 2^64
            d.q_mod_t = prod & t_mask_;
        } else {
            uint64_t prod = 1;
            for (size_t i = 0; i < k; ++i) prod = mul_mod(prod, reduce64(mod_[i].value, t_modulus_), t_modulus_);
            d.q_mod_t = prod;
        }
        // floor(q / t) = (q - (q mod t)) / t = -(q mod t) t^-1 (mod q_i)
        for (size_t i = 0; i < k; ++i) {
            const Modulus& m = mod_[i];
            const uint64_t tinv = inv_mod(t_mod_q_[i], m);
            d.delta_floor.push_back(mul_mod(neg_mod(reduce64(d.q_mod_t, m), m.value), tinv, m));
        }
        // decryption constants
        for (size_t i = 0; i < k; ++i) {
            const Modulus& m = mod_[i];
            uint64_t qhat = 1;
            for (size_t j = 0; j < k; ++j)
                if (j != i) qhat = mul_mod(qhat, reduce64(mod_[j].value, m), m);
            const uint64_t inv = inv_mod(qhat, m);
            d.qhat_inv.push_back(inv);
            d.qhat_inv_shoup.push_back(shoup(inv, m.value));
            // t / q_i = floor(t / q_i) + (t mod q_i) / q_i
            uint64_t t_int;
            if (p.t_pow2)
                t_int = uint64_t((u128(1) << p.t_bits) / m.value);
            else
                t_int = p.t / m.value;
            const uint64_t b = t_mod_q_[i];
            const u128 num_hi = u128(b) << 64;
            const uint64_t f_hi = uint64_t(num_hi / m.value);
            const uint64_t rem = uint64_t(num_hi % m.value);
            const uint64_t f_lo = uint64_t((u128(rem) << 64) / m.value);
            d.t_int.push_back(p.t_pow2 ? (t_int & t_mask_) : t_int);
            d.t_frac_hi.push_back(f_hi);
            d.t_frac_lo.push_back(f_lo);
        }
        // Garner
        d.garner_inv.assign(k * k, 0);
        for (size_t i = 0; i < k; ++i)
            for (size_t j = 0; j < i; ++j)
                d.garner_inv[i * k + j] = inv_mod(reduce64(mod_[j].value, mod_[i]), mod_[i]);
        // digits of (q - 1)/2: residues (q_i - 1)/2, then Garner
        d.half_digits.assign(k, 0);
        for (size_t i = 0; i < k; ++i) {
            uint64_t v = (mod_[i].value - 1) / 2;
            for (size_t j = 0; j < i; ++j) {
                v = sub_mod(v, reduce64(d.half_digits[j], mod_[i]), mod_[i].value);
                v = mul_mod(v, d.garner_inv[i * k + j], mod_[i]);
            }
            d.half_digits[i] = v;
        }
        // mod switching
        if (k > 1) {
            const uint64_t ql = mod_[k - 1].value;
            for (size_t i = 0; i + 1 < k; ++i) {
                const Modulus& m = mod_[i];
                const uint64_t inv = inv_mod(reduce64(ql, m), m);
                d.last_inv.push_back(inv);
                d.last_inv_shoup.push_back(shoup(inv, m.value));
                d.last_half.push_back(reduce64(ql >> 1, m));
            }
        }
    }
    init_multiplication();  // appends the auxiliary primes to mod_ / ntt_
}

const char* dot_path_name(DotPath p) {
    switch (p) {
        case DotPath::scalar: return "scalar";
        case DotPath::avx512: return "avx512";
        case DotPath::avx512ifma: return "avx512ifma";
    }
    return "unknown";
}

DotPath choose_dot_path(Isa isa, const Modulus& q) {
    if (isa != Isa::avx512) return DotPath::scalar;
    if (q.value < (uint64_t(1) << ntt::kMaxIfmaModulusBits) && ntt::cpu_has_ifma() &&
        ntt::ifma_enabled_by_env())
        return DotPath::avx512ifma;
    return DotPath::avx512;
}

const Kernels& dot_kernels(DotPath p) {
    switch (p) {
        case DotPath::avx512: return avx512::table;
        case DotPath::avx512ifma: return avx512ifma::table;
        case DotPath::scalar: break;
    }
    return scalar::table;
}

}  // namespace safelight::bfv
