"""Feature detection on secret-shared images (issue 16): Harris corners so far.

The reference is scikit-image's pipeline, ``corner_peaks(corner_harris(image, method="k",
k=0.05, sigma=1), min_distance=1, threshold_rel=0.01)`` on the grey image in [0, 1]
(``skimage.color.rgb2gray`` for colour input); the private result must be its result.

On the servers (two with any randomness source, or three with rss3), one Program:

- gradients by Sobel (public kernels, zero padding as ``scipy.ndimage.sobel``): free;
- the structure tensor: three products of gradients, each smoothed by the public
  Gaussian (sigma, truncated at 4 sigma, zero padding, as ``skimage.filters.gaussian``);
- the response det - k trace^2: three more products;
- the threshold ``threshold_rel`` times the image's largest response (a secure max over
  every pixel), the local maxima in a (2 min_distance + 1)^2 window (a secure max filter)
  and the two comparisons that make the candidate mask, away from the border as
  ``exclude_border`` does;
- outputs: the candidate mask and the response at candidates only (a product with the
  mask), so the client learns the keypoints and their responses, not the response map.

The client then orders candidates and removes those closer than ``min_distance`` to a
stronger one exactly as ``corner_peaks`` does (it calls scikit-image on the candidates).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import fixed_point
from ..errors import InputError
from ..program.program import Program
from ..runtime.cluster import Cluster
from ..sharing import decode, encode
from .report import JobReport, TaskResult

COMPARE_BITS = 40  # responses of an image in [0, 1] stay far below 2^23 at 16 fractional bits
# The servers work on the image times SCALE: responses grow as SCALE^4 while the fixed-point
# step stays 2^-16, so weak corners keep their relative precision; keypoints are unchanged
# (the threshold is relative) and the client divides the responses back.
SCALE = 2.0
KERNEL_BITS = 28
FEATURES = ("harris",)


def _sobel(axis: int) -> np.ndarray:
    """scipy.ndimage.sobel's kernel along ``axis`` as a 3x3 correlation kernel."""
    derivative, smooth = np.array([-1.0, 0.0, 1.0]), np.array([1.0, 2.0, 1.0])
    return np.outer(derivative, smooth) if axis == 0 else np.outer(smooth, derivative)


