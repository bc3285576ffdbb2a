// NTT tables (twiddles in the kernels' order with their Shoup companions),
// their thread-safe cache, NTT-prime validation and path selection.
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "safelight/ntt.hpp"

namespace safelight::ntt {

namespace {

using u128 = unsigned __int128;

uint64_t mul_mod(uint64_t a, uint64_t b, uint64_t q) { return uint64_t(u128(a) * b % q); }

uint64_t pow_mod(uint64_t a, uint64_t e, uint64_t q) {
    uint64_t r = 1 % q;
    a %= q;
    while (e) {
        if (e & 1) r = mul_mod(r, a, q);
        a = mul_mod(a, a, q);
        e >>= 1;
    }
    return r;
}

uint64_t shoup(uint64_t w, uint64_t q, unsigned bits) { return uint64_t((u128(w) << bits) / q); }

unsigned bit_reverse(size_t x, unsigned bits) {
    size_t r = 0;
    for (unsigned i = 0; i < bits; ++i) r |= ((x >> i) & 1) << (bits - 1 - i);
    return unsigned(r);
}

unsigned bit_length(uint64_t x) { return x ? 64 - unsigned(__builtin_clzll(x)) : 0; }

// The smallest primitive 2n-th root of unity mod q (q = 1 mod 2n, prime).
uint64_t minimal_root(size_t n, uint64_t q) {
    const uint64_t order = 2 * uint64_t(n);
    const uint64_t cofactor = (q - 1) / order;
    uint64_t g = 0;
    // For a power-of-two order, c = x^((q-1)/2n) is primitive iff c^n = -1;
    // half of all x qualify, so this ends after a few tries.
    for (uint64_t x = 2; x < q; ++x) {
        uint64_t c = pow_mod(x, cofactor, q);
        if (pow_mod(c, n, q) == q - 1) {
            g = c;
            break;
        }
    }
    // The primitive 2n-th roots are g^k for odd k.
    const uint64_t g2 = mul_mod(g, g, q);
    uint64_t best = g, cur = g;
    for (uint64_t k = 3; k < order; k += 2) {
        cur = mul_mod(cur, g2, q);
        if (cur < best) best = cur;
    }
    return best;
}

std::shared_ptr<const Tables> build(size_t n, uint64_t q) {
    auto t = std::make_shared<Tables>();
    t->q = q;
    t->n = n;
    t->log_n = unsigned(__builtin_ctzll(n));
    t->q_bits = bit_length(q);
    t->psi = minimal_root(n, q);
    const bool with52 = q < (uint64_t(1) << kMaxIfmaModulusBits);
    const size_t arrays = with52 ? 6 : 4;
    // Each array starts on a 64-byte boundary (vector loads of whole lines).
    t->storage.assign(arrays * n + 8, 0);
    uint64_t* base = t->storage.data();
    while (reinterpret_cast<uintptr_t>(base) % 64) ++base;
    uint64_t* w = base;
    uint64_t* ws = base + n;
    uint64_t* iw = base + 2 * n;
    uint64_t* iws = base + 3 * n;
    uint64_t* ws52 = with52 ? base + 4 * n : nullptr;
    uint64_t* iws52 = with52 ? base + 5 * n : nullptr;

    // Powers psi^e and psi^-e for e < n, then scattered in bit-reversed order.
    const uint64_t psi_inv = pow_mod(t->psi, q - 2, q);
    uint64_t p = 1, pi = 1;
    std::vector<uint64_t> pw(n), ipw(n);
    for (size_t e = 0; e < n; ++e) {
        pw[e] = p;
        ipw[e] = pi;
        p = mul_mod(p, t->psi, q);
        pi = mul_mod(pi, psi_inv, q);
    }
    for (size_t k = 0; k < n; ++k) {
        const unsigned r = bit_reverse(k, t->log_n);
        w[k] = pw[r];
        iw[k] = ipw[r];
        ws[k] = shoup(w[k], q, 64);
        iws[k] = shoup(iw[k], q, 64);
        if (with52) {
            ws52[k] = shoup(w[k], q, 52);
            iws52[k] = shoup(iw[k], q, 52);
        }
    }
    t->w = w;
    t->w_shoup = ws;
    t->iw = iw;
    t->iw_shoup = iws;
    t->w_shoup52 = ws52;
    t->iw_shoup52 = iws52;

    t->n_inv = pow_mod(n % q, q - 2, q);
    t->last_w = mul_mod(t->n_inv, iw[1], q);
    t->n_inv_shoup = shoup(t->n_inv, q, 64);
    t->last_w_shoup = shoup(t->last_w, q, 64);
    if (with52) {
        t->n_inv_shoup52 = shoup(t->n_inv, q, 52);
        t->last_w_shoup52 = shoup(t->last_w, q, 52);
    }
    // Barrett: x < q^2 < 2^(2b); quotient estimate ((x >> (b-1)) * mu) >> (b+1).
    t->barrett = uint64_t((u128(1) << (2 * t->q_bits)) / q);
    return t;
}

bool env_ifma() {
    const char* v = std::getenv("SAFELIGHT_NTT_IFMA");
    return !(v && std::strcmp(v, "0") == 0);
}

}  // namespace

bool is_prime(uint64_t q) {
    if (q < 2) return false;
    static const uint64_t small[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
    for (uint64_t p : small) {
        if (q == p) return true;
        if (q % p == 0) return false;
    }
    uint64_t d = q - 1;
    unsigned s = 0;
    while (!(d & 1)) {
        d >>= 1;
        ++s;
    }
    // These bases decide primality for every q < 3.3e24 (Sorenson-Webster 2015).
    for (uint64_t a : small) {
        uint64_t x = pow_mod(a, d, q);
        if (x == 1 || x == q - 1) continue;
        bool composite = true;
        for (unsigned r = 1; r < s; ++r) {
            x = mul_mod(x, x, q);
            if (x == q - 1) {
                composite = false;
                break;
            }
        }
        if (composite) return false;
    }
    return true;
}

std::string ntt_prime_problem(size_t n, uint64_t q) {
    const std::string qs = std::to_string(q);
    if (q >= (uint64_t(1) << kMaxModulusBits))
        return "modulus " + qs + " has " + std::to_string(bit_length(q)) +
               " bits; the NTT needs q < 2^62";
    if (q < 3 || (q - 1) % (2 * uint64_t(n)) != 0)
        return "modulus " + qs + " is not 1 mod 2n = " + std::to_string(2 * n) +
               "; pick primes from safelight.he.ntt_primes(bits, n, count)";
    if (!is_prime(q)) return "modulus " + qs + " is not prime";
    return {};
}

std::shared_ptr<const Tables> tables(size_t n, uint64_t q) {
    if (n < (size_t(1) << kMinLogN) || n > (size_t(1) << kMaxLogN) || (n & (n - 1)))
        throw std::invalid_argument("n must be a power of two from 2^" + std::to_string(kMinLogN) +
                                    " to 2^" + std::to_string(kMaxLogN) + ", got " +
                                    std::to_string(n));
    static std::mutex mu;
    static std::map<std::pair<size_t, uint64_t>, std::shared_ptr<const Tables>> cache;
    const auto key = std::make_pair(n, q);
    {
        std::lock_guard<std::mutex> lock(mu);
        auto it = cache.find(key);
        if (it != cache.end()) return it->second;
    }
    std::string problem = ntt_prime_problem(n, q);
    if (!problem.empty()) throw std::invalid_argument(problem);
    auto built = build(n, q);  // outside the lock: large n take milliseconds
    std::lock_guard<std::mutex> lock(mu);
    // Bounded: plans hold their own references, so dropping entries is safe.
    if (cache.size() >= 256) cache.clear();
    return cache.emplace(key, std::move(built)).first->second;
}

void pointwise_mul(const uint64_t* a, const uint64_t* b, uint64_t* out, const Tables& t) noexcept {
    const uint64_t q = t.q, mu = t.barrett;
    const unsigned s1 = t.q_bits - 1, s2 = t.q_bits + 1;
    for (size_t i = 0; i < t.n; ++i) {
        const u128 x = u128(a[i]) * b[i];
        // Barrett with x < 2^(2b): the estimate is at most 2 below the quotient.
        const uint64_t est = uint64_t((u128(uint64_t(x >> s1)) * mu) >> s2);
        uint64_t r = uint64_t(x) - est * q;
        // r < 3q < 2^64: two branch-free conditional subtractions.
        uint64_t d = r - 2 * q;
        r = d + ((2 * q) & (uint64_t(0) - (d >> 63)));
        d = r - q;
        out[i] = d + (q & (uint64_t(0) - (d >> 63)));
    }
}

bool cpu_has_ifma() {
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512ifma");
    }();
    return has;
}

bool ifma_enabled_by_env() {
    static const bool enabled = env_ifma();
    return enabled;
}

const char* path_name(Path p) {
    switch (p) {
        case Path::scalar: return "scalar";
        case Path::avx2: return "avx2";
        case Path::avx512: return "avx512";
        case Path::avx512ifma: return "avx512ifma";
    }
    return "unknown";
}

Path choose_path(Isa isa, uint64_t q, bool allow_ifma) {
    switch (isa) {
        case Isa::scalar: return Path::scalar;
        case Isa::avx2: return Path::avx2;
        case Isa::avx512:
            if (allow_ifma && q < (uint64_t(1) << kMaxIfmaModulusBits) && cpu_has_ifma() &&
                ifma_enabled_by_env())
                return Path::avx512ifma;
            return Path::avx512;
    }
    return Path::scalar;
}

const Kernels& kernels(Path p) {
    switch (p) {
        case Path::avx2: return avx2::table;
        case Path::avx512: return avx512::table;
        case Path::avx512ifma: return avx512ifma::table;
        case Path::scalar: break;
    }
    return scalar::table;
}

}  // namespace safelight::ntt
