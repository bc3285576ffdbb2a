// Bindings of the replicated-sharing engine: each call returns a new array, except that the
// masked products may write into a caller's buffer (the first share of the reshared result).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "array_view.hpp"
#include "safelight/parallel.hpp"
#include "safelight/prg.hpp"
#include "safelight/rss.hpp"

namespace safelight::bind {

namespace {

constexpr size_t kMinParallel = size_t(1) << 16;
constexpr size_t kGrain = 64;

const rss::Kernels& active() { return rss::kernels(active_isa()); }

py::array_t<uint64_t> like(const py::array& a) {
    std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
    return py::array_t<uint64_t>(shape);
}

py::array_t<uint64_t> four(const py::array& x0, const py::array& x1, const py::array& y0, const py::array& y1,
                           const char* what,
                           void (*fn)(const uint64_t*, const uint64_t*, const uint64_t*, const uint64_t*,
                                      uint64_t*, size_t) noexcept) {
    auto a = view<uint64_t>(x0, "x0", false), b = view<uint64_t>(x1, "x1", false);
    auto c = view<uint64_t>(y0, "y0", false), d = view<uint64_t>(y1, "y1", false);
    same_size(a.size, b.size, what);
    same_size(a.size, c.size, what);
    same_size(a.size, d.size, what);
    auto out = like(x0);
    uint64_t* o = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        parallel_for(a.size, kMinParallel, kGrain, [&](size_t lo, size_t hi) {
            fn(a.data + lo, b.data + lo, c.data + lo, d.data + lo, o + lo, hi - lo);
        });
    }
    return out;
}

// Elements per block of a masked kernel: two AES keystreams of this many words stay in L1/L2.
constexpr size_t kMaskBlock = 2048;

std::string key_of(const py::bytes& seed) {
    std::string key = seed;
    if (key.size() != 16) throw py::value_error("a seed must be exactly 16 bytes");
    return key;
}

// out = local(x0, x1, y0, y1) + F(seed_own) - F(seed_succ) (xor: ^ F ^ F), with F the AES-128-CTR
// stream of ring.random(seed, shape): the zero-sharing is made block by block in cache
// instead of as two more arrays of the tensor's size.
py::array masked(const py::array& x0, const py::array& x1, const py::array& y0, const py::array& y1,
                             const py::bytes& seed_own, const py::bytes& seed_succ, const py::object& into, bool xor_mask,
                             void (*fn)(const uint64_t*, const uint64_t*, const uint64_t*, const uint64_t*,
                                        uint64_t*, size_t) noexcept) {
    auto a = view<uint64_t>(x0, "x0", false), b = view<uint64_t>(x1, "x1", false);
    auto c = view<uint64_t>(y0, "y0", false), d = view<uint64_t>(y1, "y1", false);
    same_size(a.size, b.size, "rss masked product");
    same_size(a.size, c.size, "rss masked product");
    same_size(a.size, d.size, "rss masked product");
    uint8_t k_own[16], k_succ[16];
    std::memcpy(k_own, key_of(seed_own).data(), 16);
    std::memcpy(k_succ, key_of(seed_succ).data(), 16);
    if (!into.is_none() && !py::isinstance<py::array>(into)) throw py::type_error("out must be a numpy array");
    py::array out = into.is_none() ? py::array(like(x0)) : py::reinterpret_borrow<py::array>(into);
    auto target = view<uint64_t>(out, "out", true);
    same_size(a.size, target.size, "rss masked product");
    uint64_t* o = target.data;
    prg::CtrFill fill = prg::ctr_fill_for(active_isa());
    {
        py::gil_scoped_release nogil;
        parallel_for(a.size, kMinParallel, kMaskBlock, [&](size_t lo, size_t hi) {
            std::vector<uint64_t> own(kMaskBlock), succ(kMaskBlock);
            for (size_t s = lo; s < hi; s += kMaskBlock) {  // s is even: counter = s / 2 blocks of 16 bytes
                const size_t m = std::min(kMaskBlock, hi - s);
                fill(k_own, 0, s / 2, reinterpret_cast<uint8_t*>(own.data()), m * 8);
                fill(k_succ, 0, s / 2, reinterpret_cast<uint8_t*>(succ.data()), m * 8);
                fn(a.data + s, b.data + s, c.data + s, d.data + s, o + s, m);
                if (xor_mask) {
                    for (size_t t = 0; t < m; ++t) o[s + t] ^= own[t] ^ succ[t];
                } else {
                    for (size_t t = 0; t < m; ++t) o[s + t] += own[t] - succ[t];
                }
            }
        });
    }
    std::memset(k_own, 0, 16);
    std::memset(k_succ, 0, 16);
    return out;
}

}  // namespace

