"""Programs: small graphs of ops over named secret-shared tensors.

The client builds a Program with the methods below (which track each tensor's
shape and fixed-point scale), serialises it to JSON and sends it with the
encoded inputs; every server validates it again with :meth:`Program.from_json`
before running a single op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import fixed_point
from ..errors import ProgramError, UnsupportedError
from .ops import OPS, check_shape

FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
MAX_OPS = 100_000


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
        Number of servers that run it (2 or 3).
    frac_bits : int
        Fixed-point scale the program keeps between ops.
    """

    def __init__(self, parties: int = 2, frac_bits: int = fixed_point.DEFAULT_FRAC_BITS) -> None:
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
        shape = OPS[op].infer([t.shape for t in inputs], attrs)
        out = Tensor(self._fresh("t"), shape, frac_bits)
        self.steps.append(Step(op, [t.name for t in inputs], out.name, attrs))
        self._tensors[out.name] = out
        return out

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
        self._same_scale(a, b, "add")
        return self._add_step("add", [a, b], {}, a.frac_bits)

    def sub(self, a: Tensor, b: Tensor) -> Tensor:
        self._same_scale(a, b, "sub")
        return self._add_step("sub", [a, b], {}, a.frac_bits)

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

    def conv2d_public(self, x: Tensor, kernel: Any, padding: str = "zero", layout: str = "chw",
                      mode: str = "convolve") -> Tensor:
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
            # scipy's convolve is correlate with the flipped kernel, shifted by one for even sizes.
            k = k[:, ::-1, ::-1]
            pad_k = np.zeros((k.shape[0], k.shape[1] + (k.shape[1] + 1) % 2, k.shape[2] + (k.shape[2] + 1) % 2))
            pad_k[:, pad_k.shape[1] - k.shape[1]:, pad_k.shape[2] - k.shape[2]:] = k
            k = pad_k
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
        if self.parties != 2:
            raise UnsupportedError(
                "rescaling (truncation) on 3 servers needs dealer truncation pairs, which this "
                "version does not provide; use 2 servers, or decode with the larger scale"
            )
        return self._add_step("rescale", [x], {"bits": bits}, target)

    def reveal(self, x: Tensor) -> Tensor:
        """Open x to all servers (for values meant to be public, e.g. masked ones)."""
        return self._add_step("reveal", [x], {}, x.frac_bits)

    def output(self, x: Tensor, name: str) -> None:
        """Mark x as a result returned to the client under ``name``."""
        self._tensor(x)
        if not _NAME.match(name) or name in self.outputs:
            raise ProgramError(f"output name {name!r} is invalid or already used")
        self.outputs[name] = (x.name, x.frac_bits)

    # ---- wire format -------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "parties": self.parties,
            "frac_bits": self.frac_bits,
            "inputs": [{"name": n, "shape": list(s)} for n, s in self.inputs.items()],
            "steps": [{"op": s.op, "inputs": s.inputs, "output": s.output, "attrs": s.attrs} for s in self.steps],
            "outputs": [{"name": n, "tensor": t, "frac_bits": f} for n, (t, f) in self.outputs.items()],
        }

    @classmethod
    def from_json(cls, data: Any) -> "Program":
        """Rebuild and fully validate a Program received from the network."""
        try:
            if data["version"] != FORMAT_VERSION:
                raise ProgramError(f"program format version {data['version']!r} is not supported")
            prog = cls(int(data["parties"]), int(data["frac_bits"]))
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
                if not isinstance(attrs, dict) or len(inputs) != OPS[op].arity:
                    raise ProgramError(f"step {i}: {op} takes {OPS[op].arity} input(s) and an attrs object")
                missing = [x for x in inputs if x not in shapes]
                if missing:
                    raise ProgramError(f"step {i}: {op} reads undefined tensor(s) {missing}")
                if not _NAME.match(output) or output in shapes:
                    raise ProgramError(f"step {i}: output name {output!r} is invalid or already defined")
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
        return getattr(self, "_shapes", {}).get(name) or self._tensors[name].shape
