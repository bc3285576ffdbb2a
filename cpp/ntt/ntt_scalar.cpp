// Scalar reference NTT: portable C++ with unsigned __int128 for the Shoup
// quotient. Built with vectorisation disabled (SL_SCALAR_FLAGS) so it stays
// the reference every other path is compared with.
#include "safelight/ntt.hpp"

namespace safelight::ntt::scalar {
namespace {

// x - m if x >= m else x, for x < 2m and m < 2^63 (so x - m fits a signed word):
// the sign of x - m selects, no branch.
inline uint64_t csub(uint64_t x, uint64_t m) noexcept {
    uint64_t d = x - m;
    return d + (m & (uint64_t(0) - (d >> 63)));
}

// w * y - floor(w' y / 2^64) q, in [0, 2q) for any y (Shoup).
inline uint64_t mul_shoup(uint64_t y, uint64_t w, uint64_t ws, uint64_t q) noexcept {
    uint64_t qt = uint64_t((static_cast<unsigned __int128>(ws) * y) >> 64);
    return w * y - qt * q;
}

void forward(const uint64_t* in, uint64_t* out, const Tables& tb) noexcept {
    const size_t n = tb.n;
    const uint64_t q = tb.q, q2 = 2 * q;
    const uint64_t* w = tb.w;
    const uint64_t* ws = tb.w_shoup;
    // Stage m = 1 reads `in` (values < q, no correction needed) and writes `out`.
    size_t t = n >> 1;
    {
        const uint64_t w1 = w[1], ws1 = ws[1];
        for (size_t j = 0; j < t; ++j) {
            uint64_t x = in[j];
            uint64_t v = mul_shoup(in[j + t], w1, ws1, q);
            out[j] = x + v;
            out[j + t] = x - v + q2;
        }
    }
    // Middle stages: values in [0, 4q) in and out.
    for (size_t m = 2; m < n; m <<= 1) {
        t >>= 1;
        const bool last = (m << 1) == n;
        for (size_t i = 0; i < m; ++i) {
            const uint64_t wi = w[m + i], wsi = ws[m + i];
            uint64_t* x = out + 2 * i * t;
            uint64_t* y = x + t;
            for (size_t j = 0; j < t; ++j) {
                uint64_t u = csub(x[j], q2);
                uint64_t v = mul_shoup(y[j], wi, wsi, q);
                uint64_t a = u + v, b = u - v + q2;
                if (last) {  // same for every element: not data dependent
                    a = csub(csub(a, q2), q);
                    b = csub(csub(b, q2), q);
                }
                x[j] = a;
                y[j] = b;
            }
        }
    }
}

void inverse(const uint64_t* in, uint64_t* out, const Tables& tb) noexcept {
    const size_t n = tb.n;
    const uint64_t q = tb.q, q2 = 2 * q;
    const uint64_t* iw = tb.iw;
    const uint64_t* iws = tb.iw_shoup;
    const uint64_t* src = in;  // the first stage reads `in`, the others `out`
    size_t t = 1;
    for (size_t m = n >> 1; m > 1; m >>= 1, t <<= 1) {
        for (size_t i = 0; i < m; ++i) {
            const uint64_t wi = iw[m + i], wsi = iws[m + i];
            const size_t base = 2 * i * t;
            for (size_t j = base; j < base + t; ++j) {
                uint64_t x = src[j], y = src[j + t];
                out[j] = csub(x + y, q2);
                out[j + t] = mul_shoup(x - y + q2, wi, wsi, q);
            }
        }
        src = out;
    }
    // Last stage (m = 1, t = n/2) with n^-1 folded in, then reduced to [0, q).
    for (size_t j = 0; j < t; ++j) {
        uint64_t x = src[j], y = src[j + t];
        out[j] = csub(mul_shoup(x + y, tb.n_inv, tb.n_inv_shoup, q), q);
        out[j + t] = csub(mul_shoup(x - y + q2, tb.last_w, tb.last_w_shoup, q), q);
    }
}

bool all_below(const uint64_t* a, size_t n, uint64_t bound) noexcept {
    uint64_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad |= uint64_t(a[i] >= bound);
    return bad == 0;
}

}  // namespace

const Kernels table = {forward, inverse, all_below};

}  // namespace safelight::ntt::scalar
