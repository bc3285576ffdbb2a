#include <pybind11/pybind11.h>

#include <cstring>
#include <limits>
#include <string>

#include "array_view.hpp"
#include "safelight/parallel.hpp"
#include "safelight/prg.hpp"

namespace safelight::bind {

namespace {
constexpr size_t kMinParallelBytes = size_t(1) << 20;  // AES is fast: thread only big fills
}

void bind_prg(py::module_& m) {
    m.def("prg_fill", [](py::bytes seed, py::buffer out, uint64_t nonce, uint64_t counter) {
        std::string key = seed;
        if (key.size() != 16)
            throw py::value_error("seed must be exactly 16 bytes, got " + std::to_string(key.size()));
        py::buffer_info info = out.request(true);
        if (info.readonly) throw py::type_error("out must be writable");
        if (!PyBuffer_IsContiguous(info.view(), 'C'))
            throw py::type_error("out must be C-contiguous");
        const size_t nbytes = size_t(info.size) * size_t(info.itemsize);
        const uint64_t nblocks = (nbytes + 15) / 16;
        if (nblocks > std::numeric_limits<uint64_t>::max() - counter)
            throw py::value_error("counter + blocks would pass 2^64 (counter wrap)");
        uint8_t k[16];
        std::memcpy(k, key.data(), 16);
        auto* dst = static_cast<uint8_t*>(info.ptr);
        prg::CtrFill fill = prg::ctr_fill_for(active_isa());
        {
            py::gil_scoped_release nogil;
            // Chunks start on 16-byte block boundaries so each thread's counter is exact.
            parallel_for(nbytes, kMinParallelBytes, 4096, [&](size_t lo, size_t hi) {
                fill(k, nonce, counter + lo / 16, dst + lo, hi - lo);
            });
        }
        std::memset(k, 0, sizeof k);
    }, py::arg("seed"), py::arg("out"), py::arg("nonce") = 0, py::arg("counter") = 0,
       "Fill `out` with the AES-128-CTR keystream of key `seed`, IV = nonce||counter "
       "(both 64-bit big-endian).");
}

}  // namespace safelight::bind
