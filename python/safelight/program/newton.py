"""1/x and 1/sqrt(x) on additive shares (two servers), composed from the op library.

The same method as the replicated engine's ops (:mod:`safelight.protocols.replicated`):
normalise x to x' in [0.5, 1) by its highest set bit j, run Newton's iteration on x', and
scale back by a public function of j. Here j comes from ``bits - 1`` comparisons of x with
2^j (one ``less`` step on a stacked tensor) instead of a bit decomposition, and any public
function T of j is the telescoping sum

    T(j) = T(top) + sum_i 1{x < 2^i} (T(i - 1) - T(i)),

local once the comparison bits are shared. Comparisons are the cost (one garbled circuit of
``bits`` bits each), so this suits small tensors: block or vector norms, not whole images.
The large intermediate products are truncated with truncation pairs (exact up to one unit):
local two-party truncation would fail too often at their size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import fixed_point

# Program and Tensor (program.program imports this module: no import back)
Program = Tensor = Any

NEWTON_STEPS = 3
RSQRT_FRAC = 32  # fractional bits of the final constants 2^((f-1-j)/2)


def _table(p: Program, bit_below: Tensor, bits: int, value: Callable[[int], int], label: int) -> Tensor:
    """sum_j 1{x in [2^j, 2^(j+1))} value(j), a ring integer labelled with ``label``
    fractional bits; ``bit_below[i - 1]`` holds 1{x < 2^i} (raw 0/1) for i = 1..bits-1."""
    top = bits - 1
    steps = np.array([value(i - 1) - value(i) for i in range(1, bits)], dtype=np.float64)[:, None]
    ring_steps = fixed_point.encode(steps, 0)
    weighted = p.apply("mul_public_array", [bit_below], {"value": ring_steps.tolist()}, frac_bits=label)
    return p.add_public(p.sum(weighted, axes=(0,)), value(top) / 2.0**label)


def _normalised(p: Program, x: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """(the comparison bits, x' = x 2^(f-1-j) in [0.5, 1) at x's scale)."""
    f, n = x.frac_bits, int(np.prod(x.shape))
    flat = p.reshape(x, (1, n))
    stacked = p.concat([flat] * (bits - 1), axis=0)
    thresholds = -(2.0 ** np.arange(1, bits))[:, None] / 2.0**f  # 2^i ring units, i = 1..bits-1
    shifted = p.add_public(stacked, thresholds)
    zero = p.mul_public(shifted, 0.0, integer=True)
    bit_below = p.apply("less", [shifted, zero], {"bits": bits, "frac_bits": 0}, frac_bits=0)
    # x 2^(bits-1-j), then >> (bits - f): x 2^(f-1-j) ring units at scale f
    scale = _table(p, bit_below, bits, lambda j: 1 << (bits - 1 - j), bits - f)
    x1 = p.reshape(flat, (n,))
    z = p.apply("trunc_pair", [p.mul(x1, scale, rescale=False)], {"bits": bits - f}, frac_bits=f)
    return bit_below, z


def _scaled_back(p: Program, y: Tensor, bit_below: Tensor, bits: int, value, label: int, shape) -> Tensor:
    factor = _table(p, bit_below, bits, value, label)
    out = p.apply("trunc_pair", [p.mul(y, factor, rescale=False)], {"bits": label}, frac_bits=y.frac_bits)
    return p.reshape(out, shape)


def _times(p: Program, a: Tensor, b: Tensor, f: int) -> Tensor:
    """a * b truncated back to ``f`` fractional bits (the input's scale, which may be finer
    than the program's)."""
    return p.rescale(p.mul(a, b, rescale=False), f)


def rsqrt(p: Program, x: Tensor, bits: int) -> Tensor:
    """1/sqrt(x) for 0 < x < 2^(bits-1) ring units: y <- y (1.5 - x' y^2 / 2) from
    y_0 = 1.8 - 0.8 x', then 1/sqrt(x) = y 2^((f-1-j)/2)."""
    f = x.frac_bits
    bit_below, z = _normalised(p, x, bits)
    y = p.add_public(p.rescale(p.mul_public(z, -0.8), f), 1.8)
    for _ in range(NEWTON_STEPS + 1):
        y2 = _times(p, y, y, f)
        half = p.rescale(p.mul_public(_times(p, z, y2, f), 0.5), f)
        y = _times(p, y, p.add_public(p.neg(half), 1.5), f)
    value = lambda j: round(2.0 ** ((f - 1 - j) / 2 + RSQRT_FRAC))  # noqa: E731
    return _scaled_back(p, y, bit_below, bits, value, RSQRT_FRAC, x.shape)


def reciprocal(p: Program, x: Tensor, bits: int) -> Tensor:
    """1/x for 0 < x < 2^(bits-1) ring units: y <- y (2 - x' y) from y_0 = 2.9142 - 2 x',
    then 1/x = y 2^(f-1-j)."""
    f = x.frac_bits
    bit_below, z = _normalised(p, x, bits)
    y = p.add_public(p.mul_public(z, -2.0, integer=True), 2.9142)
    for _ in range(NEWTON_STEPS):
        y = _times(p, y, p.add_public(p.neg(_times(p, z, y, f)), 2.0), f)
    return _scaled_back(p, y, bit_below, bits, lambda j: 1 << (bits - 1 - j), bits - f, x.shape)
