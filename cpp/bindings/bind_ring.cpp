#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "array_view.hpp"
#include "safelight/parallel.hpp"
#include "safelight/ring.hpp"

namespace safelight::bind {

namespace {

constexpr size_t kMinParallel = size_t(1) << 16;  // below this, threads cost more than they save
constexpr size_t kGrain = 64;

const ring::Kernels& active() { return ring::kernels(active_isa()); }

void binary(const py::array& a, const py::array& b, const py::array& out, const char* what,
            void (*fn)(const uint64_t*, const uint64_t*, uint64_t*, size_t) noexcept) {
    auto va = view<uint64_t>(a, "a", false), vb = view<uint64_t>(b, "b", false);
    auto vo = view<uint64_t>(out, "out", true);
    same_size(va.size, vb.size, what);
    same_size(va.size, vo.size, what);
    py::gil_scoped_release nogil;
    parallel_for(va.size, kMinParallel, kGrain, [&](size_t lo, size_t hi) {
        fn(va.data + lo, vb.data + lo, vo.data + lo, hi - lo);
    });
}

void check_frac_bits(int frac_bits) {
    if (frac_bits < 0 || frac_bits > 62)
        throw py::value_error("frac_bits must be in 0..62, got " + std::to_string(frac_bits));
}

}  // namespace

void bind_ring(py::module_& m) {
    m.def("ring_add", [](const py::array& a, const py::array& b, const py::array& out) {
        binary(a, b, out, "ring_add", active().add);
    }, py::arg("a"), py::arg("b"), py::arg("out"), "out = a + b mod 2^64 (uint64, in place allowed).");
    m.def("ring_sub", [](const py::array& a, const py::array& b, const py::array& out) {
        binary(a, b, out, "ring_sub", active().sub);
    }, py::arg("a"), py::arg("b"), py::arg("out"), "out = a - b mod 2^64.");
    m.def("ring_mul", [](const py::array& a, const py::array& b, const py::array& out) {
        binary(a, b, out, "ring_mul", active().mul);
    }, py::arg("a"), py::arg("b"), py::arg("out"), "out = a * b mod 2^64 (elementwise).");
    m.def("ring_neg", [](const py::array& a, const py::array& out) {
        auto va = view<uint64_t>(a, "a", false);
        auto vo = view<uint64_t>(out, "out", true);
        same_size(va.size, vo.size, "ring_neg");
        auto fn = active().neg;
        py::gil_scoped_release nogil;
        parallel_for(va.size, kMinParallel, kGrain,
                     [&](size_t lo, size_t hi) { fn(va.data + lo, vo.data + lo, hi - lo); });
    }, py::arg("a"), py::arg("out"), "out = -a mod 2^64.");
    m.def("ring_mul_scalar", [](const py::array& a, uint64_t s, const py::array& out) {
        auto va = view<uint64_t>(a, "a", false);
        auto vo = view<uint64_t>(out, "out", true);
        same_size(va.size, vo.size, "ring_mul_scalar");
        auto fn = active().mul_scalar;
        py::gil_scoped_release nogil;
        parallel_for(va.size, kMinParallel, kGrain,
                     [&](size_t lo, size_t hi) { fn(va.data + lo, s, vo.data + lo, hi - lo); });
    }, py::arg("a"), py::arg("scalar"), py::arg("out"), "out = a * scalar mod 2^64.");
    m.def("ring_shift_right_signed", [](const py::array& a, int bits, const py::array& out) {
        if (bits < 0 || bits > 63) throw py::value_error("bits must be in 0..63");
        auto va = view<uint64_t>(a, "a", false);
        auto vo = view<uint64_t>(out, "out", true);
        same_size(va.size, vo.size, "ring_shift_right_signed");
        auto fn = active().shift_right_signed;
        py::gil_scoped_release nogil;
        parallel_for(va.size, kMinParallel, kGrain,
                     [&](size_t lo, size_t hi) { fn(va.data + lo, vo.data + lo, hi - lo, bits); });
    }, py::arg("a"), py::arg("bits"), py::arg("out"),
       "out = a >> bits, reading a as signed two's complement (arithmetic shift).");
    m.def("ring_beaver_combine", [](const py::array& c, const py::array& e, const py::array& b,
                                    const py::array& a, const py::array& f, bool with_f,
                                    const py::array& out) {
        auto vc = view<uint64_t>(c, "c", false), ve = view<uint64_t>(e, "e", false);
        auto vb = view<uint64_t>(b, "b", false), va = view<uint64_t>(a, "a", false);
        auto vf = view<uint64_t>(f, "f", false), vo = view<uint64_t>(out, "out", true);
        for (size_t size : {ve.size, vb.size, va.size, vf.size, vo.size})
            same_size(vc.size, size, "ring_beaver_combine");
        auto fn = active().beaver_combine;
        py::gil_scoped_release nogil;
        parallel_for(vc.size, kMinParallel, kGrain, [&](size_t lo, size_t hi) {
            fn(vc.data + lo, ve.data + lo, vb.data + lo, va.data + lo, vf.data + lo, vo.data + lo,
               hi - lo, with_f);
        });
    }, py::arg("c"), py::arg("e"), py::arg("b"), py::arg("a"), py::arg("f"), py::arg("with_f"),
       py::arg("out"), "out = c + e * (b + [with_f] f) + a * f mod 2^64 (Beaver recombination).");
    m.def("encode_fixed", [](const py::array& x, int frac_bits, const py::array& out) {
        check_frac_bits(frac_bits);
        auto vx = view<double>(x, "x", false);
        auto vo = view<uint64_t>(out, "out", true);
        same_size(vx.size, vo.size, "encode_fixed");
        auto fn = active().encode_fixed;
        std::atomic<size_t> bad{0};
        {
            py::gil_scoped_release nogil;
            parallel_for(vx.size, kMinParallel, kGrain, [&](size_t lo, size_t hi) {
                bad += fn(vx.data + lo, vo.data + lo, hi - lo, frac_bits);
            });
        }
        return bad.load();
    }, py::arg("x"), py::arg("frac_bits"), py::arg("out"),
       "out = round(x * 2^frac_bits) as two's complement; returns how many inputs were "
       "NaN/inf or out of range (their outputs are 0).");
    m.def("decode_fixed", [](const py::array& x, int frac_bits, const py::array& out) {
        check_frac_bits(frac_bits);
        auto vx = view<uint64_t>(x, "x", false);
        auto vo = view<double>(out, "out", true);
        same_size(vx.size, vo.size, "decode_fixed");
        auto fn = active().decode_fixed;
        py::gil_scoped_release nogil;
        parallel_for(vx.size, kMinParallel, kGrain, [&](size_t lo, size_t hi) {
            fn(vx.data + lo, vo.data + lo, hi - lo, frac_bits);
        });
    }, py::arg("x"), py::arg("frac_bits"), py::arg("out"), "out = signed(x) * 2^-frac_bits.");
    m.def("ring_correlate2d", [](const py::array& in, const py::array& kernel, const py::array& out) {
        if (in.ndim() != 3 || kernel.ndim() != 3 || out.ndim() != 3)
            throw py::value_error("ring_correlate2d expects 3-D arrays (channels, rows, cols)");
        const size_t c = in.shape(0), h = in.shape(1), w = in.shape(2);
        const size_t kh = kernel.shape(1), kw = kernel.shape(2);
        if (size_t(kernel.shape(0)) != c)
            throw py::value_error("kernel must have one plane per input channel");
        if (kh == 0 || kw == 0 || kh > h || kw > w)
            throw py::value_error("kernel must be non-empty and no larger than the input");
        const size_t oh = h - kh + 1, ow = w - kw + 1;
        if (size_t(out.shape(0)) != c || size_t(out.shape(1)) != oh || size_t(out.shape(2)) != ow)
            throw py::value_error("out must have shape (channels, rows-kh+1, cols-kw+1)");
        auto vi = view<uint64_t>(in, "in", false);
        auto vk = view<uint64_t>(kernel, "kernel", false);
        auto vo = view<uint64_t>(out, "out", true);
        auto fn = active().correlate2d;
        py::gil_scoped_release nogil;
        // Parallel over (channel, output row); each row is ~ow*kh*kw work.
        const size_t min_rows = std::max<size_t>(2, kMinParallel / std::max<size_t>(1, ow * kh * kw));
        parallel_for(c * oh, min_rows, 1, [&](size_t lo, size_t hi) {
            fn(vi.data, h, w, vk.data, kh, kw, vo.data, lo, hi);
        });
    }, py::arg("input"), py::arg("kernel"), py::arg("out"),
       "Valid 2-D correlation per channel over Z_2^64: out[c] = input[c] (*) kernel[c].");
}

}  // namespace safelight::bind
