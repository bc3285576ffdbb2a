// Portable reference path of the silent OT kernels (SAFELIGHT_ISA=scalar): the
// fixed-key AES of the GGM PRG and the LPN matrix's keystream come from the PRG
// engine's portable, constant-time AES-CTR (an AES-CTR keystream block is the
// encryption of the block nonce || counter, so choosing them encrypts a block).
#define SL_ISA_NS scalar
#include "silent_impl.hpp"

#include "safelight/prg.hpp"

namespace safelight::silent::scalar {
namespace {

void children(const uint8_t* src, size_t count, uint8_t* dst) noexcept {
    uint8_t x[16];
    for (size_t i = 0; i < count; ++i) {
        std::memcpy(x, src + 16 * i, 16);  // src and dst never overlap, but keep the input
        for (unsigned side = 0; side < 2; ++side) {
            uint8_t* out = dst + 16 * (2 * i + side);
            prg::scalar::encrypt_block(side ? kGgmRight : kGgmLeft, x, out);
            xor_into(out, x);
        }
    }
    secure_wipe(x, sizeof x);
}

void keystream(const uint8_t key[16], uint64_t counter, uint8_t* out, size_t nbytes) noexcept {
    prg::scalar::ctr_fill(key, 0, counter, out, nbytes);
}

}  // namespace
}  // namespace safelight::silent::scalar
