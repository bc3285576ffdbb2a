"""Secure arithmetic on two local servers with a dealer vs the same computation in plaintext numpy.

The timed call is a whole job (upload, offline expansion, online phase, download);
the online part alone, the offline part and the bytes per party are recorded as
extra info from the servers' own accounting.
"""

from __future__ import annotations

import numpy as np
import pytest

import safelight
from safelight import bench
from safelight.program.program import Program
from safelight.runtime.cluster import Cluster


@pytest.fixture(scope="module")
def cluster():
    with Cluster.local(2, dealer=True) as c:
        yield c


def _program(build, shapes):
    p = Program(2)
    t = {name: p.input(name, shape) for name, shape in shapes.items()}
    build(p, t)
    return p


def _record(benchmark, job, op):
    stats = job.ops()[op]
    benchmark.extra_info.update(
        online_ms=stats["seconds"] * 1e3,
        offline_ms=job.offline_seconds * 1e3,
        bytes_per_party=stats["bytes_sent"],
        rounds=stats["rounds"],
    )


@pytest.mark.benchmark(group="mul_1m: 2^20 fixed-point products")
def test_mul_secure(benchmark, cluster):
    rng = np.random.default_rng(6)
    x, y = rng.uniform(-10, 10, bench.MUL_N), rng.uniform(-10, 10, bench.MUL_N)
    prog = _program(lambda p, t: p.output(p.mul(t["x"], t["y"]), "z"), {"x": x.shape, "y": y.shape})
    inputs = {"x": safelight.encode(x), "y": safelight.encode(y)}
    job = benchmark.pedantic(cluster.run, args=(prog, inputs), rounds=3, warmup_rounds=1)
    _record(benchmark, job, "mul")


@pytest.mark.benchmark(group="mul_1m: 2^20 fixed-point products")
def test_mul_plaintext_numpy(benchmark):
    rng = np.random.default_rng(6)
    x, y = rng.uniform(-10, 10, bench.MUL_N), rng.uniform(-10, 10, bench.MUL_N)
    benchmark(np.multiply, x, y)


@pytest.mark.benchmark(group="conv_layer: 64->64 3x3 on 1x64x128x128")
def test_conv_secure(benchmark, cluster):
    rng = np.random.default_rng(7)
    x, w = rng.uniform(0, 1, bench.CONV_SHAPE), rng.uniform(-0.05, 0.05, bench.CONV_WEIGHT)
    prog = _program(lambda p, t: p.output(p.conv2d(t["x"], t["w"], padding=1), "y"), {"x": x.shape, "w": w.shape})
    inputs = {"x": safelight.encode(x), "w": safelight.encode(w)}
    job = benchmark.pedantic(cluster.run, args=(prog, inputs), rounds=2, warmup_rounds=1)
    _record(benchmark, job, "conv2d")


@pytest.mark.benchmark(group="conv_layer: 64->64 3x3 on 1x64x128x128")
def test_conv_plaintext_numpy(benchmark):
    rng = np.random.default_rng(7)
    x, w = rng.uniform(0, 1, bench.CONV_SHAPE), rng.uniform(-0.05, 0.05, bench.CONV_WEIGHT)
    benchmark.pedantic(bench.plaintext_conv_nchw, args=(x, w, 1), rounds=3, warmup_rounds=1)
