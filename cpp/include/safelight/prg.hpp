// PRG engine: AES-128 in counter mode.
//
// The keystream equals AES-128-CTR with a 128-bit big-endian counter block
// IV = nonce (8 bytes, big-endian) || counter (8 bytes, big-endian), i.e. the
// output of `cryptography`'s Cipher(AES(key), CTR(IV)) on zero bytes.
#pragma once
#include <cstddef>
#include <cstdint>

#include "safelight/isa.hpp"

namespace safelight::prg {

// Writes `nbytes` keystream bytes starting at block `counter` (the caller
// guarantees counter + ceil(nbytes/16) does not pass 2^64). Never throws.
using CtrFill = void (*)(const uint8_t key[16], uint64_t nonce, uint64_t counter, uint8_t* out,
                         size_t nbytes) noexcept;

namespace scalar {
void ctr_fill(const uint8_t key[16], uint64_t nonce, uint64_t counter, uint8_t* out, size_t nbytes) noexcept;
// out = AES-128_key(in), one block, portable (the keystream block of nonce || counter = in).
void encrypt_block(const uint8_t key[16], const uint8_t in[16], uint8_t out[16]) noexcept;
}  // namespace scalar
namespace aesni { void ctr_fill(const uint8_t key[16], uint64_t nonce, uint64_t counter, uint8_t* out, size_t nbytes) noexcept; }
namespace vaes { void ctr_fill(const uint8_t key[16], uint64_t nonce, uint64_t counter, uint8_t* out, size_t nbytes) noexcept; }

// The implementation for an instruction-set tier: scalar -> portable
// reference, avx2 -> AES-NI, avx512 -> VAES.
CtrFill ctr_fill_for(Isa isa);

}  // namespace safelight::prg
