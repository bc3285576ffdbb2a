"""Programs: small graphs of ops over named secret-shared tensors.

The client builds a Program with the methods below (which track each tensor's
shape and fixed-point scale), serialises it to JSON and sends it with the
encoded inputs; every server validates it again with :meth:`Program.from_json`
before running a single op.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import fixed_point
from ..errors import ProgramError, UnsupportedError
from . import newton
from .ops import MAX_INPUTS, OPS, VARIADIC, check_shape, correlation_kernel, sharing_scheme, takes_inputs

FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
MAX_OPS = 100_000


def _check_scheme(op: str, parties: int, scheme: str = "additive", attrs: dict[str, Any] | None = None) -> None:
    """Homomorphic-encryption ops run on one server, share ops on 2 or 3, and the sharing
    scheme must have a protocol for the op (for Programs built here and for those a server
    receives)."""
    if op not in OPS:
        raise ProgramError(f"unknown op {op!r}")
    sharing_scheme(scheme).check(op, attrs or {})
    if (OPS[op].scheme == "he") != (parties == 1):
        raise ProgramError(
            f"op {op!r} works on {'ciphertexts' if OPS[op].scheme == 'he' else 'shares'}: "
            "homomorphic-encryption ops run on one server, share ops on 2 or 3"
        )


def _pair(value: int | tuple[int, int] | list[int]) -> list[int]:
    """An int or a pair of ints as a two-element list (kernel, stride, padding attributes)."""
    return [value, value] if isinstance(value, int) else list(value)


@dataclass(frozen=True)
class Tensor:
    """A handle on a named tensor of a Program (client side)."""

    name: str
    shape: tuple[int, ...]
    frac_bits: int


@dataclass
class Step:
    op: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)


class Program:
    """A graph of ops, in execution order, over named shared tensors.

    Parameters
    ----------
    parties : int
        Number of servers that run it: 2 or 3 for programs on additive shares, 1 for
        programs on ciphertexts (homomorphic-encryption ops, scheme "he"), 3 for
        replicated sharing.
    frac_bits : int
        Fixed-point scale the program keeps between ops.
    truncation : {"auto", "local", "pair"}
        How :meth:`rescale` drops fractional bits after a product. ``local``:
        two-party local truncation (no communication, wrong with probability
        about |x|/2^63); ``pair``: one opening with a dealer-provided
        truncation pair (exact up to one unit, any party count). ``auto`` is
        local for 2 parties and pair for 3.
    scheme : {"additive", "rss3"}
        How the servers hold the secrets: ``additive`` (n-out-of-n shares; interactive ops
        take correlated randomness from a source) or ``rss3`` (2-out-of-3 replicated
        shares on three servers, honest majority: no dealer and no offline phase; products
        truncate in the same step, see :mod:`safelight.protocols.replicated`).
    """

    def __init__(
        self,
        parties: int = 2,
        frac_bits: int = fixed_point.DEFAULT_FRAC_BITS,
        truncation: str = "auto",
        scheme: str = "additive",
    ) -> None:
        if parties not in sharing_scheme(scheme).parties:
            raise ProgramError(f"scheme {scheme!r} runs on {sharing_scheme(scheme).parties} servers, not {parties}")
        self.scheme = scheme
        if truncation not in ("auto", "local", "pair"):
            raise ProgramError(f"truncation must be 'auto', 'local' or 'pair', got {truncation!r}")
        if truncation == "local" and parties != 2:
            raise UnsupportedError("local truncation is only correct for 2 parties; use truncation='pair'")
        self.truncation = truncation if truncation != "auto" else ("local" if parties == 2 else "pair")
        self.parties = parties
        self.frac_bits = fixed_point.check_frac_bits(frac_bits)
        self.inputs: dict[str, tuple[int, ...]] = {}
        self.steps: list[Step] = []
        self.outputs: dict[str, tuple[str, int]] = {}  # result name -> (tensor, fractional bits)
        self._tensors: dict[str, Tensor] = {}
        self._counter = 0

    # ---- building ----------------------------------------------------
    def _fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def _tensor(self, t: Tensor) -> Tensor:
        if self._tensors.get(t.name) is not t:
            raise ProgramError(f"tensor {t.name!r} does not belong to this program")
        return t

    def _add_step(self, op: str, inputs: list[Tensor], attrs: dict[str, Any], frac_bits: int) -> Tensor:
        for t in inputs:
            self._tensor(t)
        _check_scheme(op, self.parties, self.scheme, attrs)
        shape = OPS[op].infer([t.shape for t in inputs], attrs)
        out = Tensor(self._fresh("t"), shape, frac_bits)
        self.steps.append(Step(op, [t.name for t in inputs], out.name, attrs))
        self._tensors[out.name] = out
        return out

    def apply(
        self, op: str, inputs: list[Tensor], attrs: dict[str, Any] | None = None, frac_bits: int | None = None
    ) -> Tensor:
        """Add any registered op (e.g. the homomorphic-encryption ops of
        :mod:`safelight.protocols.he_ops`); the result keeps the first input's scale
        unless ``frac_bits`` is given."""
        if frac_bits is None:
            frac_bits = inputs[0].frac_bits if inputs else self.frac_bits
        return self._add_step(op, list(inputs), dict(attrs or {}), frac_bits)

    def input(self, name: str, shape: tuple[int, ...]) -> Tensor:
        """Declare a secret input (its shares are uploaded by the client)."""
        if not _NAME.match(name) or name in self._tensors:
            raise ProgramError(f"input name {name!r} is invalid or already used")
        t = Tensor(name, check_shape(shape, f"input {name!r}"), self.frac_bits)
        self.inputs[name] = t.shape
        self._tensors[name] = t
        return t

    def _same_scale(self, a: Tensor, b: Tensor, op: str) -> None:
        if a.frac_bits != b.frac_bits:
            raise ProgramError(f"{op}: scales differ ({a.frac_bits} vs {b.frac_bits} fractional bits); rescale first")

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        """a + b; shapes that differ are broadcast as in numpy (``add_broadcast``), e.g. a bias."""
        self._same_scale(a, b, "add")
        return self._add_step("add" if a.shape == b.shape else "add_broadcast", [a, b], {}, a.frac_bits)

    def sub(self, a: Tensor, b: Tensor) -> Tensor:
        """a - b; shapes that differ are broadcast as in numpy (``sub_broadcast``)."""
        self._same_scale(a, b, "sub")
        return self._add_step("sub" if a.shape == b.shape else "sub_broadcast", [a, b], {}, a.frac_bits)

    def neg(self, a: Tensor) -> Tensor:
        return self._add_step("neg", [a], {}, a.frac_bits)

    def add_public(self, a: Tensor, value: Any) -> Tensor:
        """a + value (public float array broadcastable to a)."""
        ring = fixed_point.encode(np.asarray(value, dtype=np.float64), a.frac_bits)
        return self._add_step("add_public", [a], {"value": ring.tolist()}, a.frac_bits)

    def mul_public(self, a: Tensor, scalar: float, integer: bool = False) -> Tensor:
        """a * scalar. An integer scalar keeps the scale; otherwise call :meth:`rescale` after."""
        if integer:
            if int(scalar) != scalar:
                raise ProgramError(f"mul_public: {scalar!r} is not an integer")
            return self._add_step("mul_public", [a], {"scalar": int(scalar) % (1 << 64)}, a.frac_bits)
        enc = int(fixed_point.encode(np.array([scalar]), self.frac_bits)[0])
        return self._add_step("mul_public", [a], {"scalar": enc}, a.frac_bits + self.frac_bits)

    def mul_public_array(self, a: Tensor, value: Any, integer: bool = False) -> Tensor:
        """a * value, elementwise, for a public float array broadcastable to a (a per-position
        divisor map, say). Integer values keep the scale; otherwise call :meth:`rescale` after."""
        v = np.asarray(value, dtype=np.float64)
        if integer:
            if not np.array_equal(v, np.round(v)) or np.abs(v).max(initial=0) >= 2.0**63:
                raise ProgramError("mul_public_array: the values are not integers in range")
            ring = fixed_point.encode(v, 0)
            return self._add_step("mul_public_array", [a], {"value": ring.tolist()}, a.frac_bits)
        ring = fixed_point.encode(v, self.frac_bits)
        return self._add_step("mul_public_array", [a], {"value": ring.tolist()}, a.frac_bits + self.frac_bits)

    def matmul_public(self, x: Tensor, weight: Any, frac_bits: int = 20) -> Tensor:
        """x (..., k) @ weight (k, n) for a public real matrix: local, then one truncation
        (the weight is encoded at ``frac_bits`` fractional bits)."""
        w = np.asarray(weight, dtype=np.float64)
        ring_weight = fixed_point.encode(w, frac_bits)
        out = self._add_step("matmul_public", [x], {"weight": ring_weight.tolist()}, x.frac_bits + frac_bits)
        return self.rescale(out)

    def conv2d_public(
        self, x: Tensor, kernel: Any, padding: str = "zero", layout: str = "chw", mode: str = "convolve"
    ) -> Tensor:
        """Same-size 2-D filtering of every channel with a public kernel.

        Parameters
        ----------
        kernel : array_like of float, (kh, kw) or (C, kh, kw)
        padding : {"zero", "reflect", "mirror", "nearest"}, as in scipy.ndimage
        layout : {"hw", "hwc", "chw"}
        mode : {"convolve", "correlate"}
            ``convolve`` flips the kernel (scipy.ndimage.convolve semantics).

        The result carries ``x.frac_bits + frac_bits`` fractional bits: follow with :meth:`rescale`.
        """
        k = np.asarray(kernel, dtype=np.float64)
        if k.ndim == 2:
            k = k[None]
        if mode == "convolve":
            k = correlation_kernel(k)
        elif mode != "correlate":
            raise ProgramError(f"conv2d_public: mode must be 'convolve' or 'correlate', got {mode!r}")
        ring = fixed_point.encode(k, self.frac_bits)
        attrs = {"kernel": ring.tolist(), "padding": padding, "layout": layout}
        return self._add_step("conv2d_public", [x], attrs, x.frac_bits + self.frac_bits)

    def rescale(self, x: Tensor, frac_bits: int | None = None) -> Tensor:
        """Truncate x down to ``frac_bits`` (default: the program's scale)."""
        target = self.frac_bits if frac_bits is None else frac_bits
        bits = x.frac_bits - target
        if bits < 0:
            raise ProgramError(f"rescale: {x.name} has {x.frac_bits} fractional bits, fewer than {target}")
        if bits == 0:
            return x
        op = "rescale" if self.truncation == "local" else "trunc_pair"
        return self._add_step(op, [x], {"bits": bits}, target)

    # ---- products of shared tensors (Beaver triples) -------------------
    def _product(self, op: str, x: Tensor, y: Tensor, attrs: dict[str, Any], rescale: bool) -> Tensor:
        if self.scheme != "additive":
            return self._fused_product(op, [x, y], attrs, x.frac_bits + y.frac_bits, rescale)
        if y.name in self.inputs and op != "mul":
            attrs = {**attrs, "reuse": f"w:{y.name}"}  # a weight: mask it once per job
        out = self._add_step(op, [x, y], attrs, x.frac_bits + y.frac_bits)
        return self.rescale(out) if rescale else out

    def _fused_product(
        self, op: str, inputs: list[Tensor], attrs: dict[str, Any], frac_bits: int, rescale: bool
    ) -> Tensor:
        """Replicated sharing truncates inside the product's own resharing round."""
        bits = frac_bits - self.frac_bits
        if rescale and bits > 0:
            return self._add_step(op, inputs, {**attrs, "trunc_bits": bits}, self.frac_bits)
        return self._add_step(op, inputs, attrs, frac_bits)

    def mul(self, x: Tensor, y: Tensor, rescale: bool = True) -> Tensor:
        """Elementwise x * y of two shared tensors."""
        return self._product("mul", x, y, {}, rescale)

    def square(self, x: Tensor, rescale: bool = True) -> Tensor:
        if self.scheme != "additive":
            return self._fused_product("square", [x], {}, 2 * x.frac_bits, rescale)
        out = self._add_step("square", [x], {}, 2 * x.frac_bits)
        return self.rescale(out) if rescale else out

    def matmul(self, x: Tensor, y: Tensor, rescale: bool = True) -> Tensor:
        """x (..., k) @ y (k, n) of two shared tensors."""
        return self._product("matmul", x, y, {}, rescale)

    def conv2d(
        self,
        x: Tensor,
        w: Tensor,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        rescale: bool = True,
    ) -> Tensor:
        """Shared (N, C, H, W) input convolved with a shared (O, C/groups, kh, kw) weight, zero padding."""
        attrs = {
            "stride": tuple(_pair(stride)),
            "padding": tuple(_pair(padding)),
            "dilation": tuple(_pair(dilation)),
            "groups": groups,
        }
        return self._product("conv2d", x, w, attrs, rescale)

    # ---- local linear ops ------------------------------------------------
    def sum(self, x: Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        attrs: dict[str, Any] = {"keepdims": keepdims}
        if axes is not None:
            attrs["axes"] = list(axes)
        return self._add_step("sum", [x], attrs, x.frac_bits)

    def mean(self, x: Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        total = self.sum(x, axes, keepdims)
        count = int(np.prod(x.shape)) // int(np.prod(total.shape))
        return self.rescale(self.mul_public(total, 1.0 / count))

    def avg_pool2d(
        self,
        x: Tensor,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> Tensor:
        """Average pooling of (N, C, H, W); padded zeros count in the average (count_include_pad)."""
        kh, kw = _pair(kernel)
        total = self.sum_pool2d(x, kernel, stride, padding)
        return self.rescale(self.mul_public(total, 1.0 / (kh * kw)))

    def sum_pool2d(
        self,
        x: Tensor,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> Tensor:
        """Sums over kernel windows of (N, C, H, W) with zero padding (scale unchanged)."""
        attrs = {
            "kernel": _pair(kernel),
            "stride": _pair(stride if stride is not None else kernel),
            "padding": _pair(padding),
        }
        return self._add_step("sum_pool2d", [x], attrs, x.frac_bits)

    # ---- non-linear ops (garbled-circuit sign between parties 0 and 1) ----
    def relu(self, x: Tensor, bits: int | None = None) -> Tensor:
        """max(x, 0). ``bits``: the width k with |x| < 2^(k-1) ring units (see protocols.nonlinear)."""
        return self._add_step("relu", [x], self._bits(bits), x.frac_bits)

    def less(self, x: Tensor, y: Tensor, bits: int | None = None) -> Tensor:
        """1.0 where x < y, else 0.0."""
        self._same_scale(x, y, "less")
        return self._add_step("less", [x, y], {**self._bits(bits), "frac_bits": x.frac_bits}, x.frac_bits)

    compare = less  # the op library's comparison: 1.0 where x < y

    def max_pool2d(
        self,
        x: Tensor,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        bits: int | None = None,
    ) -> Tensor:
        attrs = {"kernel": _pair(kernel), "stride": _pair(stride if stride is not None else kernel), **self._bits(bits)}
        return self._add_step("max_pool2d", [x], attrs, x.frac_bits)

    def sort(self, x: Tensor, descending: bool = False, bits: int | None = None) -> Tensor:
        """Sort along the last axis (its length a power of two)."""
        return self._add_step("sort", [x], {"descending": bool(descending), **self._bits(bits)}, x.frac_bits)

    def topk(self, x: Tensor, k: int, bits: int | None = None) -> Tensor:
        """The k largest values along the last axis, largest first."""
        return self._add_step("topk", [x], {"k": int(k), **self._bits(bits)}, x.frac_bits)

    def max(self, x: Tensor, axis: int = -1, bits: int | None = None) -> Tensor:
        """The largest value along ``axis`` (replicated sharing, ``scheme="rss3"``)."""
        return self._add_step("max", [x], {"axis": int(axis), **self._bits(bits)}, x.frac_bits)

    def argmax(self, x: Tensor, axis: int = -1, bits: int | None = None) -> Tensor:
        """The index of the largest value along ``axis`` (the first on ties, as numpy), as a
        number at the program's scale (replicated sharing, ``scheme="rss3"``)."""
        attrs = {"axis": int(axis), "frac_bits": self.frac_bits, **self._bits(bits)}
        return self._add_step("argmax", [x], attrs, self.frac_bits)

    def smallest_k(self, x: Tensor, k: int, bits: int | None = None) -> Tensor:
        """The k smallest values along the last axis, ascending, and their indices: shape
        (..., 2, k), row 0 the values, row 1 the indices as numbers at the program's scale
        (replicated sharing, ``scheme="rss3"``). Values must satisfy |x| < 2^(bits-2) ring
        units (the padding sits above them); the nearest neighbours of a query are the
        smallest_k of its distances."""
        attrs = {"k": int(k), "frac_bits": self.frac_bits, **self._bits(bits)}
        return self._add_step("smallest_k", [x], attrs, self.frac_bits)

    def reciprocal(self, x: Tensor, bits: int | None = None) -> Tensor:
        """1/x elementwise for 0 < x < 2^(bits-1) ring units (default 40: x < 2^23 at 16
        fractional bits), by Newton's method after a secure normalisation (replicated sharing:
        one op; additive shares: composed from ``bits - 1`` comparisons and products, see
        :mod:`safelight.program.newton`)."""
        if self.scheme == "additive":
            return newton.reciprocal(self, x, self._positive_bits(x, bits))
        return self._add_step("reciprocal", [x], {"frac_bits": x.frac_bits, **self._bits(bits)}, x.frac_bits)

    def rsqrt(self, x: Tensor, bits: int | None = None) -> Tensor:
        """1/sqrt(x) elementwise for 0 < x < 2^(bits-1) ring units, as :meth:`reciprocal`
        (for L2 normalisation: x * rsqrt(sum(x^2)))."""
        if self.scheme == "additive":
            return newton.rsqrt(self, x, self._positive_bits(x, bits))
        return self._add_step("rsqrt", [x], {"frac_bits": x.frac_bits, **self._bits(bits)}, x.frac_bits)

    @staticmethod
    def _positive_bits(x: Tensor, bits: int | None) -> int:
        """The width of reciprocal/rsqrt's comparisons: x.frac_bits + 2 ..46 (default 40)."""
        width = 40 if bits is None else bits
        if isinstance(width, bool) or not isinstance(width, int) or not x.frac_bits + 2 <= width <= 46:
            raise ProgramError(
                f"bits must be an integer in {x.frac_bits + 2}..46 (0 < x < 2^(bits-1) ring units), got {bits!r}"
            )
        return width

    @staticmethod
    def _bits(bits: int | None) -> dict[str, int]:
        return {} if bits is None else {"bits": int(bits)}

    def pad(self, x: Tensor, pads: tuple[int, int, int, int], mode: str = "zero") -> Tensor:
        """Pad the last two axes by (top, bottom, left, right); mode zero/reflect/mirror/nearest."""
        return self._add_step("pad", [x], {"pads": [int(p) for p in pads], "mode": mode}, x.frac_bits)

    def reshape(self, x: Tensor, shape: tuple[int, ...]) -> Tensor:
        """The same elements (row-major) in a new shape; one size may be -1 (inferred)."""
        dims = [int(d) for d in shape]
        if dims.count(-1) > 1:
            raise ProgramError(f"reshape: at most one size may be -1, got {tuple(dims)}")
        if -1 in dims:
            known = int(np.prod([d for d in dims if d != -1], dtype=object))
            total = int(np.prod(x.shape, dtype=object))
            if known < 1 or total % known:
                raise ProgramError(f"reshape: cannot reshape {x.shape} to {tuple(dims)}")
            dims[dims.index(-1)] = total // known
        return self._add_step("reshape", [x], {"shape": dims}, x.frac_bits)

    def transpose(self, x: Tensor, perm: tuple[int, ...] | None = None) -> Tensor:
        """Permute the axes (numpy.transpose; default: reverse them)."""
        order = list(range(len(x.shape)))[::-1] if perm is None else [int(i) for i in perm]
        return self._add_step("transpose", [x], {"perm": order}, x.frac_bits)

    def concat(self, tensors: list[Tensor], axis: int = 0) -> Tensor:
        """Join tensors (same scale, same sizes outside ``axis``) along ``axis``: one
        ``concat`` step per MAX_INPUTS tensors (a single tensor is returned as it is)."""
        if not tensors:
            raise ProgramError("concat: give at least one tensor")
        for t in tensors[1:]:
            self._same_scale(tensors[0], t, "concat")
        parts = list(tensors)
        while len(parts) > 1:
            groups = [parts[i : i + MAX_INPUTS] for i in range(0, len(parts), MAX_INPUTS)]
            parts = [
                g[0] if len(g) == 1 else self._add_step("concat", g, {"axis": int(axis)}, g[0].frac_bits)
                for g in groups
            ]
        return parts[0]

    def slice(self, x: Tensor, axis: int, start: int, stop: int, step: int = 1) -> Tensor:
        """x[..., start:stop:step, ...] along ``axis`` (0 <= start < stop <= size, step >= 1)."""
        attrs = {"axis": int(axis), "start": int(start), "stop": int(stop), "step": int(step)}
        return self._add_step("slice", [x], attrs, x.frac_bits)

    def take(self, x: Tensor, indices: Sequence[int]) -> Tensor:
        """Rows of x (axis 0) at public ``indices``, in that order (a local gather)."""
        return self._add_step("take", [x], {"indices": [int(i) for i in indices]}, x.frac_bits)

    def pixel_shuffle(self, x: Tensor, factor: int) -> Tensor:
        return self._add_step("pixel_shuffle", [x], {"factor": factor}, x.frac_bits)

    def pixel_unshuffle(self, x: Tensor, factor: int) -> Tensor:
        return self._add_step("pixel_unshuffle", [x], {"factor": factor}, x.frac_bits)

    def reveal(self, x: Tensor) -> Tensor:
        """Open x to all servers (for values meant to be public, e.g. masked ones)."""
        return self._add_step("reveal", [x], {}, x.frac_bits)

    def output(self, x: Tensor, name: str) -> None:
        """Mark x as a result returned to the client under ``name``."""
        self._tensor(x)
        if not _NAME.match(name) or name in self.outputs:
            raise ProgramError(f"output name {name!r} is invalid or already used")
        self.outputs[name] = (x.name, x.frac_bits)

    def take_output(self, name: str) -> Tensor:
        """Unmark result ``name`` and return its tensor, to compute further on it (an
        imported network's output, normalised before it is returned)."""
        if name not in self.outputs:
            raise ProgramError(f"{name!r} is not an output of this program")
        tensor, _ = self.outputs.pop(name)
        return self._tensors[tensor]

    def with_default_attr(self, ops: Sequence[str], name: str, value: Any) -> Program:
        """A copy whose steps of ``ops`` carry ``name = value`` where they do not set it
        (the client's choice of protocol for a job); the program itself when no step is of
        ``ops``."""
        if not any(step.op in ops for step in self.steps):
            return self
        data = self.to_json()
        for step in data["steps"]:
            if step["op"] in ops and name not in step["attrs"]:
                step["attrs"] = {**step["attrs"], name: value}
        return Program.from_json(data)

    # ---- wire format -------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "parties": self.parties,
            "scheme": self.scheme,
            "frac_bits": self.frac_bits,
            "truncation": self.truncation,
            "inputs": [{"name": n, "shape": list(s)} for n, s in self.inputs.items()],
            "steps": [{"op": s.op, "inputs": s.inputs, "output": s.output, "attrs": s.attrs} for s in self.steps],
            "outputs": [{"name": n, "tensor": t, "frac_bits": f} for n, (t, f) in self.outputs.items()],
        }

    @classmethod
    def from_json(cls, data: Any) -> Program:
        """Rebuild and fully validate a Program received from the network."""
        try:
            if data["version"] != FORMAT_VERSION:
                raise ProgramError(f"program format version {data['version']!r} is not supported")
            prog = cls(
                int(data["parties"]),
                int(data["frac_bits"]),
                str(data.get("truncation", "auto")),
                str(data.get("scheme", "additive")),
            )
            shapes: dict[str, tuple[int, ...]] = {}
            for entry in data["inputs"]:
                t = prog.input(str(entry["name"]), entry["shape"])
                shapes[t.name] = t.shape
            if len(data["steps"]) > MAX_OPS:
                raise ProgramError(f"program has more than {MAX_OPS} steps")
            for i, entry in enumerate(data["steps"]):
                op, inputs, output = str(entry["op"]), [str(x) for x in entry["inputs"]], str(entry["output"])
                attrs = entry.get("attrs", {})
                if op not in OPS:
                    raise ProgramError(f"step {i}: unknown op {op!r} (known: {sorted(OPS)})")
                if not isinstance(attrs, dict) or not takes_inputs(OPS[op], len(inputs)):
                    count = f"2..{MAX_INPUTS}" if OPS[op].arity == VARIADIC else OPS[op].arity
                    raise ProgramError(f"step {i}: {op} takes {count} input(s) and an attrs object")
                missing = [x for x in inputs if x not in shapes]
                if missing:
                    raise ProgramError(f"step {i}: {op} reads undefined tensor(s) {missing}")
                if not _NAME.match(output) or output in shapes:
                    raise ProgramError(f"step {i}: output name {output!r} is invalid or already defined")
                if "reuse" in attrs and (
                    len(inputs) != 2 or attrs["reuse"] != f"w:{inputs[1]}" or inputs[1] not in prog.inputs
                ):
                    # A reused mask is safe only for one fixed tensor: binding the key to an input's
                    # name stops a Program from opening two different tensors under one mask.
                    raise ProgramError(f"step {i}: a reuse key must be 'w:<name>' of the input it masks")
                _check_scheme(op, prog.parties, prog.scheme, attrs)
                shapes[output] = check_shape(OPS[op].infer([shapes[x] for x in inputs], attrs), f"step {i}")
                prog.steps.append(Step(op, inputs, output, attrs))
            for entry in data["outputs"]:
                name, tensor = str(entry["name"]), str(entry["tensor"])
                if tensor not in shapes or not _NAME.match(name) or name in prog.outputs:
                    raise ProgramError(f"output {name!r} names an undefined tensor or is repeated")
                prog.outputs[name] = (tensor, int(entry["frac_bits"]))
            prog._shapes = shapes
            return prog
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProgramError(f"malformed program: {type(exc).__name__}: {exc}") from None

    def shape_of(self, name: str) -> tuple[int, ...]:
        shapes = getattr(self, "_shapes", None)
        return shapes[name] if shapes is not None else self._tensors[name].shape

    def ot_demand_per_step(self, per_op: bool = False) -> dict[int, int]:
        """Random OTs each step's offline work takes, as its op declares (``per_op``: the
        most prepared at once, for a step prepared slice by slice)."""
        out: dict[int, int] = {}
        if not sharing_scheme(self.scheme).offline_phase:
            return out  # e.g. replicated sharing: no input-independent work
        for i, step in enumerate(self.steps):
            declared = OPS[step.op].ots
            if declared is not None:
                out[i] = int(declared(i, [self.shape_of(x) for x in step.inputs], step.attrs, per_op))
        return out

    def ot_demand(self) -> int:
        """Random OTs the whole Program takes (what a dealer deals with ``ots="dealer"``)."""
        return sum(self.ot_demand_per_step().values())

    def correlations(self) -> list:
        """The preprocessing each interactive step needs, in step order (none for
        replicated sharing: its products need no correlated randomness)."""
        out: list = []
        if not sharing_scheme(self.scheme).offline_phase:
            return out
        for i, step in enumerate(self.steps):
            spec = OPS[step.op]
            if spec.correlation is not None:
                needs = spec.correlation(i, [self.shape_of(x) for x in step.inputs], step.attrs)
                out.extend(needs if isinstance(needs, list) else [needs])
        return out
