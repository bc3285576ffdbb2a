"""The op library that servers evaluate: each op checks its shapes and runs on one party's share.

An op has ``infer(shapes, attrs) -> shape`` (run by the client when it builds a
Program and again by each server before it trusts one) and ``run(ctx, arrays,
attrs) -> array`` (run by each server on its own share). Adding a task means
composing these in a Program; new ops are added here, never in server code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .. import ring
from ..errors import ProgramError, UnsupportedError

MAX_ELEMENTS = 1 << 31  # per tensor: refuse programs that would exhaust server memory
PADDING_MODES = {"zero": "constant", "reflect": "symmetric", "mirror": "reflect", "nearest": "edge"}
LAYOUTS = ("hw", "hwc", "chw")


def correlation_kernel(kernel: np.ndarray) -> np.ndarray:
    """Turn convolution weights (..., kh, kw) into the odd-sized correlation kernel that gives
    scipy.ndimage.convolve's output alignment: flipped, with a zero row/column in front for
    even sizes (scipy shifts the origin of even kernels by one)."""
    k = np.asarray(kernel, dtype=np.float64)[..., ::-1, ::-1]
    kh, kw = k.shape[-2:]
    out = np.zeros((*k.shape[:-2], kh + (kh + 1) % 2, kw + (kw + 1) % 2))
    out[..., out.shape[-2] - kh :, out.shape[-1] - kw :] = k
    return out


class Links(Protocol):
    """The job's links to the other servers, as a protocol may use them directly."""

    job_id: bytes
    rounds: int  # protocol rounds so far (read by the server for the job report)

    def dealer(self) -> Any:
        """The channel on which the dealer process sends this job's material."""

    def barrier(self) -> None:
        """Wait until every party reached this point (not counted as a round)."""


class Context(Protocol):
    """What an op (and a randomness source) may ask of the server running it: nothing else.

    The server (``runtime.server.JobContext``) and the tests' in-process simulator
    implement it.
    """

    party: int
    parties: int
    step: int  # index of the running step in the Program
    opened: dict[str, np.ndarray]  # values opened earlier in this job, by reuse key
    per_op: bool  # preprocessing runs op by op: a large op may prepare itself slice by slice
    offline_in_op: float  # seconds of preprocessing done inside the running op (it adds to it)
    state: dict[str, Any]  # per-job state owned by protocols, one key per protocol module
    links: Links

    def add_rounds(self, n: int) -> None:
        """Count ``n`` communication rounds of a protocol that talks through pipes or links."""

    def receive_tensors(self, channel: Any, expected: dict[str, tuple[int, ...] | None]) -> dict[str, np.ndarray]:
        """Exactly the named uint64 tensors from ``channel``, each checked before allocation."""

    def exchange_all(self, array: np.ndarray) -> list[np.ndarray]:
        """Send ``array`` to every other party; return all parties' arrays, in party order."""

    def correlation(self) -> dict[str, np.ndarray]:
        """This party's shares of the running step's preprocessing components."""

    def send(self, peer: int, array: np.ndarray) -> None:
        """One tensor to one peer."""

    def recv(self, peer: int) -> np.ndarray:
        """One tensor from one peer."""

    def pipe(self, peer: int) -> Any:
        """A named-tensor pipe to ``peer`` (``send(name, array)`` / ``recv(name)``)."""

    def exchange(
        self,
        sends: dict[int, list[np.ndarray]],
        receive: dict[int, int],
        into: dict[int, list[np.ndarray]] | None = None,
    ) -> dict[int, list[np.ndarray]]:
        """One round with some peers: send each peer its arrays (in order) while receiving
        ``receive[peer]`` arrays from each peer named there; counts one round. ``into[peer]``
        may give C-contiguous buffers to receive into (the arrays returned are those
        buffers; one of another dtype or shape than what arrives is a ProtocolError)."""


