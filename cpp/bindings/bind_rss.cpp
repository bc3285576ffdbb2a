// Bindings of the replicated-sharing engine: each call returns a new array.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "array_view.hpp"
#include "safelight/parallel.hpp"
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

}  // namespace

void bind_rss(py::module_& m) {
    m.def("rss_mul", [](const py::array& x0, const py::array& x1, const py::array& y0, const py::array& y1) {
        return four(x0, x1, y0, y1, "rss_mul", active().mul);
    }, py::arg("x0"), py::arg("x1"), py::arg("y0"), py::arg("y1"),
       "x0 (y0 + y1) + x1 y0 mod 2^64: one server's part of a replicated product.");
    m.def("rss_square", [](const py::array& x0, const py::array& x1) {
        auto a = view<uint64_t>(x0, "x0", false), b = view<uint64_t>(x1, "x1", false);
        same_size(a.size, b.size, "rss_square");
        auto out = like(x0);
        uint64_t* o = out.mutable_data();
        auto fn = active().square;
        py::gil_scoped_release nogil;
        parallel_for(a.size, kMinParallel, kGrain,
                     [&](size_t lo, size_t hi) { fn(a.data + lo, b.data + lo, o + lo, hi - lo); });
        return out;
    }, py::arg("x0"), py::arg("x1"), "x0 (x0 + 2 x1) mod 2^64: one server's part of a replicated square.");
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
