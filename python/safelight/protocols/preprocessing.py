"""Correlated randomness (Beaver triples, truncation pairs) for the offline phase.

A Program's interactive steps each need one *correlation*: random components
(``a``, ``b``, ``r``) and components derived from them (``c = a*b``,
``c = a@b``, ``c = conv(a, b)``, ``r >> f``, ...), all additively shared.

Whoever deals (a dealer process or the client) draws one 16-byte seed per
party. Every party derives *all* its random-component shares and, for parties
0..n-2, its derived-component shares from its own seed with AES-CTR, one
nonce per stream. Only the last party needs more: one correction tensor per
derived component. Dealer traffic is therefore one tensor per triple plus 16
bytes per party, not n tensors.

Weights used by several steps (``reuse`` key, e.g. a model's conv weight) get
one random mask ``b`` for all of them, so the masked weight ``w - b`` is opened
once and reused: every later opening involves a fresh ``a`` only, and ``w - b``
itself is a one-time pad of ``w``, so reusing the opened value reveals nothing new.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import ring
from ..errors import ProtocolError
from ..sharing import SEED_BYTES

Shapes = dict[str, tuple[int, ...]]


# Where the garbled circuits' random OTs come from: IKNP extension between the two
# servers (default, no third party), or the dealer (who then knows the OT material:
# the same trust as in its triples, for users who run one).
OT_SOURCES = ("iknp", "dealer")


@dataclass(frozen=True)
class Correlation:
    """What one step needs.

    Attributes
    ----------
    step : int
        Index of the step in the Program.
    kind : str
        Key into :data:`DERIVATIONS`.
    random : dict of component -> shape
        Uniform components.
    derived : dict of component -> shape
        Components computed from the random ones.
    attrs : dict
        Parameters of the derivation (conv geometry, truncation bits).
    reuse : dict of component -> key
        Random components shared with other steps under the same key.
    prefix : str
        Prepended to the component names when one step needs several correlations
        (e.g. ``"b2a."`` and ``"select."`` for a ReLU): the op sees ``prefix + name``.
    """

    step: int
    kind: str
    random: Shapes
    derived: Shapes
    attrs: dict[str, Any] = field(default_factory=dict)
    reuse: dict[str, str] = field(default_factory=dict)
    prefix: str = ""


def _conv(comp: dict[str, np.ndarray], attrs: dict[str, Any]) -> dict[str, np.ndarray]:
    return {
        "c": ring.conv2d(comp["a"], comp["b"], attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"])
    }


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (..., k) @ b (k, n), as the matmul op computes it."""
    return ring.matmul(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[1])


def _trunc(comp: dict[str, np.ndarray], attrs: dict[str, Any]) -> dict[str, np.ndarray]:
    r = comp["r"]
    return {"r_hi": r >> np.uint64(attrs["bits"]), "r_msb": r >> np.uint64(63)}


# kind -> function of the full random components -> full derived components
DERIVATIONS: dict[str, Callable[[dict[str, np.ndarray], dict[str, Any]], dict[str, np.ndarray]]] = {
    "mul": lambda c, attrs: {"c": ring.mul(c["a"], c["b"])},
    "square": lambda c, attrs: {"c": ring.mul(c["a"], c["a"])},
    "matmul": lambda c, attrs: {"c": _matmul(c["a"], c["b"])},
    "conv2d": _conv,
    "trunc": _trunc,
}


@dataclass(frozen=True)
class Stream:
    """A PRG stream: one nonce under each party's seed."""

    nonce: int
    shape: tuple[int, ...]


