// Python bindings of the garbled-circuit engine: gc_garble / gc_evaluate on
// C-contiguous arrays used in place, with the GIL released while the kernels
// run. Circuits are validated (and wire slots assigned) on every call; that
// costs O(gates), nothing next to the per-instance work.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "array_view.hpp"
#include "safelight/gc.hpp"

namespace safelight::bind {

namespace {

std::string dims(std::initializer_list<size_t> d) {
    std::string s = "(";
    size_t i = 0;
    for (size_t v : d) {
        if (i++) s += ", ";
        s += std::to_string(v);
    }
    if (d.size() == 1) s += ",";
    return s + ")";
}

template <class T>
View<T> checked(const py::array& a, const char* fn, const char* name, bool writable) {
    View<T> v;
    try {
        v = view<T>(a, name, writable);
    } catch (const py::type_error& e) {
        throw py::type_error(std::string(fn) + ": " + e.what());
    }
    if (reinterpret_cast<uintptr_t>(v.data) % alignof(T) != 0)
        throw py::type_error(std::string(fn) + ": " + name + " must be aligned to " +
                             std::to_string(alignof(T)) + " bytes");
    return v;
}

void expect_shape(const py::array& a, std::initializer_list<size_t> want, const char* fn,
                  const char* name) {
    bool ok = size_t(a.ndim()) == want.size();
    if (ok) {
        size_t i = 0;
        for (size_t v : want) ok = ok && size_t(a.shape(py::ssize_t(i++))) == v;
    }
    if (!ok)
        throw py::value_error(std::string(fn) + ": " + name + " must have shape " + dims(want) +
                              ", got " + shape_str(a));
}

template <class A, class B>
void no_overlap(const View<A>& x, const View<B>& y, const char* fn, const char* xn,
                const char* yn) {
    const uintptr_t x0 = reinterpret_cast<uintptr_t>(x.data), x1 = x0 + x.size * sizeof(A);
    const uintptr_t y0 = reinterpret_cast<uintptr_t>(y.data), y1 = y0 + y.size * sizeof(B);
    if (x.size && y.size && x0 < y1 && y0 < x1)
        throw py::value_error(std::string(fn) + ": " + xn + " must not share memory with " + yn);
}

// The circuit arrays: gates int32 (G, 4), outputs int32 (n_out,).
gc::Plan plan_of(const py::array& gates, const py::array& outputs, long long n_wires,
                 size_t n_inputs, const char* fn) {
    auto vg = checked<int32_t>(gates, fn, "gates", false);
    auto vo = checked<int32_t>(outputs, fn, "outputs", false);
    if (gates.ndim() != 2 || gates.shape(1) != 4)
        throw py::value_error(std::string(fn) + ": gates must have shape (n_gates, 4), got " +
                              shape_str(gates));
    if (outputs.ndim() != 1)
        throw py::value_error(std::string(fn) + ": outputs must be 1-D, got shape " +
                              shape_str(outputs));
    if (n_wires < 0 || n_wires > std::numeric_limits<int32_t>::max())
        throw py::value_error(std::string(fn) + ": n_wires must be in [0, 2^31), got " +
                              std::to_string(n_wires));
    try {
        return gc::make_plan(vg.data, size_t(gates.shape(0)), size_t(n_wires), n_inputs, vo.data,
                             vo.size);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(std::string(fn) + ": " + e.what());
    }
}

// 0 <= offset and offset + batch <= 2^64 (tweaks hold the absolute instance index).
uint64_t offset_arg(const py::object& obj, size_t batch, const char* fn) {
    if (!PyIndex_Check(obj.ptr()) || py::isinstance<py::bool_>(obj))
        throw py::type_error(std::string(fn) + ": instance_offset must be an int");
    py::int_ v = py::reinterpret_steal<py::int_>(PyNumber_Index(obj.ptr()));
    if (!v) throw py::error_already_set();
    if (PyObject_RichCompareBool(v.ptr(), py::int_(0).ptr(), Py_LT) == 1)
        throw py::value_error(std::string(fn) + ": instance_offset must be >= 0");
    const unsigned long long off = PyLong_AsUnsignedLongLong(v.ptr());
    if (PyErr_Occurred()) {
        PyErr_Clear();
        throw py::value_error(std::string(fn) + ": instance_offset must be < 2^64");
    }
    if (batch > 0 && off > std::numeric_limits<uint64_t>::max() - (batch - 1))
        throw py::value_error(std::string(fn) + ": instance_offset + batch must not pass 2^64");
    return off;
}

unsigned threads_arg(long long threads, const char* fn) {
    if (threads < 0 || threads > 256)
        throw py::value_error(std::string(fn) + ": threads must be in [0, 256] (0 = auto), got " +
                              std::to_string(threads));
    return unsigned(threads);
}

size_t label_inputs(const py::array& labels, const char* fn, const char* name) {
    if (labels.ndim() != 3 || labels.shape(2) != 2)
        throw py::value_error(std::string(fn) + ": " + name +
                              " must have shape (n_inputs, batch, 2), got " + shape_str(labels));
    return size_t(labels.shape(0));
}

py::tuple gc_garble(const py::array& gates, const py::array& outputs, long long n_wires,
                    const py::array& input_zero, const py::array& delta,
                    const py::object& instance_offset, const py::array& tables_out,
                    const py::array& output_zero_out, long long threads) {
    const char* fn = "gc_garble";
    auto vin = checked<uint64_t>(input_zero, fn, "input_zero", false);
    auto vd = checked<uint64_t>(delta, fn, "delta", false);
    auto vt = checked<uint64_t>(tables_out, fn, "tables_out", true);
    auto vo = checked<uint64_t>(output_zero_out, fn, "output_zero_out", true);
    const size_t n_in = label_inputs(input_zero, fn, "input_zero");
    const size_t batch = size_t(input_zero.shape(1));
    gc::Plan plan = plan_of(gates, outputs, n_wires, n_in, fn);
    expect_shape(delta, {2}, fn, "delta");
    if ((vd.data[0] & 1) == 0)
        throw py::value_error(std::string(fn) +
                              ": delta must have its colour bit (bit 0 of delta[0]) set");
    expect_shape(tables_out, {plan.n_and, batch, 2, 2}, fn, "tables_out");
    expect_shape(output_zero_out, {plan.n_outputs, batch, 2}, fn, "output_zero_out");
    no_overlap(vt, vin, fn, "tables_out", "input_zero");
    no_overlap(vo, vin, fn, "output_zero_out", "input_zero");
    no_overlap(vt, vo, fn, "tables_out", "output_zero_out");
    no_overlap(vt, vd, fn, "tables_out", "delta");
    no_overlap(vo, vd, fn, "output_zero_out", "delta");
    const uint64_t off = offset_arg(instance_offset, batch, fn);
    const unsigned nt = threads_arg(threads, fn);
    const uint64_t d[2] = {vd.data[0], vd.data[1]};
    {
        py::gil_scoped_release nogil;
        gc::garble(plan, vin.data, batch, d, off, vt.data, vo.data, nt);
    }
    return py::make_tuple(tables_out, output_zero_out);
}

py::array gc_evaluate(const py::array& gates, const py::array& outputs, long long n_wires,
                      const py::array& input_labels, const py::array& tables,
                      const py::object& instance_offset, const py::array& output_out,
                      long long threads) {
    const char* fn = "gc_evaluate";
    auto vin = checked<uint64_t>(input_labels, fn, "input_labels", false);
    auto vt = checked<uint64_t>(tables, fn, "tables", false);
    auto vo = checked<uint64_t>(output_out, fn, "output_out", true);
    const size_t n_in = label_inputs(input_labels, fn, "input_labels");
    const size_t batch = size_t(input_labels.shape(1));
    gc::Plan plan = plan_of(gates, outputs, n_wires, n_in, fn);
    expect_shape(tables, {plan.n_and, batch, 2, 2}, fn, "tables");
    expect_shape(output_out, {plan.n_outputs, batch, 2}, fn, "output_out");
    no_overlap(vo, vin, fn, "output_out", "input_labels");
    no_overlap(vo, vt, fn, "output_out", "tables");
    const uint64_t off = offset_arg(instance_offset, batch, fn);
    const unsigned nt = threads_arg(threads, fn);
    {
        py::gil_scoped_release nogil;
        gc::evaluate(plan, vin.data, batch, vt.data, off, vo.data, nt);
    }
    return output_out;
}

py::array gc_hash(const py::array& x, const py::object& instance_offset, uint64_t tweak_hi,
                  const py::array& out) {
    const char* fn = "gc_hash";
    auto vx = checked<uint64_t>(x, fn, "x", false);
    auto vo = checked<uint64_t>(out, fn, "out", true);
    if (x.ndim() != 2 || x.shape(1) != 2)
        throw py::value_error(std::string(fn) + ": x must have shape (n, 2), got " + shape_str(x));
    const size_t n = size_t(x.shape(0));
    expect_shape(out, {n, 2}, fn, "out");
    no_overlap(vo, vx, fn, "out", "x");
    const uint64_t off = offset_arg(instance_offset, n, fn);
    const gc::Kernels& k = gc::kernels(active_isa());
    {
        py::gil_scoped_release nogil;
        k.hash(gc::fixed_round_keys(), vx.data, vo.data, n, off, tweak_hi);
    }
    return out;
}

py::dict gc_plan_info(const py::array& gates, const py::array& outputs, long long n_wires,
                      long long n_inputs, long long batch, long long threads) {
    const char* fn = "gc_plan_info";
    if (n_inputs < 0 || batch < 0)
        throw py::value_error(std::string(fn) + ": n_inputs and batch must be >= 0");
    gc::Plan plan = plan_of(gates, outputs, n_wires, size_t(n_inputs), fn);
    py::dict d;
    d["n_and"] = plan.n_and;
    d["n_slots"] = plan.n_slots;
    d["n_passes"] = plan.ops.size();
    d["chunk"] = gc::chunk_size(plan, size_t(batch));
    d["threads"] = gc::thread_count(plan, size_t(batch), threads_arg(threads, fn));
    return d;
}

py::array gc_encode(const py::array& zero, const py::array& delta, const py::array& bits,
                    const py::array& out) {
    const char* fn = "gc_encode";
    auto vz = checked<uint64_t>(zero, fn, "zero", false);
    auto vd = checked<uint64_t>(delta, fn, "delta", false);
    auto vb = checked<uint8_t>(bits, fn, "bits", false);
    auto vo = checked<uint64_t>(out, fn, "out", true);
    if (vd.size != 2) throw py::value_error(std::string(fn) + ": delta must hold 2 words");
    if (vz.size != 2 * vb.size || vo.size != vz.size)
        throw py::value_error(std::string(fn) + ": zero and out must hold 2 words per bit (" +
                              shape_str(zero) + ", " + shape_str(bits) + ", " + shape_str(out) + ")");
    no_overlap(vo, vd, fn, "out", "delta");
    no_overlap(vo, vb, fn, "out", "bits");
    {
        py::gil_scoped_release nogil;
        gc::encode_labels(vz.data, vd.data, vb.data, vo.data, vb.size);
    }
    return out;
}

py::array gc_bit_planes(const py::array& values, unsigned bits, const py::array& out) {
    const char* fn = "gc_bit_planes";
    auto vv = checked<uint64_t>(values, fn, "values", false);
    auto vo = checked<uint8_t>(out, fn, "out", true);
    if (bits < 1 || bits > 64) throw py::value_error(std::string(fn) + ": bits must be in 1..64");
    expect_shape(out, {size_t(bits), vv.size}, fn, "out");
    no_overlap(vo, vv, fn, "out", "values");
    {
        py::gil_scoped_release nogil;
        gc::bit_planes(vv.data, vv.size, bits, vo.data);
    }
    return out;
}

}  // namespace

void bind_gc(py::module_& m) {
    m.def("gc_garble", &gc_garble, py::arg("gates"), py::arg("outputs"), py::arg("n_wires"),
          py::arg("input_zero"), py::arg("delta"), py::arg("instance_offset"),
          py::arg("tables_out"), py::arg("output_zero_out"), py::arg("threads") = 0,
          "Garble a Boolean circuit over `batch` instances (free-XOR, half-gates).\n\n"
          "gates: int32[G, 4] rows [op, in0, in1, out] (op 0 XOR, 1 AND, 2 INV), topological;\n"
          "outputs: int32[n_out] wire ids; wires 0..n_in-1 are the inputs.\n"
          "input_zero: uint64[n_in, batch, 2] zero-labels; delta: uint64[2] with bit 0 set;\n"
          "instance_offset: absolute index of instance 0 (tweaks).\n"
          "Writes tables_out uint64[n_and, batch, 2, 2] and output_zero_out uint64[n_out, batch, 2];\n"
          "returns (tables_out, output_zero_out). threads: 0 = automatic.");
    m.def("gc_evaluate", &gc_evaluate, py::arg("gates"), py::arg("outputs"), py::arg("n_wires"),
          py::arg("input_labels"), py::arg("tables"), py::arg("instance_offset"),
          py::arg("output_out"), py::arg("threads") = 0,
          "Evaluate a garbled circuit: input_labels uint64[n_in, batch, 2], tables\n"
          "uint64[n_and, batch, 2, 2] -> output_out uint64[n_out, batch, 2] (returned).");
    m.def("gc_hash", &gc_hash, py::arg("x"), py::arg("instance_offset"), py::arg("tweak_hi"),
          py::arg("out"),
          "out[i] = H(x[i], T_i) = AES_K(2x ^ T) ^ 2x ^ T with T_i = (instance_offset + i) +\n"
          "2^64 * tweak_hi, K the fixed key (gc_fixed_key()). x, out: uint64[n, 2].");
    m.def("gc_encode", &gc_encode, py::arg("zero"), py::arg("delta"), py::arg("bits"),
          py::arg("out"),
          "out = zero ^ (bits & 1) * delta, label by label: zero/out uint64 with 2 words per\n"
          "entry of bits (uint8). Constant time in the bits; out may be zero itself.");
    m.def("gc_bit_planes", &gc_bit_planes, py::arg("values"), py::arg("bits"), py::arg("out"),
          "out[b, i] = bit b of values[i] (uint64 in, uint8 (bits, n) out).");
    m.def("gc_fixed_key", [] {
        return py::bytes(reinterpret_cast<const char*>(gc::kFixedKey), 16);
    }, "The public fixed AES-128 key of the garbling hash.");
    m.def("gc_plan_info", &gc_plan_info, py::arg("gates"), py::arg("outputs"),
          py::arg("n_wires"), py::arg("n_inputs"), py::arg("batch") = 0, py::arg("threads") = 0,
          "Validate a circuit and report {n_and, n_slots (live stored labels), n_passes (AND +\n"
          "materialisation + output passes per chunk), chunk, threads} for a batch.");
}

}  // namespace safelight::bind