@dataclass(frozen=True)
class OpSpec:
    """An op of the library.

    ``correlation(step, shapes, attrs, inputs)`` returns the preprocessing the op
    needs (a :class:`safelight.protocols.preprocessing.Correlation`) or None.
    ``offline(ctx, step, shapes, attrs)`` does the op's input-independent work before the
    online phase (garbling). ``ots(step, shapes, attrs, per_op)`` declares the random OTs
    that work takes (with ``per_op``: the most prepared at once), so that a dealer can deal
    them and a server can size the job, without knowing the op's protocol.
    """

    name: str
    arity: int
    infer: Callable[[list[tuple[int, ...]], dict[str, Any]], tuple[int, ...]]
    run: Callable[[Context, list[np.ndarray], dict[str, Any]], np.ndarray]
    interactive: bool = False
    correlation: Callable[..., Any] | None = None
    offline: Callable[..., None] | None = None  # (ctx, step, shapes, attrs): input-independent work
    ots: Callable[..., int] | None = None  # (step, shapes, attrs, per_op): random OTs its offline work takes
    # "shares": runs on secret shares (2 or 3 servers, any sharing scheme); "replicated": only
    # on replicated shares (three servers, protocols/replicated.py); "he": on ciphertexts under
    # the client's key, by a single server (homomorphic encryption)
    scheme: str = "shares"


OPS: dict[str, OpSpec] = {}
SCHEMES = ("shares", "replicated", "he")
VARIADIC = -1  # an op's arity: two or more inputs, at most MAX_INPUTS
MAX_INPUTS = 4096


def takes_inputs(spec: OpSpec, n: int) -> bool:
    """Whether ``spec`` accepts ``n`` inputs."""
    return 2 <= n <= MAX_INPUTS if spec.arity == VARIADIC else n == spec.arity


def register(name: str, arity: int, interactive: bool = False, scheme: str = "shares"):
    """Class decorator adding an op (``infer``, ``run``, optional ``correlation``) to :data:`OPS`."""
    assert scheme in SCHEMES

    def wrap(cls):
        OPS[name] = OpSpec(
            name,
            arity,
            cls.infer,
            cls.run,
            interactive,
            getattr(cls, "correlation", None),
            getattr(cls, "offline", None),
            getattr(cls, "ots", None),
            scheme,
        )
        return cls

    return wrap


class SharingScheme(Protocol):
    """How a Program's steps run on the servers' shares: the additive scheme calls each op's
    own ``run``; another scheme (replicated sharing on three servers, in
    ``protocols/replicated.py``) brings its own protocols for the interactive ops."""

    name: str
    parties: tuple[int, ...]  # server counts it runs on
    copies: int  # ring elements a server holds per element of a tensor
    offline_phase: bool  # runs the ops' input-independent work (OpSpec.offline) before them

    def check(self, op: str, attrs: dict[str, Any]) -> None:
        """Raise ProgramError when the scheme cannot run ``op`` with these attributes."""

    def start(self, ctx: Context) -> None:
        """Set-up at the start of a job, before its online phase (e.g. agreeing on keys)."""

    def run(self, ctx: Context, spec: OpSpec, xs: list[Any], attrs: dict[str, Any]) -> Any:
        """One step on this party's shares."""

    def result(self, share: np.ndarray) -> np.ndarray:
        """What a server returns of an output: the client adds the three (or two) up."""


class Additive:
    """n-out-of-n additive sharing (2 or 3 servers; 1 for ciphertext programs): each op's own run."""

    name = "additive"
    parties = (1, 2, 3)
    copies = 1
    offline_phase = True

    @staticmethod
    def check(op: str, attrs: dict[str, Any]) -> None:
        if "trunc_bits" in attrs:
            raise ProgramError(f"{op}: trunc_bits (a fused truncation) is for replicated sharing only")
        if OPS[op].scheme == "replicated":
            raise ProgramError(f"op {op!r} runs on replicated shares only: build the Program with scheme='rss3'")

    @staticmethod
    def start(ctx: Context) -> None:
        return None

    @staticmethod
    def run(ctx: Context, spec: OpSpec, xs: list[Any], attrs: dict[str, Any]) -> Any:
        return spec.run(ctx, xs, attrs)

    @staticmethod
    def result(share: np.ndarray) -> np.ndarray:
        return share


SHARING_SCHEMES: dict[str, SharingScheme] = {"additive": Additive()}


def register_scheme(scheme: SharingScheme) -> SharingScheme:
    SHARING_SCHEMES[scheme.name] = scheme
    return scheme


