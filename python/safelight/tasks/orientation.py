"""Gradient orientation bins and magnitudes on shares, without atan or a square root.

For a gradient v = (g_col, g_row) at angle theta = atan2(g_row, g_col):

- **fold**: h = 1{theta >= 180} from one sign test of t = g_row F + g_col (F above |g_col|,
  so g_row's sign decides and g_col's only where g_row = 0, as arctan2 does); u = v or -v
  then lies in [0, 180);
- **levels**: a search over [0, 180) that keeps u in a frame turned to the current
  interval's centre (along = |u| cos(theta - centre), across = |u| sin(theta - centre)).
  A level splits the interval into m parts: theta is past a boundary at offset b from the
  centre when across cos b - along sin b >= 0 (m - 1 sign tests, one comparison step), the
  part's one-hot follows locally, and the frame turns to the part's centre: with
  C = sum_k onehot_k cos d_k and S = sum_k onehot_k sin d_k (local), along' = along C +
  across S and across' = across C - along S (four products). Nine 20-degree bins are two
  levels of three (4 sign tests, where one test per boundary takes 8);
- **magnitude**: after the last level, ``refinements`` halvings (a level of two parts whose
  one-hot is not kept; its C is public, so two products) leave the angle to the centre
  within half the last part / 2^k, and ``along`` is |u| within 1 - cos of that; a midpoint
  correction halves the error. With two halvings of 20-degree bins, 2.5 degrees are left:
  a relative error below 4.8e-4, for 2 sign tests per pixel where a normalised rsqrt would
  take a bit decomposition (and, on two servers, one comparison per bit).

:func:`plaintext_magnitude` is the same computation in floating point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..program.program import Program, Tensor

# t = g_row F + g_col: F above |g_col| (2^20 ring units for gradients below 16 at 16
# fractional bits); |t| below 2^(FOLD_BITS - 1)
FOLD = 2**22
FOLD_BITS = 46


@dataclass
class Binned:
    """A gradient's orientation and magnitude on shares."""

    levels: list[Tensor]  # per level, (m, h, w): the one-hot part (the fold first when signed)
    magnitude: Tensor  # (h, w): |v|


def _stack(p: Program, x: Tensor, n: int) -> Tensor:
    return p.concat([p.reshape(x, (1, *x.shape))] * n, axis=0)


def _rows(p: Program, *xs: Tensor) -> Tensor:
    """(len(xs), h, w) from (h, w) tensors."""
    return p.concat([p.reshape(x, (1, *x.shape)) for x in xs], axis=0)


def _unrows(p: Program, x: Tensor) -> list[Tensor]:
    return [p.reshape(p.slice(x, 0, i, i + 1), x.shape[1:]) for i in range(x.shape[0])]


def _zeros(p: Program, x: Tensor) -> Tensor:
    return p.mul_public(x, 0.0, integer=True)


def _pm_one(p: Program, bit: Tensor) -> Tensor:
    """1 - 2 bit: +1 / -1."""
    return p.add_public(p.mul_public(bit, -2, integer=True), 1.0)


def _one_hot(p: Program, past: Tensor, m: int) -> Tensor:
    """(m, h, w) one-hot part from past[k - 1] = 1{past boundary k}, k = 1..m-1."""
    zero = _zeros(p, p.slice(past, 0, 0, 1))
    at_least = p.concat([p.add_public(zero, 1.0), past], axis=0)  # every angle is past boundary 0
    beyond = p.concat([past, zero], axis=0)  # and none past boundary m
    return p.sub(at_least, beyond)


