"""The op library that servers evaluate: each op checks its shapes and runs on one party's share.

An op has ``infer(shapes, attrs) -> shape`` (run by the client when it builds a
Program and again by each server before it trusts one) and ``run(ctx, arrays,
attrs) -> array`` (run by each server on its own share). Adding a task means
composing these in a Program; new ops are added here, never in server code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from .. import ring
from ..errors import ProgramError, UnsupportedError

MAX_ELEMENTS = 1 << 31  # per tensor: refuse programs that would exhaust server memory
PADDING_MODES = {"zero": "constant", "reflect": "symmetric", "mirror": "reflect", "nearest": "edge"}
LAYOUTS = ("hw", "hwc", "chw")


class Context(Protocol):
    """What an op may ask of the server running it."""

    party: int
    parties: int

    def exchange_all(self, array: np.ndarray) -> list[np.ndarray]:
        """Send ``array`` to every other party; return all parties' arrays, in party order."""


@dataclass(frozen=True)
class OpSpec:
    name: str
    arity: int
    infer: Callable[[list[tuple[int, ...]], dict[str, Any]], tuple[int, ...]]
    run: Callable[[Context, list[np.ndarray], dict[str, Any]], np.ndarray]
    interactive: bool = False


OPS: dict[str, OpSpec] = {}


def _register(name: str, arity: int, interactive: bool = False):
    def wrap(cls):
        OPS[name] = OpSpec(name, arity, cls.infer, cls.run, interactive)
        return cls

    return wrap


def _ring_array(value: Any, what: str) -> np.ndarray:
    try:
        arr = np.array(value, dtype=object)
        flat = [int(v) for v in arr.reshape(-1)]
    except (TypeError, ValueError):
        raise ProgramError(f"{what} must be integers (ring elements)") from None
    if any(v < 0 or v >= 1 << 64 for v in flat):
        raise ProgramError(f"{what} must be ring elements in [0, 2^64)")
    return np.array(flat, dtype=np.uint64).reshape(arr.shape)


def _same_shape(shapes: list[tuple[int, ...]], name: str) -> tuple[int, ...]:
    if shapes[0] != shapes[1]:
        raise ProgramError(f"{name}: operand shapes differ: {shapes[0]} vs {shapes[1]}")
    return shapes[0]


@_register("add", 2)
class Add:
    infer = staticmethod(lambda shapes, attrs: _same_shape(shapes, "add"))
    run = staticmethod(lambda ctx, xs, attrs: ring.add(xs[0], xs[1]))


@_register("sub", 2)
class Sub:
    infer = staticmethod(lambda shapes, attrs: _same_shape(shapes, "sub"))
    run = staticmethod(lambda ctx, xs, attrs: ring.sub(xs[0], xs[1]))


@_register("neg", 1)
class Neg:
    infer = staticmethod(lambda shapes, attrs: shapes[0])
    run = staticmethod(lambda ctx, xs, attrs: ring.neg(xs[0]))


@_register("add_public", 1)
class AddPublic:
    """x + c for a public ring constant c broadcastable to x; only party 0 adds it."""

    @staticmethod
    def infer(shapes, attrs):
        value = _ring_array(attrs.get("value"), "add_public value")
        try:
            np.broadcast_shapes(value.shape, shapes[0])
        except ValueError:
            raise ProgramError(f"add_public: value of shape {value.shape} does not broadcast to {shapes[0]}") from None
        return shapes[0]

    @staticmethod
    def run(ctx, xs, attrs):
        if ctx.party != 0:
            return xs[0]
        value = np.broadcast_to(_ring_array(attrs["value"], "value"), xs[0].shape)
        return ring.add(xs[0], np.ascontiguousarray(value))


@_register("mul_public", 1)
class MulPublic:
    """x * s for a public ring scalar s (a fixed-point s adds its fractional bits to x's)."""

    @staticmethod
    def infer(shapes, attrs):
        _ring_array(attrs.get("scalar"), "mul_public scalar")
        return shapes[0]

    @staticmethod
    def run(ctx, xs, attrs):
        return ring.mul_scalar(xs[0], int(attrs["scalar"]))


