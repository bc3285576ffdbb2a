// BFV ciphertext multiplication (HPS with integer corrections), key
// switching (relinearisation, Galois automorphisms) and their keys. The
// maths is in bfv.hpp; this file holds the precomputation and the loops.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "modarith.hpp"
#include "safelight/parallel.hpp"
#include "sampling.hpp"

namespace safelight::bfv {

namespace {

constexpr size_t kMinParallelWords = size_t(1) << 16;
constexpr unsigned kAuxPrimeBits = 60;
constexpr size_t kMaxBase = 64;  // primes in one base (q, special or auxiliary)

// A per-thread buffer reused across calls (no page faults on every call).
uint64_t* thread_scratch(size_t words) {
    thread_local std::vector<uint64_t> buf;
    if (buf.size() < words) buf.assign(words, 0);
    return buf.data();
}

template <class Body>
void for_each_ct(size_t count, size_t words_per_ct, Body body) {
    const size_t min_items = std::max<size_t>(2, kMinParallelWords / std::max<size_t>(1, words_per_ct));
    parallel_for(count, min_items, 1, body);
}

}  // namespace

// ---------------------------------------------------------------------------
// precomputation
// ---------------------------------------------------------------------------
BaseConverter Context::make_converter(const std::vector<size_t>& from, const std::vector<size_t>& to) const {
    BaseConverter c;
    c.from = from;
    c.to = to;
    for (size_t i : from) c.from_mod.push_back(mod_[i]);
    for (size_t j : to) c.to_mod.push_back(mod_[j]);
    const size_t r = from.size();
    for (size_t i = 0; i < r; ++i) {
        const Modulus& ai = mod_[from[i]];
        uint64_t prod = 1;
        for (size_t i2 = 0; i2 < r; ++i2)
            if (i2 != i) prod = mul_mod(prod, reduce64(mod_[from[i2]].value, ai), ai);
        const uint64_t inv = inv_mod(prod, ai);
        c.ahat_inv.push_back(inv);
        c.ahat_inv_shoup.push_back(shoup(inv, ai.value));
    }
    for (size_t j = 0; j < to.size(); ++j) {
        const Modulus& bj = mod_[to[j]];
        uint64_t all = 1;
        for (size_t i = 0; i < r; ++i) {
            uint64_t prod = 1;
            for (size_t i2 = 0; i2 < r; ++i2)
                if (i2 != i) prod = mul_mod(prod, reduce64(mod_[from[i2]].value, bj), bj);
            c.ahat_mod.push_back(to_mont(prod, bj));
            all = mul_mod(all, reduce64(mod_[from[i]].value, bj), bj);
        }
        c.neg_a_mod.push_back(to_mont(neg_mod(all, bj.value), bj));
    }
    return c;
}

void Context::init_multiplication() {
    const size_t n = params_.n;
    // Auxiliary base: log2 P >= log2 Q + log2 t + log2 n + 3 (see bfv.hpp).
    double log_q = levels_[0].log2_q;
    const double need = log_q + (params_.t_pow2 ? double(params_.t_bits) : std::log2(double(params_.t))) +
                        std::log2(double(n)) + 3;
    double have = 0;
    const uint64_t step = 2 * uint64_t(n);
    uint64_t cand = ((uint64_t(1) << kAuxPrimeBits) - 1) / step * step + 1;
    while (have < need) {
        if (cand >= (uint64_t(1) << kAuxPrimeBits)) cand -= step;
        bool used = !params_.t_pow2 && cand == params_.t;
        for (const Modulus& m : mod_) used = used || m.value == cand;
        if (!used && ntt::is_prime(cand)) {
            const Modulus m = Modulus::make(cand);
            mod_.push_back(m);
            t_mod_q_.push_back(params_.t_pow2 ? (params_.t_bits == 64 ? reduce128(u128(1) << 64, m)
                                                                      : reduce64(uint64_t(1) << params_.t_bits, m))
                                              : reduce64(params_.t, m));
            ntt_.push_back(ntt::tables(n, cand));
            have += std::log2(double(cand));
            ++A_;
        }
        cand -= step;
    }
    if (A_ > kMaxBase || L_ > kMaxBase) throw std::invalid_argument("too many primes for one RNS base");
    std::vector<size_t> p_idx, s_idx;
    for (size_t j = 0; j < A_; ++j) p_idx.push_back(L_ + K_ + j);
    for (size_t s = 0; s < K_; ++s) s_idx.push_back(L_ + s);
    mul_.resize(L_);
    for (size_t l = 0; l < L_; ++l) {
        MulLevel& d = mul_[l];
        const size_t k = L_ - l;
        std::vector<size_t> q_idx;
        for (size_t i = 0; i < k; ++i) q_idx.push_back(i);
        d.q_to_p = make_converter(q_idx, p_idx);
        d.p_to_q = make_converter(p_idx, q_idx);
        if (K_) d.s_to_q = make_converter(s_idx, q_idx);
        for (size_t i : q_idx) d.q_mod.push_back(mod_[i]);
        for (size_t j : p_idx) d.p_mod.push_back(mod_[j]);
        for (size_t i = 0; i < k; ++i) {
            const Modulus& qi = mod_[i];
            // (Q P / q_i) mod q_i
            uint64_t prod = 1;
            for (size_t i2 = 0; i2 < k; ++i2)
                if (i2 != i) prod = mul_mod(prod, reduce64(mod_[i2].value, qi), qi);
            uint64_t pm = 1;
            for (size_t j : p_idx) pm = mul_mod(pm, reduce64(mod_[j].value, qi), qi);
            // times 2^64: the tensor product comes out of Montgomery multiplication
            const uint64_t inv = to_mont(inv_mod(mul_mod(prod, pm, qi), qi), qi);
            d.x_inv.push_back(inv);
            d.x_inv_shoup.push_back(shoup(inv, qi.value));
            // t P = w_i q_i + r_i: theta_i = r_i / q_i
            const uint64_t ri = mul_mod(t_mod_q_[i], pm, qi);
            d.theta.push_back(uint64_t((u128(ri) << 64) / qi.value));
            uint64_t ps = 1;
            for (size_t s : s_idx) ps = mul_mod(ps, reduce64(mod_[s].value, qi), qi);
            d.ps_mod_q.push_back(ps);
            const uint64_t psi = K_ ? inv_mod(ps, qi) : 0;
            d.ps_inv.push_back(psi);
            d.ps_inv_shoup.push_back(K_ ? shoup(psi, qi.value) : 0);
        }
        for (size_t jp = 0; jp < A_; ++jp) {
            const size_t j = p_idx[jp];
            const Modulus& pj = mod_[j];
            // Every constant carries (P/p_j)^-1 as well: the scaling then yields
            // y_j' = [y_j (P/p_j)^-1]_{p_j}, the first step of the conversion to Q.
            const uint64_t phi = d.p_to_q.ahat_inv[jp];
            // w_i = (t P - r_i) / q_i = -r_i q_i^-1 (mod p_j), since p_j | P
            for (size_t i = 0; i < k; ++i) {
                const Modulus& qi = mod_[i];
                uint64_t pm = 1;
                for (size_t j2 : p_idx) pm = mul_mod(pm, reduce64(mod_[j2].value, qi), qi);
                const uint64_t ri = mul_mod(t_mod_q_[i], pm, qi);
                const uint64_t qinv = inv_mod(reduce64(qi.value, pj), pj);
                const uint64_t w = mul_mod(neg_mod(reduce64(ri, pj), pj.value), qinv, pj);
                d.omega.push_back(to_mont(mul_mod(w, phi, pj), pj));
            }
            uint64_t qm = 1;
            for (size_t i = 0; i < k; ++i) qm = mul_mod(qm, reduce64(mod_[i].value, pj), pj);
            d.one_mont.push_back(to_mont(phi, pj));
            d.two128_mont.push_back(to_mont(mul_mod(reduce128(u128(1) << 64, pj), phi, pj), pj));
            d.t_q_inv.push_back(to_mont(to_mont(mul_mod(mul_mod(t_mod_q_[j], inv_mod(qm, pj), pj), phi, pj), pj), pj));
        }
    }
}

void Context::ntt_row(uint64_t* row, size_t mi, bool forward) const {
    const ntt::Kernels& kr = ntt::kernels(ntt::choose_path(active_isa(), mod_[mi].value, true));
    (forward ? kr.forward : kr.inverse)(row, row, *ntt_[mi]);
}

// ---------------------------------------------------------------------------
// base conversion
// ---------------------------------------------------------------------------
namespace {

ConvView view_of(const BaseConverter& c) {
    ConvView v;
    v.r = c.from.size();
    v.b = c.to.size();
    v.from = c.from_mod.data();
    v.to = c.to_mod.data();
    v.ahat_inv = c.ahat_inv.data();
    v.ahat_inv_shoup = c.ahat_inv_shoup.data();
    v.ahat_mod = c.ahat_mod.data();
    v.neg_a_mod = c.neg_a_mod.data();
    return v;
}

}  // namespace

const ConvKernels& conv_kernels(Isa isa) {
    return isa == Isa::avx512 ? avx512::conv_table : scalar::conv_table;
}

// in: r rows (coefficient form, row i mod a_i); out: one row per target.
void Context::convert(const BaseConverter& c, const uint64_t* in, uint64_t* out) const {
    conv_kernels(active_isa()).convert(in, out, params_.n, view_of(c));
}

ScaleView Context::scale_view(size_t level) const {
    const MulLevel& d = mul_[level];
    ScaleView s;
    s.k = d.q_mod.size();
    s.a = d.p_mod.size();
    s.q = d.q_mod.data();
    s.p = d.p_mod.data();
    s.x_inv = d.x_inv.data();
    s.x_inv_shoup = d.x_inv_shoup.data();
    s.theta = d.theta.data();
    s.omega = d.omega.data();
    s.t_q_inv = d.t_q_inv.data();
    s.one_mont = d.one_mont.data();
    s.two128_mont = d.two128_mont.data();
    s.p_to_q = view_of(d.p_to_q);
    return s;
}

// ---------------------------------------------------------------------------
// multiplication
// ---------------------------------------------------------------------------
void Context::multiply(const uint64_t* a, const uint64_t* b, size_t count, size_t level, bool ntt_in,
                       uint64_t* out) const {
    const size_t n = params_.n, k = primes_at(level), R = k + A_;
    const MulLevel& d = mul_[level];
    const bool square = a == b;
    const ConvKernels& ck = conv_kernels(active_isa());
    const ScaleView sv = scale_view(level);
    // row r of the extended base: q_r for r < k, aux p_{r-k} after
    auto mod_index = [&](size_t r) { return r < k ? r : L_ + K_ + (r - k); };
    for_each_ct(count, 6 * R * n, [&](size_t lo, size_t hi) {
        // ea, eb: (2, R, n) extended inputs, NTT form; xs: k n (coefficients
        // of an NTT-form input)
        uint64_t* ea = thread_scratch(4 * R * n + k * n);
        uint64_t* eb = ea + 2 * R * n;
        uint64_t* xs = eb + 2 * R * n;
        for (size_t j = lo; j < hi; ++j) {
            // 1. extend each input polynomial to Q P, NTT form
            auto extend = [&](const uint64_t* poly, uint64_t* ext) {
                std::memcpy(ext, poly, k * n * sizeof(uint64_t));
                if (ntt_in) {
                    uint64_t* coeff = xs;  // k rows of coefficients
                    std::memcpy(coeff, poly, k * n * sizeof(uint64_t));
                    for (size_t r = 0; r < k; ++r) ntt_row(coeff + r * n, r, false);
                    convert(d.q_to_p, coeff, ext + k * n);
                } else {
                    convert(d.q_to_p, poly, ext + k * n);
                    for (size_t r = 0; r < k; ++r) ntt_row(ext + r * n, r, true);
                }
                for (size_t r = k; r < R; ++r) ntt_row(ext + r * n, mod_index(r), true);
            };
            const uint64_t* ca = a + j * 2 * k * n;
            const uint64_t* cb = b + j * 2 * k * n;
            extend(ca, ea);
            extend(ca + k * n, ea + R * n);
            if (!square) {
                extend(cb, eb);
                extend(cb + k * n, eb + R * n);
            }
            // 2. tensor product in place (Montgomery): d0 -> ea[0], d1 -> ea[1], d2 -> eb[0]
            for (size_t r = 0; r < R; ++r) {
                const Modulus& m = mod_[mod_index(r)];
                ck.tensor(ea + r * n, ea + (R + r) * n, square ? nullptr : eb + r * n,
                          square ? nullptr : eb + (R + r) * n, eb + r * n, n, m);
            }
            // 3-4. back to coefficients, scale by t/Q into P, convert to Q
            uint64_t* dst = out + j * 3 * k * n;
            uint64_t* polys[3] = {ea, ea + R * n, eb};
            for (int p = 0; p < 3; ++p) {
                uint64_t* dp = polys[p];
                for (size_t r = 0; r < R; ++r) ntt_row(dp + r * n, mod_index(r), false);
                // 3-4. y = round(t d / Q) in P, converted back to Q (bfv.hpp)
                ck.scale_convert(dp, dst + p * k * n, n, sv);
            }
        }
    });
}

// ---------------------------------------------------------------------------
// key switching
// ---------------------------------------------------------------------------
size_t Context::key_switch_scratch(size_t level) const {
    const size_t n = params_.n, k = primes_at(level);
    // digits (k n), accumulators (2 (k + K) n), lifted (k n)
    return (k + 2 * (k + K_) + k) * n;
}

void Context::key_switch_add(const uint64_t* c, size_t level, const uint64_t* key, uint64_t* out0, uint64_t* out1,
                             uint64_t* scratch) const {
    const size_t n = params_.n, k = primes_at(level), T = k + K_, KR = L_ + K_;
    const MulLevel& d = mul_[level];
    const Isa isa = active_isa();
    uint64_t* dig = scratch;
    uint64_t* acc = dig + k * n;  // (2, T, n)
    uint64_t* lifted = acc + 2 * T * n;
    for (size_t tr = 0; tr < T; ++tr) {
        const size_t mi = tr < k ? tr : L_ + (tr - k);  // modulus of this target row
        const size_t kr = tr < k ? tr : L_ + (tr - k);  // its row in the key
        const Modulus& m = mod_[mi];
        const ntt::Kernels& nk = ntt::kernels(ntt::choose_path(isa, m.value, true));
        for (size_t i = 0; i < k; ++i) {
            uint64_t* di = dig + i * n;
            const uint64_t* ci = c + i * n;
            if (mod_[i].value <= m.value) {  // already reduced: transform out of place
                nk.forward(ci, di, *ntt_[mi]);
            } else {
                for (size_t x = 0; x < n; ++x) di[x] = reduce64(ci[x], m);
                nk.forward(di, di, *ntt_[mi]);
            }
        }
        uint64_t* o0 = acc + tr * n;
        uint64_t* o1 = acc + (T + tr) * n;
        const Kernels& kern = dot_kernels(choose_dot_path(isa, m));
        kern.dot2(key + kr * n, 2 * KR * n, KR * n, dig, n, k, o0, o1, n, m);
        ntt_row(o0, mi, false);
        ntt_row(o1, mi, false);
    }
    // divide by P_s: subtract the centred lift of the special rows, times P_s^-1
    for (int p = 0; p < 2; ++p) {
        uint64_t* a = acc + p * T * n;
        convert(d.s_to_q, a + k * n, lifted);
        uint64_t* dst = p == 0 ? out0 : out1;
        for (size_t i = 0; i < k; ++i) {
            const uint64_t q = mod_[i].value, w = d.ps_inv[i], ws = d.ps_inv_shoup[i];
            const uint64_t* ai = a + i * n;
            const uint64_t* li = lifted + i * n;
            uint64_t* o = dst + i * n;
            for (size_t x = 0; x < n; ++x) o[x] = add_mod(o[x], mul_shoup(sub_mod(ai[x], li[x], q), w, ws, q), q);
        }
    }
}

void Context::relinearize(const uint64_t* ct, size_t count, size_t level, const uint64_t* rk, uint64_t* out) const {
    const size_t n = params_.n, k = primes_at(level);
    for_each_ct(count, 3 * k * n, [&](size_t lo, size_t hi) {
        uint64_t* scratch = thread_scratch(key_switch_scratch(level));
        for (size_t j = lo; j < hi; ++j) {
            const uint64_t* src = ct + j * 3 * k * n;
            uint64_t* dst = out + j * 2 * k * n;
            if (dst != src) std::memmove(dst, src, 2 * k * n * sizeof(uint64_t));
            key_switch_add(src + 2 * k * n, level, rk, dst, dst + k * n, scratch);
        }
    });
}

void Context::galois_permute(const uint64_t* a, size_t rows, uint64_t g, uint64_t* out) const {
    const size_t n = params_.n;
    const uint64_t two_n = 2 * uint64_t(n);
    for (size_t r = 0; r < rows; ++r) {
        const uint64_t q = mod_[r].value;
        const uint64_t* src = a + r * n;
        uint64_t* dst = out + r * n;
        uint64_t e = 0;  // i g mod 2n
        for (size_t i = 0; i < n; ++i) {
            const uint64_t idx = e & (n - 1);
            const uint64_t neg = uint64_t(e >= n);
            const uint64_t v = src[i];
            dst[idx] = (v & ~mask_of(neg)) | (neg_mod(v, q) & mask_of(neg));
            e = (e + g) & (two_n - 1);
        }
    }
}

void Context::apply_galois(const uint64_t* ct, size_t count, size_t level, uint64_t g, const uint64_t* gk,
                           uint64_t* out) const {
    const size_t n = params_.n, k = primes_at(level);
    for_each_ct(count, 2 * k * n, [&](size_t lo, size_t hi) {
        uint64_t* scratch = thread_scratch(key_switch_scratch(level) + k * n);
        uint64_t* perm = scratch + key_switch_scratch(level);
        for (size_t j = lo; j < hi; ++j) {
            const uint64_t* src = ct + j * 2 * k * n;
            uint64_t* dst = out + j * 2 * k * n;
            galois_permute(src + k * n, k, g, perm);
            galois_permute(src, k, g, dst);
            std::memset(dst + k * n, 0, k * n * sizeof(uint64_t));
            key_switch_add(perm, level, gk, dst, dst + k * n, scratch);
        }
    });
}

// ---------------------------------------------------------------------------
// keys
// ---------------------------------------------------------------------------
void Context::keygen_switch(const uint64_t* sk, const uint64_t* s_prime, const uint8_t seed[16],
                            uint64_t* out) const {
    if (K_ == 0) throw std::invalid_argument("key switching needs at least one special prime");
    const size_t n = params_.n, KR = L_ + K_;
    const MulLevel& d = mul_[0];
    std::vector<int64_t> e(n);
    std::vector<uint64_t> er(KR * n);
    for (size_t i = 0; i < L_; ++i) {
        uint64_t* bi = out + i * 2 * KR * n;
        uint64_t* ai = bi + KR * n;
        uniform_rows(seed, kDomainKsk | (uint64_t(i) << 16), KR, ai);
        Stream st(seed, kDomainKskError | i);
        sample_cbd(st, e.data(), n);
        lift_rows(e.data(), n, mod_.data(), KR, er.data());
        for (size_t r = 0; r < KR; ++r) {
            ntt_row(er.data() + r * n, r, true);
            const uint64_t q = mod_[r].value;
            uint64_t* br = bi + r * n;
            ntt::pointwise_mul(ai + r * n, sk + r * n, br, *ntt_[r]);
            const uint64_t* err = er.data() + r * n;
            for (size_t x = 0; x < n; ++x) br[x] = neg_mod(add_mod(br[x], err[x], q), q);
            if (r == i) {  // + P_s g_i s': only the digit's own prime
                const Modulus& m = mod_[r];
                const uint64_t ps = d.ps_mod_q[i], pss = shoup(ps, q);
                const uint64_t* sp = s_prime + r * n;
                for (size_t x = 0; x < n; ++x) br[x] = add_mod(br[x], mul_shoup(sp[x], ps, pss, m.value), q);
            }
        }
    }
    secure_wipe(e.data(), n * sizeof(int64_t));
    secure_wipe(er.data(), er.size() * sizeof(uint64_t));
}

void Context::keygen_relin(const uint64_t* sk, const uint8_t seed[16], uint64_t* out) const {
    const size_t n = params_.n;
    std::vector<uint64_t> s2(L_ * n);
    for (size_t i = 0; i < L_; ++i) ntt::pointwise_mul(sk + i * n, sk + i * n, s2.data() + i * n, *ntt_[i]);
    keygen_switch(sk, s2.data(), seed, out);
    secure_wipe(s2.data(), s2.size() * sizeof(uint64_t));
}

void Context::keygen_galois(const uint64_t* sk, uint64_t g, const uint8_t seed[16], uint64_t* out) const {
    const size_t n = params_.n;
    std::vector<uint64_t> s(L_ * n), sg(L_ * n);
    std::memcpy(s.data(), sk, L_ * n * sizeof(uint64_t));
    for (size_t i = 0; i < L_; ++i) ntt_row(s.data() + i * n, i, false);
    galois_permute(s.data(), L_, g, sg.data());
    for (size_t i = 0; i < L_; ++i) ntt_row(sg.data() + i * n, i, true);
    keygen_switch(sk, sg.data(), seed, out);
    secure_wipe(s.data(), s.size() * sizeof(uint64_t));
    secure_wipe(sg.data(), sg.size() * sizeof(uint64_t));
}

}  // namespace safelight::bfv
