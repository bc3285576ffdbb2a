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