def _turn(p: Program, along: Tensor, across: Tensor, c: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """The frame turned by the angle whose cosine and sine are shared (c, s)."""
    part = _unrows(p, p.mul(_rows(p, along, across, across, along), _rows(p, c, s, c, s)))
    return p.add(part[0], part[1]), p.sub(part[2], part[3])


def _weighted(p: Program, onehot: Tensor, values: np.ndarray) -> Tensor:
    """sum_k onehot[k] values[k] (public values): local, then truncated."""
    m = onehot.shape[0]
    return p.rescale(p.sum(p.mul_public_array(onehot, np.reshape(values, (m, 1, 1))), axes=(0,)))


def _boundary_tests(p: Program, along: Tensor, across: Tensor, offsets: np.ndarray) -> Tensor:
    """(len(offsets), h, w): values whose sign is that of sin(theta - offset) in the frame.
    Only the sign matters, so each line's (cos, sin) may be scaled: at multiples of 45
    degrees they become integers and the tests are exact (no truncation), so that a
    gradient exactly on such a boundary is decided as the plaintext decides it."""
    n = len(offsets)
    cos, sin = np.cos(offsets), np.sin(offsets)
    scale = np.maximum(np.abs(cos), np.abs(sin))
    ci, si = np.round(cos / scale), np.round(sin / scale)
    if np.allclose(ci, cos / scale, atol=1e-12) and np.allclose(si, sin / scale, atol=1e-12):
        return p.sub(
            p.mul_public_array(_stack(p, across, n), ci[:, None, None], integer=True),
            p.mul_public_array(_stack(p, along, n), si[:, None, None], integer=True),
        )
    return p.rescale(
        p.sub(
            p.mul_public_array(_stack(p, across, n), cos[:, None, None]),
            p.mul_public_array(_stack(p, along, n), sin[:, None, None]),
        )
    )


def central_difference(p: Program, x: Tensor, axis: int) -> Tensor:
    """x[i+1] - x[i-1] along ``axis``, zero on that axis' first and last line (public, local)."""
    n = x.shape[axis]
    diff = p.sub(p.slice(x, axis, 2, n), p.slice(x, axis, 0, n - 2))
    zeros = p.mul_public(p.slice(x, axis, 0, 1), 0.0, integer=True)
    return p.concat([zeros, diff, zeros], axis=axis)


def binned_gradient(
    p: Program, g_row: Tensor, g_col: Tensor, levels: tuple[int, ...], refinements: int, bits: int, signed: bool = False
) -> Binned:
    """Orientation parts and magnitude of the gradient (g_row, g_col) (both (h, w)):
    [0, 180) split by ``levels`` (e.g. (3, 3): nine bins), and the fold's one-hot first when
    ``signed``; ``bits`` bounds the sign tests' inputs (|x| < 2^(bits-1) ring units)."""
    zero = _zeros(p, g_row)
    flipped = p.less(p.add(p.mul_public(g_row, FOLD, integer=True), g_col), zero, bits=FOLD_BITS)
    sign = _pm_one(p, flipped)
    u_row, u_col = _unrows(p, p.mul(_rows(p, g_row, g_col), _stack(p, sign, 2)))
    out = [_rows(p, p.add_public(p.neg(flipped), 1.0), flipped)] if signed else []
    along, across = u_row, p.neg(u_col)  # the frame of [0, 180)'s centre, 90 degrees
    width = np.pi
    for m in levels:
        part = width / m
        boundaries = (np.arange(1, m) - m / 2) * part  # offsets from the centre
        tests = _boundary_tests(p, along, across, boundaries)
        past = p.add_public(p.neg(p.less(tests, _zeros(p, tests), bits=bits)), 1.0)
        onehot = _one_hot(p, past, m)
        out.append(onehot)
        turns = (np.arange(m) - (m - 1) / 2) * part
        along, across = _turn(
            p, along, across, _weighted(p, onehot, np.cos(turns)), _weighted(p, onehot, np.sin(turns))
        )
        width = part
    alpha = width / 2
    for _ in range(refinements):
        alpha /= 2
        towards = _pm_one(p, p.less(across, _zeros(p, across), bits=bits))  # +1 where u is past the centre
        d_across, d_along = _unrows(p, p.mul(_rows(p, across, along), _stack(p, towards, 2)))
        along, across = (
            p.rescale(p.add(p.mul_public(along, np.cos(alpha)), p.mul_public(d_across, np.sin(alpha)))),
            p.rescale(p.sub(p.mul_public(across, np.cos(alpha)), p.mul_public(d_along, np.sin(alpha)))),
        )
    magnitude = p.rescale(p.mul_public(along, 2.0 / (1.0 + np.cos(alpha))))
    return Binned(out, magnitude)


def votes(p: Program, binned: Binned, weight: Tensor | None = None) -> Tensor:
    """(bins, h, w): the weight (default the magnitude) in each pixel's bin, the bin index
    running over the levels' parts first level first (products: the last level's part
    count, then that times the previous level's, ...)."""
    v = _stack(p, binned.magnitude if weight is None else weight, 1)
    for onehot in reversed(binned.levels):
        m, n = onehot.shape[0], v.shape[0]
        rep = p.concat([p.slice(onehot, 0, k, k + 1) for k in range(m) for _ in range(n)], axis=0)
        v = p.mul(rep, p.concat([v] * m, axis=0))
    return v


def plaintext_magnitude(g_row: np.ndarray, g_col: np.ndarray, levels: tuple[int, ...], refinements: int) -> np.ndarray:
    """What :func:`binned_gradient`'s magnitude computes, in floating point."""
    theta = np.arctan2(g_row, g_col) % np.pi
    bins = int(np.prod(levels))
    step = np.pi / bins
    centre = (np.minimum(np.floor(theta / step), bins - 1) + 0.5) * step
    alpha = step / 2
    for _ in range(refinements):
        alpha /= 2
        centre = centre + np.where(theta >= centre, alpha, -alpha)
    return np.hypot(g_row, g_col) * np.cos(theta - centre) * 2.0 / (1.0 + np.cos(alpha))
