"""Non-linear ops on two servers: ReLU, comparison, max, max pooling, sorting and top-k.

All of them reduce to one primitive, the sign of a shared value. Its boolean shares come
from a garbled circuit between party 0 (garbler) and party 1 (evaluator) over the
shares reduced mod 2^k (see :mod:`.gc_sign`); two Beaver products then turn the bit
into arithmetic shares and apply it:

    s = b0 + b1 - 2 b0 b1            (boolean -> arithmetic, one product)
    relu(x) = x - x s                  (one product, no truncation: s is an integer)

``bits`` (k) is the smallest width that holds every value: the sign of x is the top
bit of x mod 2^k whenever |x| < 2^(k-1) in ring units, which cuts the circuit to k-1
AND gates per value. The default k = 40 covers |x| < 2^23 at 16 fractional bits.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from .. import ring
from ..errors import ProgramError
from ..program.ops import OPS, check_pair, register
from . import gc_sign, ot_compare, ot_dealt
from .beaver import masked_differences, open_flat, split
from .preprocessing import Correlation

DEFAULT_BITS = 40


def sign_bits(attrs: dict[str, Any]) -> int:
    bits = attrs.get("bits", DEFAULT_BITS)
    if not isinstance(bits, int) or not 2 <= bits <= 64:
        raise ProgramError(f"bits must be an integer in 2..64, got {bits!r}")
    sign_method(attrs)  # every sign-based op's infer checks its attrs here
    return bits


B2A = "b2a."
SIGN_METHODS = ("gc", "ot")  # garbled circuit + Beaver products, or OT (protocols.ot_compare)


def sign_method(attrs: dict[str, Any]) -> str:
    """How a sign-based op compares: "gc" (default: garbled circuits, then Beaver
    products) or "ot" (two servers: millionaires over silent OT and OT multiplexers, no
    correlated randomness from any source; the client picks it for jobs without a dealer,
    see :func:`safelight.runtime.client.with_comparisons`)."""
    method = attrs.get("sign", "gc")
    if method not in SIGN_METHODS:
        raise ProgramError(f"sign must be one of {SIGN_METHODS}, got {method!r}")
    return method


def _ot_link(ctx):
    if ctx.parties != 2:
        raise ProgramError("sign='ot' runs on two servers")
    return ot_compare.job_link(ctx)


def ot_negative(ctx, x: np.ndarray, bits: int) -> np.ndarray:
    """XOR shares (uint8) of 1{x < 0} on the OT path."""
    s = ot_compare.sign(_ot_link(ctx), x, bits)
    ctx.add_rounds(ot_compare.sign_rounds(bits))
    return s


def ot_select(ctx, s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Arithmetic shares of s x for XOR-shared bits s and shared x (OT multiplexer)."""
    out = ot_compare.multiplex(_ot_link(ctx), s, x).reshape(np.shape(x))
    ctx.add_rounds(2)
    return out


def ot_relu(ctx, x: np.ndarray, bits: int) -> np.ndarray:
    return ring.sub(x, ot_select(ctx, ot_negative(ctx, x, bits), x))


def _public(ctx, value: int, shape) -> np.ndarray:
    """Shares of a public integer: party 0 holds it, the others 0."""
    return np.full(shape, np.uint64(value) if ctx.party == 0 else np.uint64(0), dtype=np.uint64)


def prepare_signs(ctx, needs, bits: int) -> None:
    """Offline: garble every sign computation of a step. Each one is announced by its
    boolean-to-arithmetic triple (prefix ``<key>b2a.``), shaped like the sign's input."""
    for corr in needs if isinstance(needs, list) else [needs]:
        if corr.prefix.endswith(B2A):
            size = int(np.prod(corr.random["a"]))
            gc_sign.prepare(ctx, (corr.step, corr.prefix[: -len(B2A)]), size, bits)


# In per-op preprocessing, a ReLU over more values than this is prepared and run in slices,
# so that only one slice's garbled material (about 1.6 KB per value at k = 25) is held.
SLICE = int(os.environ.get("SAFELIGHT_RELU_SLICE", 1 << 20))


def sliced(ctx, size: int) -> bool:
    return ctx.per_op and size > SLICE


def _ot_count(op_class):
    """Declare the random OTs a sign-based op's offline work takes: one per bit of every
    value whose sign it computes (per_op: at most a slice of values at once, see SLICE)."""

    def ots(step, shapes, attrs, per_op):
        total = 0
        for corr in sign_needs(op_class.correlation(step, shapes, attrs)):
            values = int(np.prod(corr.random["a"]))
            total += (min(values, SLICE) if per_op else values) * sign_bits(attrs)
        return total

    op_class.ots = staticmethod(ots)
    return op_class


