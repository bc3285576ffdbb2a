"""Private linear filtering: 2-D convolution of an image with a public kernel on secret shares.

The servers never see the image: each convolves its additive share (padding
is linear, so shares pad independently), then drops the kernel's fractional
bits with local truncation. No interaction between servers is needed.
"""

from __future__ import annotations

import numpy as np

from .. import fixed_point
from ..errors import InputError, UnsupportedError
from ..program.ops import PADDING_MODES
from ..program.program import Program
from ..runtime.client import ProgressCallback
from ..runtime.cluster import Cluster
from ..sharing import Encoded, decode, encode
from .deprecation import accepts_old_call, renamed_results
from .kernels import (
    KERNEL_HELP,
    correlation_kernel,
    gaussian_kernel,
    image_values,
    kernel_from,
    parse_kernel,
    plaintext,
    to_image,
)
from .report import JobReport, TaskResult

# the kernel helpers are part of this task's public API (one module serves the three filters)
__all__ = [
    "KERNEL_HELP",
    "build_private_kernel_program",
    "build_program",
    "encode_kernel",
    "gaussian_kernel",
    "image_values",
    "kernel_from",
    "parse_kernel",
    "plaintext",
    "run",
    "to_image",
]


def layout_of(shape: tuple[int, ...]) -> str:
    return "hw" if len(shape) == 2 else "hwc"


def build_program(
    shape: tuple[int, ...], kernel: np.ndarray, padding: str = "reflect", frac_bits: int = fixed_point.DEFAULT_FRAC_BITS
) -> Program:
    """Program: input ``image`` (H x W or H x W x C) -> conv2d_public -> rescale -> output ``filtered``."""
    if padding not in PADDING_MODES:
        raise InputError(f"unknown padding {padding!r}; choose one of {sorted(PADDING_MODES)}")
    prog = Program(parties=2, frac_bits=frac_bits)
    x = prog.input("image", shape)
    y = prog.conv2d_public(x, kernel, padding=padding, layout=layout_of(shape))
    prog.output(prog.rescale(y), "filtered")
    return prog


