"""The private filtering task equals plaintext scipy filtering on real photographs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

from safelight.errors import InputError
from safelight.tasks import filter as private_filter

GREY = 1 / 255


@pytest.mark.parametrize("image_name", ["astronaut", "coffee", "camera", "chelsea"])
@pytest.mark.parametrize("kernel", ["gaussian:1.5", "box:4", "sharpen", "sobel-x"])
def test_private_filter_equals_scipy_on_real_photographs(cluster2, image_name, kernel):
    image = getattr(data, image_name)()[:200, :256]
    result = private_filter.run(image, kernel, cluster2)
    plain = private_filter.plaintext(image, kernel)
    assert result.values.shape == plain.shape
    assert np.abs(result.values - plain).max() <= GREY
    np.testing.assert_allclose(result.image, private_filter.to_image(plain, kernel), atol=1)


@pytest.mark.parametrize("padding", ["zero", "reflect", "mirror", "nearest"])
def test_every_padding_mode(cluster2, padding):
    image = data.camera()[100:164, 200:300]
    result = private_filter.run(image, "gaussian:2", cluster2, padding=padding)
    assert np.abs(result.values - private_filter.plaintext(image, "gaussian:2", padding)).max() <= GREY


@pytest.mark.slow
def test_full_size_colour_photo(cluster2):
    image = data.astronaut()
    result = private_filter.run(image, "gaussian:3", cluster2)
    assert np.abs(result.values - private_filter.plaintext(image, "gaussian:3")).max() <= GREY
    assert result.job.upload_bytes >= image.size * 8


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_random_kernels_and_sizes(cluster2, kh, kw, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(int(rng.integers(kh, 40)), int(rng.integers(kw, 40)), 3), dtype=np.uint8)
    kernel = rng.normal(size=(kh, kw)) / (kh * kw)
    result = private_filter.run(image, kernel, cluster2, padding="nearest")
    assert np.abs(result.values - private_filter.plaintext(image, kernel, "nearest")).max() <= GREY


@pytest.mark.parametrize("spec", ["gauss:2", "gaussian:abc", "gaussian:0", "box:0", "box:2.5", "sharpen:3", ""])
def test_unknown_or_bad_kernels(spec):
    with pytest.raises(InputError):
        private_filter.parse_kernel(spec)


def test_gaussian_kernel_matches_scipy_gaussian_filter():
    from scipy import ndimage

    image = data.camera()[:100, :100] / 255.0
    ours = ndimage.convolve(image, private_filter.gaussian_kernel(2.0), mode="reflect")
    np.testing.assert_allclose(ours, ndimage.gaussian_filter(image, 2.0, mode="reflect"), atol=1e-12)


@pytest.fixture(scope="module")
def cluster_with_dealer():
    from safelight import Cluster

    with Cluster.local(2, dealer=True, timeout=10) as c:
        yield c


@pytest.mark.parametrize("kernel", ["gaussian:1", "box:4", "sobel-y"])
@pytest.mark.parametrize("padding", ["reflect", "zero"])
def test_private_kernel_equals_scipy(cluster_with_dealer, kernel, padding):
    image = data.coffee()[:96, :128]
    result = private_filter.run(image, kernel, cluster_with_dealer, padding=padding, private_kernel=True)
    assert np.abs(result.values - private_filter.plaintext(image, kernel, padding)).max() <= GREY
    assert result.job.triples == "dealer" and result.job.ops()["conv2d"]["rounds"] == 1


def test_private_kernel_grey_image(cluster_with_dealer):
    image = data.camera()[::4, ::4]
    result = private_filter.run(image, "sharpen", cluster_with_dealer, private_kernel=True)
    assert np.abs(result.values - private_filter.plaintext(image, "sharpen")).max() <= GREY


def test_private_kernel_refuses_to_run_without_a_dealer(cluster2):
    from safelight.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="dealer"):
        private_filter.run(data.camera()[:32, :32], "box:3", cluster2, private_kernel=True)
