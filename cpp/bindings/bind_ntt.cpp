// Python bindings of the NTT engine: NttPlan(n, primes) holds the tables of
// one ring dimension and a list of RNS primes; its forward / inverse /
// pointwise methods work on C-contiguous uint64 arrays of shape (k, n) (one
// prime per row) or (n,) for a single prime, in place allowed, GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "array_view.hpp"
#include "safelight/ntt.hpp"
#include "safelight/parallel.hpp"

namespace safelight::bind {

namespace {

// Rows run on worker threads only when there is enough work to pay for them.
constexpr size_t kMinParallelElements = size_t(1) << 16;

class NttPlan {
public:
    NttPlan(size_t n, const std::vector<uint64_t>& primes) : n_(n), primes_(primes) {
        if (primes.empty()) throw py::value_error("NttPlan needs at least one prime");
        for (uint64_t q : primes_) {
            try {
                tables_.push_back(ntt::tables(n, q));
            } catch (const std::invalid_argument& e) {
                throw py::value_error(e.what());
            }
        }
    }

    size_t n() const { return n_; }
    const std::vector<uint64_t>& primes() const { return primes_; }
    std::vector<uint64_t> roots() const {
        std::vector<uint64_t> r;
        for (const auto& t : tables_) r.push_back(t->psi);
        return r;
    }
    std::vector<std::string> paths(bool ifma) const {
        std::vector<std::string> out;
        for (uint64_t q : primes_) out.emplace_back(ntt::path_name(ntt::choose_path(active_isa(), q, ifma)));
        return out;
    }

    void forward(const py::array& a, const py::array& out, bool ifma) const {
        transform(a, out, ifma, true, "forward");
    }
    void inverse(const py::array& a, const py::array& out, bool ifma) const {
        transform(a, out, ifma, false, "inverse");
    }

    void pointwise(const py::array& a, const py::array& b, const py::array& out) const {
        auto va = checked(a, "a", false, "pointwise");
        auto vb = checked(b, "b", false, "pointwise");
        auto vo = checked(out, "out", true, "pointwise");
        check_overlap(va, vo, "pointwise");
        check_overlap(vb, vo, "pointwise");
        const ntt::Kernels& k = ntt::kernels(ntt::choose_path(active_isa(), 0, false));
        check_range(va, "a", "pointwise", k);
        check_range(vb, "b", "pointwise", k);
        py::gil_scoped_release nogil;
        for_rows([&](size_t r) {
            const size_t off = r * n_;
            ntt::pointwise_mul(va.data + off, vb.data + off, vo.data + off, *tables_[r]);
        });
    }

    // Best wall time (seconds) of one call of the row-0 kernel, timed in C++
    // over `repeats` batches of `inner` calls on an internal buffer (what a
    // C++ benchmark of the kernel measures, without the binding's overhead).
    double time_kernel(const std::string& direction, size_t repeats, size_t inner, bool ifma) const {
        if (direction != "forward" && direction != "inverse")
            throw py::value_error("direction must be 'forward' or 'inverse', got '" + direction + "'");
        if (repeats == 0 || inner == 0) throw py::value_error("repeats and inner must be positive");
        const ntt::Tables& t = *tables_[0];
        const ntt::Kernels& k = ntt::kernels(ntt::choose_path(active_isa(), t.q, ifma));
        auto fn = direction == "forward" ? k.forward : k.inverse;
        std::vector<uint64_t> buf(n_ + 8);
        uint64_t* a = buf.data();
        while (reinterpret_cast<uintptr_t>(a) % 64) ++a;
        for (size_t i = 0; i < n_; ++i) a[i] = (i * 0x9E3779B97F4A7C15ULL) % t.q;
        py::gil_scoped_release nogil;
        fn(a, a, t);  // warm-up: caches and tables
        double best = 1e30;
        for (size_t r = 0; r < repeats; ++r) {
            auto t0 = std::chrono::steady_clock::now();
            for (size_t i = 0; i < inner; ++i) fn(a, a, t);  // outputs stay in [0, q)
            auto t1 = std::chrono::steady_clock::now();
            best = std::min(best, std::chrono::duration<double>(t1 - t0).count() / double(inner));
        }
        return best;
    }

private:
    size_t n_;
    std::vector<uint64_t> primes_;
    std::vector<std::shared_ptr<const ntt::Tables>> tables_;

    template <class Body>
    void for_rows(Body body) const {
        const size_t k = primes_.size();
        const size_t min_rows = std::max<size_t>(2, kMinParallelElements / n_);
        if (k < min_rows) {  // inline, without even asking for the thread count (a sysfs read)
            for (size_t r = 0; r < k; ++r) body(r);
            return;
        }
        parallel_for(k, min_rows, 1, [&](size_t lo, size_t hi) {
            for (size_t r = lo; r < hi; ++r) body(r);
        });
    }

