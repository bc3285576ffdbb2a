"""The OpenFHE backend (safelight.tasks.openfhe_filter) against plaintext scipy filtering.

The encrypted cases need the ``openfhe`` wheel, which imports only on CPython 3.10:
they skip cleanly elsewhere (``.ci/run`` runs them in a Python 3.10 virtual
environment when the machine has one). The packing geometry, the input checks and the
"openfhe missing" error run everywhere.
"""

import sys

import numpy as np
import pytest
from skimage import data

from safelight.errors import InputError, UnsupportedError
from safelight.program.ops import PADDING_MODES
from safelight.tasks import filter as private_filter
from safelight.tasks import openfhe_filter as he
from safelight.tasks.kernels import correlation_kernel

GREY = 1 / 255


@pytest.fixture(scope="module")
def ofhe():
    return pytest.importorskip(
        "openfhe",
        reason="openfhe imports only on the CPython versions its wheels are "
        "built for (3.10); .ci/run runs these tests in a 3.10 venv",
    )


def assert_matches_plaintext(result, image, kernel, padding="reflect"):
    plain = private_filter.plaintext(image, kernel, padding)
    assert result.values.shape == plain.shape == np.asarray(image).shape
    assert result.values.dtype == np.float64 and result.image.dtype == np.uint8
    assert np.abs(result.values - plain).max() <= 0.05 * GREY  # CKKS error: ~1e-4 grey levels
    assert np.abs(result.image.astype(int) - private_filter.to_image(plain, kernel)).max() <= 1


# ---------------------------------------------------------------- encrypted (openfhe imports)


@pytest.mark.parametrize(
    "kernel", ["sobel-x", "gaussian:0.8", "box:3", "sharpen", "box:4", np.array([[0.5, -1.0], [0.25, 0.75]])]
)
def test_grey_photo_equals_plaintext(ofhe, kernel):
    image = data.camera()[180:228, 200:264]
    assert_matches_plaintext(he.filter_image(image, kernel), image, kernel)


def test_colour_photo_equals_plaintext(ofhe):
    image = data.astronaut()[60:100, 150:198]
    for kernel in ("box:5", "sobel-y"):
        assert_matches_plaintext(he.filter_image(image, kernel), image, kernel)


@pytest.mark.parametrize("padding", sorted(PADDING_MODES))
def test_every_padding_mode(ofhe, padding):
    image = data.coffee()[100:130, 200:236, 1]
    assert_matches_plaintext(he.filter_image(image, "gaussian:0.6", padding=padding), image, "gaussian:0.6", padding)


def test_custom_7x7_kernel_on_float_image_with_column_tiles(ofhe):
    rng = np.random.default_rng(7)
    kernel = rng.normal(size=(7, 7))
    camera = data.camera().astype(np.float64) / 255
    image = np.hstack([camera[:9], camera[9:18, :88]])  # 600 + 6 columns: more than 4096 slots / 7 rows
    result = he.filter_image(image, kernel, ring_dim=8192)
    assert result.params["tile"][1] < image.shape[1]
    assert_matches_plaintext(result, image, kernel)


def test_result_reports_parameters_timings_and_bytes(ofhe):
    image = data.camera()[:64, :64]
    result = he.filter_image(image, "sobel-x", ring_dim=16384)
    p = result.params
    assert (p["ring_dim"], p["slots"], p["multiplicative_depth"]) == (16384, 8192, 1)
    assert p["security"] == "HEStd_128_classic"
    assert p["smallest_secure_ring_dim"] == 8192 and p["ciphertexts"] == 1
    assert p["rotations"] == [2, 66, 132]  # sobel-x's middle column is zero: no rotation by 1
    assert set(result.seconds) == {"keygen", "encrypt", "evaluate", "decrypt"}
    # one fresh ciphertext (2 polynomials x 2 RNS limbs x 8 bytes a coefficient) up, one limb down
    assert 2 * 2 * 16384 * 8 < result.ciphertext_bytes["upload"] < 1.01 * 2 * 2 * 16384 * 8
    assert 2 * 16384 * 8 < result.ciphertext_bytes["download"] < 1.01 * 2 * 16384 * 8
    assert result.key_bytes["rotation_keys"] > 3 * result.ciphertext_bytes["upload"]


