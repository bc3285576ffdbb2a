"""Dealer-free correlated randomness (``triples="he"``): the two servers make their own.

Each server draws its own seed and expands its shares of every *random* component
(``a``, ``b``, ``r``) from it, exactly as it would from a dealer's seed (same
:class:`~safelight.protocols.preprocessing.Plan`, same streams, so weights reused by
several steps keep one mask). The *derived* components are computed jointly:

* ``conv2d`` and ``matmul``: ``c = a (*) b`` splits into the local ``a_i (*) b_i`` and the
  cross terms ``a_0 (*) b_1 + a_1 (*) b_0``, computed with lattice homomorphic encryption
  (:mod:`safelight.protocols.he_products`): each server encrypts its ``a_i`` under its own
  key, the other multiplies by its ``b_j`` as packed polynomials, floods the noise,
  re-randomises and masks, and sends it back;
* ``mul``, ``square`` and ``trunc``: elementwise, with oblivious transfer
  (:mod:`safelight.protocols.ot_correlations`).

The result is a :class:`~safelight.protocols.preprocessing.Material` with every derived
share explicit, so the online phase is the same as with a dealer. No third party is
involved; the cost is computation and traffic between the servers in the offline phase.
"""

from __future__ import annotations

import secrets

import numpy as np

from .. import ring
from ..errors import UnsupportedError
from ..sharing import SEED_BYTES
from . import he_products, ot_correlations
from .preprocessing import Correlation, Material, Plan, expand_stream

HE_KINDS = ("conv2d", "matmul")
OT_KINDS = ("mul", "square", "trunc")


def generate(plan: Plan, ctx) -> Material:
    """This server's material for ``plan``, made with its peer over ``ctx``'s links when a
    step is first expanded (both servers expand steps in program order, in the offline
    phase: all at once with ``preprocess="ahead"``, layer by layer with ``"per_op"``, so a
    large network holds one layer's material at a time)."""
    if ctx.parties != 2:
        raise UnsupportedError("dealer-free preprocessing runs between exactly two servers")
    material = Material(secrets.token_bytes(SEED_BYTES), explicit=True)
    by_step: dict[int, list[Correlation]] = {}
    for corr in plan.correlations:
        by_step.setdefault(corr.step, []).append(corr)
    made: set[int] = set()

    def make(step: int) -> None:
        if step in made:
            return
        made.add(step)
        for corr in by_step.get(step, []):
            mine = {
                name: expand_stream(material.seed, plan.streams[(corr.step, corr.prefix + name)])
                for name in corr.random
            }
            for name, value in derive(ctx, corr, mine).items():
                material.corrections[f"pre:{corr.step}:{corr.prefix}{name}"] = value

    material.make = make
    return material


def derive(ctx, corr: Correlation, mine: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This party's shares of ``corr``'s derived components, given its shares ``mine`` of
    the random ones (both parties call it together, in the same order)."""
    if corr.kind in HE_KINDS:
        a, b = mine["a"], mine["b"]
        if corr.kind == "conv2d":
            attrs = corr.attrs
            args = (attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"])
            local = ring.conv2d(a, b, *args)
            cross = he_products.cross_conv2d(ctx, a, b, *args)
        else:
            flat = a.reshape(-1, a.shape[-1])
            local = ring.matmul(flat, b).reshape(*a.shape[:-1], b.shape[1])
            cross = he_products.cross_matmul(ctx, flat, b).reshape(local.shape)
        return {"c": ring.add(local, cross, out=local)}
    if corr.kind in OT_KINDS:
        return ot_correlations.derive(ctx, corr.kind, mine, corr.attrs)
    raise UnsupportedError(f"no dealer-free protocol for correlations of kind {corr.kind!r}")