def build_private_kernel_program(
    shape: tuple[int, ...],
    kernel_size: tuple[int, int],
    padding: str = "reflect",
    frac_bits: int = fixed_point.DEFAULT_FRAC_BITS,
    scheme: str = "additive",
) -> Program:
    """Program with a *secret* kernel: inputs ``image`` (1, C, H, W) and ``kernel`` (C, 1, kh, kw)
    (odd sizes, already in correlation form, see :func:`encode_kernel`); pad -> depthwise conv2d
    on shares (a conv-shaped Beaver triple; with ``scheme="rss3"`` a replicated product on three
    servers) -> rescale -> output ``filtered`` (1, C, H, W)."""
    if padding not in PADDING_MODES:
        raise InputError(f"unknown padding {padding!r}; choose one of {sorted(PADDING_MODES)}")
    c = shape[2] if len(shape) == 3 else 1
    kh, kw = kernel_size
    prog = Program(parties=3 if scheme == "rss3" else 2, frac_bits=frac_bits, scheme=scheme)
    x = prog.input("image", (1, c, shape[0], shape[1]))
    w = prog.input("kernel", (c, 1, kh, kw))
    padded = prog.pad(x, (kh // 2, kh // 2, kw // 2, kw // 2), padding)
    prog.output(prog.conv2d(padded, w, groups=c), "filtered")
    return prog


def encode_kernel(
    kernel: str | np.ndarray,
    channels: int,
    parties: int = 2,
    frac_bits: int = fixed_point.DEFAULT_FRAC_BITS,
    scheme: str = "additive",
) -> Encoded:
    """The model owner's step: secret-share a kernel (one copy per channel) for the servers."""
    k = correlation_kernel(kernel_from(kernel))
    return encode(np.ascontiguousarray(np.broadcast_to(k, (channels, 1, *k.shape))), parties, frac_bits, scheme)


@accepts_old_call(
    "safelight.tasks.filter",
    ("kernel", "cluster", "padding", "on_progress", "private_kernel", "no_dealer"),
    inputs_name="image",
)
def run(
    inputs: np.ndarray,
    *,
    cluster: Cluster | None = None,
    kernel: str | np.ndarray,
    padding: str = "reflect",
    private_kernel: bool = False,
    no_dealer: bool = False,
    on_progress: ProgressCallback | None = None,
    servers: int = 2,
) -> TaskResult:
    """Filter an image privately on two (or three) servers: encode, evaluate on shares, decode.

    Parameters
    ----------
    inputs : uint8 or uint16 H x W [x C], or float array in [0, 1]
        The image.
    cluster : Cluster, optional
        Two-server cluster; by default one is started on loopback for this call
        (with a dealer when ``private_kernel`` without ``no_dealer``).
    kernel : kernel spec string (see :data:`KERNEL_HELP`) or 2-D float array
        Convolution weights (scipy.ndimage.convolve orientation), at most 63 x 63.
    padding : "reflect" (default), "mirror", "nearest" or "zero"
    private_kernel : bool
        Keep the kernel secret too: it is secret-shared (as a model owner
        would) and convolved with a Beaver triple dealt by the cluster's dealer.
        Client-dealt triples would let the image owner unmask the kernel, so a
        dealer is required, unless ``no_dealer``.
    no_dealer : bool
        With ``private_kernel``: the two servers make the triple themselves with
        homomorphic encryption (``triples="he"``): no third party at all.
    on_progress : callable(party, step, of, op), optional
        Called as each server finishes each step of the Program.
    servers : {2, 3}
        With ``private_kernel`` and no ``cluster``: 3 starts three servers with replicated
        sharing (``scheme="rss3"``: honest majority, no dealer). A given cluster brings its
        own scheme.

    Returns
    -------
    TaskResult
        ``outputs``: the filtered image (uint16 for a uint16 image, else uint8; edge kernels
        as ``|response|``), ``report``: the job's :class:`JobReport`, ``extras["values"]`` (also
        ``result.values``): float64, the image's shape, image scaled to [0, 1], not clipped.
    """
    k = kernel_from(kernel)
    values, rendering = image_values(inputs)
    if values.ndim not in (2, 3):
        raise InputError(f"an image must be H x W or H x W x C, got shape {values.shape}")
    if servers not in (2, 3):
        raise InputError(f"servers must be 2 or 3, got {servers!r}")
    scheme = cluster.scheme if cluster is not None else "rss3" if servers == 3 else "additive"
    if scheme == "rss3" and (not private_kernel or no_dealer):
        raise InputError(
            "three servers (replicated sharing) run the private-kernel filter and need no dealer: "
            "use private_kernel=True without no_dealer"
        )
    if private_kernel:
        odd = correlation_kernel(k).shape
        program = build_private_kernel_program(values.shape, odd, padding, scheme=scheme)
        planes = values[None, None] if values.ndim == 2 else np.moveaxis(values, 2, 0)[None]
        n = program.parties
        encoded = {
            "image": encode(np.ascontiguousarray(planes), n, program.frac_bits, scheme),
            "kernel": encode_kernel(k, program.inputs["kernel"][0], n, program.frac_bits, scheme),
        }
    else:
        program = build_program(values.shape, k, padding)
        encoded = {"image": encode(values, parties=2, frac_bits=program.frac_bits)}
    triples = None if not private_kernel or scheme == "rss3" else "he" if no_dealer else "dealer"
    if cluster is None and scheme == "rss3":
        with Cluster.local(3, scheme="rss3") as local:
            job = local.run(program, encoded, on_progress)
    elif cluster is None:
        with Cluster.local(2, dealer=triples == "dealer") as local:
            job = local.run(program, encoded, on_progress, triples=triples)
    else:
        if triples == "dealer" and not cluster.has_dealer:
            raise UnsupportedError(
                "a private kernel needs a dealer (Cluster.local(2, dealer=True) or a [dealer] "
                "in cluster.toml) or no_dealer=True: client-dealt triples would reveal the "
                "kernel to the client"
            )
        job = cluster.run(program, encoded, on_progress, triples=triples)
    result = decode(job.outputs["filtered"], dtype=np.float64)
    if private_kernel:
        result = result[0, 0] if values.ndim == 2 else np.moveaxis(result[0], 0, 2)
    return TaskResult(to_image(result, k, rendering), JobReport.from_job(job), {"values": result})


__getattr__ = renamed_results("safelight.tasks.filter", {"FilterResult": TaskResult})
