#include "safelight/prg.hpp"

namespace safelight::prg {

CtrFill ctr_fill_for(Isa isa) {
    const CtrFill scalar_fill = scalar::ctr_fill, aesni_fill = aesni::ctr_fill, vaes_fill = vaes::ctr_fill;
    return pick_for(isa, scalar_fill, aesni_fill, vaes_fill);
}

}  // namespace safelight::prg
