"""BFV ciphertext multiply + relinearise: safelight vs Microsoft SEAL (tenseal.sealapi).

Both sides use the same ring degree, the same primes (SEAL's CoeffModulus.Create for
the bit sizes in ``safelight.bench.HE_MUL_BITS``, the last one the key-switching prime)
and the same batching plaintext modulus; each round is one multiply and one
relinearisation of two fresh ciphertexts, one thread, through each library's Python
binding. The workloads come from :func:`safelight.bench.he_mul_workload`, the code
``safelight bench he_mul_8192 he_mul_16384`` runs.
"""

from __future__ import annotations

import pytest

from safelight import _core, bench

SIZES = sorted(bench.HE_MUL_BITS)
_WORKLOADS: dict[int, dict] = {}


def workload(n: int) -> dict:
    if n not in _WORKLOADS:
        _WORKLOADS[n] = bench.he_mul_workload(n)
    return _WORKLOADS[n]


def _record(benchmark, w: dict) -> None:
    benchmark.extra_info["n"] = w["n"]
    benchmark.extra_info["coeff_modulus_bits"] = w["coeff_bits"]
    benchmark.extra_info["plain_modulus"] = w["t"]
    benchmark.extra_info["isa"] = _core.isa()


@pytest.mark.parametrize("n", SIZES)
def test_he_mul_relin_safelight(benchmark, n):
    w = workload(n)
    _record(benchmark, w)
    benchmark.extra_info["aux_primes"] = w["aux_primes"]
    benchmark.extra_info["budget_after_bits"] = w["budget_after"]
    benchmark.group = f"bfv multiply + relinearise N={n}"
    benchmark.pedantic(w["ours"], rounds=bench.HE_MUL_REPEATS[n], warmup_rounds=2)


@pytest.mark.parametrize("n", SIZES)
def test_he_mul_relin_seal(benchmark, n):
    w = workload(n)
    if w["seal"] is None:
        pytest.skip("tenseal (Microsoft SEAL) is not installed")
    _record(benchmark, w)
    benchmark.extra_info["budget_after_bits"] = w["seal_budget_after"]
    benchmark.group = f"bfv multiply + relinearise N={n}"
    benchmark.pedantic(w["seal"], rounds=bench.HE_MUL_REPEATS[n], warmup_rounds=2)
