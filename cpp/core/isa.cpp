#include "safelight/isa.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace safelight {

namespace {

bool cpu_has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("aes") &&
           __builtin_cpu_supports("pclmul");
}

bool cpu_has_avx512() {
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vaes");
}

bool supported(Isa isa) {
    switch (isa) {
        case Isa::scalar: return true;
        case Isa::avx2: return cpu_has_avx2();
        case Isa::avx512: return cpu_has_avx512();
    }
    return false;
}

std::atomic<int>& active_slot() {
    static std::atomic<int> slot{static_cast<int>(detect_isa())};
    return slot;
}

}  // namespace

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::scalar: return "scalar";
        case Isa::avx2: return "avx2";
        case Isa::avx512: return "avx512";
    }
    return "unknown";
}

Isa isa_from_name(const std::string& name) {
    if (name == "scalar") return Isa::scalar;
    if (name == "avx2") return Isa::avx2;
    if (name == "avx512") return Isa::avx512;
    throw std::invalid_argument("unknown instruction set '" + name +
                                "': expected scalar, avx2 or avx512");
}

std::vector<Isa> supported_isas() {
    std::vector<Isa> out;
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
        if (supported(isa)) out.push_back(isa);
    return out;
}

Isa detect_isa() {
    if (const char* forced = std::getenv("SAFELIGHT_ISA"); forced && *forced) {
        Isa isa = isa_from_name(forced);
        if (!supported(isa))
            throw std::runtime_error(std::string("SAFELIGHT_ISA=") + forced +
                                     " but this CPU lacks the instructions for it");
        return isa;
    }
    return supported_isas().back();
}

Isa active_isa() { return static_cast<Isa>(active_slot().load()); }

void set_active_isa(Isa isa) {
    if (!supported(isa))
        throw std::runtime_error(std::string("this CPU cannot run the ") + isa_name(isa) +
                                 " path");
    active_slot().store(static_cast<int>(isa));
}

}  // namespace safelight
