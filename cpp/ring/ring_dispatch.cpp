#include "safelight/ring.hpp"

namespace safelight::ring {

const Kernels& kernels(Isa isa) {
    switch (isa) {
        case Isa::avx512: return avx512::table;
        case Isa::avx2: return avx2::table;
        case Isa::scalar: break;
    }
    return scalar::table;
}

}  // namespace safelight::ring
