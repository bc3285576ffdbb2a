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


def beaver_combine(
    c: np.ndarray,
    e: np.ndarray,
    b: np.ndarray,
    a: np.ndarray,
    f: np.ndarray,
    with_f: bool,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """c + e * (b + [with_f] f) + a * f, elementwise, in one pass."""
    out = _out_like(c, out)
    _core.ring_beaver_combine(c, e, b, a, f, bool(with_f), out)
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


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b mod 2^64 for uint64 matrices (m, k) x (k, n) -> (m, n)."""
    a, b = np.ascontiguousarray(a, np.uint64), np.ascontiguousarray(b, np.uint64)
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.uint64)
    _core.ring_matmul(a, b, out)
    return out


def conv2d_output_shape(x_shape, w_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1)) -> tuple[int, int, int, int]:
    n, _, h, w = x_shape
    o, _, kh, kw = w_shape
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return (n, o, ho, wo)


def conv2d(x: np.ndarray, w: np.ndarray, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups: int = 1) -> np.ndarray:
    """Zero-padded cross-correlation mod 2^64: x (N, C, H, W), w (O, C/groups, kh, kw) -> (N, O, Ho, Wo)."""
    x, w = np.ascontiguousarray(x, np.uint64), np.ascontiguousarray(w, np.uint64)
    out = np.empty(conv2d_output_shape(x.shape, w.shape, stride, padding, dilation), dtype=np.uint64)
    _core.ring_conv2d(x, w, out, tuple(stride), tuple(padding), tuple(dilation), int(groups))
    return out
