#include "safelight/prg.hpp"

namespace safelight::prg {

CtrFill ctr_fill_for(Isa isa) {
    switch (isa) {
        case Isa::avx512: return vaes::ctr_fill;
        case Isa::avx2: return aesni::ctr_fill;
        case Isa::scalar: break;
    }
    return scalar::ctr_fill;
}

}  // namespace safelight::prg
