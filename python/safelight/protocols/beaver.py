"""Products of two shared tensors with Beaver triples: elementwise, square, matmul, conv2d.

With a triple (a, b, c = a (*) b) for a bilinear product (*), the parties open
e = x - a and f = y - b in one round and set

    z_i = c_i + e (*) b_i + a_i (*) f + [i = 0] e (*) f,

which sums to x (*) y. e and f are one-time-padded by the uniform a and b, so
the opened values are independent of x and y. When y is a tensor already
masked in this job under the same reuse key (a model weight used by several
layers), f was opened before and only e is opened now.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import ring
from ..errors import ProgramError
from ..program.ops import conv_attrs, conv_output_shape, register
from .preprocessing import Correlation

Product = Callable[[np.ndarray, np.ndarray, dict[str, Any]], np.ndarray]


def open_flat(ctx, flat: np.ndarray) -> np.ndarray:
    """Open a flat shared uint64 buffer in one round; the sum is built in a received buffer."""
    parts = ctx.exchange_all(flat)
    total = parts[1] if ctx.party == 0 else parts[0]  # a fresh buffer from the network
    for part in parts:
        if part is not total:
            ring.add(total, part, out=total)
    return total


def split(flat: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    out, pos = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[pos : pos + size].reshape(shape))
        pos += size
    return out


def open_values(ctx, *shares: np.ndarray) -> list[np.ndarray]:
    """Open several shared tensors in one round (one message per peer)."""
    flat = np.concatenate([s.reshape(-1) for s in shares]) if len(shares) > 1 else shares[0].reshape(-1)
    return split(open_flat(ctx, np.ascontiguousarray(flat)), [s.shape for s in shares])


def masked_differences(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """[x - a, y - b, ...] written straight into one flat buffer (no concatenation copy)."""
    flat = np.empty(sum(x.size for x, _ in pairs), dtype=np.uint64)
    pos = 0
    for x, a in pairs:
        ring.sub(x.reshape(-1), a.reshape(-1), out=flat[pos : pos + x.size])
        pos += x.size
    return flat


def beaver_product(ctx, x: np.ndarray, y: np.ndarray, attrs: dict[str, Any], product: Product) -> np.ndarray:
    pre = ctx.correlation()
    a, b, c = pre["a"], pre["b"], pre["c"]
    reuse = attrs.get("reuse")
    if reuse is not None and reuse in ctx.opened:
        (e,) = split(open_flat(ctx, masked_differences([(x, a)])), [x.shape])
        f = ctx.opened[reuse]
    else:
        e, f = split(open_flat(ctx, masked_differences([(x, a), (y, b)])), [x.shape, y.shape])
        if reuse is not None:
            ctx.opened[reuse] = f
    # party 0: e*(b_0 + f) + a_0*f ; others: e*b_i + a_i*f  (two products each)
    z = ring.add(c, product(e, ring.add(b, f) if ctx.party == 0 else b, attrs))
    return ring.add(z, product(a, f, attrs), out=z)


def _triple(
    kind: str, x: tuple[int, ...], y: tuple[int, ...], out: tuple[int, ...], attrs: dict[str, Any], step: int
) -> Correlation:
    reuse = attrs.get("reuse")
    return Correlation(
        step,
        kind,
        {"a": x, "b": y},
        {"c": out},
        {k: v for k, v in attrs.items() if k != "reuse"},
        {"b": reuse} if reuse else {},
    )


def _check_reuse(attrs: dict[str, Any]) -> None:
    reuse = attrs.get("reuse")
    if reuse is not None and (not isinstance(reuse, str) or not reuse or len(reuse) > 200):
        raise ProgramError("reuse must be a non-empty string key")


@register("mul", 2, interactive=True)
class Mul:
    """Elementwise product of two shared tensors (scale: sum of both)."""

    @staticmethod
    def infer(shapes, attrs):
        if "reuse" in attrs:
            raise ProgramError("mul does not take a reuse key (only matmul and conv2d weights do)")
        if shapes[0] != shapes[1]:
            raise ProgramError(f"mul: operand shapes differ: {shapes[0]} vs {shapes[1]}")
        return shapes[0]

    @staticmethod
    def correlation(step, shapes, attrs):
        return _triple("mul", shapes[0], shapes[1], shapes[0], attrs, step)

    @staticmethod
    def run(ctx, xs, attrs):
        pre = ctx.correlation()
        x, y = xs
        e, f = split(open_flat(ctx, masked_differences([(x, pre["a"]), (y, pre["b"])])), [x.shape, y.shape])
        return ring.beaver_combine(pre["c"], e, pre["b"], pre["a"], f, ctx.party == 0)


@register("square", 1, interactive=True)
class Square:
    """x * x with a square pair (a, a*a): open e = x - a, z = c + 2 e a + [i = 0] e^2."""

    infer = staticmethod(lambda shapes, attrs: shapes[0])

    @staticmethod
    def correlation(step, shapes, attrs):
        return Correlation(step, "square", {"a": shapes[0]}, {"c": shapes[0]})

    @staticmethod
    def run(ctx, xs, attrs):
        pre = ctx.correlation()
        a, c = pre["a"], pre["c"]
        (e,) = split(open_flat(ctx, masked_differences([(xs[0], a)])), [a.shape])
        # party 0: c + e*(2a + e) ; others: c + 2 e a
        t = ring.mul_scalar(a, 2)
        if ctx.party == 0:
            ring.add(t, e, out=t)
        return ring.add(c, ring.mul(e, t, out=t))


def _matmul_shapes(x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, ...]:
    if len(x) < 1 or len(y) != 2 or x[-1] != y[0]:
        raise ProgramError(f"matmul needs x (..., k) and y (k, n), got {x} and {y}")
    return (*x[:-1], y[1])


def _matmul(u: np.ndarray, v: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    return ring.matmul(u.reshape(-1, u.shape[-1]), v).reshape(*u.shape[:-1], v.shape[1])


@register("matmul", 2, interactive=True)
class MatMul:
    """x (..., k) @ y (k, n) on shares with a matrix triple (one opening of x and y)."""

    @staticmethod
    def infer(shapes, attrs):
        _check_reuse(attrs)
        return _matmul_shapes(shapes[0], shapes[1])

    @staticmethod
    def correlation(step, shapes, attrs):
        return _triple("matmul", shapes[0], shapes[1], _matmul_shapes(shapes[0], shapes[1]), attrs, step)

    @staticmethod
    def run(ctx, xs, attrs):
        return beaver_product(ctx, xs[0], xs[1], attrs, _matmul)


def _conv(u: np.ndarray, v: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    g = conv_attrs(attrs)
    return ring.conv2d(u, v, g["stride"], g["padding"], g["dilation"], g["groups"])


@register("conv2d", 2, interactive=True)
class Conv2d:
    """Shared input (N, C, H, W) * shared weight (O, C/groups, kh, kw), zero padding.

    The triple is shaped like the layer: one masked input and one masked weight
    are opened per layer (the weight only once per job under a reuse key).
    """

    @staticmethod
    def infer(shapes, attrs):
        _check_reuse(attrs)
        return conv_output_shape(shapes[0], shapes[1], attrs)

    @staticmethod
    def correlation(step, shapes, attrs):
        out = conv_output_shape(shapes[0], shapes[1], attrs)
        return _triple("conv2d", shapes[0], shapes[1], out, {**conv_attrs(attrs), "reuse": attrs.get("reuse")}, step)

    @staticmethod
    def run(ctx, xs, attrs):
        return beaver_product(ctx, xs[0], xs[1], attrs, _conv)
