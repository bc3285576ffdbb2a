#define SL_ISA_NS scalar
#include "ring_impl.hpp"
