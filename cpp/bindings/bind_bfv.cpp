// Python bindings of the BFV engine: BfvContext wraps bfv::Context. Arrays
// are C-contiguous uint64 with the layouts documented in bfv.hpp; shapes are
// checked here (ValueError / TypeError), the GIL is released around every
// computation, and outputs are freshly allocated numpy arrays unless a method
// says it works in place. The documented interface is safelight.he.bfv.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "array_view.hpp"
#include "safelight/bfv.hpp"

namespace safelight::bind {

namespace {

using bfv::Context;

std::array<uint8_t, 16> seed16(const py::bytes& b, const char* name) {
    std::string s = b;
    if (s.size() != 16)
        throw py::value_error(std::string(name) + " must be exactly 16 bytes, got " + std::to_string(s.size()));
    std::array<uint8_t, 16> out;
    std::memcpy(out.data(), s.data(), 16);
    return out;
}

py::array_t<uint64_t> new_u64(const std::vector<py::ssize_t>& shape) { return py::array_t<uint64_t>(shape); }

uint64_t* ptr(py::array_t<uint64_t>& a) { return a.mutable_data(); }

class BfvContext {
public:
    BfvContext(size_t n, const std::vector<uint64_t>& q, const std::vector<uint64_t>& special, bool t_pow2,
               unsigned t_bits, uint64_t t) {
        bfv::Params p;
        p.n = n;
        p.q = q;
        p.special = special;
        p.t_pow2 = t_pow2;
        p.t_bits = t_bits;
        p.t = t;
        try {
            ctx_ = std::make_shared<Context>(p);
        } catch (const std::invalid_argument& e) {
            throw py::value_error(e.what());
        }
    }

    size_t n() const { return ctx_->n(); }
    size_t num_q() const { return ctx_->num_q(); }
    size_t num_special() const { return ctx_->num_special(); }
    std::vector<std::string> dot_paths() const {
        std::vector<std::string> out;
        for (size_t i = 0; i < ctx_->num_q(); ++i)
            out.emplace_back(bfv::dot_path_name(bfv::choose_dot_path(active_isa(), ctx_->modulus(i))));
        return out;
    }
    double log2_q(size_t level) const {
        check_level(level);
        return ctx_->level(level).log2_q;
    }

