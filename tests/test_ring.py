"""Ring engine: every ISA path against the scalar reference and against exact integer arithmetic."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kernel_helpers import random_u64, with_isa
from safelight import _core, ring

pytestmark = pytest.mark.kernels

u64_arrays = hnp.arrays(np.uint64, st.integers(0, 300), elements=st.integers(0, 2**64 - 1))
# sizes around vector widths, unroll tails and the threading threshold
SIZES = [0, 1, 7, 8, 9, 63, 64, 65, 1000, (1 << 16) + 3, (1 << 20) + 5]


@pytest.mark.parametrize("n", SIZES)
def test_elementwise_matches_wraparound_and_scalar_reference(isa, n):
    a, b = random_u64(n, 1), random_u64(n, 2)
    s = int(random_u64(1, 3)[0])
    with np.errstate(over="ignore"):
        expected = {
            "add": a + b,
            "sub": a - b,
            "mul": a * b,
            "neg": np.uint64(0) - a,
            "mul_scalar": a * np.uint64(s),
        }
    got = {
        "add": ring.add(a, b),
        "sub": ring.sub(a, b),
        "mul": ring.mul(a, b),
        "neg": ring.neg(a),
        "mul_scalar": ring.mul_scalar(a, s),
    }
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{name} on {isa}")
    ref = with_isa("scalar", lambda: ring.mul(a, b))
    np.testing.assert_array_equal(got["mul"], ref)


@given(u64_arrays, st.integers(0, 2**64 - 1))
def test_ring_ops_property_every_isa(a, s):
    b = a[::-1].copy()
    results = []
    for name in _core.available_isas():
        results.append(
            with_isa(name, lambda: (ring.add(a, b), ring.sub(a, b), ring.mul(a, b), ring.mul_scalar(a, s), ring.neg(a)))
        )
    exact = [
        [(int(x) + int(y)) % 2**64 for x, y in zip(a, b)],
        [(int(x) - int(y)) % 2**64 for x, y in zip(a, b)],
        [(int(x) * int(y)) % 2**64 for x, y in zip(a, b)],
        [(int(x) * s) % 2**64 for x in a],
        [(-int(x)) % 2**64 for x in a],
    ]
    for got in results:
        for g, e in zip(got, exact):
            assert g.tolist() == e


def test_in_place_and_shapes(isa):
    a = random_u64(1000).reshape(10, 100)
    b = random_u64(1000, 5).reshape(10, 100)
    expected = a + b
    ring.add(a, b, out=a)
    np.testing.assert_array_equal(a, expected)


def test_kernels_reject_wrong_dtype_layout_and_size():
    a = np.zeros(10, dtype=np.uint64)
    with pytest.raises(TypeError, match="dtype"):
        _core.ring_add(a.astype(np.int64), a, a)
    with pytest.raises(TypeError, match="contiguous"):
        _core.ring_add(np.zeros(20, dtype=np.uint64)[::2], a, a)
    with pytest.raises(ValueError, match="same number"):
        _core.ring_add(a, np.zeros(11, dtype=np.uint64), a)
    ro = a.copy()
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="writable"):
        _core.ring_add(a, a, ro)


@pytest.mark.parametrize("bits", [0, 1, 16, 32, 63])
def test_shift_right_signed(isa, bits):
    a = random_u64(5000, bits)
    np.testing.assert_array_equal(ring.shift_right_signed(a, bits), (a.view(np.int64) >> bits).view(np.uint64))


def correlate_reference(planes, kernels):
    c, h, w = planes.shape
    _, kh, kw = kernels.shape
    out = np.zeros((c, h - kh + 1, w - kw + 1), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(kh):
            for j in range(kw):
                out += kernels[:, i : i + 1, j : j + 1] * planes[:, i : i + h - kh + 1, j : j + w - kw + 1]
    return out


@pytest.mark.parametrize(
    "shape,k", [((1, 5, 5), (1, 1)), ((3, 17, 33), (3, 3)), ((2, 64, 70), (5, 7)), ((3, 130, 129), (9, 9))]
)
def test_correlate2d_matches_reference(isa, shape, k):
    rng = np.random.default_rng(7)
    planes = rng.integers(0, 2**64, size=shape, dtype=np.uint64)
    kernels = rng.integers(0, 2**64, size=(shape[0], *k), dtype=np.uint64)
    np.testing.assert_array_equal(ring.correlate2d(planes, kernels), correlate_reference(planes, kernels))


def test_correlate2d_rejects_bad_geometry():
    with pytest.raises(ValueError):
        ring.correlate2d(np.zeros((1, 3, 3), np.uint64), np.zeros((1, 4, 4), np.uint64))
    with pytest.raises(ValueError, match="one plane per input channel"):
        ring.correlate2d(np.zeros((2, 8, 8), np.uint64), np.zeros((3, 3, 3), np.uint64))


@pytest.mark.parametrize("n", [0, 1, 9, 1000, (1 << 16) + 3])
@pytest.mark.parametrize("with_f", [True, False])
def test_beaver_combine_matches_separate_ops(isa, n, with_f):
    c, e, b, a, f = (random_u64(n, s) for s in range(5))
    with np.errstate(over="ignore"):
        expected = c + e * (b + f if with_f else b) + a * f
    np.testing.assert_array_equal(ring.beaver_combine(c, e, b, a, f, with_f), expected)
