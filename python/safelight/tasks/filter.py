"""Private linear filtering: 2-D convolution of an image with a public kernel on secret shares.

The servers never see the image: each convolves its additive share (padding
is linear, so shares pad independently), then drops the kernel's fractional
bits with local truncation. No interaction between servers is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import fixed_point
from ..errors import InputError
from ..runtime.client import JobResult, ProgressCallback
from ..runtime.cluster import Cluster
from ..runtime.ops import PADDING_MODES
from ..errors import UnsupportedError
from ..runtime.program import Program, correlation_kernel
from ..sharing import Encoded, as_plain_values, decode, encode

KERNEL_HELP = "gaussian:SIGMA | box:K | sharpen | sobel-x | sobel-y"


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised 2-D Gaussian with radius round(truncate * sigma), as scipy.ndimage.gaussian_filter."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def parse_kernel(spec: str) -> np.ndarray:
    """Turn a kernel spec (``gaussian:SIGMA``, ``box:K``, ``sharpen``, ``sobel-x``, ``sobel-y``) into weights."""
    name, _, arg = str(spec).strip().lower().partition(":")
    try:
        if name == "gaussian":
            sigma = float(arg)
            if not 0.1 <= sigma <= 20:
                raise ValueError
            return gaussian_kernel(sigma)
        if name == "box":
            k = int(arg)
            if not 1 <= k <= 31:
                raise ValueError
            return np.full((k, k), 1.0 / (k * k))
    except ValueError:
        raise InputError(
            f"bad kernel parameter in {spec!r}: gaussian:SIGMA needs 0.1 <= SIGMA <= 20, "
            "box:K needs an integer 1 <= K <= 31"
        ) from None
    fixed = {
        "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
        "sobel-x": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
        "sobel-y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    }
    if name in fixed and not arg:
        return np.array(fixed[name], dtype=np.float64)
    raise InputError(f"unknown kernel {spec!r}; choose one of: {KERNEL_HELP}")


def kernel_from(kernel: str | np.ndarray) -> np.ndarray:
    if isinstance(kernel, str):
        return parse_kernel(kernel)
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or min(k.shape) < 1 or max(k.shape) > 63 or not np.isfinite(k).all():
        raise InputError(f"a custom kernel must be a finite 2-D array of at most 63x63, got shape {k.shape}")
    return k


def layout_of(shape: tuple[int, ...]) -> str:
    return "hw" if len(shape) == 2 else "hwc"


def build_program(shape: tuple[int, ...], kernel: np.ndarray, padding: str = "reflect",
                  frac_bits: int = fixed_point.DEFAULT_FRAC_BITS) -> Program:
    """Program: input ``image`` (H x W or H x W x C) -> conv2d_public -> rescale -> output ``filtered``."""
    if padding not in PADDING_MODES:
        raise InputError(f"unknown padding {padding!r}; choose one of {sorted(PADDING_MODES)}")
    prog = Program(parties=2, frac_bits=frac_bits)
    x = prog.input("image", shape)
    y = prog.conv2d_public(x, kernel, padding=padding, layout=layout_of(shape))
    prog.output(prog.rescale(y), "filtered")
    return prog


def build_private_kernel_program(shape: tuple[int, ...], kernel_size: tuple[int, int], padding: str = "reflect",
                                  frac_bits: int = fixed_point.DEFAULT_FRAC_BITS) -> Program:
    """Program with a *secret* kernel: inputs ``image`` (1, C, H, W) and ``kernel`` (C, 1, kh, kw)
    (odd sizes, already in correlation form, see :func:`encode_kernel`); pad -> depthwise conv2d
    on shares (a conv-shaped Beaver triple) -> rescale -> output ``filtered`` (1, C, H, W)."""
    if padding not in PADDING_MODES:
        raise InputError(f"unknown padding {padding!r}; choose one of {sorted(PADDING_MODES)}")
    c = shape[2] if len(shape) == 3 else 1
    kh, kw = kernel_size
    prog = Program(parties=2, frac_bits=frac_bits)
    x = prog.input("image", (1, c, shape[0], shape[1]))
    w = prog.input("kernel", (c, 1, kh, kw))
    padded = prog.pad(x, (kh // 2, kh // 2, kw // 2, kw // 2), padding)
    prog.output(prog.conv2d(padded, w, groups=c), "filtered")
    return prog


def encode_kernel(kernel: str | np.ndarray, channels: int, parties: int = 2,
                  frac_bits: int = fixed_point.DEFAULT_FRAC_BITS) -> Encoded:
    """The model owner's step: secret-share a kernel (one copy per channel) for the servers."""
    k = correlation_kernel(kernel_from(kernel))
    return encode(np.ascontiguousarray(np.broadcast_to(k, (channels, 1, *k.shape))), parties, frac_bits)