    // A uint64 C-contiguous array of shape (k, n), or (n,) when k == 1.
    View<uint64_t> checked(const py::array& a, const char* name, bool writable, const char* what) const {
        const size_t k = primes_.size();
        const bool ok = (a.ndim() == 2 && size_t(a.shape(0)) == k && size_t(a.shape(1)) == n_) ||
                        (k == 1 && a.ndim() == 1 && size_t(a.shape(0)) == n_);
        if (!ok)
            throw py::value_error(std::string("ntt ") + what + ": " + name + " must have shape (" +
                                  std::to_string(k) + ", " + std::to_string(n_) + ")" +
                                  (k == 1 ? " or (" + std::to_string(n_) + ",)" : std::string()) +
                                  " (one row per prime), got " + shape_str(a));
        View<uint64_t> v = view<uint64_t>(a, name, writable);
        if (reinterpret_cast<uintptr_t>(v.data) % alignof(uint64_t))
            throw py::type_error(std::string(name) + " must be aligned to 8 bytes");
        return v;
    }

    void check_range(const View<uint64_t>& v, const char* name, const char* what,
                     const ntt::Kernels& k) const {
        for (size_t r = 0; r < primes_.size(); ++r) {
            if (!k.all_below(v.data + r * n_, n_, primes_[r]))
                throw py::value_error(std::string("ntt ") + what + ": " + name + " row " +
                                      std::to_string(r) + " has values >= its prime " +
                                      std::to_string(primes_[r]) +
                                      "; reduce the input mod q first (values must lie in [0, q))");
        }
    }

    static void check_overlap(const View<uint64_t>& in, const View<uint64_t>& out, const char* what) {
        const uintptr_t i0 = reinterpret_cast<uintptr_t>(in.data), o0 = reinterpret_cast<uintptr_t>(out.data);
        const uintptr_t bytes = in.size * sizeof(uint64_t);
        if (i0 != o0 && i0 < o0 + bytes && o0 < i0 + bytes)
            throw py::value_error(std::string("ntt ") + what +
                                  ": out must be the input itself (in place) or not overlap it");
    }

    void transform(const py::array& a, const py::array& out, bool ifma, bool fwd, const char* what) const {
        auto va = checked(a, "a", false, what);
        auto vo = checked(out, "out", true, what);
        check_overlap(va, vo, what);
        const Isa isa = active_isa();
        std::vector<const ntt::Kernels*> ks;
        for (uint64_t q : primes_) ks.push_back(&ntt::kernels(ntt::choose_path(isa, q, ifma)));
        // Validate every row before writing any: in place, a bad row must not
        // leave the others transformed.
        check_range(va, "a", what, *ks[0]);
        py::gil_scoped_release nogil;
        for_rows([&](size_t r) {
            const size_t off = r * n_;
            auto fn = fwd ? ks[r]->forward : ks[r]->inverse;
            fn(va.data + off, vo.data + off, *tables_[r]);
        });
    }
};

}  // namespace

void bind_ntt(py::module_& m) {
    py::class_<NttPlan>(m, "NttPlan",
                        "Negacyclic NTT tables for ring dimension n and a list of RNS primes "
                        "(see safelight.he.NTT for the documented interface).")
        .def(py::init<size_t, const std::vector<uint64_t>&>(), py::arg("n"), py::arg("primes"))
        .def_property_readonly("n", &NttPlan::n)
        .def_property_readonly("primes", &NttPlan::primes)
        .def_property_readonly("roots", &NttPlan::roots,
                               "The primitive 2n-th root of unity psi used for each prime (the smallest).")
        .def("paths", &NttPlan::paths, py::arg("ifma") = true,
             "Kernel path per prime under the active ISA: scalar, avx2, avx512 or avx512ifma.")
        .def("forward", &NttPlan::forward, py::arg("a"), py::arg("out"), py::arg("ifma") = true,
             "out = NTT(a) per row: natural order in, bit-reversed out, values in [0, q).")
        .def("inverse", &NttPlan::inverse, py::arg("a"), py::arg("out"), py::arg("ifma") = true,
             "out = NTT^-1(a) per row (n^-1 scaling included).")
        .def("pointwise", &NttPlan::pointwise, py::arg("a"), py::arg("b"), py::arg("out"),
             "out = a * b mod q per row (elementwise).")
        .def("time_kernel", &NttPlan::time_kernel, py::arg("direction"), py::arg("repeats") = 20,
             py::arg("inner") = 50, py::arg("ifma") = true,
             "Best seconds per call of the first prime's kernel, timed in C++.");
    m.def("ntt_has_ifma", [] { return ntt::cpu_has_ifma() && ntt::ifma_enabled_by_env(); },
          "Whether NTT calls may use the AVX-512 IFMA path (CPU support and SAFELIGHT_NTT_IFMA != 0).");
    m.def("ntt_prime_problem", [](size_t n, uint64_t q) { return ntt::ntt_prime_problem(n, q); },
          py::arg("n"), py::arg("q"), "Why q is not an NTT prime for n ('' when it is).");
}

}  // namespace safelight::bind