def sign_needs(needs) -> list[Correlation]:
    """The sign computations among a step's correlations (announced by their b2a triple)."""
    return [c for c in (needs if isinstance(needs, list) else [needs]) if c.prefix.endswith(B2A)]


SIGN_OPS = ("relu", "less", "max_pool2d", "sort", "topk")  # the sign-based ops: all have an OT path


def sign_values(program, method: str | None = None) -> list[tuple[int, int]]:
    """(values, bits) of every sign computation of the program's sign-based ops (what their
    garbled path announces with its boolean-to-arithmetic triples); ``method``: only the
    steps on that path."""
    out = []
    for i, step in enumerate(program.steps):
        if step.op in SIGN_OPS and (method is None or sign_method(step.attrs) == method):
            attrs = {**step.attrs, "sign": "gc"}
            shapes = [program.shape_of(x) for x in step.inputs]
            bits = sign_bits(attrs)
            out += [(int(np.prod(c.random["a"])), bits) for c in sign_needs(OPS[step.op].correlation(i, shapes, attrs))]
    return out


def ot_path_demand(program) -> ot_dealt.Demand:
    """What the OT-path comparisons of a two-server ``program`` draw (digits, AND triples,
    multiplexed values): every sign of the steps on the OT path, then one multiplexer of
    its size (each OT-path sign is followed by one)."""
    total = ot_dealt.Demand()
    if program.parties != 2:
        return total
    for n, bits in sign_values(program, "ot"):
        total = total + ot_dealt.Demand(*ot_compare.sign_demand(n, bits))
    return total


def _ot_offline(ctx, attrs) -> bool:
    """On the OT path, the offline work is the job's OT link (input-independent): set it up
    and say so."""
    if sign_method(attrs) != "ot":
        return False
    if ctx.party in (0, 1):
        ot_compare.job_link(ctx)
    return True


def _offline(op_class):
    """The offline hook of a sign-based op: prepare the garbled circuits its run will use
    (or, on the OT path, set up the job's OT link: input-independent too)."""

    def offline(ctx, step, shapes, attrs):
        if not _ot_offline(ctx, attrs):
            prepare_signs(ctx, op_class.correlation(step, shapes, attrs), sign_bits(attrs))

    op_class.offline = staticmethod(offline)
    return op_class


def _mul_triple(step: int, shape: tuple[int, ...], prefix: str) -> Correlation:
    return Correlation(step, "mul", {"a": shape, "b": shape}, {"c": shape}, prefix=prefix)


def sign_correlations(step: int, shape: tuple[int, ...], prefix: str = "") -> list[Correlation]:
    """Preprocessing of one :func:`relu_parts` call on tensors of ``shape``."""
    return [_mul_triple(step, shape, prefix + B2A), _mul_triple(step, shape, prefix + "select.")]


def beaver_mul(ctx, x: np.ndarray, y: np.ndarray, prefix: str, part: slice | None = None) -> np.ndarray:
    """Elementwise product of two shared integer tensors with the triple under ``prefix``
    (``part``: flat x and y are that slice of the triple's elements)."""
    pre = ctx.correlation()
    a, b, c = pre[prefix + "a"], pre[prefix + "b"], pre[prefix + "c"]
    if part is not None:
        a, b, c = (t.reshape(-1)[part] for t in (a, b, c))
    e, f = split(open_flat(ctx, masked_differences([(x, a), (y, b)])), [x.shape, y.shape])
    return ring.beaver_combine(c, e, b, a, f, ctx.party == 0)


def negative_bit(ctx, x: np.ndarray, bits: int, prefix: str = "", part: slice | None = None) -> np.ndarray:
    """Arithmetic shares (0/1, scale 0) of 1{x < 0} for a shared tensor x (``part``: see
    :func:`beaver_mul`; the slice's garbled circuits are prepared here, timed as offline)."""
    key = (ctx.step, prefix) if part is None else (ctx.step, prefix, part.start)
    if part is not None:
        started = time.perf_counter()
        gc_sign.prepare(ctx, key, x.size, bits)
        ctx.offline_in_op += time.perf_counter() - started
    b = gc_sign.sign_bit_shares(ctx, x, bits, key)  # boolean share, uint64 0/1
    # As arithmetic values: party 0 contributes b0, party 1 contributes b1.
    mine = b
    zero = np.zeros_like(b)
    b0 = mine if ctx.party == 0 else zero
    b1 = mine if ctx.party == 1 else zero
    prod = beaver_mul(ctx, b0, b1, prefix + "b2a.", part)
    # s = b0 + b1 - 2 b0 b1
    s = ring.sub(mine, ring.mul_scalar(prod, 2))
    return s