class Plan:
    """Deterministic assignment of PRG streams to the correlations of a Program.

    Dealer and parties build the same Plan from the same Program, so a seed
    plus the Plan is all a party needs to expand its material.
    """

    def __init__(self, correlations: list[Correlation]) -> None:
        self.correlations = correlations
        self.streams: dict[tuple[int, str], Stream] = {}
        by_key: dict[str, Stream] = {}
        self.reuse_keys = by_key  # reuse key -> its stream (e.g. "w:<input>" of a weight)
        nonce = 0
        for corr in correlations:
            for name, shape in corr.random.items():
                key = corr.reuse.get(name)
                if key is not None and key in by_key:
                    if by_key[key].shape != tuple(shape):
                        raise ProtocolError(f"reused component {key!r} has two shapes")
                    self.streams[(corr.step, corr.prefix + name)] = by_key[key]
                    continue
                stream = Stream(nonce, tuple(shape))
                nonce += 1
                self.streams[(corr.step, corr.prefix + name)] = stream
                if key is not None:
                    by_key[key] = stream
            for name, shape in corr.derived.items():
                if (corr.step, corr.prefix + name) in self.streams:
                    raise ProtocolError(f"step {corr.step} names component {corr.prefix + name!r} twice")
                self.streams[(corr.step, corr.prefix + name)] = Stream(nonce, tuple(shape))
                nonce += 1

    def __bool__(self) -> bool:
        return bool(self.correlations)

    def correction_names(self) -> list[str]:
        """Names of the tensors the last party receives, in sending order."""
        return list(self.correction_shapes())

    def correction_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of the tensors the last party receives, in sending order."""
        return {
            f"pre:{c.step}:{c.prefix}{name}": tuple(shape)
            for c in self.correlations
            for name, shape in c.derived.items()
        }


def expand_stream(seed: bytes, stream: Stream) -> np.ndarray:
    return ring.random(seed, stream.shape, nonce=stream.nonce)


def _persistent(seed: bytes, stream: Stream) -> np.ndarray:
    """A persistent mask share: its own seed, nonce 0 (the same in every job)."""
    return ring.random(seed, stream.shape, nonce=0)


@dataclass
class Material:
    """One party's preprocessing material as sent over the wire."""

    seed: bytes
    corrections: dict[str, np.ndarray] = field(default_factory=dict)
    # reuse key -> this party's seed of a mask that persists across jobs (a stored model's
    # weight: its masked value is opened once per model, see deal)
    persistent: dict[str, bytes] = field(default_factory=dict)
    mask_ids: dict[str, str] = field(default_factory=dict)  # reuse key -> the dealer's name of the mask
    # random OTs dealt for the garbled circuits (ots="dealer"): the party's OT seed, and
    # for the evaluator the labels of its choice bits
    ot_seed: bytes | None = None
    ot_labels: np.ndarray | None = None
    # every party's derived components are in ``corrections`` (made by the servers
    # themselves, see dealer_free), not only the last party's
    explicit: bool = False
    # makes a step's corrections when the step is first expanded (dealer-free material is
    # computed with the peer layer by layer, in step order on both servers)
    make: Callable[[int], None] | None = None


def deal(plan: Plan, parties: int, persistent: dict[str, list[bytes]] | None = None) -> list[Material]:
    """Generate every party's material (run by the client as dealer; the dealer process
    streams the same thing with :func:`deal_streaming`)."""
    materials, corrections = deal_streaming(plan, parties, persistent)
    materials[-1].corrections.update(corrections)
    return materials


def deal_streaming(
    plan: Plan, parties: int, persistent: dict[str, list[bytes]] | None = None
) -> tuple[list[Material], Iterator[tuple[str, np.ndarray]]]:
    """Every party's seeds now, and the last party's correction tensors as an iterator (in
    :meth:`Plan.correction_names` order) computed one correlation at a time, so a dealer
    can send each one as it is made and hold one layer's arrays at a time.

    ``persistent`` maps reuse keys of the plan to per-party seeds of a mask the dealer keeps
    across jobs (a stored model's weight): the same mask b in every job, so the servers can
    keep the opened w - b and open it once per model instead of once per job.
    """
    seeds = [secrets.token_bytes(SEED_BYTES) for _ in range(parties)]
    persistent = {k: v for k, v in (persistent or {}).items() if k in plan.reuse_keys}
    materials = [Material(seed, persistent={k: v[i] for k, v in persistent.items()}) for i, seed in enumerate(seeds)]
    fixed = {plan.reuse_keys[k].nonce: v for k, v in persistent.items()}
    reused = {stream.nonce for stream in plan.reuse_keys.values()}
    kept: dict[int, np.ndarray] = {}

    def full(stream: Stream) -> np.ndarray:
        if stream.nonce in kept:
            return kept[stream.nonce]
        if stream.nonce in fixed:
            shares = [_persistent(seed, stream) for seed in fixed[stream.nonce]]
        else:
            shares = [expand_stream(seed, stream) for seed in seeds]
        total = shares[0]
        for share in shares[1:]:
            ring.add(total, share, out=total)
        if stream.nonce in reused:
            kept[stream.nonce] = total
        return total

    def corrections() -> Iterator[tuple[str, np.ndarray]]:
        for corr in plan.correlations:
            comps = {name: full(plan.streams[(corr.step, corr.prefix + name)]) for name in corr.random}
            derived = DERIVATIONS[corr.kind](comps, corr.attrs)
            for name, value in derived.items():
                stream = plan.streams[(corr.step, corr.prefix + name)]
                correction = np.ascontiguousarray(value, dtype=np.uint64).reshape(stream.shape).copy()
                for seed in seeds[:-1]:
                    ring.sub(correction, expand_stream(seed, stream), out=correction)
                yield f"pre:{corr.step}:{corr.prefix}{name}", correction

    return materials, corrections()


