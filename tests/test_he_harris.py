"""Harris responses on ONE server over BFV ciphertexts (issue 16, ``--scheme he``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data
from skimage.feature import corner_harris, corner_peaks

from safelight import cli
from safelight.errors import InputError
from safelight.tasks import features, he_harris


def _reference(image, k=0.05, sigma=1.0):
    levels = np.round(features.as_grey(image) * 255) / 255  # what the HE path encrypts: 8-bit levels
    return corner_harris(levels, method="k", k=k, sigma=sigma)


@pytest.mark.parametrize(
    "image", [data.camera()[100:200, 150:250], data.astronaut()[:60, :130]], ids=["camera", "astronaut-colour"]
)
def test_the_encrypted_response_is_scikit_images(image):
    result = features.harris(image, scheme="he")
    ref = _reference(image)
    got = result.extras["response_map"]
    assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()
    peaks = corner_peaks(ref, min_distance=1, threshold_rel=0.01)
    assert {tuple(p) for p in result.outputs} == {tuple(p) for p in peaks}
    assert result.extras["noise_budget_bits"] >= 10  # decryption was exact, with room to spare
    assert result.report.parties[0].bytes_sent > 0


def test_options_k_and_sigma():
    image = data.camera()[200:260, 200:300]
    result = features.harris(image, scheme="he", k=0.1, sigma=1.5, min_distance=2, threshold_rel=0.05)
    ref = _reference(image, k=0.1, sigma=1.5)
    peaks = corner_peaks(ref, min_distance=2, threshold_rel=0.05)
    assert {tuple(p) for p in result.outputs} == {tuple(p) for p in peaks}
    # the window's weights are integers over 2^12 (the plaintext moduli hold no more): at
    # sigma 1 responses stay within 1e-3 (above); a wider window's small taps lose more
    assert np.all(np.abs(result.extras["responses"] - ref[tuple(peaks.T)]) <= 2e-3 * np.abs(ref[tuple(peaks.T)]))
    assert np.abs(result.extras["response_map"] - ref).max() <= 2e-3 * np.abs(ref).max()


@settings(max_examples=20, deadline=None)
@given(st.integers(3, 300), st.integers(3, 300), st.integers(1, 13))
def test_tiles_pack_and_unpack_every_pixel(height, width, halo):
    tiles = he_harris.Tiles(height, width, halo)
    image = np.arange(height * width, dtype=np.int64).reshape(height, width) + 1
    slots = tiles.pack(image)
    assert slots.shape == (tiles.ciphertexts, he_harris.RING_DEGREE)
    assert np.array_equal(tiles.unpack(slots), image)
    assert tiles.inside().sum() >= image.size  # cores plus the halos that overlap the image


@settings(max_examples=50, deadline=None)
@given(st.integers(-(2**94), 2**94))
def test_residues_join_to_the_signed_integer(value):
    moduli = [int(t) for t in (he_harris.he_params()[0].t, he_harris.he_params()[1].t)]
    residues = [np.array([value % t], dtype=np.uint64) for t in moduli]
    assert he_harris._join(residues, moduli)[0] == float(value)


def test_bad_options_give_one_clear_error(tmp_path, capsys):
    with pytest.raises(InputError, match="k = a / b"):
        he_harris.response(np.zeros((20, 20)), k=0.0123456)
    with pytest.raises(InputError, match="sigma"):
        he_harris.response(np.zeros((20, 20)), sigma=5.0)
    with pytest.raises(InputError, match="too small"):
        he_harris.response(np.zeros((2, 20)))
    with pytest.raises(InputError, match="unknown scheme"):
        features.harris(np.zeros((20, 20)), scheme="ckks")
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(np.zeros((20, 20), dtype=np.uint8)).save(photo)
    assert cli.main(["features", "sift", str(photo), "--scheme", "he"]) == 2
    assert "ONE server" in capsys.readouterr().err
