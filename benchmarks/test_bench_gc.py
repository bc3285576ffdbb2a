"""Garbled circuits: half-gates garbling / evaluation of a 32-bit adder over 2^20 instances
(31 ANDs each: 32.5 M AND gates, 32 bytes of tables per AND), per ISA path, on one thread
and on all cores; reference: ``cryptography`` AES-128-ECB on the blocks garbling hashes
(4 per AND: the garbler's AES work alone, nothing else, on one thread).

Run with ``python -m pytest benchmarks/test_bench_gc.py --benchmark-only``. Each benchmark
records ``M AND/s (best)``, ``isa``, ``threads`` and ``bytes/AND`` in its extra info.
The scalar reference path runs a 4096-instance batch (it is a constant-time software AES).
"""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from safelight import _core, gc

K = 32
BATCH = 1 << 20
SCALAR_BATCH = 4096
ROUNDS = 3
GROUP = f"gc add{K} x 2^20"
FAST_ISAS = [i for i in _core.available_isas() if i != "scalar"]


def _record(benchmark, n_and: int, isa: str, threads: int) -> None:
    benchmark.extra_info.update(isa=isa, threads=threads or _core.worker_threads(), n_and=n_and, **{"bytes/AND": 32})
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable
        return
    benchmark.extra_info["M AND/s (best)"] = round(n_and / stats.stats.min / 1e6, 1)


class Workload:
    def __init__(self, batch: int):
        self.circ = gc.circuits.adder(K)
        self.batch = batch
        self.delta = gc.random_delta(1)
        self.zero = gc.random_labels(self.circ.n_inputs, batch, seed=2)
        rng = np.random.default_rng(3)
        self.x = rng.integers(0, 2**K, batch, dtype=np.uint64)
        self.y = rng.integers(0, 2**K, batch, dtype=np.uint64)
        bits = np.concatenate([gc.to_bits(self.x, K), gc.to_bits(self.y, K)])
        self.labels = gc.encode(self.zero, self.delta, bits)
        self.tables, self.out_zero = gc.garble(self.circ, self.zero, self.delta)
        self.out = np.empty_like(self.out_zero)
        self.n_and = self.circ.n_and * batch

    def garble(self, threads: int):
        c = self.circ
        _core.gc_garble(c.gates, c.outputs, c.n_wires, self.zero, self.delta, 0, self.tables, self.out_zero, threads)

    def evaluate(self, threads: int):
        c = self.circ
        _core.gc_evaluate(c.gates, c.outputs, c.n_wires, self.labels, self.tables, 0, self.out, threads)

    def check(self):
        got = gc.from_bits(gc.decode(self.out[:, :1000], self.out_zero[:, :1000]))
        np.testing.assert_array_equal(got, (self.x[:1000] + self.y[:1000]) & np.uint64(2**K - 1))


@pytest.fixture(scope="module")
def big():
    return Workload(BATCH)


@pytest.fixture(scope="module")
def small():
    return Workload(SCALAR_BATCH)


def _run(benchmark, work: Workload, isa: str, threads: int, evaluate: bool):
    previous = _core.isa()
    _core.set_isa(isa)
    try:
        fn = work.evaluate if evaluate else work.garble
        benchmark.pedantic(fn, args=(threads,), rounds=ROUNDS, warmup_rounds=1)
        if evaluate:
            work.check()
    finally:
        _core.set_isa(previous)
    _record(benchmark, work.n_and, isa, threads)


@pytest.mark.benchmark(group=GROUP + " garble")
@pytest.mark.parametrize("threads", [1, 0], ids=["1thread", "allcores"])
@pytest.mark.parametrize("isa", FAST_ISAS)
def test_gc_garble(benchmark, big, isa, threads):
    _run(benchmark, big, isa, threads, evaluate=False)


@pytest.mark.benchmark(group=GROUP + " evaluate")
@pytest.mark.parametrize("threads", [1, 0], ids=["1thread", "allcores"])
@pytest.mark.parametrize("isa", FAST_ISAS)
def test_gc_evaluate(benchmark, big, isa, threads):
    big.garble(0)  # tables of the active path (all paths write the same bytes)
    _run(benchmark, big, isa, threads, evaluate=True)


@pytest.mark.benchmark(group=f"gc add{K} x {SCALAR_BATCH} scalar reference")
@pytest.mark.parametrize("evaluate", [False, True], ids=["garble", "evaluate"])
def test_gc_scalar(benchmark, small, evaluate):
    small.garble(1)
    _run(benchmark, small, "scalar", 1, evaluate)


@pytest.mark.benchmark(group=GROUP + " garble")
def test_gc_reference_aes_ecb(benchmark):
    """cryptography AES-128-ECB (OpenSSL, AES-NI) on 4 blocks per AND of the same workload
    (in four quarter-size calls to bound the buffers): one thread."""
    n_and = 31 * BATCH
    data = np.zeros(n_and * 16, dtype=np.uint8)  # a quarter of the 4 * n_and blocks
    out = np.empty(data.size + 15, dtype=np.uint8)  # update_into wants a block of slack
    enc = Cipher(algorithms.AES(_core.gc_fixed_key()), modes.ECB()).encryptor()

    def four_quarters():
        for _ in range(4):
            enc.update_into(data, out)

    benchmark.pedantic(four_quarters, rounds=ROUNDS, warmup_rounds=1)
    benchmark.extra_info["ref"] = "cryptography AES-128-ECB, 4 blocks per AND, 1 thread"
    _record(benchmark, n_and, "openssl", 1)
