// Data movement around the garbling kernels: selecting labels by bit values and
// splitting integers into bit planes. Both are memory bound; plain loops that
// the compiler vectorises at the base flags are as fast as the memory allows,
// so there is one portable path (no per-ISA variants to keep in step).
#include <algorithm>

#include "safelight/gc.hpp"
#include "safelight/parallel.hpp"

namespace safelight::gc {

void encode_labels(const uint64_t* zero, const uint64_t delta[2], const uint8_t* bits,
                   uint64_t* out, size_t n) {
    const uint64_t d0 = delta[0], d1 = delta[1];
    parallel_for(n, size_t(1) << 18, 1024, [=](size_t lo, size_t hi) {
        for (size_t i = lo; i < hi; ++i) {
            const uint64_t m = uint64_t(0) - uint64_t(bits[i] & 1u);  // branch-free: secret bits
            out[2 * i] = zero[2 * i] ^ (m & d0);
            out[2 * i + 1] = zero[2 * i + 1] ^ (m & d1);
        }
    });
}

void bit_planes(const uint64_t* values, size_t n, unsigned bits, uint8_t* out) {
    constexpr size_t kTile = 2048;  // values stay in L1 while every plane is written
    parallel_for(n, size_t(1) << 16, kTile, [=](size_t lo, size_t hi) {
        for (size_t t = lo; t < hi; t += kTile) {
            const size_t e = std::min(hi, t + kTile);
            for (unsigned b = 0; b < bits; ++b) {
                uint8_t* row = out + size_t(b) * n;
                for (size_t i = t; i < e; ++i) row[i] = uint8_t((values[i] >> b) & 1u);
            }
        }
    });
}

}  // namespace safelight::gc