def _conv_geometry(shape: tuple[int, ...], attrs: dict[str, Any]) -> tuple[np.ndarray, int]:
    layout = attrs.get("layout", "chw")
    if layout not in LAYOUTS:
        raise ProgramError(f"conv2d_public: layout must be one of {LAYOUTS}, got {layout!r}")
    if len(shape) != len(layout):
        raise ProgramError(f"conv2d_public: layout {layout!r} needs a {len(layout)}-D input, got shape {shape}")
    channels = shape[layout.index("c")] if "c" in layout else 1
    kernel = _ring_array(attrs.get("kernel"), "conv2d_public kernel")
    if kernel.ndim != 3 or kernel.shape[0] not in (1, channels) or min(kernel.shape) < 1:
        raise ProgramError(
            f"conv2d_public: kernel must be (1 or C, kh, kw) with C={channels}, got shape {kernel.shape}"
        )
    if attrs.get("padding", "zero") not in PADDING_MODES:
        raise ProgramError(f"conv2d_public: padding must be one of {sorted(PADDING_MODES)}")
    h, w = shape[layout.index("h")], shape[layout.index("w")]
    if kernel.shape[1] > 2 * h or kernel.shape[2] > 2 * w:
        raise ProgramError(f"conv2d_public: a {kernel.shape[1:]} kernel is too large for a {h}x{w} image")
    return kernel, channels


@_register("conv2d_public", 1)
class Conv2dPublic:
    """Same-size 2-D correlation of each channel with a public ring kernel.

    attrs: ``kernel`` (1 or C, kh, kw) ring elements, ``padding`` (zero, reflect,
    mirror, nearest as in scipy.ndimage), ``layout`` (hw, hwc, chw). Padding is
    linear, so each party pads its own share.
    """

    @staticmethod
    def infer(shapes, attrs):
        _conv_geometry(shapes[0], attrs)
        return shapes[0]

    @staticmethod
    def run(ctx, xs, attrs):
        x = xs[0]
        kernel, channels = _conv_geometry(x.shape, attrs)
        layout = attrs.get("layout", "chw")
        planes = x[None] if layout == "hw" else np.moveaxis(x, 2, 0) if layout == "hwc" else x
        kh, kw = kernel.shape[1:]
        pads = ((0, 0), (kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2))
        padded = np.pad(planes, pads, mode=PADDING_MODES[attrs.get("padding", "zero")])
        kernels = np.ascontiguousarray(np.broadcast_to(kernel, (channels, kh, kw)))
        out = ring.correlate2d(np.ascontiguousarray(padded), kernels)
        if layout == "hw":
            return out[0]
        return np.ascontiguousarray(np.moveaxis(out, 0, 2)) if layout == "hwc" else out


@_register("rescale", 1)
class Rescale:
    """Drop ``bits`` fractional bits: two-party local (probabilistic) truncation.

    Party 0 shifts its share arithmetically, party 1 shifts the negation of its
    share and negates back. The result is x / 2^bits up to one unit in the last
    place, except with probability about |x| / 2^63 (a wrap of the shares
    across the sign boundary), which for image-sized values is below 2^-30.
    """

    @staticmethod
    def infer(shapes, attrs):
        bits = attrs.get("bits")
        if not isinstance(bits, int) or not 0 <= bits <= 62:
            raise ProgramError("rescale: bits must be an integer in 0..62")
        return shapes[0]

    @staticmethod
    def run(ctx, xs, attrs):
        if ctx.parties != 2:
            raise UnsupportedError("local truncation is only correct for 2 parties")
        bits = int(attrs["bits"])
        if ctx.party == 0:
            return ring.shift_right_signed(xs[0], bits)
        return ring.neg(ring.shift_right_signed(ring.neg(xs[0]), bits))


@_register("reveal", 1, interactive=True)
class Reveal:
    """Open x to every server (use only on values that are meant to be public,
    such as masked differences). The output stays in share form: party 0 holds
    the value, the others hold zero."""

    infer = staticmethod(lambda shapes, attrs: shapes[0])

    @staticmethod
    def run(ctx, xs, attrs):
        total = np.zeros_like(xs[0])
        for share in ctx.exchange_all(xs[0]):
            ring.add(total, share, out=total)
        return total if ctx.party == 0 else np.zeros_like(total)


def check_shape(shape: Any, what: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ProgramError(f"{what}: shape must be a list of integers, got {shape!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise ProgramError(f"{what}: shape {dims} must be non-empty with positive sizes")
    if int(np.prod(dims, dtype=object)) > MAX_ELEMENTS:
        raise ProgramError(f"{what}: shape {dims} has more than {MAX_ELEMENTS} elements")
    return dims
