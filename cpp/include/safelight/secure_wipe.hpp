// Zeroing of secret material (keys, key schedules, keystream scratch) that the
// compiler may not optimise away. Internal linkage: included by translation
// units built for different instruction sets.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace {

inline void secure_wipe(void* p, size_t n) {
#if defined(__GNUC__)
    // A full-speed memset; the empty asm with a memory clobber makes the
    // zeroed bytes observable, so the store cannot be dropped as dead.
    std::memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
#else
    volatile uint8_t* v = static_cast<volatile uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) v[i] = 0;
#endif
}

}  // namespace
