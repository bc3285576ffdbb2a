"""``skimage.feature``'s corner_harris, corner_shi_tomasi, corner_peaks and hog, computed on secret shares."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..runtime.cluster import Cluster
from ..tasks import features
from ._run import run, scheme_of


def _grey(image: Any) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 2:
        raise UnsupportedError("the private version takes a 2-D grey image, as scikit-image's does")
    return features.as_grey(a) if a.dtype.kind != "f" else a.astype(np.float64)


def corner_harris(image, method="k", k=0.05, eps=1e-6, sigma=1, *, cluster: Cluster | None = None) -> np.ndarray:
    """The Harris response map, as ``skimage.feature.corner_harris`` (``method="k"``)."""
    if method != "k":
        raise UnsupportedError("method='eps' needs a secure division: use method='k'")
    grey = _grey(image)
    parties, scheme = scheme_of(cluster)
    program = features.harris_program(*grey.shape, parties, scheme, k, sigma, response_map=True)
    return run(program, grey, cluster, features.SCALE)["response"] / features.SCALE**4


def corner_shi_tomasi(image, sigma=1, *, cluster: Cluster | None = None) -> np.ndarray:
    """The Shi-Tomasi response map (the structure tensor's smaller eigenvalue), as
    ``skimage.feature.corner_shi_tomasi``."""
    grey = _grey(image)
    parties, scheme = scheme_of(cluster)
    program = features.harris_program(*grey.shape, parties, scheme, sigma=sigma, response_map=True, method="shi-tomasi")
    scale = features.SHI_TOMASI_SCALE
    return run(program, grey, cluster, scale)["response"] / scale**2


def corner_peaks(
    image,
    min_distance=1,
    threshold_abs=None,
    threshold_rel=None,
    exclude_border=True,
    indices=True,
    num_peaks=np.inf,
    footprint=None,
    labels=None,
    *,
    num_peaks_per_label=np.inf,
    p_norm=np.inf,
    cluster: Cluster | None = None,
):
    """The peaks of ``image`` (a response map), as ``skimage.feature.corner_peaks``: the
    candidates (local maxima above the threshold) are found on shares, their order and
    spacing by scikit-image on this machine. Values closer than the fixed-point step
    (2^-16) compare as equal: without a threshold, maxima among near-zero values of flat
    areas may differ from scikit-image's; with ``threshold_rel`` or ``threshold_abs`` above
    that noise they do not."""
    from skimage.feature import corner_peaks as reference

    if exclude_border is not True or footprint is not None or labels is not None or not np.isinf(num_peaks_per_label):
        raise UnsupportedError("the private corner_peaks supports exclude_border=True, no footprint and no labels")
    a = np.asarray(image, dtype=np.float64)
    if a.size and np.abs(a).max() >= 2.0**30:
        raise UnsupportedError("the private corner_peaks compares values below 2^30 in magnitude")
    parties, scheme = scheme_of(cluster)
    program = features.peaks_program(*a.shape, parties, scheme, min_distance, threshold_rel, threshold_abs)
    out = run(program, a, cluster)
    d = int(min_distance)
    candidates, floor = features.candidate_image(out["mask"], out["response"], d)
    return reference(
        candidates,
        min_distance=d,
        threshold_abs=floor,
        exclude_border=True,
        indices=indices,
        num_peaks=num_peaks,
        p_norm=p_norm,
    )


def hog(
    image,
    orientations=9,
    pixels_per_cell=(8, 8),
    cells_per_block=(3, 3),
    block_norm="L2-Hys",
    visualize=False,
    transform_sqrt=False,
    feature_vector=True,
    *,
    channel_axis=None,
    cluster: Cluster | None = None,
):
    """The HOG descriptor, as ``skimage.feature.hog`` (L2-Hys, grey images), on shares."""
    if block_norm != "L2-Hys" or visualize or transform_sqrt or channel_axis is not None:
        raise UnsupportedError("the private hog supports block_norm='L2-Hys' on a grey image, without visualize")
    grey = _grey(image)
    parties, scheme = scheme_of(cluster)
    program = features.hog_program(*grey.shape, parties, scheme, orientations, pixels_per_cell, cells_per_block)
    descriptor = run(program, grey, cluster, features.HOG_SCALE)["descriptor"]
    if feature_vector:
        return descriptor
    (cr, cc), (br, bc) = pixels_per_cell, cells_per_block
    shape = (grey.shape[0] // cr - br + 1, grey.shape[1] // cc - bc + 1, br, bc, orientations)
    return descriptor.reshape(shape)
