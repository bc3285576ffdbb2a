// Garbled-circuit kernels with AES-NI on 128-bit registers (the avx2 tier).
//
// Eight AES blocks are in flight per step: two garbled AND gates (four hashes
// each) or four evaluated ones (two hashes each). The remaining instances go
// one at a time with the same arithmetic.
#include "gc_x86.hpp"

#if !defined(__AES__) || !defined(__AVX2__)
#error "gc_avx2.cpp must be built with -mavx2 -maes"
#endif

namespace safelight::gc::avx2 {

namespace {

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <bool kStreamT, bool kStreamC>
void garble_run(const XmmKeys& K, const Operand& a, const Operand& b, __m128i ma, __m128i mb,
                uint64_t* c, uint64_t* table, size_t n, uint64_t instance, uint64_t k, __m128i D,
                __m128i DD) {
    constexpr size_t kStep = 2;
    size_t i = 0;
    for (; i + kStep <= n; i += kStep)
        garble_and128<kStep, kStreamT, kStreamC>(K, a, b, ma, mb, c, table, i, instance, k, D, DD);
    for (; i < n; ++i)
        garble_and128<1, kStreamT, kStreamC>(K, a, b, ma, mb, c, table, i, instance, k, D, DD);
    if (kStreamT || kStreamC) _mm_sfence();
}

// Table rows (and output rows nobody reads again) go out with non-temporal
// stores when 16-byte aligned: that saves the read-for-ownership of each line.
void garble_and(const RoundKeys& rk, const Operand& a, const Operand& b, uint64_t* c,
                uint64_t* table, size_t n, uint64_t instance, uint64_t k,
                const uint64_t delta[2], bool stream_c) noexcept {
    const XmmKeys K = load_keys(rk);
    const __m128i D = load_label(delta), DD = dbl128(D);
    const __m128i ma = load_label(a.mask), mb = load_label(b.mask);
    const bool st = aligned16(table), sc = stream_c && aligned16(c);
    if (st && sc)
        garble_run<true, true>(K, a, b, ma, mb, c, table, n, instance, k, D, DD);
    else if (st)
        garble_run<true, false>(K, a, b, ma, mb, c, table, n, instance, k, D, DD);
    else
        garble_run<false, false>(K, a, b, ma, mb, c, table, n, instance, k, D, DD);
}

template <bool kStreamC>
void evaluate_run(const XmmKeys& K, const Operand& a, const Operand& b, uint64_t* c,
                  const uint64_t* table, size_t n, uint64_t instance, uint64_t k) {
    constexpr size_t kStep = 4;
    size_t i = 0;
    for (; i + kStep <= n; i += kStep)
        evaluate_and128<kStep, kStreamC>(K, a, b, c, table, i, instance, k);
    for (; i < n; ++i) evaluate_and128<1, kStreamC>(K, a, b, c, table, i, instance, k);
    if (kStreamC) _mm_sfence();
}

void evaluate_and(const RoundKeys& rk, const Operand& a, const Operand& b, uint64_t* c,
                  const uint64_t* table, size_t n, uint64_t instance, uint64_t k,
                  bool stream_c) noexcept {
    const XmmKeys K = load_keys(rk);
    if (stream_c && aligned16(c))
        evaluate_run<true>(K, a, b, c, table, n, instance, k);
    else
        evaluate_run<false>(K, a, b, c, table, n, instance, k);
}

void xor_labels(const Operand& a, uint64_t* c, size_t n, bool stream_c) noexcept {
    if (stream_c && aligned16(c)) {
        const __m128i m = load_label(a.mask);
        for (size_t i = 0; i < n; ++i) put_label<true>(c + 2 * i, load_op128(a, m, 2 * i));
        _mm_sfence();
    } else {
        xor_labels128(a, c, 0, n);
    }
}

void hash(const RoundKeys& rk, const uint64_t* x, uint64_t* out, size_t n, uint64_t instance,
          uint64_t tweak_hi) noexcept {
    hash128(rk, x, out, n, instance, tweak_hi);
}

}  // namespace

const Kernels table = {garble_and, evaluate_and, xor_labels, hash};

}  // namespace safelight::gc::avx2