def sharing_scheme(name: str) -> SharingScheme:
    try:
        return SHARING_SCHEMES[name]
    except KeyError:
        raise ProgramError(f"unknown sharing scheme {name!r} (known: {sorted(SHARING_SCHEMES)})") from None


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


@register("add", 2)
class Add:
    infer = staticmethod(lambda shapes, attrs: _same_shape(shapes, "add"))
    run = staticmethod(lambda ctx, xs, attrs: ring.add(xs[0], xs[1]))


@register("sub", 2)
class Sub:
    infer = staticmethod(lambda shapes, attrs: _same_shape(shapes, "sub"))
    run = staticmethod(lambda ctx, xs, attrs: ring.sub(xs[0], xs[1]))


@register("neg", 1)
class Neg:
    infer = staticmethod(lambda shapes, attrs: shapes[0])
    run = staticmethod(lambda ctx, xs, attrs: ring.neg(xs[0]))


@register("add_public", 1)
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


@register("mul_public", 1)
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


@register("conv2d_public", 1)
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


@register("rescale", 1)
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


@register("reveal", 1, interactive=True)
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


def check_pair(value: Any, what: str, minimum: int) -> tuple[int, int]:
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ProgramError(f"{what} must be a pair of integers, got {value!r}") from None
    if len(pair) != 2 or min(pair) < minimum:
        raise ProgramError(f"{what} must be a pair of integers >= {minimum}, got {value!r}")
    return pair  # type: ignore[return-value]


