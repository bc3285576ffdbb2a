"""Ring engine vs numpy on 2^24 uint64 elements (same preallocated arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from safelight import _core, bench

ROUNDS = 15


@pytest.fixture(scope="module")
def operands():
    return bench.ring_operands(bench.RING_N)


def _run(benchmark, record_throughput, fn, a, b, out):
    benchmark.extra_info["isa"] = _core.isa()
    benchmark.pedantic(fn, args=(a, b, out), rounds=ROUNDS, warmup_rounds=1)
    record_throughput(benchmark, 3 * 8 * a.size)


@pytest.mark.benchmark(group="ring_add 2^24 uint64")
def test_ring_add_safelight(benchmark, record_throughput, operands):
    a, b, out = operands
    _run(benchmark, record_throughput, _core.ring_add, a, b, out)
    assert np.array_equal(out, a + b)


@pytest.mark.benchmark(group="ring_add 2^24 uint64")
def test_ring_add_numpy(benchmark, record_throughput, operands):
    a, b, out = operands
    _run(benchmark, record_throughput, lambda x, y, o: np.add(x, y, out=o), a, b, out)


@pytest.mark.benchmark(group="ring_mul 2^24 uint64")
def test_ring_mul_safelight(benchmark, record_throughput, operands):
    a, b, out = operands
    _run(benchmark, record_throughput, _core.ring_mul, a, b, out)
    assert np.array_equal(out, a * b)


@pytest.mark.benchmark(group="ring_mul 2^24 uint64")
def test_ring_mul_numpy(benchmark, record_throughput, operands):
    a, b, out = operands
    _run(benchmark, record_throughput, lambda x, y, o: np.multiply(x, y, out=o), a, b, out)
