// Zeroing of secret material (keys, key schedules, keystream scratch) that the
// compiler may not optimise away. Internal linkage: included by translation
// units built for different instruction sets.
#pragma once
#include <cstddef>
#include <cstdint>

namespace {

inline void secure_wipe(void* p, size_t n) {
    volatile uint8_t* v = static_cast<volatile uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) v[i] = 0;
}

}  // namespace