def conv_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Validated conv geometry: stride, padding, dilation (pairs) and groups."""
    groups = attrs.get("groups", 1)
    if not isinstance(groups, int) or groups < 1:
        raise ProgramError(f"groups must be a positive integer, got {groups!r}")
    return {
        "stride": check_pair(attrs.get("stride", (1, 1)), "stride", 1),
        "padding": check_pair(attrs.get("padding", (0, 0)), "padding", 0),
        "dilation": check_pair(attrs.get("dilation", (1, 1)), "dilation", 1),
        "groups": groups,
    }


def conv_output_shape(x: tuple[int, ...], w: tuple[int, ...], attrs: dict[str, Any]) -> tuple[int, ...]:
    """NCHW x OIHW -> NOHW, with the checks a server needs before trusting a Program."""
    g = conv_attrs(attrs)
    if len(x) != 4 or len(w) != 4:
        raise ProgramError(f"conv2d needs x (N, C, H, W) and w (O, C/groups, kh, kw), got {x} and {w}")
    n, c, h, wd = x
    o, cg, kh, kw = w
    groups = g["groups"]
    if c % groups or o % groups or cg != c // groups:
        raise ProgramError(f"conv2d: {c} input / {o} output channels do not fit groups={groups} with w {w}")
    (sh, sw), (ph, pw), (dh, dw) = g["stride"], g["padding"], g["dilation"]
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise ProgramError(f"conv2d: a {kh}x{kw} kernel does not fit a {h}x{wd} input with this padding")
    return (n, o, ho, wo)


@register("sum_pool2d", 1)
class SumPool2d:
    """Sum over k x k windows of (N, C, H, W), zero padding (average pooling before the 1/k^2 scale)."""

    @staticmethod
    def infer(shapes, attrs):
        x = shapes[0]
        if len(x) != 4:
            raise ProgramError(f"sum_pool2d needs (N, C, H, W), got {x}")
        k = check_pair(attrs.get("kernel"), "kernel", 1)
        return conv_output_shape(x, (x[1], 1, *k), {**attrs, "groups": x[1], "dilation": (1, 1)})

    @staticmethod
    def run(ctx, xs, attrs):
        x = xs[0]
        k = check_pair(attrs["kernel"], "kernel", 1)
        ones = np.ones((x.shape[1], 1, *k), dtype=np.uint64)
        return ring.conv2d(
            x, ones, tuple(attrs.get("stride", k)), tuple(attrs.get("padding", (0, 0))), (1, 1), x.shape[1]
        )


@register("sum", 1)
class Sum:
    """Sum over ``axes`` (all when omitted), keeping dimensions when ``keepdims``."""

    @staticmethod
    def _axes(shape, attrs):
        axes = attrs.get("axes")
        if axes is None:
            return tuple(range(len(shape)))
        try:
            axes = tuple(sorted({int(a) % len(shape) for a in axes}))
        except (TypeError, ValueError, ZeroDivisionError):
            raise ProgramError(f"sum: axes must be integers, got {attrs.get('axes')!r}") from None
        return axes

    @staticmethod
    def infer(shapes, attrs):
        axes = Sum._axes(shapes[0], attrs)
        if attrs.get("keepdims", False):
            return tuple(1 if i in axes else s for i, s in enumerate(shapes[0]))
        return tuple(s for i, s in enumerate(shapes[0]) if i not in axes) or (1,)

    @staticmethod
    def run(ctx, xs, attrs):
        out = np.sum(
            xs[0], axis=Sum._axes(xs[0].shape, attrs), dtype=np.uint64, keepdims=bool(attrs.get("keepdims", False))
        )
        return np.ascontiguousarray(out).reshape(Sum.infer([xs[0].shape], attrs))


def _shuffle_factor(attrs: dict[str, Any]) -> int:
    r = attrs.get("factor")
    if not isinstance(r, int) or r < 1:
        raise ProgramError(f"factor must be a positive integer, got {r!r}")
    return r


@register("pixel_shuffle", 1)
class PixelShuffle:
    """(N, C*r*r, H, W) -> (N, C, H*r, W*r), as torch.nn.PixelShuffle (ONNX DepthToSpace, CRD)."""

    @staticmethod
    def infer(shapes, attrs):
        r, x = _shuffle_factor(attrs), shapes[0]
        if len(x) != 4 or x[1] % (r * r):
            raise ProgramError(f"pixel_shuffle: channels of {x} are not a multiple of {r * r}")
        return (x[0], x[1] // (r * r), x[2] * r, x[3] * r)

    @staticmethod
    def run(ctx, xs, attrs):
        r, x = attrs["factor"], xs[0]
        n, c, h, w = x.shape
        y = x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
        return np.ascontiguousarray(y).reshape(n, c // (r * r), h * r, w * r)


@register("pixel_unshuffle", 1)
class PixelUnshuffle:
    """(N, C, H*r, W*r) -> (N, C*r*r, H, W), the inverse of pixel_shuffle (SpaceToDepth)."""

    @staticmethod
    def infer(shapes, attrs):
        r, x = _shuffle_factor(attrs), shapes[0]
        if len(x) != 4 or x[2] % r or x[3] % r:
            raise ProgramError(f"pixel_unshuffle: height and width of {x} are not multiples of {r}")
        return (x[0], x[1] * r * r, x[2] // r, x[3] // r)

    @staticmethod
    def run(ctx, xs, attrs):
        r, x = attrs["factor"], xs[0]
        n, c, h, w = x.shape
        y = x.reshape(n, c, h // r, r, w // r, r).transpose(0, 1, 3, 5, 2, 4)
        return np.ascontiguousarray(y).reshape(n, c * r * r, h // r, w // r)


@register("pad", 1)
class Pad:
    """Pad the last two axes: ``pads`` (top, bottom, left, right), ``mode`` as in scipy.ndimage
    (zero, reflect, mirror, nearest). Linear, so each party pads its own share."""

    @staticmethod
    def _pads(shape, attrs):
        try:
            top, bottom, left, right = (int(v) for v in attrs.get("pads"))
        except (TypeError, ValueError):
            raise ProgramError("pad: pads must be four integers (top, bottom, left, right)") from None
        if min(top, bottom, left, right) < 0 or len(shape) < 2:
            raise ProgramError("pad: pads must be non-negative and the input at least 2-D")
        if attrs.get("mode", "zero") not in PADDING_MODES:
            raise ProgramError(f"pad: mode must be one of {sorted(PADDING_MODES)}")
        return [(0, 0)] * (len(shape) - 2) + [(top, bottom), (left, right)]

    @staticmethod
    def infer(shapes, attrs):
        pads = Pad._pads(shapes[0], attrs)
        return tuple(s + a + b for s, (a, b) in zip(shapes[0], pads))

    @staticmethod
    def run(ctx, xs, attrs):
        return np.pad(xs[0], Pad._pads(xs[0].shape, attrs), mode=PADDING_MODES[attrs.get("mode", "zero")])


# ---- layout ops (local: each party moves its own share's elements) --------------------------


def _int_attr(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProgramError(f"{what} must be an integer, got {value!r}")
    return value


def _int_list(value: Any, what: str) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise ProgramError(f"{what} must be a list of integers, got {value!r}")
    return [_int_attr(v, what) for v in value]


def check_axis(value: Any, ndim: int, what: str) -> int:
    axis = _int_attr(value, what)
    if not -ndim <= axis < ndim:
        raise ProgramError(f"{what} {axis} is out of range for a {ndim}-D tensor")
    return axis % ndim


@register("reshape", 1)
class Reshape:
    """The same elements in row-major order with a new ``shape`` (positive sizes, same count)."""

    @staticmethod
    def infer(shapes, attrs):
        shape = tuple(_int_list(attrs.get("shape"), "reshape: shape"))
        if not shape or min(shape) < 1 or math.prod(shape) != math.prod(shapes[0]):
            raise ProgramError(f"reshape: cannot reshape {shapes[0]} to {shape} (positive sizes, same element count)")
        return shape

    @staticmethod
    def run(ctx, xs, attrs):
        return np.ascontiguousarray(xs[0]).reshape(tuple(attrs["shape"]))


@register("transpose", 1)
class Transpose:
    """Permute the axes: output axis i is input axis ``perm[i]`` (numpy.transpose)."""

    @staticmethod
    def _perm(shape, attrs):
        perm = _int_list(attrs.get("perm"), "transpose: perm")
        if sorted(perm) != list(range(len(shape))):
            raise ProgramError(f"transpose: perm {perm} is not a permutation of the {len(shape)} axes")
        return perm

    @staticmethod
    def infer(shapes, attrs):
        return tuple(shapes[0][i] for i in Transpose._perm(shapes[0], attrs))

    @staticmethod
    def run(ctx, xs, attrs):
        return np.ascontiguousarray(xs[0].transpose(Transpose._perm(xs[0].shape, attrs)))


@register("concat", VARIADIC)
class Concat:
    """Join two or more tensors along ``axis`` (their other sizes equal) in one copy; same
    fixed-point scale."""

    @staticmethod
    def infer(shapes, attrs):
        if not 2 <= len(shapes) <= MAX_INPUTS:
            raise ProgramError(f"concat: takes 2..{MAX_INPUTS} tensors, got {len(shapes)}")
        a = shapes[0]
        axis = check_axis(attrs.get("axis"), len(a), "concat: axis")
        for b in shapes[1:]:
            if len(a) != len(b):
                raise ProgramError(f"concat: operands have different ranks: {a} vs {b}")
            if a[:axis] + a[axis + 1 :] != b[:axis] + b[axis + 1 :]:
                raise ProgramError(f"concat: shapes {a} and {b} differ outside axis {axis}")
        return (*a[:axis], sum(s[axis] for s in shapes), *a[axis + 1 :])

    @staticmethod
    def run(ctx, xs, attrs):
        return np.concatenate(xs, axis=check_axis(attrs["axis"], xs[0].ndim, "axis"))


@register("slice", 1)
class Slice:
    """x[..., start:stop:step, ...] along one ``axis`` (0 <= start < stop <= size, step >= 1)."""

    @staticmethod
    def _geometry(shape, attrs):
        axis = check_axis(attrs.get("axis"), len(shape), "slice: axis")
        start = _int_attr(attrs.get("start"), "slice: start")
        stop = _int_attr(attrs.get("stop"), "slice: stop")
        step = _int_attr(attrs.get("step", 1), "slice: step")
        if not 0 <= start < stop <= shape[axis] or step < 1:
            raise ProgramError(
                f"slice: need 0 <= start < stop <= {shape[axis]} and step >= 1 on axis {axis}, "
                f"got {start}:{stop}:{step}"
            )
        return axis, start, stop, step

    @staticmethod
    def infer(shapes, attrs):
        axis, start, stop, step = Slice._geometry(shapes[0], attrs)
        return (*shapes[0][:axis], (stop - start + step - 1) // step, *shapes[0][axis + 1 :])

    @staticmethod
    def run(ctx, xs, attrs):
        axis, start, stop, step = Slice._geometry(xs[0].shape, attrs)
        index = (slice(None),) * axis + (slice(start, stop, step),)
        return np.ascontiguousarray(xs[0][index])


@register("take", 1)
class Take:
    """Rows of x (axis 0) at public ``indices``, in their order (repeats allowed): a local
    gather, e.g. a gallery regrouped by leaf or a random training sample."""

    @staticmethod
    def _indices(shape, attrs) -> np.ndarray:
        raw = attrs.get("indices")
        if not isinstance(raw, list) or not raw or not all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
            raise ProgramError("take: indices must be a non-empty list of integers")
        if not shape:
            raise ProgramError("take: x must have at least one axis")
        idx = np.asarray(raw, dtype=np.int64)
        if idx.min() < 0 or idx.max() >= shape[0]:
            raise ProgramError(f"take: indices must lie in 0..{shape[0] - 1}")
        return idx

    @staticmethod
    def infer(shapes, attrs):
        return (len(Take._indices(shapes[0], attrs)), *shapes[0][1:])

    @staticmethod
    def run(ctx, xs, attrs):
        return np.ascontiguousarray(np.take(xs[0], Take._indices(xs[0].shape, attrs), axis=0))


def _broadcast(shapes: list[tuple[int, ...]], name: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in np.broadcast_shapes(shapes[0], shapes[1]))
    except ValueError:
        raise ProgramError(f"{name}: shapes {shapes[0]} and {shapes[1]} do not broadcast") from None


@register("add_broadcast", 2)
class AddBroadcast:
    """x + y of two shared tensors with numpy broadcasting (e.g. a per-channel bias); same scale."""

    infer = staticmethod(lambda shapes, attrs: _broadcast(shapes, "add_broadcast"))
    run = staticmethod(lambda ctx, xs, attrs: np.ascontiguousarray(np.add(xs[0], xs[1], dtype=np.uint64)))


@register("sub_broadcast", 2)
class SubBroadcast:
    """x - y of two shared tensors with numpy broadcasting; same scale."""

    infer = staticmethod(lambda shapes, attrs: _broadcast(shapes, "sub_broadcast"))
    run = staticmethod(lambda ctx, xs, attrs: np.ascontiguousarray(np.subtract(xs[0], xs[1], dtype=np.uint64)))


@register("matmul_public", 1)
class MatmulPublic:
    """x (..., k) @ W (k, n) for a public ring matrix W (``weight``, nested lists): a public
    linear map, local on shares (a resampling, an area average); a fixed-point W adds its
    fractional bits to x's, as :class:`MulPublic`."""

    @staticmethod
    def _weight(attrs):
        w = _ring_array(attrs.get("weight"), "matmul_public weight")
        if w.ndim != 2:
            raise ProgramError(f"matmul_public: the weight must be a matrix, got shape {w.shape}")
        return w

    @staticmethod
    def infer(shapes, attrs):
        w = MatmulPublic._weight(attrs)
        x = shapes[0]
        if not x or x[-1] != w.shape[0]:
            raise ProgramError(f"matmul_public: {x} @ {w.shape} do not match")
        return (*x[:-1], w.shape[1])

    @staticmethod
    def run(ctx, xs, attrs):
        w = np.ascontiguousarray(_ring_array(attrs["weight"], "weight"))
        x = xs[0]
        flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
        return ring.matmul(flat, w).reshape(*x.shape[:-1], w.shape[1])


@register("mul_public_array", 1)
class MulPublicArray:
    """x * c for a public ring array c broadcastable to x (the output keeps x's shape); a
    fixed-point c adds its fractional bits to x's, as :class:`MulPublic`."""

    @staticmethod
    def infer(shapes, attrs):
        value = _ring_array(attrs.get("value"), "mul_public_array value")
        try:
            out = np.broadcast_shapes(value.shape, shapes[0])
        except ValueError:
            out = None
        if out != shapes[0]:
            raise ProgramError(f"mul_public_array: value of shape {value.shape} does not broadcast to {shapes[0]}")
        return shapes[0]

    @staticmethod
    def run(ctx, xs, attrs):
        return np.ascontiguousarray(np.multiply(xs[0], _ring_array(attrs["value"], "value"), dtype=np.uint64))
