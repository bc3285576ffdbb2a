"""GEMM engine: ring_matmul and ring_conv2d on every ISA path against exact references.

numpy's integer matmul/einsum wrap modulo 2^64 exactly like the ring, so they serve as the
reference for small problems; a few cases are also checked with Python integers. Shapes
straddle the micro-tile sizes (AVX-512: 8 x 24, AVX2: 2 x 8), the cache blocks
(mc/kc/nc of 192/256/2016 and 128/256/2048), the few-rows and few-columns paths
(m <= 8 / 3, n <= 8 / 4) and the threading threshold.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel_helpers import random_u64, with_isa
from safelight import _core

pytestmark = pytest.mark.kernels

U64_MAX = 2**64 - 1


def matmul(a, b, out=None, accumulate=False):
    if out is None:
        out = np.full((a.shape[0], b.shape[1]), 0xDEADBEEF, dtype=np.uint64)
    result = _core.ring_matmul(a, b, out, accumulate=accumulate)
    assert result is out
    return out


# ---------------------------------------------------------------------------------------------
# ring_matmul
# ---------------------------------------------------------------------------------------------

MATMUL_SHAPES = [
    (1, 1, 1),
    (1, 7, 1),
    (2, 3, 5),
    (7, 5, 3),
    (3, 1, 17),
    (1, 300, 1),
    (8, 24, 24),
    (9, 25, 23),
    (7, 23, 25),
    (16, 17, 48),
    (24, 8, 8),
    (2, 8, 8),
    (3, 9, 7),
    (33, 300, 50),
    (100, 257, 97),
    # k around the k block (256) and its even split
    (9, 255, 25),
    (9, 256, 25),
    (9, 257, 25),
    (5, 511, 9),
    (5, 513, 9),
    # m around the m blocks (192 AVX-512, 128 AVX2)
    (127, 20, 9),
    (128, 20, 9),
    (129, 20, 9),
    (191, 20, 26),
    (192, 20, 26),
    (193, 20, 26),
    # n around the n blocks (2016 AVX-512, 2048 AVX2)
    (3, 5, 2015),
    (3, 5, 2016),
    (3, 5, 2017),
    (2, 4, 2047),
    (2, 4, 2048),
    (2, 4, 2049),
    # threaded: split over columns, then over rows
    (200, 513, 300),
    (600, 64, 100),
    (64, 576, 1000),
    # several n blocks per thread and several m blocks sharing packed B panels
    (200, 40, 4100),
    # few rows (B streamed in place; 128-column blocks, 8 rows of k per pass)
    (1, 1000, 300),
    (2, 1025, 130),
    (3, 33, 257),
    (4, 7, 129),
    (5, 17, 1000),
    (8, 9, 129),
    (8, 2048, 1500),
    (9, 100, 200),
    (12, 64, 64),
    # few columns (dot products against a transposed B)
    (100, 1000, 1),
    (513, 37, 4),
    (33, 9, 8),
    (1000, 300, 5),
    (31, 3, 9),
    (4096, 1024, 2),
    (17, 1, 3),
    (3, 2, 3),
]


@pytest.mark.parametrize("m,k,n", MATMUL_SHAPES)
def test_matmul_matches_numpy_and_scalar(isa, m, k, n):
    a, b = random_u64((m, k), 1), random_u64((k, n), 2)
    got = matmul(a, b)
    np.testing.assert_array_equal(got, a @ b, err_msg=f"{m}x{k}x{n} on {isa}")
    ref = with_isa("scalar", lambda: matmul(a, b))
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (9, 300, 25), (130, 40, 70), (200, 513, 300)])
def test_matmul_accumulate(isa, m, k, n):
    a, b = random_u64((m, k), 3), random_u64((k, n), 4)
    init = random_u64((m, n), 5)
    out = init.copy()
    matmul(a, b, out, accumulate=True)
    np.testing.assert_array_equal(out, init + a @ b)
    # accumulate=False overwrites whatever was there
    matmul(a, b, out, accumulate=False)
    np.testing.assert_array_equal(out, a @ b)


@pytest.mark.parametrize("m,n", [(1, 1), (5, 7), (50, 60), (300, 400)])
def test_matmul_k_zero(isa, m, n):
    a = np.empty((m, 0), dtype=np.uint64)
    b = np.empty((0, n), dtype=np.uint64)
    init = random_u64((m, n), 6)
    out = init.copy()
    matmul(a, b, out)
    assert not out.any()
    out = init.copy()
    matmul(a, b, out, accumulate=True)
    np.testing.assert_array_equal(out, init)


@pytest.mark.parametrize("m,k,n", [(0, 3, 4), (3, 4, 0), (0, 0, 0), (0, 5, 0)])
def test_matmul_empty_output(isa, m, k, n):
    a, b = random_u64((m, k), 7), random_u64((k, n), 8)
    out = np.empty((m, n), dtype=np.uint64)
    assert matmul(a, b, out).shape == (m, n)


def test_matmul_exact_python_ints(isa):
    rng = np.random.default_rng(9)
    m, k, n = 5, 37, 29
    a = rng.integers(0, 2**64, size=(m, k), dtype=np.uint64)
    b = rng.integers(0, 2**64, size=(k, n), dtype=np.uint64)
    a[0, :] = U64_MAX  # -1 in two's complement
    b[:, 0] = U64_MAX
    got = matmul(a, b)
    al, bl = a.tolist(), b.tolist()
    for i in range(m):
        for j in range(n):
            assert int(got[i, j]) == sum(al[i][p] * bl[p][j] for p in range(k)) % 2**64
    assert int(got[0, 0]) == k % 2**64  # (-1)(-1) summed k times


def test_matmul_signed_fixed_point_semantics(isa):
    # Shares of signed fixed-point values: the ring product equals the signed product.
    rng = np.random.default_rng(10)
    a = rng.integers(-(2**20), 2**20, size=(13, 31)).astype(np.int64)
    b = rng.integers(-(2**20), 2**20, size=(31, 11)).astype(np.int64)
    got = matmul(a.view(np.uint64), b.view(np.uint64)).view(np.int64)
    np.testing.assert_array_equal(got, a @ b)


@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40), st.booleans(), st.integers(0, 2**32 - 1))
def test_matmul_property_every_isa(m, k, n, accumulate, seed):
    a, b = random_u64((m, k), seed), random_u64((k, n), seed + 1)
    init = random_u64((m, n), seed + 2)
    expected = (init if accumulate else np.zeros_like(init)) + a @ b
    for name in _core.available_isas():
        out = init.copy()
        with_isa(name, lambda: _core.ring_matmul(a, b, out, accumulate=accumulate))
        np.testing.assert_array_equal(out, expected, err_msg=name)


def test_matmul_large_threaded_every_isa():
    a, b = random_u64((257, 1000), 11), random_u64((1000, 530), 12)
    expected = a @ b
    for name in _core.available_isas():
        out = with_isa(name, lambda: matmul(a, b))
        np.testing.assert_array_equal(out, expected, err_msg=name)


def test_matmul_bad_arguments():
    a, b = random_u64((4, 5)), random_u64((5, 6))
    out = np.empty((4, 6), dtype=np.uint64)
    with pytest.raises(TypeError, match="dtype"):
        _core.ring_matmul(a.astype(np.int64), b, out)
    with pytest.raises(TypeError, match="dtype"):
        _core.ring_matmul(a, b.astype(np.float64), out)
    with pytest.raises(TypeError, match="dtype"):
        _core.ring_matmul(a, b, out.astype(np.uint32))
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.ring_matmul(np.asfortranarray(a), b, out)
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.ring_matmul(random_u64((4, 10))[:, ::2], b, out)
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.ring_matmul(a, b, np.empty((6, 4), dtype=np.uint64).T)
    readonly = out.copy()
    readonly.flags.writeable = False
    with pytest.raises(TypeError, match="writable"):
        _core.ring_matmul(a, b, readonly)
    with pytest.raises(ValueError, match="2-D"):
        _core.ring_matmul(a.ravel(), b, out)
    with pytest.raises(ValueError, match="2-D"):
        _core.ring_matmul(a, b, out[None])
    with pytest.raises(ValueError, match="inner dimensions"):
        _core.ring_matmul(a, random_u64((4, 6)), out)
    with pytest.raises(ValueError, match=r"out must have shape \(4, 6\)"):
        _core.ring_matmul(a, b, np.empty((4, 7), dtype=np.uint64))
    with pytest.raises(TypeError):
        _core.ring_matmul(a.tolist(), b, out)
    square = random_u64((5, 5))
    with pytest.raises(ValueError, match="share memory"):
        _core.ring_matmul(square, random_u64((5, 5)), square)
    raw = np.zeros(8 * 20 + 1, dtype=np.uint8)
    misaligned = np.frombuffer(raw.data, dtype=np.uint64, count=20, offset=1).reshape(4, 5)
    with pytest.raises(TypeError, match="aligned"):
        _core.ring_matmul(misaligned, b, out)


# ---------------------------------------------------------------------------------------------
# ring_conv2d
# ---------------------------------------------------------------------------------------------


def pair(v):
    if isinstance(v, (list, tuple)):
        return tuple(int(e) for e in v)
    return (int(v), int(v))


def conv_out_size(h, w, kh, kw, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


def conv_reference(x, w, stride=1, padding=0, dilation=1, groups=1):
    """Exact cross-correlation mod 2^64: one wrap-around einsum per kernel tap."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ho, wo = conv_out_size(h, wd, kh, kw, stride, padding, dilation)
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=np.uint64)
    xp[:, :, ph : ph + h, pw : pw + wd] = x
    out = np.zeros((n, o, ho, wo), dtype=np.uint64)
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg : (g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
                out[:, g * og : (g + 1) * og] += np.einsum("oc,nchw->nohw", w[g * og : (g + 1) * og, :, i, j], patch)
    return out


def conv(x, w, out=None, accumulate=False, **kw):
    if out is None:
        o, _, kh, kwd = w.shape
        ho, wo = conv_out_size(
            x.shape[2], x.shape[3], kh, kwd, kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1)
        )
        out = np.full((x.shape[0], o, ho, wo), 0xDEADBEEF, dtype=np.uint64)
    result = _core.ring_conv2d(x, w, out, accumulate=accumulate, **kw)
    assert result is out
    return out


