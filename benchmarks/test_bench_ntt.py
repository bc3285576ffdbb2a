"""Forward negacyclic NTT, N = 4096: safelight vs a numpy-vectorised iterative NTT.

numpy multiplies residues in uint64, so its reference runs on a 31-bit prime; safelight
runs on the same prime (outputs compared) and on a 60-bit prime (the HE-sized case).
Calls go through the Python API (``NTT.forward``, in place), so the binding is included.
"""

from __future__ import annotations

import numpy as np
import pytest

from safelight import _core, bench
from safelight.he import NTT, ntt_primes

N = 4096
ROUNDS = 200


@pytest.fixture(scope="module")
def small_prime():
    q = ntt_primes(bench.NTT_NUMPY_BITS, N, 1)[0]
    ntt = NTT(N, q)
    a = np.random.default_rng(1).integers(0, q, N, dtype=np.uint64)
    return ntt, a, bench.numpy_ntt_forward(N, q, ntt.roots[0])


def _record(benchmark, ntt):
    benchmark.extra_info["isa"] = _core.isa()
    benchmark.extra_info["path"] = ntt.paths[0]
    benchmark.extra_info["prime_bits"] = ntt.primes[0].bit_length()


@pytest.mark.benchmark(group="ntt forward N=4096")
def test_ntt_forward_safelight_60bit(benchmark):
    q = ntt_primes(60, N, 1)[0]
    ntt = NTT(N, q)
    a = np.random.default_rng(2).integers(0, q, N, dtype=np.uint64)
    _record(benchmark, ntt)
    benchmark.pedantic(ntt.forward, args=(a,), kwargs={"out": a}, rounds=ROUNDS, warmup_rounds=5)


@pytest.mark.benchmark(group="ntt forward N=4096")
def test_ntt_forward_safelight_31bit(benchmark, small_prime):
    ntt, a, ref = small_prime
    _record(benchmark, ntt)
    out = np.empty_like(a)
    benchmark.pedantic(ntt.forward, args=(a,), kwargs={"out": out}, rounds=ROUNDS, warmup_rounds=5)
    np.testing.assert_array_equal(out, ref(a))


@pytest.mark.benchmark(group="ntt forward N=4096")
def test_ntt_forward_numpy_31bit(benchmark, small_prime):
    ntt, a, ref = small_prime
    benchmark.extra_info["prime_bits"] = ntt.primes[0].bit_length()
    out = benchmark.pedantic(ref, args=(a,), rounds=20, warmup_rounds=1)
    np.testing.assert_array_equal(out, ntt.forward(a))