def image_values(image: np.ndarray) -> tuple[np.ndarray, np.dtype]:
    """Float64 values in [0, 1] of a uint8, uint16 (x / 65535) or float image, and the dtype
    its rendering keeps (:func:`to_image`): uint16 for uint16, uint8 otherwise."""
    arr = np.asarray(image)
    if arr.dtype == np.uint16:
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4) and arr.size):
            return arr.astype(np.float64) / 65535.0, np.dtype(np.uint16)
        raise InputError(f"a uint16 image must be H x W or H x W x C with C in (1, 3, 4), got shape {arr.shape}")
    values, _ = as_plain_values(arr)
    return values, np.dtype(np.uint8)


def plaintext(image: np.ndarray, kernel: str | np.ndarray, padding: str = "reflect") -> np.ndarray:
    """The same filter in plaintext with scipy.ndimage (float64 result, image scaled to [0, 1])."""
    from scipy import ndimage

    values, _ = image_values(image)
    k = kernel_from(kernel)
    mode = "constant" if padding == "zero" else padding
    if values.ndim == 2:
        return ndimage.convolve(values, k, mode=mode)
    return np.stack([ndimage.convolve(values[..., c], k, mode=mode) for c in range(values.shape[2])], axis=2)


def to_image(values: np.ndarray, kernel: str | np.ndarray, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """Filter output as an image: edge kernels (weights summing to 0) show |response|, clipped
    to [0, 1]; ``dtype`` uint8 (x 255), uint16 (x 65535) or float32 (as is)."""
    k = kernel_from(kernel)
    shown = np.clip(np.abs(values) if abs(k.sum()) < 1e-9 else values, 0.0, 1.0)
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return shown.astype(np.float32)
    if dtype not in (np.uint8, np.uint16):
        raise InputError(f"an image is rendered as uint8, uint16 or float32, not {dtype}")
    return np.rint(shown * float(np.iinfo(dtype).max)).astype(dtype)


@dataclass
class FilterResult:
    values: np.ndarray  # float64, same shape as the image, image scaled to [0, 1]
    image: np.ndarray  # rendering of values: uint16 for a uint16 image, else uint8
    job: JobResult


def run(image: np.ndarray, kernel: str | np.ndarray, cluster: Cluster | None = None,
        padding: str = "reflect", on_progress: ProgressCallback | None = None,
        private_kernel: bool = False, no_dealer: bool = False) -> FilterResult:
    """Filter ``image`` privately on two servers: encode, evaluate on shares, decode.

    Parameters
    ----------
    image : uint8 or uint16 H x W [x C], or float array in [0, 1]
    kernel : kernel spec string or 2-D float array
    cluster : Cluster, optional
        Two-server cluster; by default one is started on loopback for this call
        (with a dealer when ``private_kernel``).
    private_kernel : bool
        Keep the kernel secret too: it is secret-shared (as a model owner
        would) and convolved with a Beaver triple dealt by the cluster's dealer.
        Client-dealt triples would let the image owner unmask the kernel, so a
        dealer is required, unless ``no_dealer``.
    no_dealer : bool
        With ``private_kernel``: the two servers make the triple themselves with
        homomorphic encryption (``triples="he"``): no third party at all.
    """
    k = kernel_from(kernel)
    values, rendering = image_values(image)
    if values.ndim not in (2, 3):
        raise InputError(f"an image must be H x W or H x W x C, got shape {values.shape}")
    if private_kernel:
        odd = correlation_kernel(k).shape
        program = build_private_kernel_program(values.shape, odd, padding)
        planes = values[None, None] if values.ndim == 2 else np.moveaxis(values, 2, 0)[None]
        inputs = {"image": encode(np.ascontiguousarray(planes), 2, program.frac_bits),
                  "kernel": encode_kernel(k, program.inputs["kernel"][0], 2, program.frac_bits)}
    else:
        program = build_program(values.shape, k, padding)
        inputs = {"image": encode(values, parties=2, frac_bits=program.frac_bits)}
    triples = None if not private_kernel else "he" if no_dealer else "dealer"
    if cluster is None:
        with Cluster.local(2, dealer=triples == "dealer") as local:
            job = local.run(program, inputs, on_progress, triples=triples)
    else:
        if triples == "dealer" and not cluster.has_dealer:
            raise UnsupportedError("a private kernel needs a dealer (Cluster.local(2, dealer=True) or a [dealer] "
                                   "in cluster.toml) or no_dealer=True: client-dealt triples would reveal the "
                                   "kernel to the client")
        job = cluster.run(program, inputs, on_progress, triples=triples)
    result = decode(job.outputs["filtered"], dtype=np.float64)
    if private_kernel:
        result = result[0, 0] if values.ndim == 2 else np.moveaxis(result[0], 0, 2)
    return FilterResult(result, to_image(result, k, rendering), job)