void bind_rss(py::module_& m) {
    m.def("rss_mul_masked", [](const py::array& x0, const py::array& x1, const py::array& y0, const py::array& y1,
                               const py::bytes& seed_own, const py::bytes& seed_succ, const py::object& out) {
        return masked(x0, x1, y0, y1, seed_own, seed_succ, out, false, active().mul);
    }, py::arg("x0"), py::arg("x1"), py::arg("y0"), py::arg("y1"), py::arg("seed_own"), py::arg("seed_succ"),
       py::arg("out") = py::none(),
       "rss_mul plus the zero-sharing random(seed_own) - random(seed_succ), without materialising either; "
       "written into out (C-contiguous uint64, same size) when given.");
    m.def("rss_and_masked", [](const py::array& x0, const py::array& x1, const py::array& y0, const py::array& y1,
                               const py::bytes& seed_own, const py::bytes& seed_succ, const py::object& out) {
        return masked(x0, x1, y0, y1, seed_own, seed_succ, out, true, active().and_words);
    }, py::arg("x0"), py::arg("x1"), py::arg("y0"), py::arg("y1"), py::arg("seed_own"), py::arg("seed_succ"),
       py::arg("out") = py::none(),
       "rss_and xor the boolean zero-sharing random(seed_own) ^ random(seed_succ), without materialising either; "
       "written into out when given.");
    m.def("rss_mul", [](const py::array& x0, const py::array& x1, const py::array& y0, const py::array& y1) {
        return four(x0, x1, y0, y1, "rss_mul", active().mul);
    }, py::arg("x0"), py::arg("x1"), py::arg("y0"), py::arg("y1"),
       "x0 (y0 + y1) + x1 y0 mod 2^64: one server's part of a replicated product.");
    m.def("rss_and", [](const py::array& x0, const py::array& x1, const py::array& y0, const py::array& y1) {
        return four(x0, x1, y0, y1, "rss_and", active().and_words);
    }, py::arg("x0"), py::arg("x1"), py::arg("y0"), py::arg("y1"),
       "x0 & (y0 ^ y1) ^ x1 & y0: one server's part of 64 bit-sliced replicated AND gates per word.");
    m.def("bit_planes", [](const py::array& values, int nbits) {
        if (nbits < 1 || nbits > 64) throw py::value_error("nbits must be in 1..64, got " + std::to_string(nbits));
        auto v = view<uint64_t>(values, "values", false);
        const size_t words = (v.size + 63) / 64;
        py::array_t<uint64_t> out({py::ssize_t(nbits), py::ssize_t(words)});
        uint64_t* o = out.mutable_data();
        auto fn = active().bit_planes;
        py::gil_scoped_release nogil;
        parallel_for(words, 1024, 16, [&](size_t lo, size_t hi) { fn(v.data, v.size, nbits, o, words, lo, hi); });
        return out;
    }, py::arg("values"), py::arg("nbits"),
       "Bit planes (nbits, ceil(n / 64)) of n values: word w of plane j holds bit j of values 64 w .. 64 w + 63.");
    m.def("unpack_bits", [](const py::array& words, size_t n) {
        auto w = view<uint64_t>(words, "words", false);
        if (n > 64 * w.size) throw py::value_error("unpack_bits: more bits asked for than the words hold");
        py::array_t<uint64_t> out({py::ssize_t(n)});
        uint64_t* o = out.mutable_data();
        auto fn = active().unpack_bits;
        py::gil_scoped_release nogil;
        parallel_for(n, kMinParallel, kGrain, [&](size_t lo, size_t hi) { fn(w.data, o, lo, hi); });
        return out;
    }, py::arg("words"), py::arg("n"), "Bits 0..n-1 of a word array as n values 0 or 1 (uint64).");
}

}  // namespace safelight::bind