# (N, C, H, W, O, kh, kw, options)
CONV_CASES = [
    (1, 1, 1, 1, 1, 1, 1, {}),
    (1, 3, 5, 5, 2, 1, 1, {}),
    (2, 3, 7, 6, 4, 3, 3, {}),
    (1, 4, 8, 8, 8, 3, 3, {"padding": (1, 1)}),
    (2, 5, 9, 11, 7, 3, 3, {"padding": 1, "stride": 2}),
    (1, 3, 12, 10, 9, 5, 5, {"padding": (2, 2)}),
    (1, 2, 13, 13, 3, 5, 5, {"stride": (2, 3), "padding": (1, 2)}),
    (1, 3, 11, 12, 5, 3, 3, {"dilation": (2, 2), "padding": 2}),
    (1, 2, 10, 14, 3, 3, 2, {"dilation": (1, 3), "stride": (1, 2)}),
    (1, 2, 6, 7, 4, 3, 1, {"padding": (1, 0)}),
    (2, 3, 5, 5, 2, 3, 3, {"padding": 3}),  # padding wider than the kernel
    (1, 2, 3, 3, 2, 3, 3, {"padding": 0}),  # 1x1 output
    (1, 1, 2, 9, 1, 1, 4, {"padding": (0, 2), "stride": (1, 4)}),
    # groups: thin, medium, depthwise, depthwise with multiplier
    (1, 4, 8, 8, 4, 3, 3, {"groups": 2, "padding": 1}),
    (2, 8, 7, 9, 16, 3, 3, {"groups": 2, "padding": 1}),
    (1, 6, 9, 9, 12, 3, 3, {"groups": 3, "stride": 2}),
    (2, 6, 10, 9, 6, 3, 3, {"groups": 6, "padding": 1}),
    (1, 5, 9, 8, 10, 3, 3, {"groups": 5, "padding": 1, "stride": 2}),
    (1, 4, 11, 11, 4, 5, 5, {"groups": 4, "padding": 2, "dilation": 2}),
    (1, 8, 6, 6, 32, 1, 1, {"groups": 8}),
    # output planes around the 24- and 8-wide panels, rows wrapping inside a panel
    (1, 3, 5, 5, 9, 1, 1, {}),
    (1, 3, 6, 4, 9, 1, 1, {}),
    (1, 3, 7, 7, 9, 3, 3, {"padding": 1}),
    (1, 3, 5, 30, 9, 3, 3, {"padding": 1}),
    # larger: threaded, several k blocks, GEMM tiles over many panels
    (1, 16, 20, 20, 32, 3, 3, {"padding": 1}),
    (2, 32, 12, 12, 24, 3, 3, {"padding": 1}),
    (3, 8, 15, 17, 16, 3, 3, {"padding": 1, "stride": 1}),
    (1, 64, 9, 9, 8, 3, 3, {}),
    (1, 4, 6, 7, 200, 3, 3, {"padding": 1}),  # more output channels than one m block
    (2, 16, 16, 16, 16, 3, 3, {"groups": 16, "padding": 1}),
    # threaded, with thread ranges crossing image and group boundaries
    (3, 16, 20, 20, 32, 3, 3, {"groups": 2, "padding": 1}),
    (2, 64, 64, 64, 64, 3, 3, {"groups": 64, "padding": 1}),
    (2, 8, 33, 35, 12, 5, 5, {"padding": 2, "stride": 2, "groups": 2}),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[:7]}{c[7]}".replace(" ", ""))
