"""Feature detection on secret-shared images (issue 16): Harris corners, HOG and SIFT-like
keypoints (the last in :mod:`.sift`).

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
from .extremes import largest, pairwise_max
from .kernels import as_grey, gaussian_kernel
from .orientation import binned_gradient, central_difference, votes
from .report import JobReport, TaskResult
from .servers import parties_and_scheme, run_program

# Harris responses of an image in [0, 1] times SCALE: gradients below 8, tensor entries below
# 64, |det - k trace^2| below 2^13, so below 2^29 ring units: 32-bit comparisons suffice
HARRIS_BITS = 32
PEAKS_BITS = 48  # corner_peaks on a caller's image: values below 2^31
# The servers work on the image times SCALE: responses grow as SCALE^4 while the fixed-point
# step stays 2^-16, so weak corners keep their relative precision; keypoints are unchanged
# (the threshold is relative) and the client divides the responses back.
SCALE = 2.0
KERNEL_BITS = 28
FEATURES = ("harris", "hog", "sift")


def _sobel(axis: int) -> np.ndarray:
    """scipy.ndimage.sobel's kernel along ``axis`` as a 3x3 correlation kernel."""
    derivative, smooth = np.array([-1.0, 0.0, 1.0]), np.array([1.0, 2.0, 1.0])
    return np.outer(derivative, smooth) if axis == 0 else np.outer(smooth, derivative)


def public_filter(p: Program, x, kernel: np.ndarray, padding: str):
    """``x`` (h, w) correlated with a public 2-D kernel, the kernel at KERNEL_BITS fractional
    bits: a Gaussian's small taps keep their relative precision (at 16 bits its tails would
    round away)."""
    ring_kernel = fixed_point.encode(np.asarray(kernel, dtype=np.float64)[None], KERNEL_BITS)
    attrs = {"kernel": ring_kernel.tolist(), "padding": padding, "layout": "hw"}
    return p.rescale(p.apply("conv2d_public", [x], attrs, frac_bits=x.frac_bits + KERNEL_BITS))


SHI_TOMASI_BITS = 44  # the rsqrt of (A_rr - A_cc)^2 + 4 A_rc^2 <= 2^22 at 20 fractional bits
# Shi-Tomasi's eigenvalue grows only as the image's scale squared, and trace - sqrt(d)
# cancels: the servers work on the image times 8 (tensor entries below 2^10)
SHI_TOMASI_SCALE = 8.0
METHODS = ("k", "shi-tomasi")


def _response(p: Program, img, sigma: float, k: float, method: str = "k"):
    """The corner response map of ``img`` (h, w) from the smoothed structure tensor:
    Harris's det - k trace^2, or Shi-Tomasi's smaller eigenvalue
    (trace - sqrt((A_rr - A_cc)^2 + 4 A_rc^2)) / 2 (the square root as d rsqrt(d))."""

    def filt(x, kernel):
        return public_filter(p, x, kernel, "zero")

    gr, gc = filt(img, _sobel(0)), filt(img, _sobel(1))
    g = gaussian_kernel(sigma)
    arr, arc, acc = filt(p.square(gr), g), filt(p.mul(gr, gc), g), filt(p.square(gc), g)
    trace = p.add(arr, acc)
    if method == "shi-tomasi":
        d = p.add(p.square(p.sub(arr, acc)), p.mul_public(p.square(arc), 4, integer=True))
        # the rsqrt at 4 more fractional bits: trace - sqrt(d) cancels, so sqrt(d) needs them
        fine = p.apply("mul_public", [d], {"scalar": 1 << 4}, frac_bits=d.frac_bits + 4)
        r = p.rsqrt(p.add_public(fine, 2.0**-16), bits=SHI_TOMASI_BITS)
        root = p.rescale(p.mul(d, r, rescale=False))
        return p.rescale(p.mul_public(p.sub(trace, root), 0.5))
    det = p.sub(p.mul(arr, acc), p.square(arc))
    return p.sub(det, p.rescale(p.mul_public(p.square(trace), k)))


