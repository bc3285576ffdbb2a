// Randomness for the BFV engine (internal header): AES-128-CTR keystreams
// read as words, and the samplers built on them (ternary, centred binomial).
// Internal linkage, like modarith.hpp. Nothing here branches on secret data.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "modarith.hpp"
#include "safelight/prg.hpp"
#include "safelight/secure_wipe.hpp"

namespace safelight::bfv {
namespace {

// AES-CTR nonce domains (top byte), so that no two uses of one seed share a
// keystream. The low bits carry the ciphertext index.
constexpr uint64_t kDomainSecret = uint64_t(1) << 56;
constexpr uint64_t kDomainSeeds = uint64_t(2) << 56;
constexpr uint64_t kDomainError = uint64_t(3) << 56;
constexpr uint64_t kDomainU = uint64_t(4) << 56;
constexpr uint64_t kDomainE0 = uint64_t(5) << 56;
constexpr uint64_t kDomainE1 = uint64_t(6) << 56;
constexpr uint64_t kDomainFlood = uint64_t(7) << 56;
constexpr uint64_t kDomainKsk = uint64_t(8) << 56;       // key-switching keys: a_i
constexpr uint64_t kDomainKskError = uint64_t(9) << 56;  // key-switching keys: e_i

// An AES-128-CTR keystream read as little-endian 64-bit words.
class Stream {
public:
    Stream(const uint8_t key[16], uint64_t nonce) : fill_(prg::ctr_fill_for(active_isa())), nonce_(nonce) {
        std::memcpy(key_, key, 16);
    }
    ~Stream() { secure_wipe(key_, sizeof key_); }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    void words(uint64_t* out, size_t count) {
        const size_t blocks = count / 2;
        fill_(key_, nonce_, counter_, reinterpret_cast<uint8_t*>(out), blocks * 16);
        counter_ += blocks;
        if (count & 1) {
            uint64_t tmp[2];
            fill_(key_, nonce_, counter_, reinterpret_cast<uint8_t*>(tmp), 16);
            ++counter_;
            out[count - 1] = tmp[0];
            secure_wipe(tmp, sizeof tmp);
        }
    }

private:
    prg::CtrFill fill_;
    uint8_t key_[16];
    uint64_t nonce_;
    uint64_t counter_ = 0;
};

constexpr size_t kChunk = 256;  // words drawn from a stream at a time

// Uniform ternary coefficients in {-1, 0, 1}: floor(3 r / 2^64) - 1.
inline void sample_ternary(Stream& s, int64_t* out, size_t n) {
    uint64_t buf[kChunk];
    for (size_t x0 = 0; x0 < n; x0 += kChunk) {
        const size_t c = std::min(kChunk, n - x0);
        s.words(buf, c);
        for (size_t x = 0; x < c; ++x) out[x0 + x] = int64_t(hi64(u128(buf[x]) * 3)) - 1;
    }
    secure_wipe(buf, sizeof buf);
}

// Centred binomial, eta = 21: popcount of 21 bits minus popcount of 21 bits.
inline void sample_cbd(Stream& s, int64_t* out, size_t n) {
    uint64_t buf[kChunk];
    constexpr uint64_t m21 = (uint64_t(1) << 21) - 1;
    for (size_t x0 = 0; x0 < n; x0 += kChunk) {
        const size_t c = std::min(kChunk, n - x0);
        s.words(buf, c);
        for (size_t x = 0; x < c; ++x)
            out[x0 + x] = int64_t(popcount64(buf[x] & m21)) - int64_t(popcount64((buf[x] >> 21) & m21));
    }
    secure_wipe(buf, sizeof buf);
}

// rows (k, n) = lift of the small signed values
inline void lift_rows(const int64_t* v, size_t n, const Modulus* mods, size_t k, uint64_t* rows) {
    for (size_t i = 0; i < k; ++i) {
        const uint64_t q = mods[i].value;
        uint64_t* r = rows + i * n;
        for (size_t x = 0; x < n; ++x) r[x] = lift_signed(v[x], q);
    }
}

// rows += lift of small signed values (coefficient form)
inline void add_small(const int64_t* v, size_t n, const Modulus* mods, size_t k, uint64_t* rows) {
    for (size_t i = 0; i < k; ++i) {
        const uint64_t q = mods[i].value;
        uint64_t* r = rows + i * n;
        for (size_t x = 0; x < n; ++x) r[x] = add_mod(r[x], lift_signed(v[x], q), q);
    }
}

inline void add_rows(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q) {
    for (size_t x = 0; x < n; ++x) out[x] = add_mod(a[x], b[x], q);
}
inline void sub_rows(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q) {
    for (size_t x = 0; x < n; ++x) out[x] = sub_mod(a[x], b[x], q);
}

}  // namespace
}  // namespace safelight::bfv
