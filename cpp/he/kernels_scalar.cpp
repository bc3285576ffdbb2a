// Scalar reference kernels of the BFV engine, built without vectorisation
// (SL_SCALAR_FLAGS): the reference every other path is compared with.
//   dot2: plaintext-matrix x ciphertext-vector product, 128-bit accumulators
//     held in registers for two coefficients of both output polynomials, one
//     Barrett reduction per q.lazy_terms products;
//   convert / scale_convert: the RNS base conversion and the HPS scaling of
//     ciphertext multiplication (maths in bfv.hpp), one coefficient at a time,
//     each output one Montgomery reduction of a 128-bit sum.
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

constexpr size_t kMaxBase = 64;

void convert(const uint64_t* in, uint64_t* out, size_t n, const ConvView& c) noexcept {
    const size_t r = c.r, b = c.b;
    uint64_t y[kMaxBase];
    for (size_t x = 0; x < n; ++x) {
        // y_i = [x_i (A/a_i)^-1]_{a_i}; v = round(sum_i y_i / a_i), 64-bit fractions
        u128 frac = u128(1) << 63;
        for (size_t i = 0; i < r; ++i) {
            const Modulus& ai = c.from[i];
            const uint64_t yv = mul_shoup(in[i * n + x], c.ahat_inv[i], c.ahat_inv_shoup[i], ai.value);
            y[i] = yv;
            frac += yv * ai.ratio_hi + hi64(u128(yv) * ai.ratio_lo);
        }
        const uint64_t v = hi64(frac);
        for (size_t j = 0; j < b; ++j) {
            const uint64_t* cj = c.ahat_mod + j * r;
            u128 acc = u128(v) * c.neg_a_mod[j];
            for (size_t i = 0; i < r; ++i) acc += u128(y[i]) * cj[i];
            out[j * n + x] = redc_wide(acc, c.to[j]);
        }
    }
}

void scale_convert(const uint64_t* d, uint64_t* out, size_t n, const ScaleView& s) noexcept {
    const size_t k = s.k, a = s.a;
    const ConvView& cv = s.p_to_q;
    uint64_t xi[kMaxBase], yj[kMaxBase];
    for (size_t x = 0; x < n; ++x) {
        // x_i' = [d_i (Q P / q_i)^-1]_{q_i}; R = round(sum_i x_i' th_i)
        u128 ip = 0, fr = u128(1) << 63;
        for (size_t i = 0; i < k; ++i) {
            const uint64_t v = mul_shoup(d[i * n + x], s.x_inv[i], s.x_inv_shoup[i], s.q[i].value);
            xi[i] = v;
            const u128 prod = u128(v) * s.theta[i];
            ip += hi64(prod);
            fr += uint64_t(prod);
        }
        const u128 rnd = ip + hi64(fr);
        const uint64_t r_lo = uint64_t(rnd), r_hi = hi64(rnd);
        // y_j' = [round(t d / Q) (P/p_j)^-1]_{p_j}, and the conversion's v
        u128 frac = u128(1) << 63;
        for (size_t j = 0; j < a; ++j) {
            const Modulus& pj = s.p[j];
            const uint64_t* om = s.omega + j * k;
            u128 acc = u128(d[(k + j) * n + x]) * s.t_q_inv[j] + u128(r_lo) * s.one_mont[j] +
                       u128(r_hi) * s.two128_mont[j];
            for (size_t i = 0; i < k; ++i) acc += u128(xi[i]) * om[i];
            const uint64_t y = redc_wide(acc, pj);
            yj[j] = y;
            frac += y * pj.ratio_hi + hi64(u128(y) * pj.ratio_lo);
        }
        const uint64_t v = hi64(frac);
        for (size_t i = 0; i < k; ++i) {
            const uint64_t* ci = cv.ahat_mod + i * a;
            u128 acc = u128(v) * cv.neg_a_mod[i];
            for (size_t j = 0; j < a; ++j) acc += u128(yj[j]) * ci[j];
            out[i * n + x] = redc_wide(acc, s.q[i]);
        }
    }
}

void tensor(uint64_t* a0, uint64_t* a1, const uint64_t* b0, const uint64_t* b1, uint64_t* d2, size_t n,
            const Modulus& q) noexcept {
    if (!b0) {
        for (size_t x = 0; x < n; ++x) {
            const uint64_t u = a0[x], w = a1[x];
            a0[x] = redc(u128(u) * u, q);
            a1[x] = redc((u128(u) * w) << 1, q);  // < 2 q^2 < q 2^64
            d2[x] = redc(u128(w) * w, q);
        }
        return;
    }
    for (size_t x = 0; x < n; ++x) {  // d2 may alias b0: read everything first
        const uint64_t u0 = a0[x], u1 = a1[x], v0 = b0[x], v1 = b1[x];
        a0[x] = redc(u128(u0) * v0, q);
        a1[x] = redc(u128(u0) * v1 + u128(u1) * v0, q);
        d2[x] = redc(u128(u1) * v1, q);
    }
}

}  // namespace

const Kernels table = {dot2};
const ConvKernels conv_table = {convert, scale_convert, tensor};

}  // namespace safelight::bfv::scalar
