"""Helpers shared by the kernel tests: random ring data and running code under one ISA path."""

import numpy as np

from safelight import _core


def random_u64(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 2**64, size=shape, dtype=np.uint64)


def with_isa(name, fn):
    """fn() with the kernels forced to instruction-set path ``name``, restoring the previous path."""
    previous = _core.isa()
    _core.set_isa(name)
    try:
        return fn()
    finally:
        _core.set_isa(previous)
