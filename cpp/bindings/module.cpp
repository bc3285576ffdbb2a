// The safelight._core extension: thin bindings over the engines. Arrays are
// used in place (no copies) and the GIL is released around every kernel.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "safelight/isa.hpp"
#include "safelight/parallel.hpp"

namespace py = pybind11;

namespace safelight::bind {
void bind_ring(py::module_& m);
void bind_prg(py::module_& m);
void bind_gemm(py::module_& m);
void bind_gc(py::module_& m);
void bind_rss(py::module_& m);
void bind_ot(py::module_& m);
void bind_silent(py::module_& m);
void bind_ntt(py::module_& m);
void bind_bfv(py::module_& m);
}  // namespace safelight::bind

PYBIND11_MODULE(_core, m) {
    m.doc() = "safelight C++ engines: ring arithmetic on Z_2^64, AES PRG";
    using namespace safelight;
    active_isa();  // resolve SAFELIGHT_ISA now: a bad value fails the import, not a later call
    m.def("isa", [] { return std::string(isa_name(active_isa())); },
          "Name of the active instruction-set path: 'scalar', 'avx2' or 'avx512'.");
    m.def("available_isas", [] {
        std::vector<std::string> out;
        for (Isa isa : supported_isas()) out.emplace_back(isa_name(isa));
        return out;
    }, "Instruction-set paths this CPU can run.");
    m.def("set_isa", [](const std::string& name) { set_active_isa(isa_from_name(name)); },
          py::arg("name"), "Force an instruction-set path for every later kernel call.");
    m.def("worker_threads", &worker_count, "Threads used by kernels on large arrays.");
    bind::bind_ring(m);
    bind::bind_prg(m);
    bind::bind_gemm(m);
    bind::bind_gc(m);
    bind::bind_rss(m);
    bind::bind_ot(m);
    bind::bind_silent(m);
    bind::bind_ntt(m);
    bind::bind_bfv(m);
}
