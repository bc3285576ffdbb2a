"""ONNX import: an ONNX graph becomes a public Program plus a dictionary of secret weights.

What goes where
---------------
* The **architecture** (the op sequence, shapes, strides, paddings) is public: it is
  the Program every server validates and runs.
* **Weights** (initializers and Constant tensors used as operands: conv and Gemm
  weights, biases, BatchNormalization parameters, constants added or multiplied
  elementwise) are secret. Each becomes one Program input named
  ``w.<initializer name>``; its values stay in :attr:`Model.weights`, for the model
  owner to encode, and never appear in the Program.
* Constants that only shape or scale are public and travel in the Program as
  attributes: Mul/Div by a scalar, Clip bounds, Pad values, Reshape shapes, slice
  bounds, and anything computed from tensor shapes.

BatchNormalization right after a Conv whose output feeds nothing else is folded into
that Conv's weight and bias (by the model owner, in :attr:`Model.weights`); any other
BatchNormalization is a per-channel affine map with secret scale and shift (a
depthwise 1x1 ``conv2d`` and a broadcast ``add``).

Every product (Conv, Gemm, MatMul, elementwise Mul by a tensor) is a Beaver product
followed by one rescale, so every tensor of the Program stays at its ``frac_bits``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import fixed_point
from ..errors import InputError, ProgramError, UnsupportedError
from ..program.program import Program, Tensor
from ..sharing import Encoded, encode

Value = Any  # a Tensor of the Program (secret, computed) or a numpy array (a constant)

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")
_FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}  # TensorProto element types


def _sanitise(name: str) -> str:
    """A Program-legal version of an ONNX tensor name (letters, digits, ``_.:-``, 128 at most)."""
    s = _NAME_CHARS.sub("_", name) or "_"
    if not (s[0].isalpha() or s[0] == "_"):
        s = "_" + s
    return s[:110]


@dataclass
class Model:
    """An imported network: a public Program and the secret weights it reads.

    Attributes
    ----------
    program : Program
        Computes the network. Its inputs are :attr:`data_inputs` (the image owner's)
        and the keys of :attr:`weights` (the model owner's).
    weights : dict of str -> numpy.ndarray of float64
        Program input name -> weight values (BatchNormalization already folded), shaped
        as the Program declares them. Encode them with :meth:`encode_weights`.
    data_inputs : list of str
        Program input names of the ONNX graph inputs, in graph order.
    outputs : list of str
        Program output names of the ONNX graph outputs, in graph order.
    input_shapes : dict of str -> tuple of int
        The (fixed) shape of each data input.
    onnx_names : dict of str -> str
        Program name -> ONNX name, for data inputs and outputs whose ONNX name had to be
        changed to be a legal Program name (identical otherwise).
    """

    program: Program
    weights: dict[str, np.ndarray]
    data_inputs: list[str]
    outputs: list[str]
    input_shapes: dict[str, tuple[int, ...]]
    onnx_names: dict[str, str] = field(default_factory=dict)

    def encode_weights(self) -> dict[str, Encoded]:
        """Secret-share every weight for the Program's servers, at its fixed-point scale."""
        p = self.program
        return {name: encode(w, p.parties, p.frac_bits, p.scheme) for name, w in self.weights.items()}

    def encode_inputs(self, data: Mapping[str, Any]) -> dict[str, Encoded]:
        """Secret-share the data inputs (keyed by Program or ONNX name), checking their shapes.

        Parameters
        ----------
        data : mapping of str -> array_like of float
            One array per data input, shaped as :attr:`input_shapes` says.
        """
        by_onnx = {onnx_name: name for name, onnx_name in self.onnx_names.items()}
        out: dict[str, Encoded] = {}
        for key, value in data.items():
            name = key if key in self.input_shapes else by_onnx.get(key, key)
            if name not in self.input_shapes:
                raise InputError(f"{key!r} is not a data input of the model (inputs: {self.data_inputs})")
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape != self.input_shapes[name]:
                raise InputError(f"data input {key!r} has shape {arr.shape}, the model wants {self.input_shapes[name]}")
            out[name] = encode(arr, self.program.parties, self.program.frac_bits, self.program.scheme)
        missing = [n for n in self.data_inputs if n not in out]
        if missing:
            raise InputError(f"missing data input(s) {missing}")
        return out


def load_onnx(
    model: Any,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    *,
    parties: int = 2,
    frac_bits: int | None = None,
    relu_bits: int | None = None,
    truncation: str = "auto",
    scheme: str = "additive",
) -> Model:
    """Import an ONNX model as a Program over secret shares plus its secret weights.

    Parameters
    ----------
    model : str, os.PathLike, bytes or onnx.ModelProto
        The model file, its serialized bytes, or the parsed model.
    input_shapes : mapping of ONNX input name -> tuple of int, optional
        Fixes dynamic dimensions (symbolic batch, height, width) of the graph inputs;
        required for every input with one. Static dimensions must agree.
    parties : int
        Number of servers (2 or 3).
    frac_bits : int, optional
        Fixed-point fractional bits of every tensor (default 16).
    relu_bits : int, optional
        Width of the sign computations of ReLU, Clip and MaxPool: values must satisfy
        |x| < 2^(relu_bits - 1 - frac_bits) (default: the op library's, 40 bits).
    scheme : {"additive", "rss3"}
        How the servers hold the secrets (see :class:`safelight.Program`); ``rss3`` needs
        ``parties=3`` and truncates inside each product.
    truncation : {"auto", "local", "pair"}
        How products drop their extra fractional bits (see :class:`~safelight.Program`).
        Deep networks want ``"pair"``: two-party local truncation fails with probability
        about |x|/2^63 per value, which over 10^8 values of a large image is no longer rare.

    Returns
    -------
    Model

    Raises
    ------
    UnsupportedError
        For an operator (or an operator form) that has no private implementation; the
        message names the node and its op type.
    InputError
        For an unreadable model, a missing or mismatched input shape.
    """
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:
        raise UnsupportedError("load_onnx needs the onnx package: pip install onnx") from None

    if isinstance(model, (str, os.PathLike)):
        try:
            proto = onnx.load(os.fspath(model))
        except (OSError, ValueError, DecodeError) as exc:
            raise InputError(f"cannot read the ONNX model {os.fspath(model)!r}: {exc}") from None
    elif isinstance(model, (bytes, bytearray)):
        try:
            proto = onnx.load_from_string(bytes(model))
        except (ValueError, DecodeError) as exc:
            raise InputError(f"cannot parse the ONNX model bytes: {exc}") from None
    elif isinstance(model, onnx.ModelProto):
        proto = model
    else:
        raise InputError(f"model must be a path, bytes or onnx.ModelProto, got {type(model).__name__}")
    return _Importer(proto, dict(input_shapes or {}), parties, frac_bits, relu_bits, truncation, scheme).build()


# ---- the importer ---------------------------------------------------------------------------

Handler = Callable[["_Importer", Any, dict[str, Any]], None]
_HANDLERS: dict[str, Handler] = {}
_FOLDS: dict[str, Callable[[_Importer, Any, dict[str, Any], list], list]] = {}


def _handles(*ops: str):
    def wrap(fn):
        for op in ops:
            _HANDLERS[op] = fn
        return fn

    return wrap


def _folds(*ops: str):
    def wrap(fn):
        for op in ops:
            _FOLDS[op] = fn
        return fn

    return wrap


class _Importer:
    def __init__(
        self,
        proto: Any,
        input_shapes: dict[str, tuple[int, ...]],
        parties: int,
        frac_bits: int | None,
        relu_bits: int | None,
        truncation: str = "auto",
        scheme: str = "additive",
    ) -> None:
        from onnx import numpy_helper

        self.to_array = numpy_helper.to_array
        self.graph = proto.graph
        versions = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
        if not versions:
            raise InputError("the model imports no default-domain ONNX opset")
        self.opset = int(versions[0])
        self.p = Program(parties, fixed_point.DEFAULT_FRAC_BITS if frac_bits is None else frac_bits, truncation, scheme)
        self.relu_bits = relu_bits
        self.input_shapes = input_shapes
        self.values: dict[str, Value] = {}
        self.weights: dict[str, np.ndarray] = {}
        self._weight_cache: dict[tuple, Tensor] = {}
        self._names: set[str] = set()
        self.skip: set[int] = set()
        if len(self.graph.sparse_initializer):
            raise UnsupportedError("sparse initializers are not supported; store the weights densely")
        for init in self.graph.initializer:
            self.values[init.name] = self.to_array(init)
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for i, node in enumerate(self.graph.node):
            for name in node.input:
                if name:
                    self.consumers[name].append(i)
        self.graph_outputs = {o.name for o in self.graph.output}

    # -- names and weights --
    def _unique(self, base: str) -> str:
        name, k = base, 1
        while name in self._names:
            k += 1
            name = f"{base}.{k}"
        self._names.add(name)
        return name

    def weight(self, values: Any, source: str) -> Tensor:
        """A secret constant as a Program input ``w.<source>`` (identical constants share one)."""
        arr = np.array(values, dtype=np.float64)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if not np.isfinite(arr).all():
            raise InputError(f"weight {source!r} has NaN or infinite values")
        key = (source, arr.shape, hashlib.sha256(arr.tobytes()).digest())
        cached = self._weight_cache.get(key)
        if cached is not None:
            return cached
        name = self._unique("w." + _sanitise(source))
        t = self.p.input(name, arr.shape)
        self.weights[name] = arr
        self._weight_cache[key] = t
        return t

    def tensor(self, value: Value, source: str) -> Tensor:
        return value if isinstance(value, Tensor) else self.weight(value, source)

    # -- node helpers --
    def fail(self, node: Any, reason: str) -> UnsupportedError:
        return UnsupportedError(f"node {self.label!r} ({node.op_type}): {reason}")

    def has(self, node: Any, i: int) -> bool:
        return i < len(node.input) and bool(node.input[i])

    def get(self, node: Any, i: int) -> Value:
        if not self.has(node, i):
            raise self.fail(node, f"input {i} is required")
        name = node.input[i]
        if name not in self.values:
            raise InputError(
                f"node {self.label!r} ({node.op_type}) reads {name!r} before it is defined "
                "(the graph must be topologically sorted)"
            )
        return self.values[name]

    def act(self, node: Any, i: int) -> Tensor:
        return self.tensor(self.get(node, i), node.input[i])

    def const(self, node: Any, i: int, what: str) -> np.ndarray:
        value = self.get(node, i)
        if isinstance(value, Tensor):
            raise self.fail(
                node, f"{what} (input {i}) must be a constant (an initializer or Constant), not a computed tensor"
            )
        return value

    def set(self, node: Any, *values: Value) -> None:
        for name, value in zip(node.output, values):
            if name:
                self.values[name] = value
        for name in node.output[len(values) :]:
            if name and (self.consumers.get(name) or name in self.graph_outputs):
                raise self.fail(node, f"output {name!r} is not supported (only the first output)")

    # -- arithmetic helpers --
    def scale(self, x: Tensor, s: float) -> Tensor:
        """x * s for a public scalar s."""
        s = float(s)
        if s == 1.0:
            return x
        if s == -1.0:
            return self.p.neg(x)
        if s.is_integer() and abs(s) < 2.0**31:
            return self.p.mul_public(x, int(s), integer=True)
        return self.p.rescale(self.p.mul_public(x, s))

    def channel_affine(self, x: Tensor, scale: np.ndarray | None, shift: np.ndarray | None, source: str) -> Tensor:
        """x * scale[c] + shift[c] along axis 1 with secret per-channel scale and shift."""
        if len(x.shape) < 2:
            raise ProgramError(f"a per-channel affine map needs an (N, C, ...) tensor, got {x.shape}")
        c = x.shape[1]
        y = x
        if scale is not None:
            x4 = x if len(x.shape) == 4 else self.p.reshape(x, (x.shape[0], c, math.prod(x.shape[2:]), 1))
            y = self.p.conv2d(x4, self.weight(np.reshape(scale, (c, 1, 1, 1)), source + ".scale"), groups=c)
            if len(x.shape) != 4:
                y = self.p.reshape(y, x.shape)
        if shift is not None:
            y = self.p.add(y, self.weight(np.reshape(shift, (c, *[1] * (len(x.shape) - 2))), source + ".shift"))
        return y

    def mul_const(self, node: Any, x: Tensor, c: np.ndarray, source: str) -> Tensor:
        c = np.asarray(c, dtype=np.float64)
        if c.size == 1:
            return self.scale(x, float(c.reshape(-1)[0]))  # a public scale factor
        try:
            out = np.broadcast_shapes(x.shape, c.shape)
        except ValueError:
            out = None
        if out != x.shape:
            raise self.fail(node, f"a constant of shape {c.shape} must broadcast to the tensor's {x.shape}")
        full = (1,) * (len(x.shape) - c.ndim) + c.shape
        if len(x.shape) >= 2 and all(d == 1 for i, d in enumerate(full) if i != 1):
            return self.channel_affine(x, c.reshape(-1), None, source)  # per channel: depthwise 1x1 conv
        return self.p.mul(x, self.weight(np.broadcast_to(c, x.shape), source))

    def matmul(self, x: Tensor, w: Tensor) -> Tensor:
        """x (..., K) @ w (K, N), through a 2-D product (the matmul triple is 2-D)."""
        if len(x.shape) == 2:
            return self.p.matmul(x, w)
        flat = self.p.reshape(x, (math.prod(x.shape[:-1]), x.shape[-1]))
        return self.p.reshape(self.p.matmul(flat, w), (*x.shape[:-1], w.shape[1]))

    def relu(self, x: Tensor) -> Tensor:
        return self.p.relu(x, self.relu_bits)

    # -- driver --
    def build(self) -> Model:
        p = self.p
        initialised = set(self.values)
        data_inputs, shapes, onnx_names = [], {}, {}
        known = set()
        for vi in self.graph.input:
            if vi.name in initialised:
                continue  # old exporters list initializers as inputs too
            known.add(vi.name)
            shape = self._input_shape(vi)
            name = self._unique(_sanitise(vi.name))
            self.values[vi.name] = p.input(name, shape)
            data_inputs.append(name)
            shapes[name] = shape
            if name != vi.name:
                onnx_names[name] = vi.name
        unknown = sorted(set(self.input_shapes) - known)
        if unknown:
            raise InputError(f"input_shapes names {unknown}, which are not graph inputs (inputs: {sorted(known)})")
        for index, node in enumerate(self.graph.node):
            if index in self.skip:
                continue
            self.index, self.label = index, node.name or f"#{index} -> {list(node.output)}"
            self._convert(node)
        outputs = []
        for out in self.graph.output:
            if out.name not in self.values:
                raise InputError(f"graph output {out.name!r} is not computed by any node")
            name = _sanitise(out.name)
            while name in p.outputs:
                name += "_"
            p.output(self.tensor(self.values[out.name], out.name), name)
            outputs.append(name)
            if name != out.name:
                onnx_names[name] = out.name
        Program.from_json(p.to_json())  # what the servers will check
        return Model(p, self.weights, data_inputs, outputs, shapes, onnx_names)

    def _input_shape(self, vi: Any) -> tuple[int, ...]:
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedError(f"graph input {vi.name!r} is not a tensor")
        tt = vi.type.tensor_type
        if tt.elem_type not in _FLOAT_TYPES:
            raise UnsupportedError(
                f"graph input {vi.name!r} has element type {tt.elem_type}; only float inputs can be secret-shared"
            )
        dims = (
            [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim] if tt.HasField("shape") else None
        )
        given = self.input_shapes.get(vi.name)
        if given is not None:
            given = tuple(int(d) for d in given)
            if dims is not None and (
                len(given) != len(dims) or any(d is not None and d != g for d, g in zip(dims, given))
            ):
                raise InputError(
                    f"input_shapes[{vi.name!r}] = {given} does not match the model's shape "
                    f"{tuple('?' if d is None else d for d in dims)}"
                )
            return given
        if dims is None or any(d is None for d in dims):
            symbolic = (
                "unknown rank"
                if dims is None
                else ", ".join(
                    f"axis {i} ({tt.shape.dim[i].dim_param or '?'})" for i, d in enumerate(dims) if d is None
                )
            )
            raise InputError(
                f"graph input {vi.name!r} has dynamic dimensions ({symbolic}); fix them with "
                f"input_shapes={{{vi.name!r}: (...)}}"
            )
        return tuple(dims)

    def _convert(self, node: Any) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedError(
                f"node {self.label!r} ({node.domain}.{op}) is not supported: only the default ONNX domain is"
            )
        if op not in _HANDLERS and op not in _FOLDS:
            raise UnsupportedError(
                f"node {self.label!r} ({op}) is not supported; supported: {', '.join(SUPPORTED_OPS)}"
            )
        attrs = _attributes(node)
        inputs = [self.get(node, i) if self.has(node, i) else None for i in range(len(node.input))]
        try:
            if (
                op in _FOLDS
                and all(v is None or not isinstance(v, Tensor) for v in inputs)
                and any(v is not None for v in inputs)
            ):
                self.set(node, *_FOLDS[op](self, node, attrs, inputs))  # constants only: evaluated here
                return
            if op not in _HANDLERS:
                raise UnsupportedError(
                    f"node {self.label!r} ({op}) is supported on constants only, not on a "
                    f"computed tensor; supported: {', '.join(SUPPORTED_OPS)}"
                )
            _HANDLERS[op](self, node, attrs)
        except ProgramError as exc:
            raise ProgramError(f"node {self.label!r} ({op}): {exc}") from None
        except InputError:
            raise
        except KeyError as exc:
            raise InputError(f"node {self.label!r} ({op}): the required attribute {exc} is missing") from None
        except (ValueError, IndexError, TypeError) as exc:
            raise InputError(f"node {self.label!r} ({op}) is malformed: {exc}") from None


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _ints(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


# ---- convolution and pooling geometry -------------------------------------------------------


def _spatial_pads(
    imp: _Importer,
    node: Any,
    attrs: dict[str, Any],
    size: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
) -> list[int]:
    """ONNX pads and auto_pad as (top, left, bottom, right)."""
    auto = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if auto == "NOTSET":
        pads = _ints(attrs.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4 or min(pads) < 0:
            raise imp.fail(node, f"pads must be 4 non-negative integers, got {pads}")
        return pads
    if auto == "VALID":
        return [0, 0, 0, 0]
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise imp.fail(node, f"auto_pad {auto!r} is not supported")
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        total = max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return begin + end


def _pair(attrs: dict[str, Any], key: str, default: int = 1) -> tuple[int, int]:
    v = _ints(attrs.get(key, [default, default]))
    return (v[0], v[1]) if len(v) == 2 else (-1, -1)


def _pad_asym(imp: _Importer, x: Tensor, pads: list[int], mode: str = "zero") -> Tensor:
    top, left, bottom, right = pads
    return x if not any(pads) else imp.p.pad(x, (top, bottom, left, right), mode)


def _find_bn(imp: _Importer, conv: Any) -> Any:
    """The BatchNormalization that alone consumes ``conv``'s output and can be folded into it."""
    out = conv.output[0]
    users = imp.consumers.get(out, [])
    if len(users) != 1 or out in imp.graph_outputs:
        return None
    bn = imp.graph.node[users[0]]
    if bn.op_type != "BatchNormalization" or bn.domain not in ("", "ai.onnx") or bn.input[0] != out:
        return None
    if (
        _attributes(bn).get("training_mode", 0)
        or len(bn.input) < 5
        or any(not isinstance(imp.values.get(n), np.ndarray) for n in bn.input[1:5])
    ):
        return None
    if any(n and (imp.consumers.get(n) or n in imp.graph_outputs) for n in bn.output[1:]):
        return None
    return bn


def _bn_affine(imp: _Importer, bn: Any) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta, mean, var = (np.asarray(imp.values[n], dtype=np.float64).reshape(-1) for n in bn.input[1:5])
    s = gamma / np.sqrt(var + float(_attributes(bn).get("epsilon", 1e-5)))
    return s, beta - mean * s


@_handles("Conv")
def _conv(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    w = imp.get(node, 1)
    if len(x.shape) != 4 or len(getattr(w, "shape", ())) != 4:
        raise imp.fail(node, f"only 2-D convolutions are supported (input {x.shape}, weight {w.shape})")
    strides, dilations = _pair(attrs, "strides"), _pair(attrs, "dilations")
    group = int(attrs.get("group", 1))
    pads = _spatial_pads(imp, node, attrs, x.shape[2:], w.shape[2:], strides, dilations)
    bias = imp.get(node, 2) if imp.has(node, 2) else None
    bn = _find_bn(imp, node) if isinstance(w, np.ndarray) and not isinstance(bias, Tensor) else None
    out_node = node
    if bn is not None:
        s, t = _bn_affine(imp, bn)
        w = np.asarray(w, dtype=np.float64) * s[:, None, None, None]
        bias = t if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1) * s + t
        imp.skip.add(imp.consumers[node.output[0]][0])
        out_node = bn
    wt = imp.tensor(w, node.input[1])
    if pads[0] == pads[2] and pads[1] == pads[3]:
        y = imp.p.conv2d(x, wt, strides, (pads[0], pads[1]), dilations, group)
    else:
        y = imp.p.conv2d(_pad_asym(imp, x, pads), wt, strides, 0, dilations, group)
    if bias is not None:
        source = node.input[2] if imp.has(node, 2) else bn.input[2]
        b = bias if isinstance(bias, Tensor) else np.reshape(bias, (-1, 1, 1))
        y = imp.p.add(y, imp.tensor(b, source))
    imp.set(out_node, y)


def _pool_geometry(imp: _Importer, node: Any, attrs: dict[str, Any], x: Tensor):
    if len(x.shape) != 4:
        raise imp.fail(node, f"only 2-D pooling of (N, C, H, W) is supported, got {x.shape}")
    kernel = _pair(attrs, "kernel_shape", 0)
    strides = _pair(attrs, "strides")
    if min(kernel) < 1 or min(strides) < 1:
        raise imp.fail(node, "kernel_shape and strides must be two positive integers")
    if _pair(attrs, "dilations") != (1, 1):
        raise imp.fail(node, "dilated pooling is not supported")
    pads = _spatial_pads(imp, node, attrs, x.shape[2:], kernel, strides, (1, 1))
    ceil = bool(attrs.get("ceil_mode", 0))
    out, extra = [], []
    for axis in range(2):
        size, k, s = x.shape[2 + axis], kernel[axis], strides[axis]
        head, tail = pads[axis], pads[axis + 2]
        span = size + head + tail - k
        if span < 0:
            raise imp.fail(node, f"a {kernel} window does not fit the {x.shape[2:]} input")
        n = (-(-span // s) if ceil else span // s) + 1
        if ceil and (n - 1) * s >= size + head:
            n -= 1  # the last window must start inside the input or its leading padding
        out.append(n)
        extra.append(max(0, (n - 1) * s + k - (size + head + tail)))
    return kernel, strides, pads, out, extra


@_handles("MaxPool")
def _max_pool(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    kernel, strides, pads, out, extra = _pool_geometry(imp, node, attrs, x)
    if pads[0] >= kernel[0] or pads[2] >= kernel[0] or pads[1] >= kernel[1] or pads[3] >= kernel[1]:
        raise imp.fail(node, "pads must be smaller than the kernel")
    # Edge-replicated padding: every window holds a real element and its replicas, so the
    # maximum is the one over the real elements (what ONNX's -inf padding gives).
    top, left, bottom, right = pads
    padded = _pad_asym(imp, x, [top, left, bottom + extra[0], right + extra[1]], "nearest")
    y = imp.p.max_pool2d(padded, kernel, strides, imp.relu_bits)
    for axis in range(2):
        if y.shape[2 + axis] > out[axis]:
            y = imp.p.slice(y, 2 + axis, 0, out[axis])
    imp.set(node, y)


def _window_counts(size: int, k: int, s: int, n: int, lo: int, hi: int) -> np.ndarray:
    """Per output position: how many of the window's positions lie in [lo, hi)."""
    starts = np.arange(n) * s
    return np.minimum(starts + k, hi) - np.maximum(starts, lo)


@_handles("AveragePool")
def _avg_pool(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    kernel, strides, pads, out, extra = _pool_geometry(imp, node, attrs, x)
    top, left, bottom, right = pads
    include = bool(attrs.get("count_include_pad", 0))
    counts = []
    for axis, (head, tail) in enumerate(((top, bottom), (left, right))):
        size = x.shape[2 + axis]
        lo, hi = (0, size + head + tail) if include else (head, head + size)  # padded coordinates
        counts.append(_window_counts(size, kernel[axis], strides[axis], out[axis], lo, hi))
    padded = _pad_asym(imp, x, [top, left, bottom + extra[0], right + extra[1]])
    sums = imp.p.sum_pool2d(padded, kernel, strides)
    for axis in range(2):
        if sums.shape[2 + axis] > out[axis]:
            sums = imp.p.slice(sums, 2 + axis, 0, out[axis])
    divisor = np.outer(counts[0], counts[1]).astype(np.float64)
    if divisor.min() < 1:
        raise imp.fail(node, "a pooling window covers no input element")
    if np.all(divisor == divisor.flat[0]):
        y = imp.scale(sums, 1.0 / divisor.flat[0])
    else:
        y = imp.p.rescale(imp.p.mul_public_array(sums, 1.0 / divisor))
    imp.set(node, y)


@_handles("GlobalAveragePool")
def _global_avg_pool(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    if len(x.shape) < 3:
        raise imp.fail(node, f"needs an (N, C, spatial...) tensor, got {x.shape}")
    imp.set(node, imp.p.mean(x, tuple(range(2, len(x.shape))), keepdims=True))


@_handles("GlobalMaxPool")
def _global_max_pool(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    if len(x.shape) != 4:
        raise imp.fail(node, f"only (N, C, H, W) inputs are supported, got {x.shape}")
    imp.set(node, imp.p.max_pool2d(x, x.shape[2:], x.shape[2:], imp.relu_bits))


@_handles("BatchNormalization")
def _batch_norm(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    if attrs.get("training_mode", 0):
        raise imp.fail(node, "training mode is not supported (export the model in eval mode)")
    for i, what in enumerate(("scale", "B", "mean", "var"), start=1):
        imp.const(node, i, what)
    s, t = _bn_affine(imp, node)
    if len(x.shape) < 2 or s.size != x.shape[1]:
        raise imp.fail(node, f"{s.size} channel parameters do not fit the input {x.shape}")
    imp.set(node, imp.channel_affine(x, s, t, node.input[1]))


# ---- elementwise ----------------------------------------------------------------------------


@_handles("Relu")
def _relu(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    imp.set(node, imp.relu(imp.act(node, 0)))


@_handles("LeakyRelu")
def _leaky_relu(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    alpha = float(attrs.get("alpha", 0.01))
    # alpha x + (1 - alpha) relu(x)
    imp.set(node, imp.p.add(imp.scale(x, alpha), imp.scale(imp.relu(x), 1.0 - alpha)))


def _bound(value: Any, limit: float) -> float | None:
    if value is None:
        return None
    v = float(np.asarray(value, dtype=np.float64).reshape(-1)[0])
    return v if np.isfinite(v) and abs(v) < limit else None


@_handles("Clip")
def _clip(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    if imp.opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    else:
        lo = imp.const(node, 1, "min") if imp.has(node, 1) else None
        hi = imp.const(node, 2, "max") if imp.has(node, 2) else None
    limit = fixed_point.max_magnitude(imp.p.frac_bits) / 4  # beyond every representable value: no bound
    lo, hi = _bound(lo, limit), _bound(hi, limit)
    p = imp.p
    if lo is not None and hi is not None and lo > hi:
        raise imp.fail(node, f"min {lo} is larger than max {hi}")
    if lo is None and hi is None:
        y = x
    elif hi is None:  # lo + relu(x - lo)
        y = imp.relu(x) if lo == 0 else p.add_public(imp.relu(p.add_public(x, -lo)), lo)
    elif lo is None:  # x - relu(x - hi)
        y = p.sub(x, imp.relu(p.add_public(x, -hi)))
    else:  # lo + relu(x - lo) - relu(x - hi): both ReLUs in one batched call
        n = x.shape[0]
        below = x if lo == 0 else p.add_public(x, -lo)
        both = imp.relu(p.concat([below, p.add_public(x, -hi)], axis=0))
        y = p.sub(p.slice(both, 0, 0, n), p.slice(both, 0, n, 2 * n))
        if lo != 0:
            y = p.add_public(y, lo)
    imp.set(node, y)


@_handles("Add", "Sub")
def _add_sub(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    a, b = imp.act(node, 0), imp.act(node, 1)  # a constant operand is a secret weight
    imp.set(node, imp.p.add(a, b) if node.op_type == "Add" else imp.p.sub(a, b))


@_handles("Mul")
def _mul(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    a, b = imp.get(node, 0), imp.get(node, 1)
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.shape != b.shape:
            raise imp.fail(node, f"a product of two computed tensors needs equal shapes, got {a.shape} and {b.shape}")
        imp.set(node, imp.p.mul(a, b))
        return
    x, c, source = (a, b, node.input[1]) if isinstance(a, Tensor) else (b, a, node.input[0])
    imp.set(node, imp.mul_const(node, x, c, source))


@_handles("Div")
def _div(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.get(node, 0)
    c = imp.get(node, 1)
    if not isinstance(x, Tensor) or isinstance(c, Tensor):
        raise imp.fail(node, "only division of a tensor by a constant is supported")
    c = np.asarray(c, dtype=np.float64)
    if np.any(c == 0):
        raise imp.fail(node, "division by zero")
    imp.set(node, imp.mul_const(node, x, 1.0 / c, node.input[1]))


@_handles("Neg")
def _neg(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    imp.set(node, imp.p.neg(imp.act(node, 0)))


@_handles("Identity", "Dropout")
def _identity(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    if (
        node.op_type == "Dropout"
        and imp.has(node, 2)
        and bool(np.asarray(imp.const(node, 2, "training_mode")).reshape(-1)[0])
    ):
        raise imp.fail(node, "training mode is not supported")
    imp.set(node, imp.get(node, 0))


@_handles("Cast")
def _cast(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    if int(attrs.get("to", 1)) not in _FLOAT_TYPES:
        raise imp.fail(node, "a secret tensor can only be cast to a float type")
    imp.set(node, imp.get(node, 0))


# ---- products -------------------------------------------------------------------------------


@_handles("Gemm")
def _gemm(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    p = imp.p
    a, bv = imp.act(node, 0), imp.get(node, 1)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if len(a.shape) != 2 or len(getattr(bv, "shape", ())) != 2:
        raise imp.fail(node, f"A and B must be matrices, got {a.shape} and {bv.shape}")
    if attrs.get("transA", 0):
        a = p.transpose(a, (1, 0))
    if isinstance(bv, Tensor):
        b = p.transpose(bv, (1, 0)) if attrs.get("transB", 0) else bv
        y = imp.scale(p.matmul(a, b), alpha)
    else:  # the model owner folds alpha and the transposition into the secret weight
        b = np.asarray(bv, dtype=np.float64)
        b = alpha * (b.T if attrs.get("transB", 0) else b)
        y = p.matmul(a, imp.weight(b, node.input[1]))
    if imp.has(node, 2) and beta != 0:
        c = imp.get(node, 2)
        if isinstance(c, Tensor):
            y = p.add(y, imp.scale(c, beta))
        else:
            y = p.add(y, imp.weight(beta * np.asarray(c, dtype=np.float64), node.input[2]))
    imp.set(node, y)


@_handles("MatMul")
def _matmul(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    p = imp.p
    a, b = imp.get(node, 0), imp.get(node, 1)
    if isinstance(b, Tensor) and not isinstance(a, Tensor):
        # W @ X = (X^T @ W^T)^T over the last two axes of X
        w = np.asarray(a, dtype=np.float64)
        if w.ndim != 2 or len(b.shape) < 2:
            raise imp.fail(
                node, f"constant @ tensor needs a matrix and an (..., K, N) tensor, got {w.shape} and {b.shape}"
            )
        swap = list(range(len(b.shape) - 2)) + [len(b.shape) - 1, len(b.shape) - 2]
        y = p.transpose(imp.matmul(p.transpose(b, swap), imp.weight(w.T, node.input[0])), swap)
        imp.set(node, y)
        return
    bshape = b.shape
    if len(bshape) not in (1, 2) or len(a.shape) < 1:
        raise imp.fail(node, f"only (..., K) @ (K, N) or (K,) is supported, got {a.shape} @ {bshape}")
    bt = imp.tensor(b if len(bshape) == 2 or isinstance(b, Tensor) else np.reshape(b, (-1, 1)), node.input[1])
    if len(bt.shape) == 1:
        bt = p.reshape(bt, (bt.shape[0], 1))
    y = imp.matmul(a, bt)
    if len(bshape) == 1:
        y = p.reshape(y, a.shape[:-1] or (1,))
    imp.set(node, y)


# ---- layout ---------------------------------------------------------------------------------


def _reshape_target(imp: _Importer, node: Any, shape: tuple[int, ...], target: list[int], allowzero: bool) -> list[int]:
    dims = [shape[i] if d == 0 and not allowzero and i < len(shape) else d for i, d in enumerate(target)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise imp.fail(node, f"invalid target shape {target}")
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or math.prod(shape) % known:
            raise imp.fail(node, f"cannot reshape {shape} to {target}")
        dims[dims.index(-1)] = math.prod(shape) // known
    if math.prod(dims) != math.prod(shape):
        raise imp.fail(node, f"cannot reshape {shape} to {target}")
    return dims


def _reshape_dims(imp: _Importer, node: Any, attrs: dict[str, Any], shape: tuple[int, ...]) -> list[int]:
    target = _ints(attrs["shape"]) if imp.opset < 5 and "shape" in attrs else _ints(imp.const(node, 1, "shape"))
    return _reshape_target(imp, node, shape, target, bool(attrs.get("allowzero", 0)))


def _flatten_dims(imp: _Importer, node: Any, attrs: dict[str, Any], shape: tuple[int, ...]) -> list[int]:
    axis = int(attrs.get("axis", 1))
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis <= len(shape):
        raise imp.fail(node, f"axis {axis} is out of range for {shape}")
    return [math.prod(shape[:axis]), math.prod(shape[axis:])]


def _axes_of(imp: _Importer, node: Any, attrs: dict[str, Any]) -> list[int] | None:
    if "axes" in attrs:
        return _ints(attrs["axes"])
    return _ints(imp.const(node, 1, "axes")) if imp.has(node, 1) else None


def _squeeze_dims(imp: _Importer, node: Any, attrs: dict[str, Any], shape: tuple[int, ...]) -> list[int]:
    axes = _axes_of(imp, node, attrs)
    axes = [i for i, d in enumerate(shape) if d == 1] if axes is None else [a % len(shape) for a in axes]
    if any(shape[a] != 1 for a in axes):
        raise imp.fail(node, f"cannot squeeze axes {axes} of {shape}")
    return [d for i, d in enumerate(shape) if i not in axes]


def _unsqueeze_dims(imp: _Importer, node: Any, attrs: dict[str, Any], shape: tuple[int, ...]) -> list[int]:
    axes = _axes_of(imp, node, attrs)
    if axes is None:
        raise imp.fail(node, "axes are required")
    rank = len(shape) + len(axes)
    axes = sorted(a % rank for a in axes)
    dims, rest = [], iter(shape)
    for i in range(rank):
        dims.append(1 if i in axes else next(rest))
    return dims


_SHAPE_OPS = {
    "Reshape": _reshape_dims,
    "Flatten": _flatten_dims,
    "Squeeze": _squeeze_dims,
    "Unsqueeze": _unsqueeze_dims,
}


@_handles("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _reshape(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    dims = _SHAPE_OPS[node.op_type](imp, node, attrs, x.shape)
    if not dims:
        dims = [1]  # a scalar result stays a one-element tensor
    imp.set(node, x if tuple(dims) == x.shape else imp.p.reshape(x, tuple(dims)))


@_handles("Transpose")
def _transpose(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    perm = _ints(attrs["perm"]) if "perm" in attrs else list(range(len(x.shape)))[::-1]
    imp.set(node, x if perm == sorted(perm) else imp.p.transpose(x, perm))


@_handles("DepthToSpace", "SpaceToDepth")
def _depth_space(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    p, x = imp.p, imp.act(node, 0)
    r = int(attrs.get("blocksize", 0))
    if len(x.shape) != 4 or r < 1:
        raise imp.fail(node, f"needs an (N, C, H, W) input and a positive blocksize, got {x.shape}, {r}")
    n, c, h, w = x.shape
    if node.op_type == "DepthToSpace":
        if c % (r * r):
            raise imp.fail(node, f"{c} channels are not a multiple of blocksize^2 = {r * r}")
        if attrs.get("mode", "DCR") == "CRD":
            imp.set(node, p.pixel_shuffle(x, r))  # channel index c * r^2 + i * r + j
            return
        t = p.transpose(p.reshape(x, (n, r, r, c // (r * r), h, w)), (0, 3, 4, 1, 5, 2))
        imp.set(node, p.reshape(t, (n, c // (r * r), h * r, w * r)))
    else:
        if h % r or w % r:
            raise imp.fail(node, f"height and width of {x.shape} are not multiples of blocksize {r}")
        t = p.transpose(p.reshape(x, (n, c, h // r, r, w // r, r)), (0, 3, 5, 1, 2, 4))  # channel (i, j, c)
        imp.set(node, p.reshape(t, (n, c * r * r, h // r, w // r)))


@_handles("Concat")
def _concat(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    parts = [imp.act(node, i) for i in range(len(node.input)) if imp.has(node, i)]
    parts = [t for t in parts if math.prod(t.shape) > 0]
    if "axis" not in attrs:
        raise imp.fail(node, "the axis attribute is required")
    axis = int(attrs["axis"])
    imp.set(node, imp.p.concat(parts, axis % len(parts[0].shape)))


def _slice_args(imp: _Importer, node: Any, attrs: dict[str, Any], rank: int) -> list[tuple[int, int, int, int]]:
    if imp.opset < 10:
        starts, ends = _ints(attrs["starts"]), _ints(attrs["ends"])
        axes = _ints(attrs["axes"]) if "axes" in attrs else list(range(len(starts)))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(imp.const(node, 1, "starts")), _ints(imp.const(node, 2, "ends"))
        axes = _ints(imp.const(node, 3, "axes")) if imp.has(node, 3) else list(range(len(starts)))
        steps = _ints(imp.const(node, 4, "steps")) if imp.has(node, 4) else [1] * len(starts)
    return [(a % rank, s, e, st) for a, s, e, st in zip(axes, starts, ends, steps)]


@_handles("Slice")
def _slice(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    x = imp.act(node, 0)
    for axis, start, end, step in _slice_args(imp, node, attrs, len(x.shape)):
        size = x.shape[axis]
        if step < 1:
            raise imp.fail(node, "only positive steps are supported")
        start = min(max(start + size if start < 0 else start, 0), size)
        end = min(max(end + size if end < 0 else end, 0), size)
        if start >= end:
            raise imp.fail(node, f"the slice {start}:{end} of axis {axis} is empty")
        if (start, end, step) != (0, size, 1):
            x = imp.p.slice(x, axis, start, end, step)
    imp.set(node, x)


@_handles("Pad")
def _pad(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    p, x = imp.p, imp.act(node, 0)
    rank = len(x.shape)
    mode = attrs.get("mode", "constant")
    if imp.opset < 11:
        pads, value = _ints(attrs.get("pads", [])), float(attrs.get("value", 0.0))
    else:
        pads = _ints(imp.const(node, 1, "pads"))
        value = float(np.asarray(imp.const(node, 2, "constant_value")).reshape(-1)[0]) if imp.has(node, 2) else 0.0
        if imp.has(node, 3):
            axes = [a % rank for a in _ints(imp.const(node, 3, "axes"))]
            full = [0] * (2 * rank)
            for i, a in enumerate(axes):
                full[a], full[a + rank] = pads[i], pads[i + len(axes)]
            pads = full
    if len(pads) != 2 * rank or rank < 2:
        raise imp.fail(node, f"pads {pads} do not fit a {rank}-D input")
    if any(pads[i] or pads[i + rank] for i in range(rank - 2)):
        raise imp.fail(node, "only the last two axes (height, width) can be padded")
    modes = {"constant": "zero", "reflect": "mirror", "edge": "nearest"}
    if mode not in modes:
        raise imp.fail(node, f"mode {mode!r} is not supported (supported: {sorted(modes)})")
    top, left, bottom, right = pads[rank - 2], pads[rank - 1], pads[2 * rank - 2], pads[2 * rank - 1]
    for axis, head, tail in ((rank - 2, top, bottom), (rank - 1, left, right)):  # negative pads crop
        if head < 0 or tail < 0:
            size = x.shape[axis]
            x = p.slice(x, axis, max(-head, 0), size - max(-tail, 0))
    top, left, bottom, right = (max(v, 0) for v in (top, left, bottom, right))
    if top or bottom or left or right:
        x = p.pad(x, (top, bottom, left, right), modes[mode])
        if mode == "constant" and value != 0:
            fill = np.full(x.shape[-2:], value)
            fill[top : x.shape[-2] - bottom, left : x.shape[-1] - right] = 0.0
            x = p.add_public(x, fill)
    imp.set(node, x)


@_handles("Shape")
def _shape(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    shape = list(imp.get(node, 0).shape)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    imp.set(node, np.array(shape[start : None if end is None else int(end)], dtype=np.int64))


@_handles("Constant")
def _constant(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    if "value" in attrs:
        value = imp.to_array(attrs["value"])
    elif "value_float" in attrs or "value_int" in attrs:
        value = np.array(attrs.get("value_float", attrs.get("value_int")))
    elif "value_floats" in attrs or "value_ints" in attrs:
        value = np.array(list(attrs.get("value_floats", attrs.get("value_ints"))))
    else:
        raise imp.fail(node, f"only dense numeric constants are supported, got {sorted(attrs)}")
    imp.set(node, value)


@_handles("ConstantOfShape")
def _constant_of_shape(imp: _Importer, node: Any, attrs: dict[str, Any]) -> None:
    imp.set(node, *_fold_constant_of_shape(imp, node, attrs, [imp.const(node, 0, "shape")]))


# ---- constant folding: nodes whose inputs are all constants are evaluated at import ---------


@_folds("Identity", "Dropout", "Cast")
def _fold_identity(imp, node, attrs, xs):
    if node.op_type == "Cast":
        from onnx import helper

        return [xs[0].astype(helper.tensor_dtype_to_np_dtype(int(attrs["to"])))]
    return [xs[0]]


@_folds("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _fold_reshape(imp, node, attrs, xs):
    return [np.reshape(xs[0], _SHAPE_OPS[node.op_type](imp, node, attrs, xs[0].shape))]


@_folds("Transpose")
def _fold_transpose(imp, node, attrs, xs):
    return [np.transpose(xs[0], _ints(attrs["perm"]) if "perm" in attrs else None)]


@_folds("Concat")
def _fold_concat(imp, node, attrs, xs):
    return [np.concatenate([x for x in xs if x is not None], axis=int(attrs["axis"]))]


@_folds("Gather")
def _fold_gather(imp, node, attrs, xs):
    return [np.take(xs[0], xs[1], axis=int(attrs.get("axis", 0)))]


@_folds("Slice")
def _fold_slice(imp, node, attrs, xs):
    index = [slice(None)] * xs[0].ndim
    for axis, start, end, step in _slice_args(imp, node, attrs, xs[0].ndim):
        index[axis] = slice(start, end, step)
    return [xs[0][tuple(index)]]


@_folds("Add", "Sub", "Mul", "Div", "MatMul", "Neg", "Sqrt", "Reciprocal")
def _fold_arith(imp, node, attrs, xs):
    op = node.op_type
    if op == "Div" and np.issubdtype(xs[0].dtype, np.integer) and np.issubdtype(xs[1].dtype, np.integer):
        return [np.trunc(xs[0] / xs[1]).astype(np.result_type(xs[0], xs[1]))]
    fn = {
        "Add": np.add,
        "Sub": np.subtract,
        "Mul": np.multiply,
        "Div": np.divide,
        "MatMul": np.matmul,
        "Neg": np.negative,
        "Sqrt": np.sqrt,
        "Reciprocal": np.reciprocal,
    }[op]
    return [fn(*xs[: 2 if op in ("Add", "Sub", "Mul", "Div", "MatMul") else 1])]


@_folds("ConstantOfShape")
def _fold_constant_of_shape(imp, node, attrs, xs):
    value = imp.to_array(attrs["value"]).reshape(-1) if "value" in attrs else np.zeros(1, dtype=np.float32)
    return [np.full(_ints(xs[0]), value[0], dtype=value.dtype)]


@_folds("Shape")
def _fold_shape(imp, node, attrs, xs):
    _shape(imp, node, attrs)
    return [imp.values[node.output[0]]]


#: ONNX operators the importer handles (some only in the forms their error messages describe).
SUPPORTED_OPS: list[str] = sorted(_HANDLERS)
