// Scalar reference of the BFV plaintext-matrix x ciphertext-vector product
// (Kernels::dot2): 128-bit accumulators, one Barrett reduction per
// q.lazy_terms products. Built without vectorisation (SL_SCALAR_FLAGS): the
// reference every other path is compared with.
#include "modarith.hpp"

namespace safelight::bfv::scalar {
namespace {

constexpr size_t kBlock = 64;  // coefficients whose accumulators stay in L1

void dot2(const uint64_t* ct, size_t ct_stride, size_t c1_off, const uint64_t* pt, size_t pt_stride,
          size_t m, uint64_t* out0, uint64_t* out1, size_t n, const Modulus& q) noexcept {
    u128 acc0[kBlock], acc1[kBlock];
    for (size_t x0 = 0; x0 < n; x0 += kBlock) {
        const size_t nb = n - x0 < kBlock ? n - x0 : kBlock;
        for (size_t x = 0; x < nb; ++x) acc0[x] = acc1[x] = 0;
        unsigned pending = 0;
        for (size_t r = 0; r < m; ++r) {
            const uint64_t* a0 = ct + r * ct_stride + x0;
            const uint64_t* a1 = a0 + c1_off;
            const uint64_t* b = pt + r * pt_stride + x0;
            for (size_t x = 0; x < nb; ++x) {
                acc0[x] += u128(a0[x]) * b[x];
                acc1[x] += u128(a1[x]) * b[x];
            }
            if (++pending == q.lazy_terms) {  // depends on m only
                for (size_t x = 0; x < nb; ++x) {
                    acc0[x] = reduce128(acc0[x], q);
                    acc1[x] = reduce128(acc1[x], q);
                }
                pending = 0;
            }
        }
        for (size_t x = 0; x < nb; ++x) {
            out0[x0 + x] = reduce128(acc0[x], q);
            out1[x0 + x] = reduce128(acc1[x], q);
        }
    }
}

}  // namespace

const Kernels table = {dot2};

}  // namespace safelight::bfv::scalar
