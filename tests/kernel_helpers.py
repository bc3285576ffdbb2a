"""Helpers shared by the kernel tests: random ring data, running code under one ISA path
(or each in turn), and both parties of a two-party protocol in one process."""

import threading

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


def on_every_isa(fn):
    """fn(name) under each instruction-set path this CPU has, restoring the previous path."""
    for name in _core.available_isas():
        with_isa(name, lambda name=name: fn(name))


def run_both(fa, fb, timeout=60):
    """fa() on a helper thread, fb() here; returns (fa(), fb()) or raises the first error."""
    box = {}

    def target():
        try:
            box["a"] = fa()
        except BaseException as exc:  # re-raised below
            box["a_error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    try:
        b = fb()
    finally:
        t.join(timeout)
    if "a_error" in box:
        raise box["a_error"]
    return box["a"], b
