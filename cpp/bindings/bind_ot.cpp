// Bindings of the OT engine: IKNP extension chunks, the bit-matrix transpose,
// the correlation-robust hash and the dealer-mode correlation. Every array is
// used in place (no copies) and the GIL is released around the kernels.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "array_view.hpp"
#include "safelight/ot.hpp"
#include "safelight/parallel.hpp"

namespace safelight::bind {

namespace {

constexpr size_t kRows = ot::kBaseOts;
constexpr size_t kMinParallelBlocks = size_t(1) << 14;  // below this, threads cost more than they save

const ot::Kernels& active() { return ot::kernels(active_isa()); }

unsigned thread_count(int threads) {
    if (threads < 0) throw py::value_error("threads must be >= 0 (0 = automatic)");
    return threads == 0 ? worker_count() : std::min(unsigned(threads), 64u);
}

// body(lo, hi) over [0, n) in `threads` contiguous parts aligned to `grain`.
template <class Body>
void split(size_t n, unsigned threads, size_t grain, Body body) {
    size_t parts = std::min<size_t>(threads, (n + grain - 1) / grain);
    if (parts <= 1) {
        body(size_t(0), n);
        return;
    }
    size_t chunk = ((n + parts - 1) / parts + grain - 1) / grain * grain;
    std::vector<std::thread> pool;
    for (size_t lo = chunk; lo < n; lo += chunk)
        pool.emplace_back([=] { body(lo, std::min(n, lo + chunk)); });
    body(size_t(0), std::min(n, chunk));
    for (auto& t : pool) t.join();
}

// A (128, 16) uint8 array of base-OT seeds.
const uint8_t* seeds(const py::array& a, const char* name) {
    auto v = view<uint8_t>(a, name, false);
    if (v.size != kRows * ot::kSeedBytes)
        throw py::value_error(std::string(name) + " must hold 128 seeds of 16 bytes (shape (128, 16))");
    return v.data;
}

// A 16-byte block given as a (2,) uint64 array (labels) or 16 uint8.
const uint8_t* block(const py::array& a, const char* name) {
    if (a.dtype().equal(py::dtype::of<uint64_t>())) {
        auto v = view<uint64_t>(a, name, false);
        if (v.size != 2) throw py::value_error(std::string(name) + " must be 2 uint64 words (16 bytes)");
        return reinterpret_cast<const uint8_t*>(v.data);
    }
    auto v = view<uint8_t>(a, name, false);
    if (v.size != 16) throw py::value_error(std::string(name) + " must be 16 bytes");
    return v.data;
}

// An (n, 2) uint64 label array (any shape with an even number of words): n.
View<uint64_t> labels(const py::array& a, const char* name, bool writable) {
    auto v = view<uint64_t>(a, name, writable);
    if (v.size % 2) throw py::value_error(std::string(name) + " must hold whole 128-bit blocks (shape (n, 2))");
    return v;
}

struct Chunk {
    size_t ncols;  // columns of the 128 x ncols matrix (a multiple of 128)
    size_t nout;   // output blocks written
    uint64_t* u;
    uint64_t* out;
};

Chunk chunk_views(const py::array& u, bool u_writable, const py::array& out, uint64_t counter, const char* what) {
    auto vu = view<uint64_t>(u, "u", u_writable);
    if (vu.size == 0 || vu.size % (kRows * 2))
        throw py::value_error(std::string(what) +
                              ": u must have shape (128, ncols/64) with ncols a positive multiple of 128");
    const size_t ncols = vu.size / kRows * 64;
    auto vo = labels(out, "out", true);
    if (vo.size / 2 > ncols)
        throw py::value_error(std::string(what) + ": out has more blocks (" + std::to_string(vo.size / 2) +
                              ") than the chunk has columns (" + std::to_string(ncols) + ")");
    if (ncols / 128 > std::numeric_limits<uint64_t>::max() - counter)
        throw py::value_error(std::string(what) + ": counter + blocks would pass 2^64 (counter wrap)");
    return {ncols, vo.size / 2, vu.data, vo.data};
}

// Per-thread scratch of the fused kernels, 64-byte aligned, allocated before
// the GIL is released (so an allocation failure is a Python MemoryError).
class Work {
public:
    explicit Work(size_t parts) : buf_(new uint8_t[parts * ot::kWorkBytes + 64]) {}
    uint8_t* part(size_t k) {
        auto p = reinterpret_cast<uintptr_t>(buf_.get());
        return reinterpret_cast<uint8_t*>((p + 63) & ~uintptr_t(63)) + k * ot::kWorkBytes;
    }

private:
    std::unique_ptr<uint8_t[]> buf_;  // the kernels wipe what they wrote
};

// body(col_begin, col_end, work) over the chunk's tiles, split between threads.
template <class Body>
void over_tiles(size_t ncols, unsigned threads, Body body) {
    const size_t tiles = (ncols + ot::kTileCols - 1) / ot::kTileCols;
    const size_t parts = ncols < kMinParallelBlocks ? 1 : std::min<size_t>(threads, tiles);
    Work work(parts);
    py::gil_scoped_release nogil;
    const size_t per = (tiles + parts - 1) / parts;
    std::vector<std::thread> pool;
    for (size_t k = 1; k < parts; ++k)
        pool.emplace_back([&, k] {
            body(std::min(ncols, k * per * ot::kTileCols), std::min(ncols, (k + 1) * per * ot::kTileCols),
                 work.part(k));
        });
    body(0, std::min(ncols, per * ot::kTileCols), work.part(0));
    for (auto& t : pool) t.join();
}

void transpose_parallel(const ot::Kernels& k, const uint8_t* bits, size_t stride, size_t ncols, uint8_t* out,
                        size_t nout, unsigned threads) {
    const size_t tiles = (std::min(ncols, nout) + 127) / 128;
    if (ncols < kMinParallelBlocks) threads = 1;
    split(tiles, threads, 1, [&](size_t lo, size_t hi) {
        k.transpose(bits, stride, 128 * lo, 128 * hi, out, nout);
    });
}

}  // namespace

void bind_ot(py::module_& m) {
    m.def("ot_transpose", [](const py::array& bits, const py::array& out, int threads) {
        auto vb = view<uint8_t>(bits, "bits", false);
        if (bits.ndim() != 2 || size_t(bits.shape(0)) != kRows || (size_t(bits.shape(1)) * 8) % 128)
            throw py::value_error("bits must have shape (128, ncols/8) with ncols a multiple of 128");
        const size_t ncols = size_t(bits.shape(1)) * 8;
        auto vo = labels(out, "out", true);
        if (vo.size / 2 > ncols)
            throw py::value_error("out has more blocks than bits has columns");
        const unsigned nt = thread_count(threads);
        const auto& k = active();
        py::gil_scoped_release nogil;
        transpose_parallel(k, vb.data, ncols / 8, ncols, reinterpret_cast<uint8_t*>(vo.data), vo.size / 2, nt);
    }, py::arg("bits"), py::arg("out"), py::arg("threads") = 0,
       "out[j] (16 bytes) = column j of the 128 x ncols bit matrix `bits` (row i = bits[i], bit j of a "
       "row = bit j%8 of byte j/8); only len(out) <= ncols columns are written.");

    m.def("ot_receiver_extend", [](const py::array& k0, const py::array& k1, uint64_t counter,
                                   const py::array& choice_bits, const py::array& u, const py::array& t,
                                   int threads) {
        const uint8_t* s0 = seeds(k0, "k0");
        const uint8_t* s1 = seeds(k1, "k1");
        Chunk c = chunk_views(u, true, t, counter, "ot_receiver_extend");
        auto vc = view<uint8_t>(choice_bits, "choice_bits", false);
        if (vc.size != c.ncols / 8)
            throw py::value_error("choice_bits must hold ncols/8 = " + std::to_string(c.ncols / 8) +
                                  " packed bytes (little-endian bit order)");
        const unsigned nt = thread_count(threads);
        const auto& k = active();
        auto* ub = reinterpret_cast<uint8_t*>(c.u);
        auto* tb = reinterpret_cast<uint8_t*>(c.out);
        over_tiles(c.ncols, nt, [&](size_t lo, size_t hi, uint8_t* work) {
            k.receiver_cols(s0, s1, counter, vc.data, c.ncols, ub, tb, c.nout, lo, hi, work);
        });
    }, py::arg("k0"), py::arg("k1"), py::arg("counter"), py::arg("choice_bits"), py::arg("u"), py::arg("t"),
       py::arg("threads") = 0,
       "IKNP receiver, one chunk of ncols columns whose first column is PRG block `counter`: writes "
       "u = G(k0) ^ G(k1) ^ c (shape (128, ncols/64), sent to the sender) and the first len(t) blocks "
       "of t = transpose(G(k0)).");

    m.def("ot_sender_extend", [](const py::array& ks, const py::array& delta, uint64_t counter,
                                 const py::array& u, const py::array& q, int threads) {
        const uint8_t* s = seeds(ks, "ks");
        const uint8_t* d = block(delta, "delta");
        Chunk c = chunk_views(u, false, q, counter, "ot_sender_extend");
        const unsigned nt = thread_count(threads);
        const auto& k = active();
        const auto* ub = reinterpret_cast<const uint8_t*>(c.u);
        auto* qb = reinterpret_cast<uint8_t*>(c.out);
        over_tiles(c.ncols, nt, [&](size_t lo, size_t hi, uint8_t* work) {
            k.sender_cols(s, d, counter, ub, c.ncols, qb, c.nout, lo, hi, work);
        });
    }, py::arg("ks"), py::arg("delta"), py::arg("counter"), py::arg("u"), py::arg("q"), py::arg("threads") = 0,
       "IKNP sender, one chunk: the first len(q) blocks of q = transpose(G(k_s) ^ s * u), s = bits of "
       "delta.");

    m.def("ot_transpose_impl", [](const std::string& force) {
        if (force.empty()) return std::string(ot::avx512::transpose_impl(-1));
        if (force == "movemask") return std::string(ot::avx512::transpose_impl(1));
        if (force == "auto") return std::string(ot::avx512::transpose_impl(0));
        throw py::value_error("force must be '', 'auto' or 'movemask'");
    }, py::arg("force") = "",
       "Bit-transpose variant of the avx512 path: 'gfni' (GFNI + VBMI) or 'movemask'. "
       "'movemask' forces the fallback (tests), 'auto' restores the CPU's best.");

    m.def("ot_hash", [](const py::array& x, const py::array& out, uint64_t tweak, uint64_t domain,
                        int threads) {
        auto vx = labels(x, "x", false);
        auto vo = labels(out, "out", true);
        same_size(vx.size, vo.size, "ot_hash");
        if (vx.size / 2 > std::numeric_limits<uint64_t>::max() - tweak)
            throw py::value_error("tweak + n would pass 2^64");
        const unsigned nt = thread_count(threads);
        const auto& k = active();
        py::gil_scoped_release nogil;
        const size_t n = vx.size / 2;
        split(n, n < kMinParallelBlocks ? 1 : nt, 64, [&](size_t lo, size_t hi) {
            k.tccr(reinterpret_cast<const uint8_t*>(vx.data + 2 * lo),
                   reinterpret_cast<uint8_t*>(vo.data + 2 * lo), nullptr, nullptr, hi - lo, tweak + lo,
                   domain);
        });
    }, py::arg("x"), py::arg("out"), py::arg("tweak"), py::arg("domain") = 0, py::arg("threads") = 0,
       "out[j] = H(x[j], (tweak + j, domain)), H(x, w) = pi(pi(x) ^ w) ^ pi(x), pi = fixed-key AES-128 "
       "(tweakable correlation-robust hash; the receiver's random-OT output).");

    m.def("ot_hash_pair", [](const py::array& q, const py::array& delta, const py::array& out0,
                             const py::array& out1, uint64_t tweak, uint64_t domain, int threads) {
        auto vq = labels(q, "q", false);
        const uint8_t* d = block(delta, "delta");
        auto v0 = labels(out0, "out0", true);
        auto v1 = labels(out1, "out1", true);
        same_size(vq.size, v0.size, "ot_hash_pair");
        same_size(vq.size, v1.size, "ot_hash_pair");
        if (vq.size / 2 > std::numeric_limits<uint64_t>::max() - tweak)
            throw py::value_error("tweak + n would pass 2^64");
        const unsigned nt = thread_count(threads);
        const auto& k = active();
        py::gil_scoped_release nogil;
        const size_t n = vq.size / 2;
        split(n, n < kMinParallelBlocks ? 1 : nt, 64, [&](size_t lo, size_t hi) {
            k.tccr(reinterpret_cast<const uint8_t*>(vq.data + 2 * lo), reinterpret_cast<uint8_t*>(v0.data + 2 * lo),
                   reinterpret_cast<uint8_t*>(v1.data + 2 * lo), d, hi - lo, tweak + lo, domain);
        });
    }, py::arg("q"), py::arg("delta"), py::arg("out0"), py::arg("out1"), py::arg("tweak"),
       py::arg("domain") = 0, py::arg("threads") = 0,
       "out0[j] = H(q[j], w_j), out1[j] = H(q[j] ^ delta, w_j): the sender's random-OT pair.");

    m.def("ot_millionaire_tables", [](const py::array& r0, const py::array& r1, const py::array& flips,
                                       const py::array& a, const py::array& lt, const py::array& eq,
                                       uint64_t tweak, uint64_t domain, const py::array& out) {
        auto v0 = labels(r0, "r0", false);
        auto v1 = labels(r1, "r1", false);
        auto vf = view<uint8_t>(flips, "flips", false);
        auto va = view<uint8_t>(a, "a", false);
        auto vl = view<uint8_t>(lt, "lt", false);
        auto ve = view<uint8_t>(eq, "eq", false);
        auto vo = view<uint32_t>(out, "out", true);
        const size_t m = vo.size;
        if (v0.size != 8 * m || v1.size != 8 * m || vf.size != 4 * m || va.size != m || vl.size != m ||
            ve.size != m)
            throw py::value_error("ot_millionaire_tables: r0, r1 (4 m blocks), flips (4 m), a, lt, eq, out (m)");
        if (m > std::numeric_limits<uint64_t>::max() - tweak) throw py::value_error("tweak + m would pass 2^64");
        const auto& k = active();
        py::gil_scoped_release nogil;
        ot::millionaire_tables(k, reinterpret_cast<const uint8_t*>(v0.data), reinterpret_cast<const uint8_t*>(v1.data),
                               vf.data, va.data, vl.data, ve.data, m, tweak, domain, vo.data);
    }, py::arg("r0"), py::arg("r1"), py::arg("flips"), py::arg("a"), py::arg("lt"), py::arg("eq"),
       py::arg("tweak"), py::arg("domain"), py::arg("out"),
       "The sender's 1-out-of-16 tables of the OT-based millionaires' protocol (see ot.hpp).");

    m.def("ot_correlate", [](const py::array& q, const py::array& choices, const py::array& delta,
                             const py::array& out, int threads) {
        auto vq = labels(q, "q", false);
        auto vc = view<uint8_t>(choices, "choices", false);
        const uint8_t* d = block(delta, "delta");
        auto vo = labels(out, "out", true);
        same_size(vq.size, vo.size, "ot_correlate");
        same_size(vq.size / 2, vc.size, "ot_correlate");
        const unsigned nt = thread_count(threads);
        const auto& k = active();
        py::gil_scoped_release nogil;
        const size_t n = vc.size;
        split(n, n < (size_t(1) << 16) ? 1 : nt, 64, [&](size_t lo, size_t hi) {
            k.correlate(reinterpret_cast<const uint8_t*>(vq.data + 2 * lo), vc.data + lo, d,
                        reinterpret_cast<uint8_t*>(vo.data + 2 * lo), hi - lo);
        });
    }, py::arg("q"), py::arg("choices"), py::arg("delta"), py::arg("out"), py::arg("threads") = 0,
       "out[j] = q[j] ^ (choices[j] & 1) * delta (in place allowed).");
}

}  // namespace safelight::bind