    // ---- keys ----
    py::array_t<uint64_t> keygen_secret(const py::bytes& seed) const {
        auto s = seed16(seed, "seed");
        auto out = new_u64({py::ssize_t(ctx_->num_q() + ctx_->num_special()), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->keygen_secret(s.data(), o);
        return out;
    }

    py::array_t<uint64_t> keygen_public(const py::array& sk, const py::bytes& seed, const py::bytes& eseed) const {
        const uint64_t* s = secret(sk);
        auto a = seed16(seed, "seed");
        auto e = seed16(eseed, "error_seed");
        auto out = new_u64({2, py::ssize_t(num_q()), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->keygen_public(s, a.data(), e.data(), o);
        return out;
    }

    py::array_t<uint64_t> uniform_rows(const py::bytes& seed, uint64_t nonce_base, size_t k) const {
        auto s = seed16(seed, "seed");
        check_k(k);
        auto out = new_u64({py::ssize_t(k), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->uniform_rows(s.data(), nonce_base, k, o);
        return out;
    }

    // ---- encryption ----
    py::tuple encrypt_sk(const py::array& values, const py::array& sk, const py::bytes& seed, bool ntt) const {
        const size_t count = plain_count(values, "values");
        const uint64_t* v = view<uint64_t>(values, "values", false).data;
        const uint64_t* s = secret(sk);
        auto sd = seed16(seed, "seed");
        auto out = new_u64({py::ssize_t(count), 2, py::ssize_t(num_q()), py::ssize_t(n())});
        py::array_t<uint8_t> seeds({py::ssize_t(count), py::ssize_t(16)});
        uint64_t* o = ptr(out);
        uint8_t* so = seeds.mutable_data();
        {
            py::gil_scoped_release nogil;
            ctx_->encrypt_sk(v, count, s, sd.data(), ntt, so, o);
        }
        return py::make_tuple(out, seeds);
    }

    py::array_t<uint64_t> encrypt_pk(const py::array& values, const py::array& pk, const py::bytes& seed,
                                     bool ntt) const {
        const size_t count = plain_count(values, "values");
        const uint64_t* v = view<uint64_t>(values, "values", false).data;
        const uint64_t* p = public_key(pk);
        auto sd = seed16(seed, "seed");
        auto out = new_u64({py::ssize_t(count), 2, py::ssize_t(num_q()), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->encrypt_pk(v, count, p, sd.data(), ntt, o);
        return out;
    }

    // c1 of every ciphertext of `ct` (count, 2, k, n), in place, from seeds (count, 16)
    void expand_seeded_c1(const py::array& seeds, const py::array& ct, bool ntt) const {
        auto [count, size, k] = ct_shape(ct, "ct");
        if (size != 2) throw py::value_error("seeded ciphertexts have 2 polynomials");
        if (seeds.ndim() != 2 || size_t(seeds.shape(0)) != count || seeds.shape(1) != 16)
            throw py::value_error("seeds must have shape (" + std::to_string(count) + ", 16), got " +
                                  shape_str(seeds));
        const uint8_t* s = view<uint8_t>(seeds, "seeds", false).data;
        uint64_t* c = view<uint64_t>(ct, "ct", true).data;
        const size_t nn = n();
        py::gil_scoped_release nogil;
        ctx_->expand_seeded_c1(s, count, k, ntt, c + k * nn, 2 * k * nn);
    }

    // ---- decryption ----
    py::tuple decrypt(const py::array& ct, const py::array& sk, bool ntt) const {
        auto [count, size, k] = ct_shape(ct, "ct");
        const uint64_t* c = view<uint64_t>(ct, "ct", false).data;
        const uint64_t* s = secret(sk);
        auto out = new_u64({py::ssize_t(count), py::ssize_t(n())});
        auto worst = new_u64({py::ssize_t(count)});
        uint64_t* o = ptr(out);
        uint64_t* w = ptr(worst);
        {
            py::gil_scoped_release nogil;
            ctx_->decrypt(c, count, size, num_q() - k, ntt, s, o, w);
        }
        return py::make_tuple(out, worst);
    }

    py::array_t<uint64_t> phase(const py::array& ct, const py::array& sk, bool ntt) const {
        auto [count, size, k] = ct_shape(ct, "ct");
        const uint64_t* c = view<uint64_t>(ct, "ct", false).data;
        const uint64_t* s = secret(sk);
        auto out = new_u64({py::ssize_t(count), py::ssize_t(k), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->phase(c, count, size, num_q() - k, ntt, s, o);
        return out;
    }

    py::array_t<int64_t> noise_budget(const py::array& ct, const py::array& sk, bool ntt) const {
        auto [count, size, k] = ct_shape(ct, "ct");
        const uint64_t* c = view<uint64_t>(ct, "ct", false).data;
        const uint64_t* s = secret(sk);
        py::array_t<int64_t> out({py::ssize_t(count)});
        int64_t* o = out.mutable_data();
        py::gil_scoped_release nogil;
        ctx_->noise_budget(c, count, size, num_q() - k, ntt, s, o);
        return out;
    }

    // ---- arithmetic ----
    py::array_t<uint64_t> add(const py::array& a, const py::array& b) const { return binary(a, b, false); }
    py::array_t<uint64_t> sub(const py::array& a, const py::array& b) const { return binary(a, b, true); }
    py::array_t<uint64_t> negate(const py::array& a) const {
        auto [polys, k] = rows(a, "a");
        auto out = like(a);
        const uint64_t* pa = view<uint64_t>(a, "a", false).data;
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->negate(pa, o, polys, k);
        return out;
    }

    void to_ntt(const py::array& a) const { transform(a, true); }
    void from_ntt(const py::array& a) const { transform(a, false); }

    py::array_t<uint64_t> scale_plain(const py::array& values, size_t level) const {
        check_level(level);
        const size_t polys = plain_count(values, "values");
        const uint64_t* v = view<uint64_t>(values, "values", false).data;
        const size_t k = ctx_->primes_at(level);
        auto out = new_u64({py::ssize_t(polys), py::ssize_t(k), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->scale_plain(v, polys, level, o);
        return out;
    }

    py::array_t<uint64_t> lift_plain(const py::array& values, size_t k) const {
        check_k(k);
        const size_t polys = plain_count(values, "values");
        const uint64_t* v = view<uint64_t>(values, "values", false).data;
        auto out = new_u64({py::ssize_t(polys), py::ssize_t(k), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->lift_plain(v, polys, k, o);
        return out;
    }

    py::array_t<uint64_t> multiply_plain_ntt(const py::array& ct, const py::array& pt) const {
        auto [count, size, k] = ct_shape(ct, "ct");
        if (pt.ndim() != 3 || size_t(pt.shape(1)) != k || size_t(pt.shape(2)) != n() ||
            (size_t(pt.shape(0)) != count && pt.shape(0) != 1))
            throw py::value_error("pt must have shape (" + std::to_string(count) + " or 1, " + std::to_string(k) +
                                  ", " + std::to_string(n()) + "), got " + shape_str(pt));
        const bool broadcast = pt.shape(0) == 1 && count != 1;
        const uint64_t* c = view<uint64_t>(ct, "ct", false).data;
        const uint64_t* p = view<uint64_t>(pt, "pt", false).data;
        auto out = like(ct);
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->multiply_plain_ntt(c, count, size, k, p, broadcast, o);
        return out;
    }

    py::array_t<uint64_t> dot_plain(const py::array& ct, const py::array& pt, bool threads) const {
        auto [m, size, k] = ct_shape(ct, "cts");
        if (size != 2) throw py::value_error("dot_plain needs ciphertexts of 2 polynomials");
        if (pt.ndim() != 4 || size_t(pt.shape(1)) != m || size_t(pt.shape(2)) != k || size_t(pt.shape(3)) != n())
            throw py::value_error("pts must have shape (k, " + std::to_string(m) + ", " + std::to_string(k) +
                                  ", " + std::to_string(n()) + "), got " + shape_str(pt));
        const size_t kk = size_t(pt.shape(0));
        const uint64_t* c = view<uint64_t>(ct, "cts", false).data;
        const uint64_t* p = view<uint64_t>(pt, "pts", false).data;
        auto out = new_u64({py::ssize_t(kk), 2, py::ssize_t(k), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->dot_plain(c, m, p, kk, k, o, threads);
        return out;
    }

    void rerandomize(const py::array& ct, const py::array& pk, const py::bytes& seed, unsigned flood_bits,
                     bool ntt) const {
        auto [count, size, k] = ct_shape(ct, "ct");
        if (size != 2) throw py::value_error("rerandomize needs ciphertexts of 2 polynomials");
        if (flood_bits > bfv::kMaxFloodBits)
            throw py::value_error("flood_bits must be at most " + std::to_string(bfv::kMaxFloodBits));
        uint64_t* c = view<uint64_t>(ct, "ct", true).data;
        const uint64_t* p = public_key(pk);
        auto sd = seed16(seed, "seed");
        py::gil_scoped_release nogil;
        ctx_->rerandomize(c, count, num_q() - k, ntt, p, sd.data(), flood_bits);
    }

    py::array_t<uint64_t> mod_switch_to_next(const py::array& ct, bool ntt) const {
        auto [count, size, k] = ct_shape(ct, "ct");
        if (k < 2) throw py::value_error("the ciphertext is at the last level: no prime left to drop");
        const uint64_t* c = view<uint64_t>(ct, "ct", false).data;
        auto out = new_u64({py::ssize_t(count), py::ssize_t(size), py::ssize_t(k - 1), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->mod_switch_to_next(c, count, size, num_q() - k, ntt, o);
        return out;
    }

    // ---- multiplication, key switching ----
    size_t num_aux() const { return ctx_->num_aux(); }
    std::vector<uint64_t> aux_primes() const {
        std::vector<uint64_t> out;
        for (size_t j = 0; j < ctx_->num_aux(); ++j) out.push_back(ctx_->aux_modulus(j).value);
        return out;
    }

    py::array_t<uint64_t> multiply(const py::array& a, const py::array& b, bool ntt) const {
        auto [count, size, k] = ct_shape(a, "a");
        auto [count_b, size_b, k_b] = ct_shape(b, "b");
        if (size != 2 || size_b != 2 || count != count_b || k != k_b)
            throw py::value_error("multiply takes two batches of the same shape (count, 2, k, n), got " +
                                  shape_str(a) + " and " + shape_str(b));
        const uint64_t* pa = view<uint64_t>(a, "a", false).data;
        const uint64_t* pb = view<uint64_t>(b, "b", false).data;
        auto out = new_u64({py::ssize_t(count), 3, py::ssize_t(k), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->multiply(pa, pb, count, num_q() - k, ntt, o);
        return out;
    }

    py::array_t<uint64_t> keygen_relin(const py::array& sk, const py::bytes& seed) const {
        return switch_key(sk, seed, 0, true);
    }
    py::array_t<uint64_t> keygen_galois(const py::array& sk, uint64_t g, const py::bytes& seed) const {
        if (g % 2 == 0 || g >= 2 * n()) throw py::value_error("a Galois element is odd and below 2n");
        return switch_key(sk, seed, g, false);
    }

    py::array_t<uint64_t> relinearize(const py::array& ct, const py::array& rk) const {
        auto [count, size, k] = ct_shape(ct, "ct");
        if (size != 3) throw py::value_error("relinearize takes ciphertexts of 3 polynomials");
        const uint64_t* c = view<uint64_t>(ct, "ct", false).data;
        const uint64_t* key = switching_key(rk);
        auto out = new_u64({py::ssize_t(count), 2, py::ssize_t(k), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->relinearize(c, count, num_q() - k, key, o);
        return out;
    }

    py::array_t<uint64_t> apply_galois(const py::array& ct, uint64_t g, const py::array& gk) const {
        auto [count, size, k] = ct_shape(ct, "ct");
        if (size != 2) throw py::value_error("Galois automorphisms take ciphertexts of 2 polynomials");
        if (g % 2 == 0 || g >= 2 * n()) throw py::value_error("a Galois element is odd and below 2n");
        const uint64_t* c = view<uint64_t>(ct, "ct", false).data;
        const uint64_t* key = switching_key(gk);
        auto out = new_u64({py::ssize_t(count), 2, py::ssize_t(k), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        ctx_->apply_galois(c, count, num_q() - k, g, key, o);
        return out;
    }

    // Median-free timing helper for benchmarks: best seconds of `repeats`
    // multiply + relinearise calls on internal buffers (one thread, C++ timed).
    double time_multiply_relin(const py::array& a, const py::array& b, const py::array& rk, size_t repeats) const {
        auto [count, size, k] = ct_shape(a, "a");
        if (count != 1 || size != 2) throw py::value_error("time_multiply_relin takes one ciphertext");
        const uint64_t* pa = view<uint64_t>(a, "a", false).data;
        const uint64_t* pb = view<uint64_t>(b, "b", false).data;
        const uint64_t* key = switching_key(rk);
        std::vector<uint64_t> prod(3 * k * n()), res(2 * k * n());
        py::gil_scoped_release nogil;
        double best = 1e30;
        for (size_t r = 0; r <= repeats; ++r) {
            auto t0 = std::chrono::steady_clock::now();
            ctx_->multiply(pa, pb, 1, num_q() - k, false, prod.data());
            ctx_->relinearize(prod.data(), 1, num_q() - k, key, res.data());
            auto t1 = std::chrono::steady_clock::now();
            if (r) best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
        }
        return best;
    }

    // True when every row i of a (..., k, n) holds values below q_i.
    bool is_reduced(const py::array& a) const {
        auto [polys, k] = rows(a, "a");
        const uint64_t* pa = view<uint64_t>(a, "a", false).data;
        const ntt::Kernels& kr = ntt::kernels(ntt::choose_path(active_isa(), 0, false));
        const size_t nn = n();
        py::gil_scoped_release nogil;
        for (size_t p = 0; p < polys; ++p)
            for (size_t i = 0; i < k; ++i)
                if (!kr.all_below(pa + (p * k + i) * nn, nn, ctx_->modulus(i).value)) return false;
        return true;
    }

private:
    std::shared_ptr<Context> ctx_;

    py::array_t<uint64_t> switch_key(const py::array& sk, const py::bytes& seed, uint64_t g, bool relin) const {
        if (ctx_->num_special() == 0)
            throw py::value_error("key switching needs special primes: give special_bits (or special_primes)");
        const uint64_t* s = secret(sk);
        auto sd = seed16(seed, "seed");
        const size_t L = num_q(), KR = L + num_special();
        auto out = new_u64({py::ssize_t(L), 2, py::ssize_t(KR), py::ssize_t(n())});
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        if (relin)
            ctx_->keygen_relin(s, sd.data(), o);
        else
            ctx_->keygen_galois(s, g, sd.data(), o);
        return out;
    }

    const uint64_t* switching_key(const py::array& key) const {
        const size_t L = num_q(), KR = L + num_special();
        if (num_special() == 0) throw py::value_error("key switching needs special primes");
        if (key.ndim() != 4 || size_t(key.shape(0)) != L || key.shape(1) != 2 || size_t(key.shape(2)) != KR ||
            size_t(key.shape(3)) != n())
            throw py::value_error("a key-switching key must have shape (" + std::to_string(L) + ", 2, " +
                                  std::to_string(KR) + ", " + std::to_string(n()) + ")");
        return view<uint64_t>(key, "key", false).data;
    }

    void check_level(size_t level) const {
        if (level >= num_q())
            throw py::value_error("level must be below " + std::to_string(num_q()) + ", got " + std::to_string(level));
    }
    void check_k(size_t k) const {
        if (k < 1 || k > num_q())
            throw py::value_error("a polynomial has 1 to " + std::to_string(num_q()) + " rows, got " + std::to_string(k));
    }

    size_t plain_count(const py::array& v, const char* name) const {
        if (v.ndim() != 2 || size_t(v.shape(1)) != n())
            throw py::value_error(std::string(name) + " must have shape (count, " + std::to_string(n()) + "), got " +
                                  shape_str(v));
        view<uint64_t>(v, name, false);
        return size_t(v.shape(0));
    }

    const uint64_t* secret(const py::array& sk) const {
        const size_t rows = num_q() + num_special();
        if (sk.ndim() != 2 || size_t(sk.shape(0)) != rows || size_t(sk.shape(1)) != n())
            throw py::value_error("secret key must have shape (" + std::to_string(rows) + ", " + std::to_string(n()) +
                                  ")");
        return view<uint64_t>(sk, "sk", false).data;
    }
    const uint64_t* public_key(const py::array& pk) const {
        if (pk.ndim() != 3 || pk.shape(0) != 2 || size_t(pk.shape(1)) != num_q() || size_t(pk.shape(2)) != n())
            throw py::value_error("public key must have shape (2, " + std::to_string(num_q()) + ", " +
                                  std::to_string(n()) + ")");
        return view<uint64_t>(pk, "pk", false).data;
    }

    // (count, size, k, n)
    std::tuple<size_t, size_t, size_t> ct_shape(const py::array& a, const char* name) const {
        if (a.ndim() != 4 || size_t(a.shape(3)) != n() || a.shape(1) < 2 || a.shape(1) > 3 || a.shape(2) < 1 ||
            size_t(a.shape(2)) > num_q())
            throw py::value_error(std::string(name) + " must have shape (count, 2 or 3, k, " + std::to_string(n()) +
                                  ") with 1 <= k <= " + std::to_string(num_q()) + ", got " + shape_str(a));
        view<uint64_t>(a, name, false);
        return {size_t(a.shape(0)), size_t(a.shape(1)), size_t(a.shape(2))};
    }

    // (..., k, n): number of polynomials and k
    std::pair<size_t, size_t> rows(const py::array& a, const char* name) const {
        if (a.ndim() < 2 || size_t(a.shape(a.ndim() - 1)) != n() || a.shape(a.ndim() - 2) < 1 ||
            size_t(a.shape(a.ndim() - 2)) > num_q())
            throw py::value_error(std::string(name) + " must have shape (..., k, " + std::to_string(n()) +
                                  ") with 1 <= k <= " + std::to_string(num_q()) + ", got " + shape_str(a));
        const size_t k = size_t(a.shape(a.ndim() - 2));
        return {size_t(a.size()) / (k * n()), k};
    }

    py::array_t<uint64_t> like(const py::array& a) const {
        std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
        return new_u64(shape);
    }

    py::array_t<uint64_t> binary(const py::array& a, const py::array& b, bool subtract) const {
        auto [polys, k] = rows(a, "a");
        if (a.ndim() != b.ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), b.shape()))
            throw py::value_error("operands must have the same shape, got " + shape_str(a) + " and " + shape_str(b));
        const uint64_t* pa = view<uint64_t>(a, "a", false).data;
        const uint64_t* pb = view<uint64_t>(b, "b", false).data;
        auto out = like(a);
        uint64_t* o = ptr(out);
        py::gil_scoped_release nogil;
        if (subtract)
            ctx_->sub(pa, pb, o, polys, k);
        else
            ctx_->add(pa, pb, o, polys, k);
        return out;
    }

    void transform(const py::array& a, bool forward) const {
        auto [polys, k] = rows(a, "a");
        uint64_t* pa = view<uint64_t>(a, "a", true).data;
        py::gil_scoped_release nogil;
        if (forward)
            ctx_->to_ntt(pa, polys, k);
        else
            ctx_->from_ntt(pa, polys, k);
    }
};

}  // namespace

void bind_bfv(py::module_& m) {
    py::class_<BfvContext>(m, "BfvContext",
                           "BFV context over RNS primes (see safelight.he.bfv for the documented interface).")
        .def(py::init<size_t, const std::vector<uint64_t>&, const std::vector<uint64_t>&, bool, unsigned, uint64_t>(),
             py::arg("n"), py::arg("q"), py::arg("special"), py::arg("t_pow2"), py::arg("t_bits"), py::arg("t"))
        .def_property_readonly("n", &BfvContext::n)
        .def_property_readonly("num_q", &BfvContext::num_q)
        .def_property_readonly("num_special", &BfvContext::num_special)
        .def("dot_paths", &BfvContext::dot_paths)
        .def("log2_q", &BfvContext::log2_q, py::arg("level"))
        .def("keygen_secret", &BfvContext::keygen_secret, py::arg("seed"))
        .def("keygen_public", &BfvContext::keygen_public, py::arg("sk"), py::arg("seed"), py::arg("error_seed"))
        .def("uniform_rows", &BfvContext::uniform_rows, py::arg("seed"), py::arg("nonce_base"), py::arg("k"))
        .def("encrypt_sk", &BfvContext::encrypt_sk, py::arg("values"), py::arg("sk"), py::arg("seed"), py::arg("ntt"))
        .def("encrypt_pk", &BfvContext::encrypt_pk, py::arg("values"), py::arg("pk"), py::arg("seed"), py::arg("ntt"))
        .def("expand_seeded_c1", &BfvContext::expand_seeded_c1, py::arg("seeds"), py::arg("ct"), py::arg("ntt"))
        .def("decrypt", &BfvContext::decrypt, py::arg("ct"), py::arg("sk"), py::arg("ntt"))
        .def("phase", &BfvContext::phase, py::arg("ct"), py::arg("sk"), py::arg("ntt"))
        .def("noise_budget", &BfvContext::noise_budget, py::arg("ct"), py::arg("sk"), py::arg("ntt"))
        .def("add", &BfvContext::add)
        .def("sub", &BfvContext::sub)
        .def("negate", &BfvContext::negate)
        .def("to_ntt", &BfvContext::to_ntt)
        .def("from_ntt", &BfvContext::from_ntt)
        .def("scale_plain", &BfvContext::scale_plain, py::arg("values"), py::arg("level"))
        .def("lift_plain", &BfvContext::lift_plain, py::arg("values"), py::arg("k"))
        .def("multiply_plain_ntt", &BfvContext::multiply_plain_ntt, py::arg("ct"), py::arg("pt"))
        .def("dot_plain", &BfvContext::dot_plain, py::arg("cts"), py::arg("pts"), py::arg("threads") = true)
        .def("rerandomize", &BfvContext::rerandomize, py::arg("ct"), py::arg("pk"), py::arg("seed"),
             py::arg("flood_bits"), py::arg("ntt"))
        .def("mod_switch_to_next", &BfvContext::mod_switch_to_next, py::arg("ct"), py::arg("ntt"))
        .def("is_reduced", &BfvContext::is_reduced, py::arg("a"))
        .def_property_readonly("num_aux", &BfvContext::num_aux)
        .def("aux_primes", &BfvContext::aux_primes)
        .def("multiply", &BfvContext::multiply, py::arg("a"), py::arg("b"), py::arg("ntt"))
        .def("keygen_relin", &BfvContext::keygen_relin, py::arg("sk"), py::arg("seed"))
        .def("keygen_galois", &BfvContext::keygen_galois, py::arg("sk"), py::arg("g"), py::arg("seed"))
        .def("relinearize", &BfvContext::relinearize, py::arg("ct"), py::arg("rk"))
        .def("apply_galois", &BfvContext::apply_galois, py::arg("ct"), py::arg("g"), py::arg("gk"))
        .def("time_multiply_relin", &BfvContext::time_multiply_relin, py::arg("a"), py::arg("b"), py::arg("rk"),
             py::arg("repeats"));
    m.def("bfv_max_modulus_bits", &bfv::max_modulus_bits_128, py::arg("n"),
          "Largest log2(q P) for 128-bit classical security (HomomorphicEncryption.org table, ternary secret).");
}

}  // namespace safelight::bind
