// Threaded drivers for the GEMM engine: pick the active ISA table, split the
// output over worker threads and give each thread its own packing workspace
// (allocated once per call, sized to the problem).
#include <algorithm>
#include <mutex>
#include <new>
#include <vector>

#include "safelight/buffer_pool.hpp"
#include "safelight/gemm.hpp"
#include "safelight/parallel.hpp"

namespace safelight::gemm {

const Kernels& kernels(Isa isa) { return pick_for(isa, scalar::table, avx2::table, avx512::table); }

bool make_conv_shape(ConvShape& s) {
    if (s.groups == 0 || s.stride_h == 0 || s.stride_w == 0 || s.dil_h == 0 || s.dil_w == 0 ||
        s.kh == 0 || s.kw == 0)
        return false;
    if (s.in_ch % s.groups != 0 || s.out_ch % s.groups != 0) return false;
    const size_t eff_h = s.dil_h * (s.kh - 1) + 1, eff_w = s.dil_w * (s.kw - 1) + 1;
    const size_t padded_h = s.in_h + 2 * s.pad_h, padded_w = s.in_w + 2 * s.pad_w;
    if (eff_h > padded_h || eff_w > padded_w) return false;
    s.out_h = (padded_h - eff_h) / s.stride_h + 1;
    s.out_w = (padded_w - eff_w) / s.stride_w + 1;
    s.in_per_group = s.in_ch / s.groups;
    s.out_per_group = s.out_ch / s.groups;
    s.patch = s.in_per_group * s.kh * s.kw;
    s.out_plane = s.out_h * s.out_w;
    return true;
}

namespace {

// Below this many multiply-adds a call runs on the calling thread: starting
// threads costs tens of microseconds.
constexpr double kMinParallelMacs = double(1 << 21);

// Packing buffers are recycled between calls: a fresh multi-megabyte
// allocation is a fresh mmap, and faulting its pages in costs more than a
// mid-sized product. A few idle buffers (bounded in total) are kept.
BufferPool& pool() {
    static BufferPool* p = new BufferPool(8, size_t(64) << 20);  // never destroyed: no exit-order issues
    return *p;
}

// Packing panels of one call, recycled between calls.
class Workspace : public PooledBuffer {
public:
    explicit Workspace(size_t elems) : PooledBuffer(pool(), elems) {}
};

size_t grain_of(size_t block) { return block == 0 ? 8 : block; }

// [0, n) cut into `parts` ranges whose inner boundaries are multiples of
// `grain` (some ranges may be empty).
std::vector<size_t> split(size_t n, size_t parts, size_t grain) {
    const size_t step = (n / parts + grain - 1) / grain * grain;
    std::vector<size_t> bounds(parts + 1, n);
    bounds[0] = 0;
    for (size_t t = 1; t < parts; ++t) bounds[t] = std::min(n, t * step);
    return bounds;
}

// Runs body(t) for t in [0, parts) on the worker threads, one part each.
template <class Body>
void run_parts(size_t parts, Body body) {
    parallel_for(parts, 0, 1, [&](size_t lo, size_t hi) {
        for (size_t t = lo; t < hi; ++t) body(t);
    });
}

}  // namespace

// Workspaces are taken on the calling thread, before any worker starts, so
// that running out of memory is a MemoryError rather than an exception
// escaping a worker thread.

void matmul(const uint64_t* a, const uint64_t* b, uint64_t* c, size_t m, size_t n, size_t k,
            bool accumulate) {
    if (m == 0 || n == 0) return;
    const Kernels& kr = kernels(active_isa());
    const Blocking& bl = kr.blocking;
    const size_t threads = worker_count();
    if (threads == 1 || double(m) * double(n) * double(k) < kMinParallelMacs) {
        Workspace ws(kr.matmul_workspace(m, n, k));
        kr.matmul(a, k, b, n, c, n, m, n, k, accumulate, ws.get());
        return;
    }
    // Split the longer output side: each thread packs its own panels of the
    // split operand and (redundantly, O(m*k) or O(k*n)) of the shared one.
    const bool by_cols = n >= m;
    const std::vector<size_t> bounds =
        by_cols ? split(n, threads, grain_of(bl.nr)) : split(m, threads, grain_of(bl.mr));
    std::vector<Workspace> ws;
    ws.reserve(threads);
    for (size_t t = 0; t < threads; ++t) {
        const size_t len = bounds[t + 1] - bounds[t];
        ws.emplace_back(len == 0 ? 0
                        : by_cols ? kr.matmul_workspace(m, len, k)
                                  : kr.matmul_workspace(len, n, k));
    }
    run_parts(threads, [&](size_t t) {
        const size_t lo = bounds[t], len = bounds[t + 1] - lo;
        if (len == 0) return;
        if (by_cols)
            kr.matmul(a, k, b + lo, n, c + lo, n, m, len, k, accumulate, ws[t].get());
        else
            kr.matmul(a + lo * k, k, b, n, c + lo * n, n, len, n, k, accumulate, ws[t].get());
    });
}

void conv2d(const ConvShape& s, const uint64_t* x, const uint64_t* w, uint64_t* out,
            bool accumulate) {
    const size_t plane = s.out_plane;
    if (s.batch == 0 || s.out_ch == 0 || plane == 0) return;
    const Kernels& kr = kernels(active_isa());
    const Blocking& bl = kr.blocking;
    const double macs = double(s.batch) * double(s.out_ch) * double(plane) * double(s.patch);
    const size_t threads = macs >= kMinParallelMacs ? worker_count() : 1;

    // Thin groups (depthwise: one output channel per group) waste most of an
    // mr-high micro-tile; the direct loops do better there.
    const bool use_gemm = kr.conv2d_gemm != nullptr && bl.gemm_min_og != 0 &&
                          s.out_per_group >= bl.gemm_min_og;
    if (!use_gemm) {
        const std::vector<size_t> bounds = split(s.batch * s.out_ch * s.out_h, threads, 1);
        run_parts(threads, [&](size_t t) {
            if (bounds[t] < bounds[t + 1])
                kr.conv2d_direct(s, x, w, out, bounds[t], bounds[t + 1], accumulate);
        });
        return;
    }
    // One GEMM per (image, group) of out_per_group x plane; the flattened
    // (image, group, position) columns are split evenly between threads.
    const std::vector<size_t> bounds = split(s.batch * s.groups * plane, threads, grain_of(bl.nr));
    std::vector<Workspace> ws;
    ws.reserve(threads);
    for (size_t t = 0; t < threads; ++t) {
        const size_t len = bounds[t + 1] - bounds[t];
        ws.emplace_back(len == 0 ? 0
                                 : kr.conv2d_workspace(s.out_per_group, std::min(len, plane),
                                                       s.patch));
    }
    run_parts(threads, [&](size_t t) {
        for (size_t lo = bounds[t], hi = bounds[t + 1]; lo < hi;) {
            const size_t ig = lo / plane, p = lo % plane;
            const size_t end = p + std::min(hi - lo, plane - p);
            kr.conv2d_gemm(s, x, w, out, ig / s.groups, ig % s.groups, p, end, accumulate,
                           ws[t].get());
            lo += end - p;
        }
    });
}

}  // namespace safelight::gemm
