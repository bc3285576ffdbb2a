"""Coefficient packing of convolutions and matrix products (safelight.he.packing) against ring.conv2d."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safelight import ring
from safelight.errors import InputError
from safelight.he.packing import ConvPacking, lower_conv2d, lower_matmul, negacyclic_multiply


def _products(packing, polys_in, polys_kernel):
    """out[s, o] = sum_g in[s, g] * kernel[o, g] with the reference negacyclic product."""
    out = np.zeros((packing.tiles, packing.outputs, packing.n), np.uint64)
    for s in range(packing.tiles):
        for o in range(packing.outputs):
            for g in range(packing.groups):
                out[s, o] += negacyclic_multiply(polys_in[s, g], polys_kernel[o, g])
    return out


def _random(rng, *shape):
    return rng.integers(0, 2**64, size=shape, dtype=np.uint64)


@settings(max_examples=40, deadline=None)
@given(
    c=st.integers(1, 5),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    o=st.integers(1, 3),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    log_n=st.integers(5, 9),
    seed=st.integers(0, 2**32),
)
def test_packed_convolution_equals_conv2d(c, h, w, o, kh, kw, log_n, seed):
    n = 1 << log_n
    if kh > h or kw > w or kh * kw > n:
        with pytest.raises(InputError):
            ConvPacking.choose(c, h, w, o, kh, kw, n)
        return
    rng = np.random.default_rng(seed)
    x, k = _random(rng, c, h, w), _random(rng, o, c, kh, kw)
    p = ConvPacking.choose(c, h, w, o, kh, kw, n)
    assert p.cp * p.ht * p.wt <= n
    got = p.unpack_output(_products(p, p.pack_input(x), p.pack_kernel(k)))
    np.testing.assert_array_equal(got, ring.conv2d(x[None], k)[0])


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, dilation, groups",
    [
        ((2, 4, 9, 9), (6, 2, 3, 3), (2, 2), (1, 1), (1, 1), 2),
        ((1, 3, 8, 8), (2, 3, 3, 3), (1, 1), (1, 1), (2, 2), 1),
        ((1, 3, 8, 8), (2, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
        ((1, 4, 7, 6), (4, 1, 3, 3), (1, 2), (1, 0), (1, 1), 4),
    ],
)
def test_lowered_general_convolutions(x_shape, w_shape, stride, padding, dilation, groups):
    rng = np.random.default_rng(3)
    x, w = _random(rng, *x_shape), _random(rng, *w_shape)
    ref = ring.conv2d(x, w, stride, padding, dilation, groups)
    out = np.zeros_like(ref)
    for part in lower_conv2d(x_shape, w_shape, stride, padding, dilation, groups, n=256):
        p = part.packing
        prod = _products(p, p.pack_input(part.inputs(x)), p.pack_kernel(part.kernel(w)))
        out[part.batch, part.out_channels] = p.unpack_output(prod)
    np.testing.assert_array_equal(out, ref)


def test_matmul_as_one_by_one_convolution():
    rng = np.random.default_rng(4)
    m, k, cols = 5, 40, 3
    a, b = _random(rng, m, k), _random(rng, k, cols)
    p = lower_matmul(m, k, cols, 64)
    prod = _products(p, p.pack_input(a.T.reshape(k, 1, m)), p.pack_kernel(b.T.reshape(cols, k, 1, 1)))
    np.testing.assert_array_equal(p.unpack_output(prod).reshape(cols, m).T, ring.matmul(a, b))


def test_packing_of_the_benchmark_layer_is_dense():
    """64 -> 64 channels, 3x3, 128x128: few products per output channel."""
    p = ConvPacking.choose(64, 130, 130, 64, 3, 3, 8192)
    assert p.tiles * p.groups <= 160
    assert p.cp * p.ht * p.wt <= 8192


def test_shape_mismatch_is_a_clear_error():
    p = ConvPacking.choose(2, 6, 6, 1, 3, 3, 64)
    with pytest.raises(InputError, match="does not match"):
        p.pack_input(np.zeros((3, 6, 6), np.uint64))
    with pytest.raises(InputError, match="does not match"):
        p.pack_kernel(np.zeros((1, 2, 5, 5), np.uint64))
