// The sender's leaf tables of the OT-based millionaires' protocol: 16 keys per digit by
// one XOR each (entries in the order of their lowest set bit), hashed 64 digits at a
// time through the tier's correlation-robust hash.
#include <cstring>

#include "safelight/ot.hpp"
#include "safelight/secure_wipe.hpp"

namespace safelight::ot {

namespace {

constexpr size_t kBatch = 64;  // digits per hash call
constexpr unsigned kEntries = 16;

inline void xor_block(uint8_t* dst, const uint8_t* a, const uint8_t* b) {
    uint64_t x[2], y[2];
    std::memcpy(x, a, 16);
    std::memcpy(y, b, 16);
    x[0] ^= y[0];
    x[1] ^= y[1];
    std::memcpy(dst, x, 16);
}

}  // namespace

void millionaire_tables(const Kernels& kernels, const uint8_t* r0, const uint8_t* r1, const uint8_t* flips,
                        const uint8_t* a, const uint8_t* lt, const uint8_t* eq, size_t m, uint64_t tweak,
                        uint64_t domain, uint32_t* out) noexcept {
    alignas(64) uint8_t keys[kEntries][kBatch * 16];
    alignas(64) uint8_t pads[kEntries][kBatch * 16];
    for (size_t lo = 0; lo < m; lo += kBatch) {
        const size_t n = m - lo < kBatch ? m - lo : kBatch;
        for (size_t j = 0; j < n; ++j) {
            const size_t d = lo + j;
            uint8_t diff[4][16], start[16] = {0};
            for (unsigned i = 0; i < 4; ++i) {
                const uint8_t* s0 = r0 + 16 * (4 * d + i);
                const uint8_t* s1 = r1 + 16 * (4 * d + i);
                xor_block(diff[i], s0, s1);
                xor_block(start, start, flips[4 * d + i] ? s1 : s0);
            }
            std::memcpy(keys[0] + 16 * j, start, 16);
            for (unsigned v = 1; v < kEntries; ++v) {
                const unsigned low = __builtin_ctz(v);  // bit `low` of v is OT 3 - low of the digit
                xor_block(keys[v] + 16 * j, keys[v & (v - 1)] + 16 * j, diff[3 - low]);
            }
            secure_wipe(diff, sizeof diff);
            secure_wipe(start, sizeof start);
        }
        for (unsigned v = 0; v < kEntries; ++v)
            kernels.tccr(keys[v], pads[v], nullptr, nullptr, n, tweak + lo, domain);
        for (size_t j = 0; j < n; ++j) {
            const size_t d = lo + j;
            uint32_t table = 0;
            for (unsigned v = 0; v < kEntries; ++v) {
                const uint32_t less = (a[d] < v) ^ (lt[d] & 1), same = (a[d] == v) ^ (eq[d] & 1);
                const uint32_t entry = (less | (same << 1)) ^ (pads[v][16 * j] & 3);
                table |= entry << (2 * v);
            }
            out[d] = table;
        }
    }
    secure_wipe(keys, sizeof keys);
    secure_wipe(pads, sizeof pads);
}

}  // namespace safelight::ot
