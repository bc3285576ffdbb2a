// Instruction-set selection shared by every engine.
//
// Each kernel is compiled three times (scalar, AVX2, AVX-512) in separate
// translation units with their own compiler flags; the dispatcher picks one
// table once at import from CPUID, or the one forced by SAFELIGHT_ISA.
#pragma once
#include <string>
#include <vector>

namespace safelight {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
// Parses "scalar" | "avx2" | "avx512"; throws std::invalid_argument otherwise.
Isa isa_from_name(const std::string& name);
// Paths this CPU can run, from the most portable to the fastest.
std::vector<Isa> supported_isas();
// Best supported path, or the one named by SAFELIGHT_ISA (throws if the CPU lacks it).
Isa detect_isa();
// The active path used by every kernel call.
Isa active_isa();
// Forces a path (tests compare each path with the scalar reference). Throws if unsupported.
void set_active_isa(Isa isa);

// The one of three per-tier values (kernel tables, function pointers) for `isa`.
template <class T>
T& pick_for(Isa isa, T& scalar, T& avx2, T& avx512) {
    switch (isa) {
        case Isa::avx512: return avx512;
        case Isa::avx2: return avx2;
        case Isa::scalar: break;
    }
    return scalar;
}

}  // namespace safelight