def expand(plan: Plan, party: int, parties: int, material: Material) -> Expanded:
    """A party's shares of every component, per step (run by each server in the offline
    phase). Checked against the plan at once; each step's arrays are expanded from the
    seed when the step asks for them (so a large network holds one layer's material at a
    time, plus the corrections the last party received)."""
    if len(material.seed) != SEED_BYTES:
        raise ProtocolError("preprocessing seed must be 16 bytes")
    if material.make is not None:
        return Expanded(plan, party, parties, material)  # made (and checked) step by step
    explicit = party == parties - 1 or material.explicit
    expected = set(plan.correction_names()) if explicit else set()
    if set(material.corrections) != expected:
        missing, extra = expected - set(material.corrections), set(material.corrections) - expected
        raise ProtocolError(
            f"preprocessing material does not match the program (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(extra)[:3]}); the dealer and the servers disagree on the job"
        )
    for corr in plan.correlations:
        if explicit:
            for name in corr.derived:
                key = corr.prefix + name
                value = material.corrections[f"pre:{corr.step}:{key}"]
                if value.shape != plan.streams[(corr.step, key)].shape or value.dtype != np.uint64:
                    raise ProtocolError(f"preprocessing tensor pre:{corr.step}:{key} has the wrong shape or dtype")
    return Expanded(plan, party, parties, material)


class Expanded:
    """Step -> {component name: this party's share}, expanded on first access (see expand)."""

    def __init__(self, plan: Plan, party: int, parties: int, material: Material) -> None:
        self.plan, self.material = plan, material
        self.last = party == parties - 1 or material.explicit  # derived shares sent, not expanded
        self.fixed = {plan.reuse_keys[k].nonce: seed for k, seed in material.persistent.items() if k in plan.reuse_keys}
        self.reused = {stream.nonce for stream in plan.reuse_keys.values()}
        self.by_step: dict[int, list[Correlation]] = {}
        for corr in plan.correlations:
            self.by_step.setdefault(corr.step, []).append(corr)
        self.done: dict[int, dict[str, np.ndarray]] = {}
        self.kept: dict[int, np.ndarray] = {}  # reused streams (a weight's mask), expanded once

    def _random(self, stream: Stream) -> np.ndarray:
        if stream.nonce in self.kept:
            return self.kept[stream.nonce]
        value = (
            _persistent(self.fixed[stream.nonce], stream)
            if stream.nonce in self.fixed
            else expand_stream(self.material.seed, stream)
        )
        if stream.nonce in self.reused:
            self.kept[stream.nonce] = value
        return value

    def __contains__(self, step: int) -> bool:
        return step in self.by_step

    def __getitem__(self, step: int) -> dict[str, np.ndarray]:
        if step not in self.done:
            if step not in self.by_step:
                raise KeyError(step)
            comps: dict[str, np.ndarray] = {}
            if self.material.make is not None:
                self.material.make(step)
            for corr in self.by_step[step]:
                for name in corr.random:
                    comps[corr.prefix + name] = self._random(self.plan.streams[(step, corr.prefix + name)])
                for name in corr.derived:
                    key = corr.prefix + name
                    comps[key] = (
                        self.material.corrections[f"pre:{step}:{key}"]
                        if self.last
                        else expand_stream(self.material.seed, self.plan.streams[(step, key)])
                    )
            self.done[step] = comps
        return self.done[step]

    def pop(self, step: int, default=None):
        """Drop a used step's arrays (and the last party's corrections for it)."""
        comps = self.done.pop(step, default)
        for corr in self.by_step.pop(step, []):
            for name in corr.derived:
                self.material.corrections.pop(f"pre:{step}:{corr.prefix}{name}", None)
        return comps
