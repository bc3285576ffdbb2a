"""encode/decode: round trips for every accepted input, payload sizes, and what one server sees."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

import safelight
from safelight.errors import InputError
from safelight.sharing import SEED_BYTES, reconstruct

image_shapes = st.one_of(
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.tuples(st.integers(1, 30), st.integers(1, 30), st.sampled_from([1, 3, 4])),
)


@given(hnp.arrays(np.uint8, image_shapes), st.sampled_from([2, 3]))
def test_uint8_images_round_trip_exactly(img, parties):
    enc = safelight.encode(img, parties=parties)
    out = safelight.decode(enc)
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out, img)


@given(
    st.sampled_from([np.float16, np.float32, np.float64]).flatmap(
        lambda dt: hnp.arrays(
            dt,
            hnp.array_shapes(min_dims=1, max_dims=4, max_side=8),
            elements=st.floats(-1000, 1000, width=np.finfo(dt).bits),
        )
    ),
    st.sampled_from([2, 3]),
    st.integers(8, 30),
)
def test_float_tensors_round_trip_within_fixed_point_error(x, parties, f):
    enc = safelight.encode(x, parties=parties, frac_bits=f)
    out = safelight.decode(enc)
    assert out.dtype == x.dtype and out.shape == x.shape
    exact = safelight.decode(enc, dtype=np.float64)
    assert np.all(np.abs(exact - x.astype(np.float64)) <= 2.0 ** -(f + 1))
    # values on the fixed-point grid come back exactly
    grid = np.round(x.astype(np.float64) * 2**f) / 2**f
    np.testing.assert_array_equal(safelight.decode(safelight.encode(grid, parties, f), np.float64), grid)


@pytest.mark.parametrize("parties", [2, 3])
def test_upload_is_one_image_plus_seeds(parties):
    img = np.zeros((64, 48, 3), dtype=np.uint8)
    enc = safelight.encode(img, parties=parties)
    assert [p.party for p in enc.payloads] == list(range(parties))
    assert all(p.seed is not None and len(p.seed) == SEED_BYTES and p.share is None for p in enc.payloads[:-1])
    last = enc.payloads[-1]
    assert last.seed is None and last.share.dtype == np.uint64 and last.share.shape == img.shape
    assert enc.upload_bytes == img.size * 8 + (parties - 1) * SEED_BYTES


def test_payload_repr_never_shows_secrets():
    enc = safelight.encode(np.full((4, 4), 7, np.uint8))
    text = repr(enc)
    assert enc.payloads[0].seed.hex() not in text
    assert str(int(enc.payloads[1].share[0, 0])) not in text


def byte_histogram(share: np.ndarray) -> np.ndarray:
    return np.bincount(share.view(np.uint8).reshape(-1), minlength=256)


@pytest.mark.parametrize("parties", [2, 3])
def test_single_server_view_is_independent_of_the_image(parties):
    """Chi-square: each server's share bytes are uniform and have the same distribution for a
    black and a white/textured image (a leak of the image would show as a skewed histogram)."""
    from skimage import data

    black = np.zeros((256, 256, 3), dtype=np.uint8)
    photo = data.astronaut()[:256, :256]
    views = {}
    for name, img in (("black", black), ("photo", photo)):
        enc = safelight.encode(img, parties=parties)
        views[name] = [p.materialize() for p in enc.payloads]
    for party in range(parties):
        h_black, h_photo = byte_histogram(views["black"][party]), byte_histogram(views["photo"][party])
        for h in (h_black, h_photo):
            assert stats.chisquare(h).pvalue > 1e-4, f"party {party} share bytes are not uniform"
        table = np.stack([h_black, h_photo])
        assert stats.chi2_contingency(table).pvalue > 1e-4, f"party {party} view depends on the image"
        # and per byte position within the 8-byte word (the low bytes carry the pixel bits)
        for pos in range(8):
            col = [
                np.bincount(views[k][party].view(np.uint8).reshape(-1, 8)[:, pos], minlength=256)
                for k in ("black", "photo")
            ]
            assert stats.chi2_contingency(np.stack(col)).pvalue > 1e-5


def test_seeds_are_fresh_for_every_encoding():
    img = np.full((8, 8), 200, np.uint8)
    seeds = {safelight.encode(img).payloads[0].seed for _ in range(20)}
    assert len(seeds) == 20


def test_reconstruct_is_the_sum_of_shares():
    x = np.random.default_rng(0).normal(size=(5, 5))
    enc = safelight.encode(x, parties=3)
    total = reconstruct([p.materialize() for p in enc.payloads])
    from safelight import fixed_point

    np.testing.assert_array_equal(total, fixed_point.encode(x, 16))


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((4, 4), dtype=np.int64), "unsupported dtype"),
        (np.zeros((4, 4), dtype=bool), "unsupported dtype"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "H x W x C"),
        (np.zeros((2, 4, 4, 3), dtype=np.uint8), "H x W x C"),
        (np.zeros((0, 3)), "empty"),
        (np.array([1.0, np.nan]), "NaN"),
        (np.array([1.0, np.inf]), "NaN or infinite"),
        (np.array([1e30]), "out of range"),
        ("not an image", "unsupported dtype"),
    ],
)
def test_bad_input_is_rejected_clearly(bad, match):
    with pytest.raises(InputError, match=match):
        safelight.encode(bad)


def test_bad_party_count():
    with pytest.raises(InputError, match="parties must be 2 or 3"):
        safelight.encode(np.zeros((2, 2)), parties=4)


def test_decode_rejects_other_types():
    with pytest.raises(InputError):
        safelight.decode(np.zeros(3))
