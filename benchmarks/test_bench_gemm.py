"""GEMM engine: Z_2^64 matmul 1024^3 vs numpy float64 (BLAS) and int64 matmul; 3x3 conv layer.

Run with ``python -m pytest benchmarks/test_bench_gemm.py --benchmark-only``. Each
benchmark records ``GOP/s (best)`` (2*m*n*k operations, multiply and add counted
separately) in its extra info, so the ratios can be read off directly.
"""

from __future__ import annotations

import numpy as np
import pytest

from safelight import _core

N = 1024
CONV_X = (1, 64, 128, 128)
CONV_W = (64, 64, 3, 3)
ROUNDS = 5


def _record_gops(benchmark, ops: float) -> None:
    benchmark.extra_info["isa"] = _core.isa()
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable
        return
    benchmark.extra_info["GOP/s (best)"] = round(ops / stats.stats.min / 1e9, 2)


@pytest.fixture(scope="module")
def matrices():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2**64, (N, N), dtype=np.uint64)
    b = rng.integers(0, 2**64, (N, N), dtype=np.uint64)
    return a, b, np.empty((N, N), dtype=np.uint64), rng.random((N, N)), rng.random((N, N))


GEMM_GROUP = f"matmul {N}x{N}x{N}"
GEMM_OPS = 2.0 * N**3


@pytest.mark.benchmark(group=GEMM_GROUP)
def test_matmul_safelight_ring(benchmark, matrices):
    a, b, out, _, _ = matrices
    benchmark.pedantic(_core.ring_matmul, args=(a, b, out), rounds=ROUNDS, warmup_rounds=1)
    _record_gops(benchmark, GEMM_OPS)
    np.testing.assert_array_equal(out[:3], a[:3] @ b)


@pytest.mark.benchmark(group=GEMM_GROUP)
def test_matmul_numpy_float64_blas(benchmark, matrices):
    _, _, _, fa, fb = matrices
    benchmark.pedantic(np.matmul, args=(fa, fb), rounds=ROUNDS, warmup_rounds=1)
    _record_gops(benchmark, GEMM_OPS)


@pytest.mark.benchmark(group=GEMM_GROUP)
def test_matmul_numpy_int64(benchmark, matrices):
    a, b, _, _, _ = matrices
    # numpy's integer matmul has no BLAS: a few seconds per call, so one round.
    benchmark.pedantic(np.matmul, args=(a.view(np.int64), b.view(np.int64)), rounds=1, warmup_rounds=0)
    _record_gops(benchmark, GEMM_OPS)


@pytest.fixture(scope="module")
def conv_operands():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2**64, CONV_X, dtype=np.uint64)
    w = rng.integers(0, 2**64, CONV_W, dtype=np.uint64)
    out = np.empty((CONV_X[0], CONV_W[0]) + CONV_X[2:], dtype=np.uint64)
    return x, w, out, rng.random(CONV_X), rng.random(CONV_W)


CONV_GROUP = "conv2d 1x64x128x128 * 64x64x3x3, padding 1"
CONV_OPS = 2.0 * CONV_X[0] * CONV_W[0] * CONV_X[2] * CONV_X[3] * CONV_W[1] * CONV_W[2] * CONV_W[3]


def _float_conv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Float64 reference: sliding-window view of the padded input and one BLAS tensordot."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))
    return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))


@pytest.mark.benchmark(group=CONV_GROUP)
def test_conv2d_safelight_ring(benchmark, conv_operands):
    x, w, out, _, _ = conv_operands
    benchmark.pedantic(lambda: _core.ring_conv2d(x, w, out, padding=1), rounds=ROUNDS, warmup_rounds=1)
    _record_gops(benchmark, CONV_OPS)
    if benchmark.stats is not None:
        benchmark.extra_info["ms (best)"] = round(benchmark.stats.stats.min * 1e3, 2)


@pytest.mark.benchmark(group=CONV_GROUP)
def test_conv2d_numpy_float64_blas(benchmark, conv_operands):
    _, _, _, fx, fw = conv_operands
    benchmark.pedantic(_float_conv, args=(fx, fw), rounds=ROUNDS, warmup_rounds=1)
    _record_gops(benchmark, CONV_OPS)
