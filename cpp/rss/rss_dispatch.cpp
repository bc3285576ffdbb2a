#include "safelight/rss.hpp"

namespace safelight::rss {

const Kernels& kernels(Isa isa) { return pick_for(isa, scalar::table, avx2::table, avx512::table); }

}  // namespace safelight::rss
