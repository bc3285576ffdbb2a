// Python bindings of the GEMM engine: ring_matmul and ring_conv2d on
// C-contiguous uint64 arrays, used in place with the GIL released.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>

#include "array_view.hpp"
#include "safelight/gemm.hpp"

namespace safelight::bind {

namespace {

void check_ndim(const py::array& a, py::ssize_t ndim, const char* name, const char* what) {
    if (a.ndim() != ndim)
        throw py::value_error(std::string(what) + ": " + name + " must be " +
                              std::to_string(ndim) + "-D, got shape " + shape_str(a));
}

// numpy can build uint64 arrays at odd addresses (views of byte buffers); the
// kernels assume naturally aligned elements.
template <class T>
View<T> aligned_view(const py::array& a, const char* name, bool writable) {
    View<T> v = view<T>(a, name, writable);
    if (reinterpret_cast<uintptr_t>(v.data) % alignof(T) != 0)
        throw py::type_error(std::string(name) + " must be aligned to " +
                             std::to_string(alignof(T)) + " bytes");
    return v;
}

// The kernels write out while still reading the inputs: they must not overlap.
void check_no_overlap(const View<uint64_t>& out, const View<uint64_t>& in, const char* what,
                      const char* name) {
    const uintptr_t o0 = reinterpret_cast<uintptr_t>(out.data);
    const uintptr_t o1 = o0 + out.size * sizeof(uint64_t);
    const uintptr_t i0 = reinterpret_cast<uintptr_t>(in.data);
    const uintptr_t i1 = i0 + in.size * sizeof(uint64_t);
    if (out.size && in.size && o0 < i1 && i0 < o1)
        throw py::value_error(std::string(what) + ": out must not share memory with " + name);
}

// A Python or numpy integer (anything with __index__), not a bool.
bool is_index(const py::handle& obj) {
    return PyIndex_Check(obj.ptr()) && !py::isinstance<py::bool_>(obj);
}

long long index_value(const py::handle& obj) {
    PyObject* i = PyNumber_Index(obj.ptr());
    if (i == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::int_>(i).cast<long long>();
}

// An int (used for both sides) or a pair of ints, each >= min_value.
std::pair<size_t, size_t> pair_arg(const py::handle& obj, const char* name, long long min_value) {
    long long v[2];
    if (is_index(obj)) {
        v[0] = v[1] = index_value(obj);
    } else {
        if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
            throw py::type_error(std::string("ring_conv2d: ") + name +
                                 " must be an int or a pair of ints");
        auto seq = py::reinterpret_borrow<py::sequence>(obj);
        if (seq.size() != 2)
            throw py::value_error(std::string("ring_conv2d: ") + name +
                                  " must have 2 entries (height, width), got " +
                                  std::to_string(seq.size()));
        for (size_t i = 0; i < 2; ++i) {
            py::object item = seq[i];
            if (!is_index(item))
                throw py::type_error(std::string("ring_conv2d: ") + name +
                                     " entries must be ints");
            v[i] = index_value(item);
        }
    }
    for (long long x : v)
        if (x < min_value)
            throw py::value_error(std::string("ring_conv2d: ") + name + " must be >= " +
                                  std::to_string(min_value) + ", got " + std::to_string(x));
    return {size_t(v[0]), size_t(v[1])};
}

py::array ring_matmul(const py::array& a, const py::array& b, const py::array& out,
                      bool accumulate) {
    auto va = aligned_view<uint64_t>(a, "a", false);
    auto vb = aligned_view<uint64_t>(b, "b", false);
    auto vo = aligned_view<uint64_t>(out, "out", true);
    check_ndim(a, 2, "a", "ring_matmul");
    check_ndim(b, 2, "b", "ring_matmul");
    check_ndim(out, 2, "out", "ring_matmul");
    const size_t m = a.shape(0), k = a.shape(1), n = b.shape(1);
    if (size_t(b.shape(0)) != k)
        throw py::value_error("ring_matmul: inner dimensions differ: a is " + shape_str(a) +
                              ", b is " + shape_str(b));
    if (size_t(out.shape(0)) != m || size_t(out.shape(1)) != n)
        throw py::value_error("ring_matmul: out must have shape (" + std::to_string(m) + ", " +
                              std::to_string(n) + "), got " + shape_str(out));
    check_no_overlap(vo, va, "ring_matmul", "a");
    check_no_overlap(vo, vb, "ring_matmul", "b");
    {
        py::gil_scoped_release nogil;
        gemm::matmul(va.data, vb.data, vo.data, m, n, k, accumulate);
    }
    return out;
}

py::array ring_conv2d(const py::array& x, const py::array& w, const py::array& out,
                      const py::object& stride, const py::object& padding,
                      const py::object& dilation, long long groups, bool accumulate) {
    auto vx = aligned_view<uint64_t>(x, "x", false);
    auto vw = aligned_view<uint64_t>(w, "w", false);
    auto vo = aligned_view<uint64_t>(out, "out", true);
    check_ndim(x, 4, "x", "ring_conv2d");
    check_ndim(w, 4, "w", "ring_conv2d");
    check_ndim(out, 4, "out", "ring_conv2d");
    const auto [sh, sw] = pair_arg(stride, "stride", 1);
    const auto [ph, pw] = pair_arg(padding, "padding", 0);
    const auto [dh, dw] = pair_arg(dilation, "dilation", 1);
    if (groups < 1)
        throw py::value_error("ring_conv2d: groups must be >= 1, got " + std::to_string(groups));
    gemm::ConvShape s{};
    s.batch = x.shape(0);
    s.in_ch = x.shape(1);
    s.in_h = x.shape(2);
    s.in_w = x.shape(3);
    s.out_ch = w.shape(0);
    s.kh = w.shape(2);
    s.kw = w.shape(3);
    s.stride_h = sh;
    s.stride_w = sw;
    s.pad_h = ph;
    s.pad_w = pw;
    s.dil_h = dh;
    s.dil_w = dw;
    s.groups = size_t(groups);
    if (s.in_ch % s.groups != 0 || s.out_ch % s.groups != 0)
        throw py::value_error("ring_conv2d: groups (" + std::to_string(groups) +
                              ") must divide the input channels (" + std::to_string(s.in_ch) +
                              ") and the output channels (" + std::to_string(s.out_ch) + ")");
    if (size_t(w.shape(1)) != s.in_ch / s.groups)
        throw py::value_error("ring_conv2d: w must have shape (out_ch, in_ch/groups = " +
                              std::to_string(s.in_ch / s.groups) + ", kh, kw), got " +
                              shape_str(w));
    if (s.kh == 0 || s.kw == 0)
        throw py::value_error("ring_conv2d: kernel must be non-empty, got w " + shape_str(w));
    if (!gemm::make_conv_shape(s))
        throw py::value_error("ring_conv2d: dilated kernel (" +
                              std::to_string(dh * (s.kh - 1) + 1) + "x" +
                              std::to_string(dw * (s.kw - 1) + 1) +
                              ") is larger than the padded input (" +
                              std::to_string(s.in_h + 2 * ph) + "x" +
                              std::to_string(s.in_w + 2 * pw) + ")");
    if (size_t(out.shape(0)) != s.batch || size_t(out.shape(1)) != s.out_ch ||
        size_t(out.shape(2)) != s.out_h || size_t(out.shape(3)) != s.out_w)
        throw py::value_error("ring_conv2d: out must have shape (" + std::to_string(s.batch) +
                              ", " + std::to_string(s.out_ch) + ", " + std::to_string(s.out_h) +
                              ", " + std::to_string(s.out_w) + "), got " + shape_str(out));
    check_no_overlap(vo, vx, "ring_conv2d", "x");
    check_no_overlap(vo, vw, "ring_conv2d", "w");
    {
        py::gil_scoped_release nogil;
        gemm::conv2d(s, vx.data, vw.data, vo.data, accumulate);
    }
    return out;
}

}  // namespace

void bind_gemm(py::module_& m) {
    m.def("ring_matmul", &ring_matmul, py::arg("a"), py::arg("b"), py::arg("out"),
          py::arg("accumulate") = false,
          "out = a @ b mod 2^64 (or out += a @ b with accumulate=True).\n\n"
          "a: uint64[m, k], b: uint64[k, n], out: uint64[m, n], all C-contiguous; out must not\n"
          "overlap the inputs. Returns out.");
    m.def("ring_conv2d", &ring_conv2d, py::arg("x"), py::arg("w"), py::arg("out"),
          py::arg("stride") = py::make_tuple(1, 1), py::arg("padding") = py::make_tuple(0, 0),
          py::arg("dilation") = py::make_tuple(1, 1), py::arg("groups") = 1,
          py::arg("accumulate") = false,
          "Zero-padded 2-D cross-correlation mod 2^64 (PyTorch/ONNX Conv, no bias).\n\n"
          "x: uint64[N, C, H, W], w: uint64[O, C // groups, kh, kw],\n"
          "out: uint64[N, O, Ho, Wo] with Ho = (H + 2*ph - dh*(kh-1) - 1) // sh + 1 (same for Wo).\n"
          "stride, padding, dilation: int or (h, w). out (=|+=) conv(x, w). Returns out.");
}

}  // namespace safelight::bind
