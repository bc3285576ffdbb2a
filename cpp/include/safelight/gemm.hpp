// GEMM engine: matrix multiply and 2-D convolution over Z_2^64 (wrap-around
// uint64), the hot loops of secure linear layers.
//
// The per-ISA kernels work on one rectangle of the output with a caller-owned
// workspace; they never allocate, throw or start threads. The drivers below
// (gemm_dispatch.cpp) check nothing: the bindings validate shapes first. They
// split the work over worker threads and give each thread a workspace, taken
// on the calling thread from a small pool of recycled buffers.
#pragma once
#include <cstddef>
#include <cstdint>

#include "safelight/isa.hpp"

namespace safelight::gemm {

// Geometry of a zero-padded 2-D cross-correlation in NCHW layout (PyTorch /
// ONNX Conv without bias). Weights are [out_ch, in_ch / groups, kh, kw].
struct ConvShape {
    size_t batch, in_ch, in_h, in_w;
    size_t out_ch, kh, kw;
    size_t out_h, out_w;
    size_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    size_t groups;
    // Derived by make_conv_shape (kept as plain fields: no inline code shared
    // between translation units built for different instruction sets).
    size_t in_per_group, out_per_group;
    size_t patch;      // in_per_group * kh * kw: reduction length of the GEMM view
    size_t out_plane;  // out_h * out_w
};

// Fills the derived fields and the output size. Returns false when the
// geometry is invalid (zero stride/dilation/groups, groups not dividing the
// channels, kernel larger than the padded input).
bool make_conv_shape(ConvShape& s);

// Cache blocking of one ISA path: micro-tile mr x nr, blocks mc x kc of A and
// kc x nc of B. The scalar reference reports zeros (it packs nothing).
// Convolutions with fewer than gemm_min_og output channels per group take
// the direct loops instead of the GEMM (0: never the GEMM).
struct Blocking {
    size_t mr, nr, mc, kc, nc;
    size_t gemm_min_og;
};

struct Kernels {
    Blocking blocking;
    // Elements of 64-byte aligned workspace one call of matmul (m, n, k), or
    // of conv2d_gemm (m = out_per_group, n = p_end - p_begin, k = patch), needs.
    size_t (*matmul_workspace)(size_t m, size_t n, size_t k) noexcept;
    size_t (*conv2d_workspace)(size_t m, size_t n, size_t k) noexcept;
    // c[m x n] (=|+=) a[m x k] @ b[k x n] mod 2^64, row-major with leading
    // dimensions lda, ldb, ldc. k == 0 zeroes c unless accumulating.
    void (*matmul)(const uint64_t* a, size_t lda, const uint64_t* b, size_t ldb, uint64_t* c,
                   size_t ldc, size_t m, size_t n, size_t k, bool accumulate,
                   uint64_t* work) noexcept;
    // GEMM formulation of one (image, group): output channels of the group x
    // output positions [p_begin, p_end) of the flattened out_h*out_w plane,
    // with an im2col of the input packed on the fly. Null on the scalar path.
    void (*conv2d_gemm)(const ConvShape& s, const uint64_t* x, const uint64_t* w, uint64_t* out,
                        size_t image, size_t group, size_t p_begin, size_t p_end, bool accumulate,
                        uint64_t* work) noexcept;
    // Direct loops (any shape; used for depthwise and thin groups): output
    // rows [row_begin, row_end) of the flattened (image, out channel, out row)
    // index.
    void (*conv2d_direct)(const ConvShape& s, const uint64_t* x, const uint64_t* w, uint64_t* out,
                          size_t row_begin, size_t row_end, bool accumulate) noexcept;
};

const Kernels& kernels(Isa isa);

namespace scalar { extern const Kernels table; }
namespace avx2 { extern const Kernels table; }
namespace avx512 { extern const Kernels table; }

// Threaded drivers on the active ISA (buffers are C-contiguous).
void matmul(const uint64_t* a, const uint64_t* b, uint64_t* c, size_t m, size_t n, size_t k,
            bool accumulate);
void conv2d(const ConvShape& s, const uint64_t* x, const uint64_t* w, uint64_t* out,
            bool accumulate);

}  // namespace safelight::gemm