def _candidates(
    p: Program,
    image,
    height: int,
    width: int,
    d: int,
    threshold_rel: float | None,
    threshold_abs: float | None,
    bits: int,
) -> None:
    """Outputs ``mask`` and ``response`` (at candidates) of peak_local_max's first stage on
    ``image`` (h, w): a maximum of its (2 d + 1)^2 window, above the threshold (the larger
    of ``threshold_abs``, or the image's minimum, and ``threshold_rel`` times its maximum),
    in the interior that ``exclude_border`` keeps."""
    flat = p.reshape(image, (height * width,))
    if threshold_abs is None:
        threshold = p.neg(largest(p, p.neg(flat), bits))  # the image's minimum
    else:  # a public constant, as a (1,) tensor
        threshold = p.add_public(p.mul_public(p.slice(flat, 0, 0, 1), 0.0, integer=True), threshold_abs)
    if threshold_rel is not None:
        relative = p.rescale(p.mul_public(largest(p, flat, bits), threshold_rel))
        threshold = pairwise_max(p, threshold, relative, bits)
    inner = (height - 2 * d, width - 2 * d)
    # the window's max, separably: rows then columns (2 d comparisons each, not (2 d + 1)^2 - 1)
    rows = p.max_pool2d(p.reshape(image, (1, 1, height, width)), (1, 2 * d + 1), stride=1, bits=bits)
    local = p.reshape(p.max_pool2d(rows, (2 * d + 1, 1), stride=1, bits=bits), inner)
    r = p.slice(p.slice(image, 0, d, height - d), 1, d, width - d)
    is_max = p.add_public(p.neg(p.less(r, local, bits=bits)), 1.0)  # r >= its window's max
    zeros = p.mul_public(r, 0.0, integer=True)
    above = p.less(p.apply("add_broadcast", [zeros, p.reshape(threshold, (1, 1))]), r, bits=bits)
    mask = p.mul(is_max, above)
    p.output(mask, "mask")
    p.output(p.mul(r, mask), "response")


def _check_window(height: int, width: int, min_distance: int) -> int:
    d = int(min_distance)
    if d < 1:
        raise InputError(f"min_distance must be at least 1, got {min_distance!r}")
    if height <= 2 * d or width <= 2 * d:
        raise InputError(f"the image ({height}x{width}) is too small for a {2 * d + 1}x{2 * d + 1} window")
    return d


def harris_program(
    height: int,
    width: int,
    parties: int = 2,
    scheme: str = "additive",
    k: float = 0.05,
    sigma: float = 1.0,
    min_distance: int = 1,
    threshold_rel: float = 0.01,
    response_map: bool = False,
    method: str = "k",
) -> Program:
    """The Program of the private Harris pipeline on a ``height`` x ``width`` grey image:
    input ``image`` (h, w), the grey image times :data:`SCALE`; outputs ``mask`` and
    ``response`` (both (h - 2 d, w - 2 d) for d = min_distance: the interior that
    ``exclude_border`` keeps). With ``response_map``: the output ``response`` is the whole
    map (what ``corner_harris`` returns), with no peak finding."""
    d = _check_window(height, width, min_distance)
    # exact truncation (pairs) on two servers too: local truncation's rare large error is
    # too likely over millions of values
    p = Program(parties, scheme=scheme, truncation="pair")
    if method not in METHODS:
        raise InputError(f"unknown corner method {method!r}: one of {', '.join(METHODS)}")
    response = _response(p, p.input("image", (height, width)), sigma, k, method)
    if response_map:
        p.output(response, "response")
        return p
    _candidates(p, response, height, width, d, threshold_rel, None, HARRIS_BITS)
    return p


def peaks_program(
    height: int,
    width: int,
    parties: int = 2,
    scheme: str = "additive",
    min_distance: int = 1,
    threshold_rel: float | None = None,
    threshold_abs: float | None = None,
) -> Program:
    """peak_local_max's candidates of a shared ``image`` (h, w): outputs ``mask`` and
    ``response`` as :func:`harris_program`."""
    d = _check_window(height, width, min_distance)
    p = Program(parties, scheme=scheme, truncation="pair")
    _candidates(p, p.input("image", (height, width)), height, width, d, threshold_rel, threshold_abs, PEAKS_BITS)
    return p