def relu_parts(ctx, x: np.ndarray, bits: int, prefix: str = "", may_slice: bool = False) -> np.ndarray:
    """relu(x) on shares: x - x * 1{x < 0} (in slices when ``may_slice`` and :func:`sliced`:
    the ReLU op, whose offline hook then left the preparation to this call)."""
    if not (may_slice and sliced(ctx, x.size)):
        s = negative_bit(ctx, x, bits, prefix)
        return ring.sub(x, beaver_mul(ctx, x, s, prefix + "select."))
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    for lo in range(0, flat.size, SLICE):
        part = slice(lo, min(flat.size, lo + SLICE))
        s = negative_bit(ctx, flat[part], bits, prefix, part)
        out[part] = ring.sub(flat[part], beaver_mul(ctx, flat[part], s, prefix + "select.", part))
    return out.reshape(x.shape)


@register("relu", 1, interactive=True)
@_ot_count
class Relu:
    """max(x, 0), elementwise (scale unchanged). ``sign``: "gc" (default: a garbled
    circuit, then two Beaver products) or "ot" (two servers: millionaires over silent OT
    and an OT multiplexer, no correlated randomness from any source; the client picks it
    for jobs without a dealer, see :func:`safelight.runtime.client.run_job`)."""

    @staticmethod
    def offline(ctx, step, shapes, attrs):
        if _ot_offline(ctx, attrs):
            return
        if not sliced(ctx, int(np.prod(shapes[0]))):  # else prepared slice by slice in run
            prepare_signs(ctx, Relu.correlation(step, shapes, attrs), sign_bits(attrs))

    @staticmethod
    def infer(shapes, attrs):
        sign_bits(attrs)
        sign_method(attrs)
        return shapes[0]

    @staticmethod
    def correlation(step, shapes, attrs):
        return [] if sign_method(attrs) == "ot" else sign_correlations(step, shapes[0])

    @staticmethod
    def run(ctx, xs, attrs):
        if sign_method(attrs) == "ot":
            return ot_relu(ctx, xs[0], sign_bits(attrs))
        return relu_parts(ctx, xs[0], sign_bits(attrs), may_slice=True)


@register("less", 2, interactive=True)
@_ot_count
@_offline
class Less:
    """1{x < y} elementwise, as a fixed-point 0/1 at scale ``frac_bits``."""

    @staticmethod
    def infer(shapes, attrs):
        sign_bits(attrs)
        if shapes[0] != shapes[1]:
            raise ProgramError(f"less: operand shapes differ: {shapes[0]} vs {shapes[1]}")
        return shapes[0]

    @staticmethod
    def correlation(step, shapes, attrs):
        return [] if sign_method(attrs) == "ot" else [_mul_triple(step, shapes[0], B2A)]

    @staticmethod
    def run(ctx, xs, attrs):
        one = 1 << int(attrs.get("frac_bits", 16))
        d = ring.sub(xs[0], xs[1])
        if sign_method(attrs) == "ot":
            return ot_select(ctx, ot_negative(ctx, d, sign_bits(attrs)), _public(ctx, one, d.shape))
        return ring.mul_scalar(negative_bit(ctx, d, sign_bits(attrs)), one)


def pairwise_max(ctx, a: np.ndarray, b: np.ndarray, bits: int, prefix: str, method: str = "gc") -> np.ndarray:
    """max(a, b) = b + relu(a - b)."""
    d = ring.sub(a, b)
    return ring.add(b, ot_relu(ctx, d, bits) if method == "ot" else relu_parts(ctx, d, bits, prefix))


def pool_geometry(shape, attrs):
    if len(shape) != 4:
        raise ProgramError(f"max_pool2d needs (N, C, H, W), got {shape}")
    kh, kw = check_pair(attrs.get("kernel"), "kernel", 1)
    sh, sw = check_pair(attrs.get("stride", (kh, kw)), "stride", 1)
    n, c, h, w = shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise ProgramError(f"max_pool2d: a {kh}x{kw} window does not fit {h}x{w}")
    return (kh, kw), (sh, sw), (n, c, ho, wo)


