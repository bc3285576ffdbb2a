// Checked, copy-free views of numpy arrays for the kernels.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace safelight::bind {

namespace py = pybind11;

template <class T>
struct View {
    T* data;
    size_t size;
};

// A C-contiguous numpy array of exactly dtype T, used in place. A wrong dtype
// or layout is a TypeError naming the argument: the kernels never copy.
template <class T>
View<T> view(const py::array& a, const char* name, bool writable) {
    if (!py::dtype::of<T>().is(a.dtype()) && !a.dtype().equal(py::dtype::of<T>()))
        throw py::type_error(std::string(name) + " must have dtype " +
                             std::string(py::str(py::dtype::of<T>())) + ", got " +
                             std::string(py::str(a.dtype())));
    if (!(a.flags() & py::array::c_style))
        throw py::type_error(std::string(name) + " must be C-contiguous");
    if (writable && !a.writeable())
        throw py::type_error(std::string(name) + " must be writable");
    return {static_cast<T*>(const_cast<void*>(a.data())), static_cast<size_t>(a.size())};
}

// "(2, 3)" / "(5,)", numpy style, for error messages.
inline std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    if (a.ndim() == 1) s += ",";
    return s + ")";
}

inline void same_size(size_t a, size_t b, const char* what) {
    if (a != b)
        throw py::value_error(std::string(what) + ": arrays must have the same number of elements (" +
                              std::to_string(a) + " vs " + std::to_string(b) + ")");
}

}  // namespace safelight::bind
