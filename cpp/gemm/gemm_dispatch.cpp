// Threaded drivers for the GEMM engine: pick the active ISA table, split the
// output over worker threads and give each thread its own packing workspace
// (allocated once per call, sized to the problem).
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>

#include "safelight/gemm.hpp"
#include "safelight/parallel.hpp"

namespace safelight::gemm {

const Kernels& kernels(Isa isa) {
    switch (isa) {
        case Isa::avx512: return avx512::table;
        case Isa::avx2: return avx2::table;
        case Isa::scalar: break;
    }
    return scalar::table;
}

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

struct FreeAligned {
    void operator()(uint64_t* p) const { ::operator delete[](p, std::align_val_t(64)); }
};
using Workspace = std::unique_ptr<uint64_t[], FreeAligned>;

Workspace workspace(size_t elems) {
    if (elems == 0) return Workspace();
    return Workspace(static_cast<uint64_t*>(
        ::operator new[](elems * sizeof(uint64_t), std::align_val_t(64))));
}

size_t grain_of(size_t block) { return block == 0 ? 8 : block; }

}  // namespace

void matmul(const uint64_t* a, const uint64_t* b, uint64_t* c, size_t m, size_t n, size_t k,
            bool accumulate) {
    if (m == 0 || n == 0) return;
    const Kernels& kr = kernels(active_isa());
    const Blocking& bl = kr.blocking;
    const bool parallel =
        worker_count() > 1 && double(m) * double(n) * double(k) >= kMinParallelMacs;
    if (!parallel) {
        Workspace ws = workspace(kr.workspace_elems(m, n, k));
        kr.matmul(a, k, b, n, c, n, m, n, k, accumulate, ws.get());
        return;
    }
    // Split the longer output side: each thread packs its own panels of the
    // split operand and (redundantly, O(m*k) or O(k*n)) the shared one.
    if (n >= m) {
        parallel_for(n, 0, grain_of(bl.nr), [&](size_t lo, size_t hi) {
            Workspace ws = workspace(kr.workspace_elems(m, hi - lo, k));
            kr.matmul(a, k, b + lo, n, c + lo, n, m, hi - lo, k, accumulate, ws.get());
        });
    } else {
        parallel_for(m, 0, grain_of(bl.mr), [&](size_t lo, size_t hi) {
            Workspace ws = workspace(kr.workspace_elems(hi - lo, n, k));
            kr.matmul(a + lo * k, k, b, n, c + lo * n, n, hi - lo, n, k, accumulate, ws.get());
        });
    }
}

void conv2d(const ConvShape& s, const uint64_t* x, const uint64_t* w, uint64_t* out,
            bool accumulate) {
    const size_t plane = s.out_plane;
    if (s.batch == 0 || s.out_ch == 0 || plane == 0) return;
    const Kernels& kr = kernels(active_isa());
    const Blocking& bl = kr.blocking;
    const double macs = double(s.batch) * double(s.out_ch) * double(plane) * double(s.patch);
    const bool parallel = worker_count() > 1 && macs >= kMinParallelMacs;

    // Thin groups (depthwise: one output channel per group) waste most of an
    // mr-high micro-tile; the direct loops do better there.
    size_t min_og = bl.gemm_min_og;
    if (const char* e = std::getenv("SL_TUNE_MIN_OG")) min_og = size_t(std::atoi(e));  // TUNE
    const bool use_gemm = kr.conv2d_gemm != nullptr && min_og && s.out_per_group >= min_og;
    if (!use_gemm) {
        const size_t rows = s.batch * s.out_ch * s.out_h;
        parallel_for(rows, parallel ? 0 : rows + 1, 1, [&](size_t lo, size_t hi) {
            kr.conv2d_direct(s, x, w, out, lo, hi, accumulate);
        });
        return;
    }
    // One GEMM per (image, group) of out_per_group x plane; the flattened
    // (image, group, position) columns are split evenly between threads.
    const size_t total = s.batch * s.groups * plane;
    parallel_for(total, parallel ? 0 : total + 1, grain_of(bl.nr), [&](size_t lo, size_t hi) {
        Workspace ws = workspace(kr.workspace_elems(s.out_per_group, std::min(hi - lo, plane),
                                                    s.patch));
        while (lo < hi) {
            const size_t ig = lo / plane, p = lo % plane;
            const size_t end = std::min(hi - lo, plane - p) + p;
            kr.conv2d_gemm(s, x, w, out, ig / s.groups, ig % s.groups, p, end, accumulate,
                           ws.get());
            lo += end - p;
        }
    });
}

}  // namespace safelight::gemm
