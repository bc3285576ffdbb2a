"""Array-level access to the ring engine (Z_2^64, wrap-around uint64).

Thin wrappers over ``safelight._core`` that allocate outputs; pass ``out`` to
reuse a buffer (in-place is allowed). All inputs must be C-contiguous uint64.
"""

from __future__ import annotations

import numpy as np

from . import _core


def _out_like(a: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    return np.empty_like(a, dtype=np.uint64) if out is None else out


def add(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    out = _out_like(a, out)
    _core.ring_add(a, b, out)
    return out


def sub(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    out = _out_like(a, out)
    _core.ring_sub(a, b, out)
    return out


def neg(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    out = _out_like(a, out)
    _core.ring_neg(a, out)
    return out


def mul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    out = _out_like(a, out)
    _core.ring_mul(a, b, out)
    return out


def mul_scalar(a: np.ndarray, scalar: int, out: np.ndarray | None = None) -> np.ndarray:
    """a * scalar mod 2^64; a negative scalar is taken mod 2^64."""
    out = _out_like(a, out)
    _core.ring_mul_scalar(a, int(scalar) % (1 << 64), out)
    return out


def shift_right_signed(a: np.ndarray, bits: int, out: np.ndarray | None = None) -> np.ndarray:
    out = _out_like(a, out)
    _core.ring_shift_right_signed(a, int(bits), out)
    return out


def correlate2d(planes: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Valid correlation per channel: (C, H, W) x (C, kh, kw) -> (C, H-kh+1, W-kw+1)."""
    c, h, w = planes.shape
    _, kh, kw = kernels.shape
    out = np.empty((c, h - kh + 1, w - kw + 1), dtype=np.uint64)
    _core.ring_correlate2d(planes, kernels, out)
    return out


def random(seed: bytes, shape: tuple[int, ...], nonce: int = 0) -> np.ndarray:
    """Uniform ring elements expanded from a 16-byte seed with AES-128-CTR."""
    out = np.empty(shape, dtype=np.uint64)
    _core.prg_fill(seed, out, nonce, 0)
    return out
