"""PRG (AES-128-CTR keystream, 64 MiB) vs the ``cryptography`` package on the same size."""

from __future__ import annotations

import pytest

from safelight import _core, bench

ROUNDS = 7


@pytest.fixture(scope="module")
def buffers():
    return bench.prg_buffers(bench.PRG_BYTES)


@pytest.mark.benchmark(group="prg 64 MiB AES-128-CTR")
def test_prg_safelight(benchmark, record_throughput, buffers):
    out, _, _ = buffers
    benchmark.extra_info["isa"] = _core.isa()
    # placeholder=True means prg_fill still writes zeros: re-measure once the engine lands
    benchmark.extra_info.update(bench.prg_status())
    benchmark.pedantic(_core.prg_fill, args=(bench.PRG_SEED, out), rounds=ROUNDS, warmup_rounds=1)
    record_throughput(benchmark, bench.PRG_BYTES)


@pytest.mark.benchmark(group="prg 64 MiB AES-128-CTR")
def test_prg_cryptography(benchmark, record_throughput, buffers):
    _, zeros, ref_out = buffers
    benchmark.pedantic(bench.prg_reference(bench.PRG_SEED), args=(zeros, ref_out), rounds=ROUNDS, warmup_rounds=1)
    record_throughput(benchmark, bench.PRG_BYTES)