def _gaussian(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The 2-D kernel of scipy.ndimage.gaussian_filter (separable, radius int(truncate sigma + 0.5))."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def as_grey(image: Any) -> np.ndarray:
    """The grey image in [0, 1] (float64) that the reference works on."""
    from skimage.color import rgb2gray

    a = np.asarray(image)
    if a.dtype == np.uint8:
        a = a / 255.0
    elif a.dtype == np.uint16:
        a = a / 65535.0
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise InputError("the image contains NaN or infinite values")
    else:
        raise InputError(f"the image must be uint8, uint16 or float in [0, 1], not {a.dtype}")
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = rgb2gray(a[..., :3])
    if a.ndim != 2:
        raise InputError(f"expected a grey or colour image, got shape {a.shape}")
    return np.clip(a.astype(np.float64), 0.0, 1.0)


def _pairwise_max(p: Program, a, b):
    return p.add(b, p.relu(p.sub(a, b), bits=COMPARE_BITS))


def _global_max(p: Program, x):
    """The largest value of a flat tensor: a secure max (rss3) or a tournament of ReLUs."""
    if p.scheme == "rss3":
        return p.reshape(p.max(x, axis=0, bits=COMPARE_BITS), (1,))
    n = x.shape[0]
    while n > 1:
        half = n // 2
        top = _pairwise_max(p, p.slice(x, 0, 0, half), p.slice(x, 0, half, 2 * half))
        x = p.concat([top, p.slice(x, 0, 2 * half, n)], axis=0) if n % 2 else top
        n = half + n % 2
    return x


def harris_program(
    height: int,
    width: int,
    parties: int = 2,
    scheme: str = "additive",
    k: float = 0.05,
    sigma: float = 1.0,
    min_distance: int = 1,
    threshold_rel: float = 0.01,
) -> Program:
    """The Program of the private Harris pipeline on a ``height`` x ``width`` grey image:
    input ``image`` (h, w), the grey image times :data:`SCALE`; outputs ``mask`` and
    ``response`` (both (h - 2 d, w - 2 d) for d = min_distance: the interior that
    ``exclude_border`` keeps)."""
    d = int(min_distance)
    if d < 1:
        raise InputError(f"min_distance must be at least 1, got {min_distance!r}")
    if height <= 2 * d or width <= 2 * d:
        raise InputError(f"the image ({height}x{width}) is too small for a {2 * d + 1}x{2 * d + 1} window")
    # exact truncation (pairs) on two servers too: local truncation's rare large error is
    # too likely over millions of values
    p = Program(parties, scheme=scheme, truncation="pair")
    img = p.input("image", (height, width))

    def filt(x, kernel):
        # the kernel at KERNEL_BITS fractional bits: a Gaussian's small taps keep their
        # relative precision (at 16 bits its tails would round away)
        ring_kernel = fixed_point.encode(np.asarray(kernel, dtype=np.float64)[None], KERNEL_BITS)
        attrs = {"kernel": ring_kernel.tolist(), "padding": "zero", "layout": "hw"}
        return p.rescale(p.apply("conv2d_public", [x], attrs, frac_bits=x.frac_bits + KERNEL_BITS))

    gr, gc = filt(img, _sobel(0)), filt(img, _sobel(1))
    g = _gaussian(sigma)
    arr, arc, acc = filt(p.square(gr), g), filt(p.mul(gr, gc), g), filt(p.square(gc), g)
    det = p.sub(p.mul(arr, acc), p.square(arc))
    trace = p.add(arr, acc)
    response = p.sub(det, p.rescale(p.mul_public(p.square(trace), k)))  # (h, w)

    inner = (height - 2 * d, width - 2 * d)
    top = _global_max(p, p.reshape(response, (height * width,)))  # (1,)
    threshold = p.rescale(p.mul_public(top, threshold_rel))
    local = p.max_pool2d(p.reshape(response, (1, 1, height, width)), 2 * d + 1, stride=1, bits=COMPARE_BITS)
    local = p.reshape(local, inner)
    r = p.slice(p.slice(response, 0, d, height - d), 1, d, width - d)
    is_max = p.add_public(p.neg(p.less(r, local, bits=COMPARE_BITS)), 1.0)  # r >= its window's max
    above = p.less(
        p.apply("add_broadcast", [p.mul_public(r, 0.0, integer=True), p.reshape(threshold, (1, 1))]),
        r,
        bits=COMPARE_BITS,
    )  # threshold < r
    mask = p.mul(is_max, above)
    p.output(mask, "mask")
    p.output(p.mul(r, mask), "response")
    return p


def plaintext_harris(
    image: Any, k: float = 0.05, sigma: float = 1.0, min_distance: int = 1, threshold_rel: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's pipeline: (keypoints (n, 2) as corner_peaks returns them, responses)."""
    from skimage.feature import corner_harris, corner_peaks

    grey = as_grey(image)
    response = corner_harris(grey, method="k", k=k, sigma=sigma)
    peaks = corner_peaks(response, min_distance=min_distance, threshold_rel=threshold_rel)
    return peaks, response[tuple(peaks.T)] if len(peaks) else np.empty(0)


def keypoints_from_candidates(
    mask: np.ndarray, response: np.ndarray, min_distance: int
) -> tuple[np.ndarray, np.ndarray]:
    """corner_peaks' ordering and spacing rule applied to the private candidates (interior
    coordinates shifted back by ``min_distance``): (keypoints (n, 2), responses)."""
    from skimage.feature import corner_peaks

    d = int(min_distance)
    chosen = np.asarray(mask) > 0.5
    floor = float(np.min(response[chosen])) - 1.0 if chosen.any() else -1.0
    image = np.full((mask.shape[0] + 2 * d, mask.shape[1] + 2 * d), floor)
    image[d:-d, d:-d] = np.where(chosen, response, floor)
    peaks = corner_peaks(image, min_distance=d, threshold_abs=floor, threshold_rel=None, exclude_border=True)
    return peaks, image[tuple(peaks.T)] if len(peaks) else np.empty(0)


def harris(
    image: Any,
    *,
    cluster: Cluster | None = None,
    servers: int = 2,
    k: float = 0.05,
    sigma: float = 1.0,
    min_distance: int = 1,
    threshold_rel: float = 0.01,
    no_dealer: bool = False,
) -> TaskResult:
    """Private Harris corners of ``image``. Returns a TaskResult whose outputs are the
    keypoints (n, 2) as ``corner_peaks`` returns them; ``extras["responses"]`` their
    responses. Without ``cluster``: two servers and a dealer (``no_dealer``: the servers
    make the randomness themselves) or three with replicated sharing, on loopback."""
    grey = as_grey(image)
    scheme = "rss3" if (cluster.scheme if cluster is not None else servers == 3 and "rss3") == "rss3" else "additive"
    parties = 3 if scheme == "rss3" else 2
    program = harris_program(*grey.shape, parties, scheme, k, sigma, min_distance, threshold_rel)
    inputs = {"image": encode(grey * SCALE, parties, scheme=scheme)}
    if cluster is not None:
        job = cluster.run(program, inputs)
    elif scheme == "rss3":
        with Cluster.local(3, scheme="rss3") as local:
            job = local.run(program, inputs)
    else:
        with Cluster.local(2, dealer=not no_dealer) as local:
            job = local.run(program, inputs, triples="he" if no_dealer else None)
    mask, response = decode(job.outputs["mask"]), decode(job.outputs["response"]) / SCALE**4
    peaks, values = keypoints_from_candidates(mask, response, min_distance)
    return TaskResult(peaks, JobReport.from_job(job), {"responses": values})
