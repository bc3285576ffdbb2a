#include "safelight/ot.hpp"

namespace safelight::ot {

// First 16 bytes of SHA-256("safelight ot tccr v1"): a public constant.
const uint8_t kFixedKey[16] = {0x22, 0xae, 0xc4, 0x86, 0xcd, 0x64, 0xc9, 0x25,
                               0x18, 0x81, 0x5a, 0x28, 0x38, 0x6f, 0x43, 0xe8};

const Kernels& kernels(Isa isa) { return pick_for(isa, scalar::table, avx2::table, avx512::table); }

}  // namespace safelight::ot