def test_conv2d_matches_reference_and_scalar(isa, case):
    n, c, h, w, o, kh, kw, opts = case
    groups = opts.get("groups", 1)
    x = random_u64((n, c, h, w), 21)
    wt = random_u64((o, c // groups, kh, kw), 22)
    got = conv(x, wt, **opts)
    np.testing.assert_array_equal(got, conv_reference(x, wt, **opts), err_msg=f"{case} on {isa}")
    ref = with_isa("scalar", lambda: conv(x, wt, **opts))
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_conv2d_accumulate(isa, groups):
    x = random_u64((2, 4, 9, 10), 23)
    wt = random_u64((8, 4 // groups, 3, 3), 24)
    expected = conv_reference(x, wt, padding=1, groups=groups)
    init = random_u64(expected.shape, 25)
    out = init.copy()
    conv(x, wt, out, accumulate=True, padding=1, groups=groups)
    np.testing.assert_array_equal(out, init + expected)
    conv(x, wt, out, padding=1, groups=groups)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("o", [3, 8])  # direct loops and GEMM
def test_conv2d_zero_input_channels(isa, o):
    x = np.empty((1, 0, 5, 5), dtype=np.uint64)
    wt = np.empty((o, 0, 3, 3), dtype=np.uint64)
    init = random_u64((1, o, 3, 3), 26)
    out = init.copy()
    conv(x, wt, out)
    assert not out.any()
    out = init.copy()
    conv(x, wt, out, accumulate=True)
    np.testing.assert_array_equal(out, init)


def test_conv2d_empty_batch(isa):
    x = np.empty((0, 3, 5, 5), dtype=np.uint64)
    wt = random_u64((2, 3, 3, 3))
    assert conv(x, wt).shape == (0, 2, 3, 3)


def test_conv2d_exact_python_ints(isa):
    x = random_u64((1, 2, 4, 5), 27)
    wt = random_u64((3, 2, 2, 3), 28)
    got = conv(x, wt, padding=(1, 0), stride=(2, 1))
    xl, wl = x.tolist(), wt.tolist()
    for o in range(3):
        for oy in range(got.shape[2]):
            for ox in range(got.shape[3]):
                total = 0
                for c in range(2):
                    for i in range(2):
                        for j in range(3):
                            iy, ix = oy * 2 + i - 1, ox + j
                            if 0 <= iy < 4 and 0 <= ix < 5:
                                total += wl[o][c][i][j] * xl[0][c][iy][ix]
                assert int(got[0, o, oy, ox]) == total % 2**64


def test_conv2d_matches_matmul_for_1x1():
    x = random_u64((1, 40, 9, 7), 29)
    wt = random_u64((30, 40, 1, 1), 30)
    expected = matmul(wt.reshape(30, 40), x.reshape(40, 63)).reshape(1, 30, 9, 7)
    np.testing.assert_array_equal(conv(x, wt), expected)


@given(
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(1, 2),
    st.integers(1, 2),
    st.integers(1, 10),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_conv2d_property_every_isa(n, groups, cpg, h, w, kh, kw, sh, sw, ph, pw, dh, dw, opg, accumulate, seed):
    # opg (output channels per group) spans the direct (thin groups) and GEMM paths
    c, o = groups * cpg, groups * opg
    if dh * (kh - 1) + 1 > h + 2 * ph or dw * (kw - 1) + 1 > w + 2 * pw:
        return
    opts = {"stride": (sh, sw), "padding": (ph, pw), "dilation": (dh, dw), "groups": groups}
    x = random_u64((n, c, h, w), seed)
    wt = random_u64((o, cpg, kh, kw), seed + 1)
    expected = conv_reference(x, wt, **opts)
    init = random_u64(expected.shape, seed + 2)
    if accumulate:
        expected = expected + init
    for name in _core.available_isas():
        out = init.copy()
        with_isa(name, lambda: _core.ring_conv2d(x, wt, out, accumulate=accumulate, **opts))
        np.testing.assert_array_equal(out, expected, err_msg=f"{name} {opts}")


def test_conv2d_benchmark_shape_every_isa():
    # The benchmark layer (64 -> 64 channels, 3x3, padding 1), smaller image.
    x = random_u64((1, 64, 32, 32), 31)
    wt = random_u64((64, 64, 3, 3), 32)
    expected = with_isa("scalar", lambda: conv(x, wt, padding=1))
    np.testing.assert_array_equal(expected[:, :4, :5], conv_reference(x, wt, padding=1)[:, :4, :5])
    for name in _core.available_isas():
        np.testing.assert_array_equal(with_isa(name, lambda: conv(x, wt, padding=1)), expected, err_msg=name)


def test_conv2d_bad_arguments():
    x = random_u64((1, 4, 6, 6))
    wt = random_u64((2, 4, 3, 3))
    out = np.empty((1, 2, 4, 4), dtype=np.uint64)
    _core.ring_conv2d(x, wt, out)  # valid baseline
    with pytest.raises(TypeError, match="dtype"):
        _core.ring_conv2d(x.astype(np.int64), wt, out)
    with pytest.raises(TypeError, match="dtype"):
        _core.ring_conv2d(x, wt.astype(np.float64), out)
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.ring_conv2d(random_u64((1, 4, 6, 12))[..., ::2], wt, out)
    with pytest.raises(ValueError, match="4-D"):
        _core.ring_conv2d(x[0], wt, out)
    with pytest.raises(ValueError, match="4-D"):
        _core.ring_conv2d(x, wt[0], out)
    with pytest.raises(ValueError, match=r"in_ch/groups = 4"):
        _core.ring_conv2d(x, random_u64((2, 3, 3, 3)), out)
    with pytest.raises(ValueError, match="groups"):
        _core.ring_conv2d(x, random_u64((2, 4, 3, 3)), out, groups=3)
    with pytest.raises(ValueError, match="groups"):
        _core.ring_conv2d(x, random_u64((3, 1, 3, 3)), out, groups=4)
    with pytest.raises(ValueError, match="groups must be >= 1"):
        _core.ring_conv2d(x, wt, out, groups=0)
    with pytest.raises(ValueError, match=r"out must have shape \(1, 2, 4, 4\)"):
        _core.ring_conv2d(x, wt, np.empty((1, 2, 6, 6), dtype=np.uint64))
    with pytest.raises(ValueError, match=r"out must have shape \(1, 2, 6, 6\)"):
        _core.ring_conv2d(x, wt, out, padding=1)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        _core.ring_conv2d(x, wt, out, stride=(0, 1))
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        _core.ring_conv2d(x, wt, out, dilation=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        _core.ring_conv2d(x, wt, out, padding=(-1, 0))
    with pytest.raises(ValueError, match="2 entries"):
        _core.ring_conv2d(x, wt, out, stride=(1, 1, 1))
    with pytest.raises(TypeError, match="stride"):
        _core.ring_conv2d(x, wt, out, stride="11")
    with pytest.raises(TypeError, match="padding"):
        _core.ring_conv2d(x, wt, out, padding=(1.0, 1))
    with pytest.raises(ValueError, match="larger than the padded input"):
        _core.ring_conv2d(x, random_u64((2, 4, 7, 3)), out)
    with pytest.raises(ValueError, match="larger than the padded input"):
        _core.ring_conv2d(x, wt, out, dilation=3)
    with pytest.raises(ValueError, match="non-empty"):
        _core.ring_conv2d(x, random_u64((2, 4, 0, 3)), out)
    with pytest.raises(ValueError, match="share memory"):
        big = random_u64((1, 2, 6, 6))
        _core.ring_conv2d(big, random_u64((2, 2, 1, 1)), big)


def test_conv2d_int_and_pair_arguments_agree():
    x = random_u64((1, 3, 9, 9), 33)
    wt = random_u64((4, 3, 3, 3), 34)
    a = conv(x, wt, stride=2, padding=1, dilation=2)
    b = conv(x, wt, stride=(2, 2), padding=[1, 1], dilation=(2, 2))
    c = conv(x, wt, stride=np.int64(2), padding=(np.int32(1), 1), dilation=(2, np.uint8(2)), groups=np.int64(1))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    with pytest.raises(TypeError, match="stride"):
        _core.ring_conv2d(x, wt, np.empty_like(a), stride=True)