def plaintext_harris(
    image: Any,
    k: float = 0.05,
    sigma: float = 1.0,
    min_distance: int = 1,
    threshold_rel: float = 0.01,
    method: str = "k",
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's pipeline: (keypoints (n, 2) as corner_peaks returns them, responses);
    ``method="shi-tomasi"``: corner_shi_tomasi instead of corner_harris."""
    from skimage.feature import corner_harris, corner_peaks, corner_shi_tomasi

    grey = as_grey(image)
    if method == "shi-tomasi":
        response = corner_shi_tomasi(grey, sigma=sigma)
    else:
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
    image, floor = candidate_image(mask, response, d)
    peaks = corner_peaks(image, min_distance=d, threshold_abs=floor, threshold_rel=None, exclude_border=True)
    return peaks, image[tuple(peaks.T)] if len(peaks) else np.empty(0)


def candidate_image(mask: np.ndarray, response: np.ndarray, d: int) -> tuple[np.ndarray, float]:
    """The full-size image that has the private candidates' responses and a floor below them
    everywhere else (the border of width ``d`` too): scikit-image's peak finder run on it
    with ``threshold_abs=floor`` finds exactly the candidates. (image, floor)."""
    chosen = np.asarray(mask) > 0.5
    floor = float(np.min(response[chosen])) - 1.0 if chosen.any() else -1.0
    image = np.full((mask.shape[0] + 2 * d, mask.shape[1] + 2 * d), floor)
    image[d:-d, d:-d] = np.where(chosen, response, floor)
    return image, floor


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
    scheme: str = "shares",
    method: str = "k",
) -> TaskResult:
    """Private Harris corners of ``image``. Returns a TaskResult whose outputs are the
    keypoints (n, 2) as ``corner_peaks`` returns them; ``extras["responses"]`` their
    responses. Without ``cluster``: two servers and a dealer (``no_dealer``: the servers
    make the randomness themselves) or three with replicated sharing, on loopback.
    ``scheme="he"``: one server computes the response map on BFV ciphertexts and the client
    thresholds it after decryption (:mod:`.he_harris`; 8-bit grey levels)."""
    if scheme == "he":
        from . import he_harris

        if method != "k":
            raise InputError("the one-server HE path computes Harris's det - k trace^2 only (method 'k')")
        return he_harris.harris(
            image, cluster=cluster, k=k, sigma=sigma, min_distance=min_distance, threshold_rel=threshold_rel
        )
    if scheme != "shares":
        raise InputError(f"unknown scheme {scheme!r}: 'shares' (two or three servers) or 'he' (one server)")
    grey = as_grey(image)
    parties, scheme = parties_and_scheme(cluster, servers)
    program = harris_program(*grey.shape, parties, scheme, k, sigma, min_distance, threshold_rel, method=method)
    scale, power = (
        (SHI_TOMASI_SCALE, 2) if method == "shi-tomasi" else (SCALE, 4)
    )  # eigenvalue ~ scale^2, det ~ scale^4
    inputs = {"image": encode(grey * scale, parties, scheme=scheme)}
    job = run_program(program, inputs, cluster, scheme, no_dealer)
    mask, response = decode(job.outputs["mask"]), decode(job.outputs["response"]) / scale**power
    peaks, values = keypoints_from_candidates(mask, response, min_distance)
    return TaskResult(peaks, JobReport.from_job(job), {"responses": values})


# ---- HOG --------------------------------------------------------------------------------------
# scikit-image's hog(image) with its defaults: central differences (zero on the border rows
# and columns), unsigned orientation in [0, 180) in 9 bins of 20 degrees with hard binning
# weighted by the gradient's magnitude, mean over 8x8 cells, 3x3-cell blocks normalised by
# L2-Hys (v / sqrt(|v|^2 + eps^2), clipped at 0.2, normalised again), flattened.
HOG_SCALE = 16.0  # the servers work on the image times this: norms stay well above the fixed-point step
# widths of the comparisons (|x| < 2^(bits-1) ring units): sector and halving tests and the
# clip (|values| < 2^5), the blocks' rsqrt (|v|^2 <= 2^16)
HOG_BITS = 24
HOG_REFINEMENTS = 2  # magnitude within 4.8e-4 (see tasks.orientation)
NORM_BITS = 34


def _levels(orientations: int) -> tuple[int, ...]:
    """The orientation search's levels: nine bins as 3 x 3, otherwise one level."""
    return (3, 3) if orientations == 9 else (orientations,)


def hog_program(
    height: int,
    width: int,
    parties: int = 2,
    scheme: str = "additive",
    orientations: int = 9,
    pixels_per_cell: tuple[int, int] = (8, 8),
    cells_per_block: tuple[int, int] = (3, 3),
) -> Program:
    """The Program of the private HOG on a ``height`` x ``width`` grey image times
    :data:`HOG_SCALE`: input ``image``; output ``descriptor`` (the flattened blocks)."""
    cr, cc = pixels_per_cell
    br, bc = cells_per_block
    ncr, ncc = height // cr, width // cc
    nbr, nbc = ncr - br + 1, ncc - bc + 1
    if nbr < 1 or nbc < 1:
        raise InputError(f"the image ({height}x{width}) is too small for {br}x{bc} blocks of {cr}x{cc} cells")
    p = Program(parties, scheme=scheme, truncation="pair")
    img = p.input("image", (height, width))
    crop = (ncr * cr, ncc * cc)

    def cropped(x):
        return p.slice(p.slice(x, 0, 0, crop[0]), 1, 0, crop[1])

    gr, gc = central_difference(p, img, 0), central_difference(p, img, 1)
    grad = binned_gradient(p, cropped(gr), cropped(gc), _levels(orientations), HOG_REFINEMENTS, HOG_BITS)
    cells = p.sum_pool2d(p.reshape(votes(p, grad), (1, orientations, *crop)), (cr, cc))  # (1, n, ncr, ncc)
    mean = p.rescale(p.mul_public(cells, 1.0 / (cr * cc)))
    hist = p.transpose(p.reshape(mean, (orientations, ncr, ncc)), (1, 2, 0))  # (ncr, ncc, n)
    parts = [
        p.reshape(p.slice(p.slice(hist, 0, i, i + nbr), 1, j, j + nbc), (nbr, nbc, 1, orientations))
        for i in range(br)
        for j in range(bc)
    ]
    size = br * bc * orientations
    blocks = p.reshape(p.concat(parts, axis=2), (nbr * nbc, size))

    def normalised(v):
        norm = p.rsqrt(p.add_public(p.sum(p.square(v), axes=(1,), keepdims=True), 2.0**-16), bits=NORM_BITS)
        return p.mul(v, p.concat([norm] * size, axis=1))

    first = normalised(blocks)
    clipped = p.sub(first, p.relu(p.add_public(first, -0.2), bits=HOG_BITS))  # min(v, 0.2)
    p.output(p.reshape(normalised(clipped), (nbr * nbc * size,)), "descriptor")
    return p


def plaintext_hog(image: Any) -> np.ndarray:
    """scikit-image's hog of the grey image with its defaults (the reference)."""
    from skimage.feature import hog as skimage_hog

    return skimage_hog(as_grey(image))


def hog(image: Any, *, cluster: Cluster | None = None, servers: int = 2, no_dealer: bool = False) -> TaskResult:
    """Private HOG of ``image`` (scikit-image's defaults). Returns a TaskResult whose
    outputs are the flattened descriptor; ``extras["shape"]`` the blocks' shape
    (blocks along rows, along columns, 3, 3, 9)."""
    grey = as_grey(image)
    parties, scheme = parties_and_scheme(cluster, servers)
    program = hog_program(*grey.shape, parties, scheme)
    inputs = {"image": encode(grey * HOG_SCALE, parties, scheme=scheme)}
    job = run_program(program, inputs, cluster, scheme, no_dealer)
    h, w = grey.shape
    shape = [h // 8 - 2, w // 8 - 2, 3, 3, 9]
    return TaskResult(decode(job.outputs["descriptor"]), JobReport.from_job(job), {"shape": shape})


def sift(image: Any, *, cluster: Cluster | None = None, servers: int = 3, no_dealer: bool = False) -> TaskResult:
    """Private SIFT-like keypoints and upright descriptors of ``image`` (see
    :mod:`safelight.tasks.sift`). Returns a TaskResult whose outputs are the keypoints
    (n, 3) as [row, col, scale]; ``extras["descriptors"]`` their (n, 128) descriptors."""
    from . import sift as sift_task

    grey = as_grey(image)
    parties, scheme = parties_and_scheme(cluster, servers)
    program = sift_task.sift_program(*grey.shape, parties, scheme)
    inputs = {"image": encode(grey * sift_task.SIFT_SCALE, parties, scheme=scheme)}
    job = run_program(program, inputs, cluster, scheme, no_dealer)
    maps = {name: decode(share) for name, share in job.outputs.items()}
    points, descriptors = sift_task.keypoints_and_descriptors(maps, *grey.shape)
    return TaskResult(points, JobReport.from_job(job), {"descriptors": descriptors})


def run(image: Any, *, cluster: Cluster | None = None, feature: str = "harris", **options: Any) -> TaskResult:
    """The common task shape: ``feature`` ("harris" or "hog") of ``image``; ``options`` as
    :func:`harris` or :func:`hog` take them."""
    if feature == "harris":
        return harris(image, cluster=cluster, **options)
    if feature == "hog":
        return hog(image, cluster=cluster, **options)
    if feature == "sift":
        return sift(image, cluster=cluster, **options)
    raise InputError(f"unknown feature {feature!r}: one of {', '.join(FEATURES)}")


def to_record(feature: str, result: TaskResult) -> dict[str, Any]:
    """A features result as the JSON record the command line writes: ``harris``
    ``{"keypoints": [[row, col, response], ...]}``, ``hog`` ``{"descriptor", "shape"}``,
    ``sift`` ``{"keypoints": [[row, col, scale], ...], "descriptors"}``, each with ``feature``."""
    if feature == "hog":
        return {"feature": "hog", "descriptor": [float(v) for v in result.outputs], "shape": result.extras["shape"]}
    if feature == "sift":
        return {
            "feature": "sift",
            "keypoints": [[float(r), float(c), float(s)] for r, c, s in result.outputs],
            "descriptors": [[round(float(v), 6) for v in d] for d in result.extras["descriptors"]],
        }
    points = zip(result.outputs, result.extras["responses"])
    return {"feature": feature, "keypoints": [[int(r), int(c), float(v)] for (r, c), v in points]}
