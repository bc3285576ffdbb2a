// Portable reference path of the OT kernels (SAFELIGHT_ISA=scalar): plain
// 64-bit words, no intrinsics. The fixed-key AES of the hash goes through the
// portable, constant-time AES-CTR of the PRG engine, one block per call: an
// AES-CTR keystream block *is* the encryption of the block nonce || counter,
// so choosing (nonce, counter) = the input block encrypts it.
#define SL_ISA_NS scalar
#include "ot_impl.hpp"

#include "safelight/prg.hpp"

namespace safelight::ot::scalar {
namespace {

// out = AES-128_key(in), one block.
inline void aes_block(const uint8_t key[16], const uint8_t in[16], uint8_t out[16]) {
    prg::scalar::encrypt_block(key, in, out);
}

// Transpose of an 8x8 bit matrix held as bit 8*r + c (row r = byte r): the
// element at bit 8r+c moves to bit 8c+r (three delta swaps).
inline uint64_t transpose8x8(uint64_t x) {
    uint64_t t;
    t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAull;
    x = x ^ t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCull;
    x = x ^ t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ull;
    x = x ^ t ^ (t << 28);
    return x;
}

}  // namespace

namespace {

void transpose_tile(const uint8_t* in, size_t stride, uint8_t* out) noexcept {
    // 8x8 sub-blocks: rows 8g..8g+7, byte column c -> blocks 8c..8c+7, byte g.
    for (size_t g = 0; g < 16; ++g) {
        for (size_t c = 0; c < 16; ++c) {
            uint64_t x = 0;
            for (size_t r = 0; r < 8; ++r) x |= uint64_t(in[(8 * g + r) * stride + c]) << (8 * r);
            x = transpose8x8(x);
            for (size_t b = 0; b < 8; ++b) out[16 * (8 * c + b) + g] = uint8_t(x >> (8 * b));
        }
    }
}

void tccr(const uint8_t* in, uint8_t* out0, uint8_t* out1, const uint8_t* delta, size_t n,
          uint64_t tweak, uint64_t domain) noexcept {
    uint8_t x[16], y[16], z[16];
    for (size_t j = 0; j < n; ++j) {
        for (int pass = 0; pass < (delta ? 2 : 1); ++pass) {
            std::memcpy(x, in + 16 * j, 16);
            if (pass == 1)
                for (int k = 0; k < 16; ++k) x[k] ^= delta[k];
            aes_block(kFixedKey, x, y);                      // y = pi(x)
            store64(z, load64(y) ^ (tweak + j));             // z = y ^ w_j
            store64(z + 8, load64(y + 8) ^ domain);
            aes_block(kFixedKey, z, x);                      // pi(y ^ w_j)
            uint8_t* dst = (pass == 0 ? out0 : out1) + 16 * j;
            store64(dst, load64(x) ^ load64(y));
            store64(dst + 8, load64(x + 8) ^ load64(y + 8));
        }
    }
    secure_wipe(x, sizeof x);
    secure_wipe(y, sizeof y);
    secure_wipe(z, sizeof z);
}

}  // namespace

// Receiver, reference path: the seed rows come from the PRG engine's portable
// AES-CTR (one call per row and tile), then plain 64-bit XORs.
void receiver_cols(const uint8_t* k0, const uint8_t* k1, uint64_t counter, const uint8_t* choice, size_t ncols,
                   uint8_t* u, uint8_t* t, size_t nout, size_t col_begin, size_t col_end,
                   uint8_t* work) noexcept {
    uint8_t* tile = work;
    uint8_t g1[kTileCols / 8];
    const size_t row = ncols / 8;
    tiled(t, nout, col_begin, col_end, tile, [&](size_t c0, size_t w) {
        for (size_t i = 0; i < 128; ++i) {
            uint8_t* ti = tile + i * kTileStride;
            uint8_t* ui = u + i * row + c0 / 8;
            prg::scalar::ctr_fill(k0 + 16 * i, 0, counter + c0 / 128, ti, w / 8);   // t_i = G(k0_i)
            prg::scalar::ctr_fill(k1 + 16 * i, 0, counter + c0 / 128, g1, w / 8);   // G(k1_i)
            for (size_t k = 0; k < w / 8; k += 8)
                store64(ui + k, load64(ti + k) ^ load64(g1 + k) ^ load64(choice + c0 / 8 + k));
        }
    });
    secure_wipe(g1, sizeof g1);
    wipe(work, kWorkBytes);
}

void sender_cols(const uint8_t* ks, const uint8_t delta[16], uint64_t counter, const uint8_t* u, size_t ncols,
                 uint8_t* q, size_t nout, size_t col_begin, size_t col_end, uint8_t* work) noexcept {
    uint8_t* tile = work;
    const size_t row = ncols / 8;
    tiled(q, nout, col_begin, col_end, tile, [&](size_t c0, size_t w) {
        for (size_t i = 0; i < 128; ++i) {
            uint8_t* qi = tile + i * kTileStride;
            const uint8_t* ui = u + i * row + c0 / 8;
            const uint64_t mask = uint64_t(0) - bit_of(delta, i);  // secret bit -> all-ones/zero mask
            prg::scalar::ctr_fill(ks + 16 * i, 0, counter + c0 / 128, qi, w / 8);
            for (size_t k = 0; k < w / 8; k += 8) store64(qi + k, load64(qi + k) ^ (load64(ui + k) & mask));
        }
    });
    wipe(work, kWorkBytes);
}

const Kernels table = {transpose, receiver_cols, sender_cols, tccr, correlate};

}  // namespace safelight::ot::scalar