def _tree_levels(count: int) -> list[int]:
    """Number of pairwise maxima at each level of a max tree over ``count`` values."""
    levels = []
    while count > 1:
        levels.append(count // 2)
        count = count - count // 2
    return levels


@register("max_pool2d", 1, interactive=True)
@_ot_count
@_offline
class MaxPool2d:
    """Max over kh x kw windows of (N, C, H, W) (no padding), by a tree of pairwise maxima:
    ceil(log2(kh kw)) sign computations, each batched over the whole tensor."""

    @staticmethod
    def infer(shapes, attrs):
        sign_bits(attrs)
        return pool_geometry(shapes[0], attrs)[2]

    @staticmethod
    def correlation(step, shapes, attrs):
        (kh, kw), _, out = pool_geometry(shapes[0], attrs)
        if sign_method(attrs) == "ot":
            return []
        needs = []
        for level, pairs in enumerate(_tree_levels(kh * kw)):
            needs += sign_correlations(step, (pairs, *out), f"l{level}.")
        return needs

    @staticmethod
    def run(ctx, xs, attrs):
        x = xs[0]
        (kh, kw), (sh, sw), (n, c, ho, wo) = pool_geometry(x.shape, attrs)
        values = [
            np.ascontiguousarray(x[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw])
            for i in range(kh)
            for j in range(kw)
        ]
        level = 0
        while len(values) > 1:
            half = len(values) // 2
            a = np.stack(values[:half])
            b = np.stack(values[half : 2 * half])
            m = pairwise_max(ctx, a, b, sign_bits(attrs), f"l{level}.", sign_method(attrs))
            values = list(m) + values[2 * half :]
            level += 1
        return values[0]


def bitonic_stages(n: int) -> list[list[tuple[int, int]]]:
    """Compare-and-swap pairs (i, j), i < j, of a bitonic network sorting n = 2^m keys ascending."""
    stages = []
    k = 2
    while k <= n:
        j = k // 2
        while j >= 1:
            pairs = []
            for i in range(n):
                partner = i ^ j
                if partner > i:
                    pairs.append((i, partner) if (i & k) == 0 else (partner, i))
            stages.append(pairs)
            j //= 2
        k *= 2
    return stages


def sort_geometry(shape):
    n = shape[-1]
    if n < 1 or n & (n - 1):
        raise ProgramError(f"sort: the last axis must have a power-of-two length, got {n}")
    return n


@register("sort", 1, interactive=True)
@_ot_count
@_offline
class Sort:
    """Sort along the last axis (ascending; ``descending`` flips), with a bitonic network of
    compare-and-swaps: one sign computation and two products per stage, batched."""

    @staticmethod
    def infer(shapes, attrs):
        sign_bits(attrs)
        sort_geometry(shapes[0])
        return shapes[0]

    @staticmethod
    def correlation(step, shapes, attrs):
        n = sort_geometry(shapes[0])
        if sign_method(attrs) == "ot":
            return []
        lead = shapes[0][:-1]
        needs = []
        for s, pairs in enumerate(bitonic_stages(n)):
            shape = (*lead, len(pairs))
            needs += [_mul_triple(step, shape, f"s{s}.{B2A}"), _mul_triple(step, shape, f"s{s}.select.")]
        return needs

    @staticmethod
    def run(ctx, xs, attrs):
        x = np.array(xs[0], copy=True)
        bits = sign_bits(attrs)
        for s, pairs in enumerate(bitonic_stages(sort_geometry(x.shape))):
            lo = np.array([p[0] for p in pairs])
            hi = np.array([p[1] for p in pairs])
            a, b = np.ascontiguousarray(x[..., lo]), np.ascontiguousarray(x[..., hi])
            d = ring.sub(b, a)
            if sign_method(attrs) == "ot":
                delta = ot_select(ctx, ot_negative(ctx, d, bits), d)  # 1{b < a} (b - a)
            else:
                swap = negative_bit(ctx, d, bits, f"s{s}.")  # 1{b < a}
                delta = beaver_mul(ctx, d, swap, f"s{s}.select.")
            x[..., lo] = ring.add(a, delta)  # min
            x[..., hi] = ring.sub(b, delta)  # max
        if attrs.get("descending", False):
            x = np.ascontiguousarray(x[..., ::-1])
        return x


@register("topk", 1, interactive=True)
@_ot_count
@_offline
class TopK:
    """The k largest values along the last axis, largest first (a full bitonic sort, then a slice)."""

    @staticmethod
    def infer(shapes, attrs):
        k = attrs.get("k")
        n = sort_geometry(shapes[0])
        sign_bits(attrs)
        if not isinstance(k, int) or not 1 <= k <= n:
            raise ProgramError(f"topk: k must be an integer in 1..{n}")
        return (*shapes[0][:-1], k)

    correlation = Sort.correlation

    @staticmethod
    def run(ctx, xs, attrs):
        ordered = Sort.run(ctx, xs, {**attrs, "descending": True})
        return np.ascontiguousarray(ordered[..., : attrs["k"]])
