"""safelight.skimage: scikit-image's signatures, computed on shares, returning what
scikit-image returns (issue 16's drop-in)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.feature
import skimage.filters
from skimage import data

import safelight
from safelight import skimage as private
from safelight.errors import UnsupportedError

IMAGE = data.camera()[200:264, 180:260]  # uint8, 64 x 80
GREY = IMAGE / 255.0


@pytest.fixture(scope="module")
def cluster():
    with safelight.Cluster.local(3, scheme="rss3") as c:
        yield c


def test_corner_shi_tomasi(cluster):
    ref = skimage.feature.corner_shi_tomasi(GREY)
    got = private.feature.corner_shi_tomasi(GREY, cluster=cluster)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()


def test_corner_harris_and_corner_peaks(cluster):
    ref = skimage.feature.corner_harris(GREY)
    got = private.feature.corner_harris(GREY, cluster=cluster)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()
    for kwargs in ({"min_distance": 1, "threshold_rel": 0.01}, {"min_distance": 2, "threshold_abs": 0.05}, {}):
        want = skimage.feature.corner_peaks(ref, **kwargs)
        peaks = private.feature.corner_peaks(ref, cluster=cluster, **kwargs)
        if not kwargs:  # no threshold: maxima among flat-area values below the fixed-point step may differ
            strong = 1e-3 * ref.max()
            want, peaks = ([x for x in pts if ref[tuple(x)] > strong] for pts in (want, peaks))
        assert {tuple(x) for x in peaks} == {tuple(x) for x in want}, kwargs
    mask = private.feature.corner_peaks(ref, threshold_rel=0.01, indices=False, cluster=cluster)
    assert mask.dtype == bool and np.array_equal(
        mask, skimage.feature.corner_peaks(ref, threshold_rel=0.01, indices=False)
    )


def test_hog(cluster):
    ref = skimage.feature.hog(GREY)
    got = private.feature.hog(GREY, cluster=cluster)
    err = np.abs(got - ref)
    assert got.shape == ref.shape and (err <= 1e-3).mean() >= 0.99 and err.max() <= 0.02
    blocks = private.feature.hog(GREY, feature_vector=False, cluster=cluster)
    assert blocks.shape == skimage.feature.hog(GREY, feature_vector=False).shape


@pytest.mark.parametrize("mode", ["nearest", "reflect", "constant"])
def test_gaussian_and_sobel(cluster, mode):
    for sigma in (1.0, 2.5):
        ref = skimage.filters.gaussian(IMAGE, sigma=sigma, mode=mode)
        assert np.abs(private.filters.gaussian(IMAGE, sigma=sigma, mode=mode, cluster=cluster) - ref).max() < 1e-4
    for axis in (0, 1):
        ref = skimage.filters.sobel(IMAGE, axis=axis, mode=mode)
        assert np.abs(private.filters.sobel(IMAGE, axis=axis, mode=mode, cluster=cluster) - ref).max() < 1e-4
    ref = skimage.filters.sobel(IMAGE, mode=mode)
    assert np.abs(private.filters.sobel(IMAGE, mode=mode, cluster=cluster) - ref).max() < 2e-3


def test_what_the_private_versions_do_not_do_is_refused():
    with pytest.raises(UnsupportedError, match="eps"):
        private.feature.corner_harris(GREY, method="eps")
    with pytest.raises(UnsupportedError, match="L2-Hys"):
        private.feature.hog(GREY, block_norm="L1")
    with pytest.raises(UnsupportedError, match="mode"):
        private.filters.gaussian(GREY, mode="wrap")
    with pytest.raises(UnsupportedError, match="grey"):
        private.filters.gaussian(np.zeros((8, 8, 3)))
