// Scalar reference of the BFV plaintext-matrix x ciphertext-vector product
// (Kernels::dot2): 128-bit accumulators held in registers for two
// coefficients of both output polynomials, one Barrett reduction per
// q.lazy_terms products. Built without vectorisation (SL_SCALAR_FLAGS): the
// reference every other path is compared with.
#include "modarith.hpp"

namespace safelight::bfv::scalar {
namespace {

void dot2(const uint64_t* ct, size_t ct_stride, size_t c1_off, const uint64_t* pt, size_t pt_stride,
          size_t m, uint64_t* out0, uint64_t* out1, size_t n, const Modulus& q) noexcept {
    const unsigned lazy = q.lazy_terms;
    for (size_t x = 0; x < n; x += 2) {  // n is even
        u128 s00 = 0, s01 = 0, s10 = 0, s11 = 0;  // [polynomial][coefficient]
        unsigned pending = 0;
        const uint64_t* c0 = ct + x;
        const uint64_t* b = pt + x;
        for (size_t r = 0; r < m; ++r, c0 += ct_stride, b += pt_stride) {
            const uint64_t* c1 = c0 + c1_off;
            const uint64_t b0 = b[0], b1 = b[1];
            s00 += u128(c0[0]) * b0;
            s01 += u128(c0[1]) * b1;
            s10 += u128(c1[0]) * b0;
            s11 += u128(c1[1]) * b1;
            if (++pending == lazy) {  // depends on m only
                s00 = reduce128(s00, q);
                s01 = reduce128(s01, q);
                s10 = reduce128(s10, q);
                s11 = reduce128(s11, q);
                pending = 0;
            }
        }
        out0[x] = reduce128(s00, q);
        out0[x + 1] = reduce128(s01, q);
        out1[x] = reduce128(s10, q);
        out1[x + 1] = reduce128(s11, q);
    }
}

}  // namespace

const Kernels table = {dot2};

}  // namespace safelight::bfv::scalar
