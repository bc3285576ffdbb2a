import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from safelight import _core, fixed_point
from safelight.errors import EncodingRangeError, InputError

pytestmark = pytest.mark.kernels


def reference_encode(x, f):
    return np.array([int(v) % 2**64 for v in np.rint(x * 2.0**f)], dtype=np.uint64)


@given(hnp.arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e6, 1e6)), st.integers(0, 30))
def test_encode_decode_roundtrip_every_isa(x, f):
    expected = reference_encode(x, f)
    for name in _core.available_isas():
        previous = _core.isa()
        _core.set_isa(name)
        try:
            ring = fixed_point.encode(x, f)
            back = fixed_point.decode(ring, f)
        finally:
            _core.set_isa(previous)
        np.testing.assert_array_equal(ring, expected)
        assert np.all(np.abs(back - x) <= 2.0 ** -(f + 1) + 1e-9 * np.abs(x))


def test_round_to_nearest_and_negative_values():
    x = np.array([0.5, 1.5, -0.5, -1.5, 2.4999, -2.5001, -3.0])
    ring = fixed_point.encode(x, 0)
    assert ring.view(np.int64).tolist() == [0, 2, 0, -2, 2, -3, -3]
    assert fixed_point.decode(ring, 0).tolist() == [0, 2, 0, -2, 2, -3, -3]


def test_signed_twos_complement_interpretation():
    ring = fixed_point.encode(np.array([-1.0]), 16)
    assert int(ring[0]) == 2**64 - 2**16
    assert fixed_point.decode(ring, 16)[0] == -1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 2.0**47, -(2.0**47) - 1])
def test_unencodable_values_raise_with_position(isa, bad):
    x = np.zeros((4, 5))
    x[2, 3] = bad
    with pytest.raises(EncodingRangeError, match=r"index \(2, 3\)"):
        fixed_point.encode(x, 16)


def test_largest_values_encode_without_wrap():
    edge = np.array([2.0**47 - 2.0**-5, -(2.0**47)])
    back = fixed_point.decode(fixed_point.encode(edge, 16), 16)
    np.testing.assert_array_equal(back, edge)


@pytest.mark.parametrize("f", [-1, 63, 1.5])
def test_bad_frac_bits(f):
    with pytest.raises(InputError):
        fixed_point.encode(np.zeros(3), f)


def test_large_arrays_use_threads_and_agree(isa):
    x = np.random.default_rng(1).normal(size=(1 << 20) + 3) * 1000
    np.testing.assert_array_equal(
        fixed_point.encode(x, 20), reference_encode(x[:1000], 20).tolist() + fixed_point.encode(x[1000:], 20).tolist()
    )
