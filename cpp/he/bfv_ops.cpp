// BFV keys, encryption, decryption, noise measurement and the ciphertext /
// plaintext operations of the batch API (see bfv.hpp for the maths).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "modarith.hpp"
#include "safelight/parallel.hpp"
#include "sampling.hpp"

namespace safelight::bfv {

namespace {

// Work (in words) below which a batch runs on the calling thread.
constexpr size_t kMinParallelWords = size_t(1) << 16;

inline uint64_t max_branchless(uint64_t a, uint64_t b) {
    return a ^ ((a ^ b) & mask_of(uint64_t(b > a)));
}

// Per-ciphertext work split over threads for large batches.
template <class Body>
void for_each_ct(size_t count, size_t words_per_ct, Body body) {
    const size_t min_items = std::max<size_t>(2, kMinParallelWords / std::max<size_t>(1, words_per_ct));
    parallel_for(count, min_items, 1, body);
}

}  // namespace

// ---------------------------------------------------------------------------
// NTT helpers
// ---------------------------------------------------------------------------
void Context::ntt_rows(uint64_t* a, size_t k, bool forward) const {
    const Isa isa = active_isa();
    const size_t n = params_.n;
    for (size_t i = 0; i < k; ++i) {
        const ntt::Kernels& kr = ntt::kernels(ntt::choose_path(isa, mod_[i].value, true));
        (forward ? kr.forward : kr.inverse)(a + i * n, a + i * n, *ntt_[i]);
    }
}

void Context::to_ntt(uint64_t* a, size_t polys, size_t k) const {
    for_each_ct(polys, k * params_.n, [&](size_t lo, size_t hi) {
        for (size_t p = lo; p < hi; ++p) ntt_rows(a + p * k * params_.n, k, true);
    });
}

void Context::from_ntt(uint64_t* a, size_t polys, size_t k) const {
    for_each_ct(polys, k * params_.n, [&](size_t lo, size_t hi) {
        for (size_t p = lo; p < hi; ++p) ntt_rows(a + p * k * params_.n, k, false);
    });
}

// ---------------------------------------------------------------------------
// keys and uniform polynomials
// ---------------------------------------------------------------------------
void Context::uniform_rows(const uint8_t seed[16], uint64_t nonce_base, size_t k, uint64_t* out) const {
    const size_t n = params_.n;
    uint64_t buf[2 * kChunk];
    for (size_t i = 0; i < k; ++i) {
        Stream s(seed, nonce_base + i);
        const uint64_t q = mod_[i].value;
        uint64_t* row = out + i * n;
        for (size_t x0 = 0; x0 < n; x0 += kChunk) {
            const size_t c = std::min(kChunk, n - x0);
            s.words(buf, 2 * c);
            // floor(r q / 2^128) for the 128-bit r = (hi, lo)
            for (size_t x = 0; x < c; ++x) {
                const uint64_t lo = buf[2 * x], hi = buf[2 * x + 1];
                row[x0 + x] = hi64(u128(hi) * q + hi64(u128(lo) * q));
            }
        }
    }
}

void Context::keygen_secret(const uint8_t seed[16], uint64_t* sk) const {
    const size_t n = params_.n;
    std::vector<int64_t> s(n);
    Stream st(seed, kDomainSecret);
    sample_ternary(st, s.data(), n);
    lift_rows(s.data(), n, mod_.data(), L_ + K_, sk);
    secure_wipe(s.data(), n * sizeof(int64_t));
    const Isa isa = active_isa();
    for (size_t i = 0; i < L_ + K_; ++i) {
        const ntt::Kernels& kr = ntt::kernels(ntt::choose_path(isa, mod_[i].value, true));
        kr.forward(sk + i * n, sk + i * n, *ntt_[i]);
    }
}

void Context::keygen_public(const uint64_t* sk, const uint8_t seed[16], const uint8_t error_seed[16],
                            uint64_t* pk) const {
    const size_t n = params_.n;
    uint64_t* pk0 = pk;
    uint64_t* pk1 = pk + L_ * n;
    uniform_rows(seed, 0, L_, pk1);
    std::vector<int64_t> e(n);
    Stream st(error_seed, kDomainError);
    sample_cbd(st, e.data(), n);
    lift_rows(e.data(), n, mod_.data(), L_, pk0);
    ntt_rows(pk0, L_, true);
    std::vector<uint64_t> as(n);
    for (size_t i = 0; i < L_; ++i) {
        ntt::pointwise_mul(pk1 + i * n, sk + i * n, as.data(), *ntt_[i]);
        // pk0 = -(a s + e)
        uint64_t* r = pk0 + i * n;
        const uint64_t q = mod_[i].value;
        for (size_t x = 0; x < n; ++x) r[x] = neg_mod(add_mod(r[x], as[x], q), q);
    }
    secure_wipe(e.data(), n * sizeof(int64_t));
    secure_wipe(as.data(), n * sizeof(uint64_t));
}

// ---------------------------------------------------------------------------
// plaintext scaling and lifting
// ---------------------------------------------------------------------------
void Context::scale_plain(const uint64_t* values, size_t polys, size_t level, uint64_t* out) const {
    const size_t n = params_.n;
    const LevelData& d = levels_[level];
    const size_t k = d.k;
    const bool pow2 = params_.t_pow2;
    const unsigned b = params_.t_bits;
    const u128 half = pow2 ? (u128(1) << (b - 1)) : u128(params_.t / 2);
    for (size_t p = 0; p < polys; ++p) {
        const uint64_t* v = values + p * n;
        uint64_t* o = out + p * k * n;
        for (size_t x = 0; x < n; ++x) {
            const uint64_t m = pow2 ? (v[x] & t_mask_) : v[x];
            // round((q mod t) m / t)
            const u128 num = u128(d.q_mod_t) * m + half;
            uint64_t rnd;
            if (pow2) {
                rnd = uint64_t(num >> b);
            } else {
                uint64_t rem;
                rnd = divrem128(num, t_modulus_, rem);
            }
            for (size_t i = 0; i < k; ++i) {
                const Modulus& md = mod_[i];
                const uint64_t a = reduce128(u128(d.delta_floor[i]) * m, md);
                o[i * n + x] = add_mod(a, reduce64(rnd, md), md.value);
            }
        }
    }
}

void Context::lift_plain(const uint64_t* values, size_t polys, size_t k, uint64_t* out) const {
    const size_t n = params_.n;
    const bool pow2 = params_.t_pow2;
    const uint64_t half = pow2 ? (uint64_t(1) << (params_.t_bits - 1)) : (params_.t - 1) / 2;
    for (size_t p = 0; p < polys; ++p) {
        const uint64_t* v = values + p * n;
        uint64_t* o = out + p * k * n;
        for (size_t i = 0; i < k; ++i) {
            const Modulus& md = mod_[i];
            const uint64_t tq = t_mod_q_[i];
            for (size_t x = 0; x < n; ++x) {
                const uint64_t m = pow2 ? (v[x] & t_mask_) : v[x];
                const uint64_t neg = uint64_t(m > half);
                o[i * n + x] = sub_mod(reduce64(m, md), tq & mask_of(neg), md.value);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// encryption
// ---------------------------------------------------------------------------
void Context::expand_seeded_c1(const uint8_t* seeds, size_t count, size_t k, bool ntt, uint64_t* out,
                               size_t stride) const {
    for_each_ct(count, k * params_.n, [&](size_t lo, size_t hi) {
        for (size_t j = lo; j < hi; ++j) {
            uint64_t* c1 = out + j * stride;
            uniform_rows(seeds + 16 * j, 0, k, c1);
            if (!ntt) ntt_rows(c1, k, false);
        }
    });
}

void Context::encrypt_sk(const uint64_t* values, size_t count, const uint64_t* sk, const uint8_t seed[16],
                         bool ntt_out, uint8_t* seeds_out, uint64_t* out) const {
    const size_t n = params_.n, k = L_;
    {
        std::vector<uint64_t> sw(2 * count);
        Stream st(seed, kDomainSeeds);
        st.words(sw.data(), sw.size());
        std::memcpy(seeds_out, sw.data(), 16 * count);
    }
    for_each_ct(count, 2 * k * n, [&](size_t lo, size_t hi) {
        std::vector<int64_t> e(n);
        std::vector<uint64_t> as(n), em(k * n);
        for (size_t j = lo; j < hi; ++j) {
            uint64_t* c0 = out + j * 2 * k * n;
            uint64_t* c1 = c0 + k * n;
            uniform_rows(seeds_out + 16 * j, 0, k, c1);  // a, NTT form
            Stream st(seed, kDomainError | j);
            sample_cbd(st, e.data(), n);
            scale_plain(values + j * n, 1, 0, em.data());
            add_small(e.data(), n, mod_.data(), k, em.data());  // e + D(m)
            if (ntt_out) ntt_rows(em.data(), k, true);
            for (size_t i = 0; i < k; ++i) {
                ntt::pointwise_mul(c1 + i * n, sk + i * n, c0 + i * n, *ntt_[i]);  // a s
            }
            if (!ntt_out) {
                ntt_rows(c0, k, false);
                ntt_rows(c1, k, false);
            }
            for (size_t i = 0; i < k; ++i)
                sub_rows(em.data() + i * n, c0 + i * n, c0 + i * n, n, mod_[i].value);
        }
        secure_wipe(e.data(), n * sizeof(int64_t));
        secure_wipe(em.data(), k * n * sizeof(uint64_t));
    });
}

// ct (2, k, n) += a public-key encryption of D(m) (m = values or 0), nonces
// from `index`. scratch: 3 k n words + n int64.
static void pk_encrypt_into(const Context& ctx, uint64_t* ct, size_t level, bool ntt, const uint64_t* pk,
                            const uint8_t seed[16], uint64_t index, const uint64_t* values,
                            uint64_t* scratch, int64_t* small) {
    const size_t n = ctx.n(), k = ctx.primes_at(level), L = ctx.num_q();  // pk rows: (2, L, n)
    uint64_t* u = scratch;
    uint64_t* t0 = scratch + k * n;
    uint64_t* t1 = scratch + 2 * k * n;
    const Isa isa = active_isa();
    {
        Stream st(seed, kDomainU | index);
        sample_ternary(st, small, n);
    }
    for (size_t i = 0; i < k; ++i) {
        const Modulus& md = ctx.modulus(i);
        uint64_t* r = u + i * n;
        for (size_t x = 0; x < n; ++x) r[x] = lift_signed(small[x], md.value);
        const ntt::Kernels& kr = ntt::kernels(ntt::choose_path(isa, md.value, true));
        kr.forward(r, r, ctx.ntt_tables(i));
        ntt::pointwise_mul(pk + i * n, r, t0 + i * n, ctx.ntt_tables(i));
        ntt::pointwise_mul(pk + (L + i) * n, r, t1 + i * n, ctx.ntt_tables(i));
    }
    // errors (and message) in coefficient form, in u's rows (no longer needed)
    auto add_error = [&](uint64_t* acc_ntt, uint64_t domain, bool with_message) {
        Stream st(seed, domain | index);
        sample_cbd(st, small, n);
        if (with_message && values) {
            ctx.scale_plain(values, 1, level, u);
        } else {
            std::memset(u, 0, k * n * sizeof(uint64_t));
        }
        for (size_t i = 0; i < k; ++i) {
            const uint64_t q = ctx.modulus(i).value;
            uint64_t* r = u + i * n;
            for (size_t x = 0; x < n; ++x) r[x] = add_mod(r[x], lift_signed(small[x], q), q);
        }
        for (size_t i = 0; i < k; ++i) {
            const Modulus& md = ctx.modulus(i);
            const ntt::Kernels& kr = ntt::kernels(ntt::choose_path(isa, md.value, true));
            if (ntt) {
                kr.forward(u + i * n, u + i * n, ctx.ntt_tables(i));
            } else {
                kr.inverse(acc_ntt + i * n, acc_ntt + i * n, ctx.ntt_tables(i));
            }
            add_rows(acc_ntt + i * n, u + i * n, acc_ntt + i * n, n, md.value);
        }
    };
    add_error(t0, kDomainE0, true);
    add_error(t1, kDomainE1, false);
    for (size_t i = 0; i < k; ++i) {
        const uint64_t q = ctx.modulus(i).value;
        add_rows(ct + i * n, t0 + i * n, ct + i * n, n, q);
        add_rows(ct + (k + i) * n, t1 + i * n, ct + (k + i) * n, n, q);
    }
    secure_wipe(scratch, 3 * k * n * sizeof(uint64_t));
    secure_wipe(small, n * sizeof(int64_t));
}

void Context::encrypt_pk(const uint64_t* values, size_t count, const uint64_t* pk, const uint8_t seed[16],
                         bool ntt_out, uint64_t* out) const {
    const size_t n = params_.n, k = L_;
    for_each_ct(count, 2 * k * n, [&](size_t lo, size_t hi) {
        std::vector<uint64_t> scratch(3 * k * n);
        std::vector<int64_t> small(n);
        for (size_t j = lo; j < hi; ++j) {
            uint64_t* ct = out + j * 2 * k * n;
            std::memset(ct, 0, 2 * k * n * sizeof(uint64_t));
            pk_encrypt_into(*this, ct, 0, ntt_out, pk, seed, j, values + j * n, scratch.data(),
                            small.data());
        }
    });
}

void Context::rerandomize(uint64_t* ct, size_t count, size_t level, bool ntt, const uint64_t* pk,
                          const uint8_t seed[16], unsigned flood_bits) const {
    const size_t n = params_.n, k = primes_at(level);
    // 2^B mod q_i
    std::vector<uint64_t> pow_b(k);
    for (size_t i = 0; i < k; ++i) pow_b[i] = pow_mod(2, flood_bits, mod_[i]);
    const size_t words = flood_bits ? (flood_bits + 1 + 63) / 64 : 0;  // words of a value < 2^(B+1)
    const unsigned top_bits = unsigned(flood_bits + 1 - 64 * (words ? words - 1 : 0));
    const uint64_t top_mask = top_bits >= 64 ? ~uint64_t(0) : (uint64_t(1) << top_bits) - 1;
    for_each_ct(count, 2 * k * n, [&](size_t lo, size_t hi) {
        std::vector<uint64_t> scratch(3 * k * n), flood(k * n), buf(words * kChunk);
        std::vector<int64_t> small(n);
        for (size_t j = lo; j < hi; ++j) {
            uint64_t* c = ct + j * 2 * k * n;
            pk_encrypt_into(*this, c, level, ntt, pk, seed, j, nullptr, scratch.data(), small.data());
            if (!flood_bits) continue;
            Stream st(seed, kDomainFlood | j);
            for (size_t x0 = 0; x0 < n; x0 += kChunk) {
                const size_t cnt = std::min(kChunk, n - x0);
                st.words(buf.data(), words * cnt);
                for (size_t x = 0; x < cnt; ++x) {
                    uint64_t* w = buf.data() + x * words;
                    w[words - 1] &= top_mask;
                    for (size_t i = 0; i < k; ++i) {
                        const Modulus& md = mod_[i];
                        uint64_t r = 0;
                        for (size_t b = words; b-- > 0;) r = reduce128((u128(r) << 64) | w[b], md);
                        flood[i * n + x0 + x] = sub_mod(r, pow_b[i], md.value);  // V - 2^B
                    }
                }
            }
            if (ntt) ntt_rows(flood.data(), k, true);
            for (size_t i = 0; i < k; ++i) add_rows(c + i * n, flood.data() + i * n, c + i * n, n, mod_[i].value);
        }
        secure_wipe(flood.data(), flood.size() * sizeof(uint64_t));
        secure_wipe(buf.data(), buf.size() * sizeof(uint64_t));
    });
}

// ---------------------------------------------------------------------------
// decryption and noise
// ---------------------------------------------------------------------------
// x (k, n) = c0 + c1 s (+ c2 s^2) mod q in coefficient form; tmp: k n words.
void Context::decrypt_one(const uint64_t* ct, size_t size, size_t level, bool ntt, const uint64_t* sk,
                          uint64_t* x, uint64_t* tmp) const {
    const size_t n = params_.n, k = primes_at(level);
    const Isa isa = active_isa();
    for (size_t i = 0; i < k; ++i) {
        const ntt::Tables& tb = *ntt_[i];
        const ntt::Kernels& kr = ntt::kernels(ntt::choose_path(isa, mod_[i].value, true));
        const uint64_t q = mod_[i].value;
        const uint64_t* s = sk + i * n;
        uint64_t* xi = x + i * n;
        uint64_t* ti = tmp + i * n;
        // acc = c_{size-1}; acc = acc * s + c_{j} (Horner), all in NTT form
        const uint64_t* top = ct + ((size - 1) * k + i) * n;
        if (ntt) {
            std::memcpy(xi, top, n * sizeof(uint64_t));
        } else {
            kr.forward(top, xi, tb);
        }
        for (size_t p = size - 1; p-- > 0;) {
            ntt::pointwise_mul(xi, s, xi, tb);
            const uint64_t* cp = ct + (p * k + i) * n;
            if (p == 0 && !ntt) {
                kr.inverse(xi, xi, tb);
                add_rows(xi, cp, xi, n, q);
                break;
            }
            if (ntt) {
                add_rows(xi, cp, xi, n, q);
            } else {
                kr.forward(cp, ti, tb);
                add_rows(xi, ti, xi, n, q);
            }
        }
        if (ntt) kr.inverse(xi, xi, tb);
    }
}

void Context::decrypt(const uint64_t* ct, size_t count, size_t size, size_t level, bool ntt,
                      const uint64_t* sk, uint64_t* out, uint64_t* worst) const {
    const size_t n = params_.n, k = primes_at(level);
    const LevelData& d = levels_[level];
    const bool pow2 = params_.t_pow2;
    for_each_ct(count, size * k * n, [&](size_t lo, size_t hi) {
        std::vector<uint64_t> x(k * n), tmp(k * n);
        for (size_t j = lo; j < hi; ++j) {
            decrypt_one(ct + j * size * k * n, size, level, ntt, sk, x.data(), tmp.data());
            uint64_t w = 0;
            uint64_t* o = out + j * n;
            for (size_t c = 0; c < n; ++c) {
                u128 int_acc = 0;
                u128 frac_acc = 0;
                for (size_t i = 0; i < k; ++i) {
                    const uint64_t q = mod_[i].value;
                    const uint64_t y = mul_shoup(x[i * n + c], d.qhat_inv[i], d.qhat_inv_shoup[i], q);
                    // y t / q_i = y t_int + y (f_hi 2^64 + f_lo) / 2^128
                    const u128 p1 = u128(y) * d.t_frac_hi[i];
                    const u128 p0 = u128(y) * d.t_frac_lo[i];
                    const u128 mid = u128(uint64_t(p1)) + hi64(p0);
                    int_acc += u128(y) * d.t_int[i] + hi64(p1) + hi64(mid);
                    frac_acc += uint64_t(mid);
                }
                // round: carry the fraction sum (+ 1/2) into the integer
                const u128 rounded = frac_acc + (u128(1) << 63);
                const u128 total = int_acc + hi64(rounded);
                uint64_t m;
                if (pow2) {
                    m = uint64_t(total) & t_mask_;
                } else {
                    m = reduce128(total, t_modulus_);
                }
                o[c] = m;
                // centred fractional part = v / q (units of 2^-64)
                const uint64_t f = uint64_t(frac_acc);
                const uint64_t neg = f >> 63;
                const uint64_t mag = (f ^ mask_of(neg)) + neg;
                w = max_branchless(w, mag);
            }
            worst[j] = w;
        }
        secure_wipe(x.data(), x.size() * sizeof(uint64_t));
    });
}

void Context::phase(const uint64_t* ct, size_t count, size_t size, size_t level, bool ntt, const uint64_t* sk,
                    uint64_t* out) const {
    const size_t n = params_.n, k = primes_at(level);
    for_each_ct(count, size * k * n, [&](size_t lo, size_t hi) {
        std::vector<uint64_t> tmp(k * n);
        for (size_t j = lo; j < hi; ++j)
            decrypt_one(ct + j * size * k * n, size, level, ntt, sk, out + j * k * n, tmp.data());
    });
}

void Context::noise_budget(const uint64_t* ct, size_t count, size_t size, size_t level, bool ntt,
                           const uint64_t* sk, int64_t* budget) const {
    const size_t n = params_.n, k = primes_at(level);
    const LevelData& d = levels_[level];
    for_each_ct(count, size * k * n, [&](size_t lo, size_t hi) {
        std::vector<uint64_t> x(k * n), tmp(k * n), dig(k), neg(k);
        for (size_t j = lo; j < hi; ++j) {
            decrypt_one(ct + j * size * k * n, size, level, ntt, sk, x.data(), tmp.data());
            double worst = -1.0;  // log2 of the largest |v|
            for (size_t c = 0; c < n; ++c) {
                // Garner digits of v = t x mod q
                for (size_t i = 0; i < k; ++i) {
                    const Modulus& md = mod_[i];
                    uint64_t v = mul_mod(x[i * n + c], t_mod_q_[i], md);
                    for (size_t jj = 0; jj < i; ++jj) {
                        v = sub_mod(v, reduce64(dig[jj], md), md.value);
                        v = mul_mod(v, d.garner_inv[i * k + jj], md);
                    }
                    dig[i] = v;
                }
                // v > (q - 1)/2 ? compared digit by digit from the top
                uint64_t gt = 0, lt = 0;
                for (size_t i = k; i-- > 0;) {
                    const uint64_t open = ~(gt | lt) & 1;
                    gt |= open & uint64_t(dig[i] > d.half_digits[i]);
                    lt |= open & uint64_t(dig[i] < d.half_digits[i]);
                }
                // q - v = (q - 1 - v) + 1: digits q_i - 1 - a_i, then a carry chain
                uint64_t carry = 1;
                for (size_t i = 0; i < k; ++i) {
                    const uint64_t q = mod_[i].value;
                    uint64_t e = q - 1 - dig[i] + carry;
                    carry = uint64_t(e == q);
                    e &= ~mask_of(carry);
                    neg[i] = e;
                }
                const uint64_t sel = mask_of(gt);
                double val = 0;
                int exp = 0;
                for (size_t i = k; i-- > 0;) {
                    const uint64_t a = (neg[i] & sel) | (dig[i] & ~sel);
                    val = val * double(mod_[i].value) + double(a);
                    if (val > 0x1p512) {  // noise measurement only: the magnitude is its output
                        val *= 0x1p-512;
                        exp += 512;
                    }
                }
                if (val > 0) worst = std::max(worst, std::log2(val) + exp);
            }
            const double b = worst < 0 ? d.log2_q - 1 : d.log2_q - worst - 1;
            budget[j] = b <= 0 ? 0 : int64_t(std::floor(b));
        }
        secure_wipe(x.data(), x.size() * sizeof(uint64_t));
    });
}

// ---------------------------------------------------------------------------
// arithmetic
// ---------------------------------------------------------------------------
void Context::add(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t polys, size_t k) const {
    const size_t n = params_.n;
    for (size_t p = 0; p < polys; ++p)
        for (size_t i = 0; i < k; ++i) {
            const size_t off = (p * k + i) * n;
            add_rows(a + off, b + off, out + off, n, mod_[i].value);
        }
}

void Context::sub(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t polys, size_t k) const {
    const size_t n = params_.n;
    for (size_t p = 0; p < polys; ++p)
        for (size_t i = 0; i < k; ++i) {
            const size_t off = (p * k + i) * n;
            sub_rows(a + off, b + off, out + off, n, mod_[i].value);
        }
}

void Context::negate(const uint64_t* a, uint64_t* out, size_t polys, size_t k) const {
    const size_t n = params_.n;
    for (size_t p = 0; p < polys; ++p)
        for (size_t i = 0; i < k; ++i) {
            const size_t off = (p * k + i) * n;
            const uint64_t q = mod_[i].value;
            for (size_t x = 0; x < n; ++x) out[off + x] = neg_mod(a[off + x], q);
        }
}

void Context::multiply_plain_ntt(const uint64_t* ct, size_t count, size_t size, size_t k,
                                 const uint64_t* pt, bool broadcast, uint64_t* out) const {
    const size_t n = params_.n;
    for_each_ct(count, size * k * n, [&](size_t lo, size_t hi) {
        for (size_t j = lo; j < hi; ++j) {
            const uint64_t* p = pt + (broadcast ? 0 : j * k * n);
            for (size_t s = 0; s < size; ++s)
                for (size_t i = 0; i < k; ++i) {
                    const size_t off = ((j * size + s) * k + i) * n;
                    ntt::pointwise_mul(ct + off, p + i * n, out + off, *ntt_[i]);
                }
        }
    });
}

void Context::dot_plain(const uint64_t* ct, size_t m, const uint64_t* pt, size_t kk, size_t k,
                        uint64_t* out, bool threads) const {
    const size_t n = params_.n;
    const Isa isa = active_isa();
    if (m == 0) {
        std::memset(out, 0, kk * 2 * k * n * sizeof(uint64_t));
        return;
    }
    // Tiles of (limb i, coefficients [x0, x0 + B)): the tile's ciphertext
    // slices (m x 2 x B words) stay in L2 while every output row j streams
    // its plaintexts once, so DRAM traffic is about one read of pt and ct.
    size_t block = (size_t(192) << 10) / (16 * m);  // m * 2 * B * 8 bytes ~ 192 KiB
    block = std::max<size_t>(64, std::min(n, block)) & ~size_t(63);
    const size_t blocks = (n + block - 1) / block;
    auto task = [&](size_t lo, size_t hi) {
        for (size_t tsk = lo; tsk < hi; ++tsk) {
            const size_t i = tsk / blocks, x0 = (tsk % blocks) * block;
            const size_t nb = std::min(block, n - x0);
            const Modulus& md = mod_[i];
            const Kernels& kr = dot_kernels(choose_dot_path(isa, md));
            for (size_t j = 0; j < kk; ++j) {
                uint64_t* o0 = out + (j * 2 * k + i) * n + x0;
                kr.dot2(ct + i * n + x0, 2 * k * n, k * n, pt + (j * m * k + i) * n + x0, k * n, m, o0,
                        o0 + k * n, nb, md);
            }
        }
    };
    const size_t tasks = k * blocks;
    if (!threads || tasks < 2 || kk * m * k * n * 2 < kMinParallelWords * 4) {
        task(0, tasks);
    } else {
        parallel_for(tasks, 2, 1, task);
    }
}

void Context::mod_switch_to_next(const uint64_t* in, size_t count, size_t size, size_t level, bool ntt,
                                 uint64_t* out) const {
    const size_t n = params_.n, k = primes_at(level), k2 = k - 1;
    const LevelData& d = levels_[level];
    const Modulus& ml = mod_[k - 1];
    const uint64_t ql = ml.value, half = ql >> 1;
    const Isa isa = active_isa();
    const ntt::Kernels& kl = ntt::kernels(ntt::choose_path(isa, ql, true));
    for_each_ct(count * size, k * n, [&](size_t lo, size_t hi) {
        std::vector<uint64_t> last(n), tmp(n);
        for (size_t p = lo; p < hi; ++p) {
            const uint64_t* src = in + p * k * n;
            uint64_t* dst = out + p * k2 * n;
            // r = (c + floor(q_last/2)) mod q_last, from the last row
            if (ntt) {
                kl.inverse(src + k2 * n, last.data(), *ntt_[k - 1]);
            } else {
                std::memcpy(last.data(), src + k2 * n, n * sizeof(uint64_t));
            }
            for (size_t x = 0; x < n; ++x) last[x] = add_mod(last[x], half, ql);
            for (size_t i = 0; i < k2; ++i) {
                const Modulus& md = mod_[i];
                const uint64_t q = md.value;
                // centred residue of c mod q_last, taken mod q_i
                for (size_t x = 0; x < n; ++x) tmp[x] = sub_mod(reduce64(last[x], md), d.last_half[i], q);
                if (ntt) {
                    const ntt::Kernels& kr = ntt::kernels(ntt::choose_path(isa, q, true));
                    kr.forward(tmp.data(), tmp.data(), *ntt_[i]);
                }
                const uint64_t w = d.last_inv[i], ws = d.last_inv_shoup[i];
                const uint64_t* s = src + i * n;
                uint64_t* o = dst + i * n;
                for (size_t x = 0; x < n; ++x) o[x] = mul_shoup(sub_mod(s[x], tmp[x], q), w, ws, q);
            }
        }
    });
}

}  // namespace safelight::bfv