def test_server_runs_on_bytes_alone(ofhe):
    """The server step is a pure function of public bytes and the public kernel."""
    image = data.camera()[300:320, 100:130]
    result = he.filter_image(image, "box:3")
    assert_matches_plaintext(result, image, "box:3")
    fields = {f for f in he.ServerRequest.__dataclass_fields__}
    assert fields == {"context", "rotation_keys", "ciphertexts", "kernel", "stride"}


# ---------------------------------------------------------------- everywhere


def _server_model(vectors, corr, stride):
    """What evaluate() computes, on plaintext slot vectors: sum_ab K[a, b] rot(x, a * stride + b)."""
    out = np.zeros_like(vectors)
    for a in range(corr.shape[0]):
        for b in range(corr.shape[1]):
            out += corr[a, b] * np.roll(vectors, -(a * stride + b), axis=1)
    return out


@pytest.mark.parametrize(
    "shape,kernel,slots",
    [
        ((40, 50), "sobel-x", 4096),
        ((40, 50, 3), "box:5", 512),
        ((13, 70), "gaussian:0.8", 256),
        ((9, 9, 3), np.ones((2, 3)), 64),
        ((30, 31), "sharpen", 1 << 15),
    ],
)
def test_packing_geometry_gives_the_valid_correlation(shape, kernel, slots):
    rng = np.random.default_rng(1)
    image = rng.random(shape)
    corr = correlation_kernel(private_filter.kernel_from(kernel))
    kh, kw = corr.shape
    planes = image[None] if image.ndim == 2 else np.moveaxis(image, 2, 0)
    tiling = he.Tiling.plan(*planes.shape, kh, kw, slots)
    assert (tiling.tile_rows + kh - 1) * tiling.stride <= slots
    padded = np.pad(planes, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)), mode="symmetric")
    vectors = tiling.pack(padded.reshape(-1, padded.shape[2]))
    out = tiling.unpack(_server_model(vectors, corr, tiling.stride))
    out = out[0] if image.ndim == 2 else np.moveaxis(out, 0, 2)
    np.testing.assert_allclose(out, private_filter.plaintext(image, kernel), atol=1e-12)


@pytest.mark.parametrize(
    "image,kernel,kwargs,match",
    [
        (np.zeros(10), "box:3", {}, "H x W"),
        (np.zeros((4, 4, 3, 2)), "box:3", {}, "H x W"),
        (np.full((8, 8), np.nan), "box:3", {}, "NaN"),
        (np.zeros((8, 8), np.int32), "box:3", {}, "dtype"),
        (np.zeros((8, 8)), "blur:3", {}, "unknown kernel"),
        (np.zeros((8, 8)), np.ones(3), {}, "2-D array"),
        (np.zeros((8, 8)), "box:3", {"padding": "wrap"}, "padding"),
        (np.zeros((3, 3)), "box:9", {}, "too large"),
        (np.zeros((8, 8)), "box:3", {"ring_dim": 4096}, "ring_dim"),
        (np.zeros((8, 8)), "box:3", {"scaling_bits": 50, "first_mod_bits": 45}, "scaling_bits"),
        (np.ones((8, 8)), np.full((3, 3), 1e4), {}, "magnitude"),
    ],
)
def test_bad_input_is_an_input_error(image, kernel, kwargs, match):
    with pytest.raises(InputError, match=match):
        he.filter_image(image, kernel, **kwargs)


def test_missing_openfhe_says_which_python_and_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openfhe", None)  # any import of openfhe now fails
    assert not he.available()
    with pytest.raises(UnsupportedError) as err:
        he.filter_image(data.camera()[:16, :16], "box:3")
    message = str(err.value)
    assert "3.10" in message and 'pip install "safelight[openfhe]"' in message
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}" in message


def test_wheel_for_another_python_is_named(monkeypatch, tmp_path):
    """An installed wheel without this interpreter's extension: the message names the one it has."""
    package = tmp_path / "openfhe"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('simulated: no extension for this Python')\n")
    (package / "openfhe.cpython-310-x86_64-linux-gnu.so").write_bytes(b"")
    (package / "openfhe.cpython-312-x86_64-linux-gnu.so").write_bytes(b"")
    monkeypatch.delitem(sys.modules, "openfhe", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnsupportedError, match=r"extension for CPython 3\.10, 3\.12 only") as err:
        he.require_openfhe()
    assert "simulated" in str(err.value)
    monkeypatch.delitem(sys.modules, "openfhe", raising=False)  # forget the fake before monkeypatch restores
