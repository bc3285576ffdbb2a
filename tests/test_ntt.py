"""NTT engine: exact round trips, the convolution theorem against a naive integer
reference, the transform's definition, every ISA / IFMA path against the scalar
reference, and clear errors for bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel_helpers import with_isa
from safelight import _core
from safelight.bench import numpy_ntt_forward
from safelight.errors import InputError
from safelight.he import NTT, is_prime, ntt_primes

pytestmark = pytest.mark.kernels

LOG_NS = range(4, 17)  # N = 16 .. 65536
BITS = (30, 40, 50, 60, 62)
# Bit sizes around every boundary of the kernels: the IFMA limit (q < 2^50), the
# AVX-512 lazy scheme with 8q in a word (q < 2^61), and the largest primes (q < 2^62).
EDGE_BITS = (25, 49, 50, 51, 60, 61, 62)
HAS_IFMA = _core.ntt_has_ifma()


def negacyclic_naive(a, b, q):
    """a * b mod (X^n + 1, q) with exact Python integers (object arrays)."""
    a = np.array([int(x) for x in a], dtype=object)
    b = np.array([int(x) for x in b], dtype=object)
    n = len(a)
    full = np.convolve(a, b)  # length 2n - 1
    c = full[:n].copy()
    c[: n - 1] -= full[n:]
    return [int(x) % q for x in c]


def bit_reverse(j, bits):
    return int(format(j, f"0{bits}b")[::-1], 2)


def random_residues(primes, n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, q, n, dtype=np.uint64) for q in primes])


def path_configs():
    """(isa, ifma) pairs this machine can run; IFMA only where the CPU has it."""
    out = []
    for isa in _core.available_isas():
        out.append((isa, False))
        if isa == "avx512" and HAS_IFMA:
            out.append((isa, True))
    return out


def run_on(ntt, isa, ifma, fn):
    previous = ntt.ifma
    ntt.ifma = ifma
    try:
        return with_isa(isa, fn)
    finally:
        ntt.ifma = previous


# ---------------------------------------------------------------------------
# primes
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [25, 30, 50, 60, 62])
@pytest.mark.parametrize("n", [16, 4096, 65536])
def test_ntt_primes_are_ntt_friendly(bits, n):
    primes = ntt_primes(bits, n, 3)
    assert len(primes) == 3 and primes == sorted(primes, reverse=True) and len(set(primes)) == 3
    for q in primes:
        assert q % (2 * n) == 1 and q.bit_length() == bits and is_prime(q)
        assert _core.ntt_prime_problem(n, q) == ""
    # nothing skipped: no NTT prime between the largest one and 2^bits
    q = primes[0] + 2 * n
    while q < 1 << bits:
        assert not is_prime(q)
        q += 2 * n


def test_is_prime_matches_trial_division_and_known_values():
    def slow(k):
        return k >= 2 and all(k % d for d in range(2, int(k**0.5) + 1))

    assert [k for k in range(2000) if is_prime(k)] == [k for k in range(2000) if slow(k)]
    assert is_prime(2**61 - 1) and not is_prime(2**61 + 1)
    assert not is_prime(3215031751)  # strong pseudoprime to bases 2, 3, 5, 7
    assert not is_prime(3825123056546413051)  # strong pseudoprime to the bases up to 23
    # the C++ test (used by the bindings) agrees on every candidate q = 1 mod 32
    for q in range(33, 200_000, 32):
        assert (_core.ntt_prime_problem(16, q) == "") == is_prime(q)


def test_ntt_primes_bad_arguments():
    with pytest.raises(InputError, match="bits"):
        ntt_primes(63, 1024, 1)
    with pytest.raises(InputError, match="power of two"):
        ntt_primes(60, 1000, 1)
    with pytest.raises(InputError, match="primes"):
        ntt_primes(14, 4096, 5)  # 2^13 < q < 2^14 with q = 1 mod 8192: only 8193 (not prime)


# ---------------------------------------------------------------------------
# round trip, definition, convolution theorem
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("log_n", LOG_NS)
def test_round_trip(log_n, bits):
    n = 1 << log_n
    primes = ntt_primes(bits, n, 2)
    ntt = NTT(n, primes)
    a = random_residues(primes, n, log_n * 100 + bits)
    f = ntt.forward(a)
    assert f.dtype == np.uint64 and f.shape == a.shape
    assert all(int(f[i].max()) < q for i, q in enumerate(primes))
    assert not np.array_equal(f, a)
    np.testing.assert_array_equal(ntt.inverse(f), a)


def test_round_trip_largest_n_and_single_prime_shape():
    n = 1 << 17
    q = ntt_primes(60, n, 1)[0]
    ntt = NTT(n, q)
    a = random_residues([q], n, 3)[0]  # shape (n,)
    f = ntt.forward(a)
    assert f.shape == (n,)
    np.testing.assert_array_equal(ntt.inverse(f), a)


@pytest.mark.parametrize("bits", (30, 50, 60, 62))
@pytest.mark.parametrize("n", (16, 32, 64))
def test_forward_matches_definition(n, bits):
    """forward(a)[j] = a(psi^(2 br(j) + 1)) with psi the smallest primitive 2n-th root."""
    q = ntt_primes(bits, n, 1)[0]
    ntt = NTT(n, q)
    psi = ntt.roots[0]
    assert pow(psi, n, q) == q - 1  # primitive 2n-th root of unity
    assert psi == min(pow(psi, k, q) for k in range(1, 2 * n, 2))  # the smallest one
    a = [int(x) for x in random_residues([q], n, n + bits)[0]]
    log_n = n.bit_length() - 1
    expected = []
    for j in range(n):
        root = pow(psi, 2 * bit_reverse(j, log_n) + 1, q)
        expected.append(sum(c * pow(root, i, q) for i, c in enumerate(a)) % q)
    assert ntt.forward(np.array(a, dtype=np.uint64)).tolist() == expected


@pytest.mark.parametrize("n", (64, 1024))
def test_forward_matches_numpy_reference(n):
    q = ntt_primes(31, n, 1)[0]
    ntt = NTT(n, q)
    a = random_residues([q], n, 5)[0]
    np.testing.assert_array_equal(ntt.forward(a), numpy_ntt_forward(n, q, ntt.roots[0])(a))


@given(
    log_n=st.integers(4, 7),
    bits=st.sampled_from(EDGE_BITS),
    seed=st.integers(0, 2**32 - 1),
    sparse=st.booleans(),
)
def test_multiply_is_negacyclic_product(log_n, bits, seed, sparse):
    n = 1 << log_n
    primes = ntt_primes(bits, n, 2)
    ntt = NTT(n, primes)
    rng = np.random.default_rng(seed)
    a = random_residues(primes, n, seed)
    b = random_residues(primes, n, seed + 1)
    if sparse:  # monomials and extreme values
        b[:] = 0
        b[:, rng.integers(0, n)] = [q - 1 for q in primes]
        a[:, rng.integers(0, n)] = [q - 1 for q in primes]
    got = ntt.multiply(a, b)
    for i, q in enumerate(primes):
        assert got[i].tolist() == negacyclic_naive(a[i], b[i], q)


def test_multiply_by_x_rotates_with_sign():
    n = 64
    q = ntt_primes(60, n, 1)[0]
    ntt = NTT(n, q)
    a = random_residues([q], n, 9)[0]
    x = np.zeros(n, dtype=np.uint64)
    x[1] = 1
    expected = [(q - int(a[-1])) % q] + [int(v) for v in a[:-1]]  # x * a: shift, X^n = -1
    assert ntt.multiply(a, x).tolist() == expected


@given(bits=st.sampled_from(EDGE_BITS), seed=st.integers(0, 2**32 - 1))
def test_forward_is_linear(bits, seed):
    n = 256
    q = ntt_primes(bits, n, 1)[0]
    ntt = NTT(n, q)
    a, b = random_residues([q, q], n, seed)
    s = ((a.astype(object) + b.astype(object)) % q).astype(np.uint64)
    fa, fb = ntt.forward(a).astype(object), ntt.forward(b).astype(object)
    assert ntt.forward(s).tolist() == ((fa + fb) % q).tolist()


# ---------------------------------------------------------------------------
# every path against the scalar reference
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bits", EDGE_BITS)
@pytest.mark.parametrize("log_n", (4, 5, 6, 7, 8, 10, 13, 16))
def test_every_path_matches_scalar(log_n, bits):
    n = 1 << log_n
    primes = ntt_primes(bits, n, 2)
    ntt = NTT(n, primes)
    a = random_residues(primes, n, log_n + bits)
    a[:, :8] = np.array(primes, dtype=np.uint64)[:, None] - 1  # the largest residues
    a[:, 8:12] = 0
    ref_f = run_on(ntt, "scalar", False, lambda: ntt.forward(a))
    ref_i = run_on(ntt, "scalar", False, lambda: ntt.inverse(a))
    for isa, ifma in path_configs():
        f = run_on(ntt, isa, ifma, lambda: ntt.forward(a))
        i = run_on(ntt, isa, ifma, lambda: ntt.inverse(a))
        np.testing.assert_array_equal(f, ref_f, err_msg=f"forward on {isa} ifma={ifma}")
        np.testing.assert_array_equal(i, ref_i, err_msg=f"inverse on {isa} ifma={ifma}")
        np.testing.assert_array_equal(run_on(ntt, isa, ifma, lambda f=f: ntt.inverse(f)), a)


@given(
    log_n=st.integers(4, 9),
    bits=st.sampled_from(EDGE_BITS),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_path_matches_scalar_property(log_n, bits, seed):
    n = 1 << log_n
    q = ntt_primes(bits, n, 1)[0]
    ntt = NTT(n, q)
    a = random_residues([q], n, seed)[0]
    ref = run_on(ntt, "scalar", False, lambda: (ntt.forward(a), ntt.inverse(a)))
    for isa, ifma in path_configs():
        got = run_on(ntt, isa, ifma, lambda: (ntt.forward(a), ntt.inverse(a)))
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])


def test_in_place_repeated_transforms(isa):
    for bits in (50, 60, 62):
        n = 512
        q = ntt_primes(bits, n, 1)[0]
        ntt = NTT(n, q)
        a = random_residues([q], n, bits)[0]
        expected = run_on(ntt, "scalar", False, lambda ntt=ntt, a=a: ntt.forward(ntt.forward(ntt.forward(a))))
        b = a.copy()
        for _ in range(3):
            assert ntt.forward(b, out=b) is b
        np.testing.assert_array_equal(b, expected)
        for _ in range(3):
            ntt.inverse(b, out=b)
        np.testing.assert_array_equal(b, a)


def test_paths_report_ifma_and_the_env_switch():
    n = 1024
    q50, q60 = ntt_primes(50, n, 1)[0], ntt_primes(60, n, 1)[0]
    ntt = NTT(n, [q50, q60])
    best = _core.available_isas()[-1]
    paths = with_isa(best, lambda: ntt.paths)
    if best == "avx512":
        assert paths == ["avx512ifma" if HAS_IFMA else "avx512", "avx512"]
    else:
        assert paths == [best, best]
    ntt.ifma = False
    assert with_isa(best, lambda: ntt.paths) == [best, best]
    assert with_isa("scalar", lambda: ntt.paths) == ["scalar", "scalar"]
    code = (
        "from safelight import _core; from safelight.he import NTT, ntt_primes; "
        "print(_core.ntt_has_ifma(), NTT(1024, ntt_primes(50, 1024, 1)).paths[0])"
    )
    env = dict(os.environ, SAFELIGHT_NTT_IFMA="0", SAFELIGHT_ISA=best)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", best]


def test_many_primes_per_call_threaded_rows_match_single_rows():
    n = 1 << 15
    primes = ntt_primes(60, n, 2) + ntt_primes(50, n, 2) + ntt_primes(40, n, 1)
    ntt = NTT(n, primes)  # 5 rows x 2^15: enough to split over threads
    a = random_residues(primes, n, 11)
    f = ntt.forward(a)
    for i, q in enumerate(primes):
        np.testing.assert_array_equal(f[i], NTT(n, q).forward(a[i]))
    np.testing.assert_array_equal(ntt.inverse(f), a)


def test_kernel_timer_runs():
    ntt = NTT(1024, ntt_primes(60, 1024, 1))
    assert 0 < ntt.time_kernel("forward", repeats=2, inner=2) < 0.1
    with pytest.raises(ValueError, match="direction"):
        ntt._plan.time_kernel("sideways", 1, 1, True)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------
def test_bad_n():
    q = ntt_primes(60, 1024, 1)[0]
    for n in (1000, 8, 0, -16, 1 << 18):
        with pytest.raises(InputError, match="power of two"):
            NTT(n, q)
    with pytest.raises(InputError, match="int"):
        NTT(1024.0, q)
    with pytest.raises(ValueError, match="power of two"):
        _core.NttPlan(1000, [q])


def test_bad_primes():
    n = 1024
    good = ntt_primes(60, n, 1)[0]
    composite = next(q for q in range(good - 2 * n, 0, -2 * n) if not is_prime(q))
    not_one_mod_2n = 2**61 - 1  # prime, but 2^61 - 2 is not a multiple of 2048
    with pytest.raises(InputError, match="not prime"):
        NTT(n, [good, composite])
    with pytest.raises(InputError, match="not 1 mod 2n"):
        NTT(n, not_one_mod_2n)
    with pytest.raises(InputError, match="2\\^62"):
        NTT(16, (1 << 62) + 33)  # q = 1 mod 32 but too large
    with pytest.raises(InputError, match="out of range"):
        NTT(n, 1 << 64)
    with pytest.raises(InputError, match="at least one"):
        NTT(n, [])
    with pytest.raises(ValueError, match="not prime"):
        _core.NttPlan(n, [composite])


def test_bad_arrays():
    n = 64
    primes = ntt_primes(60, n, 2)
    ntt = NTT(n, primes)
    a = random_residues(primes, n, 1)
    with pytest.raises(InputError, match="shape"):
        ntt.forward(a[:, :32])
    with pytest.raises(InputError, match="shape"):
        ntt.forward(a[:1])
    with pytest.raises(InputError, match="shape"):
        ntt.forward(a[0])  # (n,) only for a single prime
    with pytest.raises(InputError, match="dtype float64"):
        ntt.forward(a.astype(np.float64))
    with pytest.raises(InputError, match="negative"):
        ntt.forward(-a.astype(np.int64))
    too_big = a.copy()
    too_big[1, 5] = primes[1]
    with pytest.raises(InputError, match="row 1 has values >= its prime"):
        ntt.forward(too_big)
    with pytest.raises(InputError, match="row 1"):
        ntt.multiply(a, too_big)
    with pytest.raises(InputError, match="out must be"):
        ntt.forward(a, out=np.empty((2, n), dtype=np.int64))
    with pytest.raises(InputError, match="out must be"):
        ntt.inverse(a, out=np.empty((2, n + 1), dtype=np.uint64))
    # the bindings: wrong dtype is a TypeError, wrong shape or overlap a ValueError
    plan = _core.NttPlan(n, primes)
    with pytest.raises(TypeError, match="dtype"):
        plan.forward(a.astype(np.int64), a, True)
    with pytest.raises(ValueError, match="shape"):
        plan.forward(a.reshape(4, 32), a, True)
    buf = np.zeros(3 * n, dtype=np.uint64)
    with pytest.raises(ValueError, match="overlap"):
        plan.forward(buf[: 2 * n].reshape(2, n), buf[n:].reshape(2, n), True)


def test_input_conversions_and_no_partial_writes():
    n = 32
    q = ntt_primes(40, n, 1)[0]
    ntt = NTT(n, q)
    a = random_residues([q], n, 2)[0]
    expected = ntt.forward(a)
    np.testing.assert_array_equal(ntt.forward(a.astype(np.int64)), expected)  # non-negative ints
    np.testing.assert_array_equal(ntt.forward([int(x) for x in a]), expected)  # a list
    np.testing.assert_array_equal(ntt.forward(np.repeat(a, 2)[::2]), expected)  # strided view
    # a bad row leaves an in-place buffer untouched
    primes = ntt_primes(40, n, 2)
    two = NTT(n, primes)
    b = random_residues(primes, n, 4)
    b[1, -1] = primes[1] + 1
    before = b.copy()
    with pytest.raises(InputError):
        two.forward(b, out=b)
    np.testing.assert_array_equal(b, before)
