"""Maxima on shares from the op library, for the tasks that need them on both schemes
(rss3 has a secure max op; additive shares take a tournament of ReLUs)."""

from __future__ import annotations

from ..program.program import Program, Tensor


def pairwise_max(p: Program, a: Tensor, b: Tensor, bits: int) -> Tensor:
    """max(a, b) elementwise = b + relu(a - b)."""
    return p.add(b, p.relu(p.sub(a, b), bits=bits))


def largest(p: Program, x: Tensor, bits: int) -> Tensor:
    """(1,) the largest value of a flat tensor: a secure max (rss3) or a tournament of ReLUs."""
    if p.scheme == "rss3":
        return p.reshape(p.max(x, axis=0, bits=bits), (1,))
    n = x.shape[0]
    while n > 1:
        half = n // 2
        top = pairwise_max(p, p.slice(x, 0, 0, half), p.slice(x, 0, half, 2 * half), bits)
        x = p.concat([top, p.slice(x, 0, 2 * half, n)], axis=0) if n % 2 else top
        n = half + n % 2
    return x
