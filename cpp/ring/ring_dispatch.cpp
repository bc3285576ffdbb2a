#include "safelight/ring.hpp"

namespace safelight::ring {

const Kernels& kernels(Isa isa) { return pick_for(isa, scalar::table, avx2::table, avx512::table); }

}  // namespace safelight::ring
