// Bindings of the silent OT engine: GGM trees (single-point COT) and the LPN
// local code. Arrays are used in place; the GIL is released around the kernels.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "array_view.hpp"
#include "safelight/parallel.hpp"
#include "safelight/silent.hpp"

namespace safelight::bind {

namespace {

const silent::Kernels& active() { return silent::kernels(active_isa()); }

unsigned threads_for(int threads) {
    if (threads < 0) throw py::value_error("threads must be >= 0 (0 = automatic)");
    return threads == 0 ? worker_count() : std::min(unsigned(threads), 64u);
}

// body(lo, hi, part) over [0, n) in at most `threads` contiguous parts.
template <class Body>
void parts(size_t n, unsigned threads, Body body) {
    const size_t count = std::max<size_t>(1, std::min<size_t>(threads, n));
    const size_t per = (n + count - 1) / count;
    std::vector<std::thread> pool;
    for (size_t k = 1; k < count; ++k)
        pool.emplace_back([=] { body(std::min(n, k * per), std::min(n, (k + 1) * per), k); });
    body(0, std::min(n, per), 0);
    for (auto& t : pool) t.join();
}

size_t blocks_of(const py::array& a, const char* name, bool writable, uint64_t** data) {
    auto v = view<uint64_t>(a, name, writable);
    if (v.size % 2) throw py::value_error(std::string(name) + " must hold whole 128-bit blocks (shape (n, 2))");
    *data = v.data;
    return v.size / 2;
}

unsigned check_depth(unsigned depth) {
    if (depth < 1 || depth > silent::kMaxDepth)
        throw py::value_error("depth must be in 1.." + std::to_string(silent::kMaxDepth));
    return depth;
}

inline uint8_t* bytes(uint64_t* p) { return reinterpret_cast<uint8_t*>(p); }

// body(lo, hi, work) over the trees [0, trees) split between threads, each part with its
// 2^(depth-1) blocks of GGM scratch (allocated before the GIL is released, so that an
// allocation failure is a Python MemoryError).
template <class Body>
void over_trees(size_t trees, unsigned depth, int threads, Body body) {
    const unsigned nt = threads_for(threads);
    const size_t count = std::max<size_t>(1, std::min<size_t>(nt, trees));
    std::vector<std::unique_ptr<uint8_t[]>> work;
    for (size_t i = 0; i < count; ++i) work.emplace_back(new uint8_t[16 * (size_t(1) << (depth - 1))]);
    py::gil_scoped_release nogil;
    parts(trees, nt, [&](size_t lo, size_t hi, size_t part) {
        if (lo < hi) body(lo, hi, work[part].get());
    });
}

}  // namespace

void bind_silent(py::module_& m) {
    m.def("silent_ggm_expand", [](const py::array& roots, unsigned depth, const py::array& delta,
                                  const py::array& leaves, const py::array& sums, const py::array& psi,
                                  int threads) {
        check_depth(depth);
        uint64_t *r, *d, *lv, *s, *p;
        const size_t trees = blocks_of(roots, "roots", false, &r);
        if (blocks_of(delta, "delta", false, &d) != 1) throw py::value_error("delta must be one block");
        if (blocks_of(leaves, "leaves", true, &lv) != trees << depth)
            throw py::value_error("leaves must hold trees * 2^depth blocks");
        if (blocks_of(sums, "sums", true, &s) != trees * depth * 2)
            throw py::value_error("sums must hold trees * depth * 2 blocks");
        if (blocks_of(psi, "psi", true, &p) != trees) throw py::value_error("psi must hold one block per tree");
        const auto& k = active();
        over_trees(trees, depth, threads, [&](size_t lo, size_t hi, uint8_t* work) {
            k.ggm_expand(bytes(r) + 16 * lo, hi - lo, depth, bytes(d), bytes(lv) + (16 * lo << depth),
                         bytes(s) + 32 * depth * lo, bytes(p) + 16 * lo, work);
        });
    }, py::arg("roots"), py::arg("depth"), py::arg("delta"), py::arg("leaves"), py::arg("sums"), py::arg("psi"),
       py::arg("threads") = 0,
       "Sender of single-point COTs: GGM trees of the roots (leaves with lsb cleared), the level sums "
       "(left, right) and psi = delta ^ XOR of each tree's leaves.");

    m.def("silent_ggm_punctured", [](const py::array& keys, const py::array& alphas, const py::array& psi,
                                     unsigned depth, const py::array& leaves, int threads) {
        check_depth(depth);
        uint64_t *kk, *p, *lv;
        auto va = view<uint32_t>(alphas, "alphas", false);
        const size_t trees = va.size;
        if (blocks_of(keys, "keys", false, &kk) != trees * depth)
            throw py::value_error("keys must hold trees * depth blocks");
        if (blocks_of(psi, "psi", false, &p) != trees) throw py::value_error("psi must hold one block per tree");
        if (blocks_of(leaves, "leaves", true, &lv) != trees << depth)
            throw py::value_error("leaves must hold trees * 2^depth blocks");
        for (size_t t = 0; t < trees; ++t)
            if (va.data[t] >> depth) throw py::value_error("every alpha must be below 2^depth");
        const auto& k = active();
        over_trees(trees, depth, threads, [&](size_t lo, size_t hi, uint8_t* work) {
            k.ggm_punctured(bytes(kk) + 16 * depth * lo, va.data + lo, bytes(p) + 16 * lo, hi - lo, depth,
                            bytes(lv) + (16 * lo << depth), work);
        });
    }, py::arg("keys"), py::arg("alphas"), py::arg("psi"), py::arg("depth"), py::arg("leaves"),
       py::arg("threads") = 0,
       "Receiver of single-point COTs: every leaf but alpha from the off-path level sums, leaf alpha "
       "from psi.");

    m.def("silent_lpn_encode", [](const py::array& base, const py::array& seed, size_t row_begin,
                                  const py::array& out, int threads) {
        uint64_t *b, *o;
        const size_t k = blocks_of(base, "base", false, &b);
        if (k == 0 || k >> 32) throw py::value_error("base must hold 1 .. 2^32 - 1 blocks");
        auto vs = view<uint8_t>(seed, "seed", false);
        if (vs.size != 16) throw py::value_error("seed must be 16 bytes");
        const size_t rows = blocks_of(out, "out", true, &o);
        const unsigned nt = threads_for(threads);
        const auto& kern = active();
        py::gil_scoped_release nogil;
        parts(rows, rows < (size_t(1) << 16) ? 1 : nt, [&](size_t lo, size_t hi, size_t) {
            if (lo < hi) kern.lpn_encode(bytes(b), k, vs.data, row_begin + lo, hi - lo, bytes(o) + 16 * lo);
        });
    }, py::arg("base"), py::arg("seed"), py::arg("row_begin"), py::arg("out"), py::arg("threads") = 0,
       "out[r] ^= XOR of the base blocks at row (row_begin + r)'s columns of the public LPN matrix.");
}

}  // namespace safelight::bind
