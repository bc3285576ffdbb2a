"""Kernel benchmarks, one core or one call each: the Z_2^64 ring engine (``ring_add``,
``ring_mul``, ``gemm``), the AES-CTR PRG (``prg``) and the negacyclic NTT (``ntt_<N>``),
against numpy, ``cryptography``, BLAS and Microsoft SEAL measured in the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .. import _core, ring
from ..he import NTT, ntt_primes
from .registry import GB, best_time, kernel_isa, paired_times, register, result, time_once

# ---------------------------------------------------------------------------
# ring engine vs numpy
# ---------------------------------------------------------------------------
RING_N = 1 << 24  # uint64 elements per operand


def ring_operands(n: int = RING_N, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two random uint64 operands and an output buffer, all preallocated and touched."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    b = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    out = np.zeros(n, dtype=np.uint64)
    return a, b, out


def _bench_ring_op(name: str, ref_fn: Callable[..., Any], ref_name: str) -> dict[str, Any]:
    """``_core.<name>`` (ring_add or ring_mul) on 2^24 uint64 vs the numpy ufunc, GB/s."""
    ours_fn = getattr(_core, name)
    a, b, out = ring_operands()
    n = a.size
    nbytes = 3 * 8 * n
    repeats = 15
    ours, ref = paired_times(lambda: ours_fn(a, b, out), lambda: ref_fn(a, b, out=out), repeats)
    # a wrong kernel would make the comparison meaningless: check once, untimed
    ours_fn(a, b, out)
    expect = ref_fn(a[:4096], b[:4096])
    if not np.array_equal(out[:4096], expect):
        raise AssertionError(f"_core.{name} disagrees with numpy")
    return result(
        name,
        nbytes / min(ours) / GB,
        "GB/s",
        "higher",
        ref=ref_name,
        ref_value=nbytes / min(ref) / GB,
        elements=n,
        isa=kernel_isa(),
        repeats=repeats,
        stat="best",
    )


# Two benchmarks, not one emitting both: ``safelight bench ring_add`` times only the add.
@register("ring_add", "Z_2^64 add of 2^24 uint64 vs numpy, GB/s (3 x 8 bytes per element)")
def bench_ring_add() -> dict[str, Any]:
    return _bench_ring_op("ring_add", np.add, "numpy np.add(a, b, out=out)")


@register("ring_mul", "Z_2^64 multiply of 2^24 uint64 vs numpy, GB/s (3 x 8 bytes per element)")
def bench_ring_mul() -> dict[str, Any]:
    return _bench_ring_op("ring_mul", np.multiply, "numpy np.multiply(a, b, out=out)")


# ---------------------------------------------------------------------------
# PRG vs cryptography AES-128-CTR
# ---------------------------------------------------------------------------
PRG_BYTES = 64 << 20
PRG_SEED = bytes(range(16))


def prg_reference(seed: bytes, nonce: int = 0, counter: int = 0) -> Callable[[np.ndarray, np.ndarray], None]:
    """``fill(zeros, out)``: AES-128-CTR keystream with ``cryptography`` (encrypting zeros) into ``out``."""
    iv = nonce.to_bytes(8, "big") + counter.to_bytes(8, "big")

    def fill(zeros: np.ndarray, out: np.ndarray) -> None:
        enc = Cipher(algorithms.AES(seed), modes.CTR(iv)).encryptor()
        enc.update_into(zeros, out)

    return fill


def prg_buffers(nbytes: int = PRG_BYTES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ours_out, zeros, ref_out); ref_out has a block of slack, as ``update_into`` may require."""
    ours = np.zeros(nbytes // 8, dtype=np.uint64)
    zeros = np.zeros(nbytes, dtype=np.uint8)
    ref = np.zeros(nbytes + 16, dtype=np.uint8)
    return ours, zeros, ref


def prg_status(seed: bytes = PRG_SEED) -> dict[str, Any]:
    """Whether ``_core.prg_fill`` is still the all-zero placeholder and whether it matches AES-128-CTR."""
    n = 4096
    ours = np.zeros(n, dtype=np.uint8)
    _core.prg_fill(seed, ours, 7, 3)
    ref = np.zeros(n + 16, dtype=np.uint8)
    prg_reference(seed, 7, 3)(np.zeros(n, dtype=np.uint8), ref)
    return {"placeholder": bool(not ours.any()), "matches_cryptography": bool(np.array_equal(ours, ref[:n]))}


@register("prg", "AES-128-CTR keystream (64 MiB) vs cryptography, GB/s")
def bench_prg() -> dict[str, Any]:
    out, zeros, ref_out = prg_buffers()
    ref_fill = prg_reference(PRG_SEED)
    repeats = 7
    ours, ref = paired_times(lambda: _core.prg_fill(PRG_SEED, out), lambda: ref_fill(zeros, ref_out), repeats)
    return result(
        "prg",
        PRG_BYTES / min(ours) / GB,
        "GB/s",
        "higher",
        ref="cryptography AES-128-CTR update_into",
        ref_value=PRG_BYTES / min(ref) / GB,
        bytes=PRG_BYTES,
        isa=kernel_isa(),
        **prg_status(),
        repeats=repeats,
        stat="best",
    )


# ---------------------------------------------------------------------------
# ring GEMM vs BLAS (issue: arithmetic engine)
# ---------------------------------------------------------------------------
GEMM_N = 1024


@register("gemm", "Z_2^64 GEMM 1024^3 vs numpy float64 matmul (BLAS) and numpy int64 matmul, GOP/s")
def bench_gemm() -> dict[str, Any]:
    n = GEMM_N
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2**64, (n, n), dtype=np.uint64)
    b = rng.integers(0, 2**64, (n, n), dtype=np.uint64)
    out = np.empty((n, n), dtype=np.uint64)
    fa, fb = rng.random((n, n)), rng.random((n, n))
    # Timed in blocks, not alternately: OpenBLAS worker threads keep spinning for a while
    # after each call and would steal the cores from the next ring GEMM.
    ours = best_time(lambda: ring.matmul(a, b, out), repeats=7)
    blas = best_time(lambda: fa @ fb, repeats=7)
    ia, ib = a.view(np.int64), b.view(np.int64)
    int64_s = time_once(lambda: ia @ ib)
    ops = 2.0 * n**3 / 1e9
    return result(
        "gemm",
        ops / ours,
        "GOP/s",
        "higher",
        ref="numpy float64 matmul (BLAS)",
        ref_value=ops / blas,
        numpy_int64_gops=ops / int64_s,
        vs_numpy_int64=int64_s / ours,
        isa=kernel_isa(),
        size=n,
    )


# ---------------------------------------------------------------------------
# NTT engine (issue 6): negacyclic NTT of one prime on one core
# ---------------------------------------------------------------------------
NTT_SIZES = (4096, 8192, 16384, 32768, 65536)
# Intel HEXL's published AVX-512 forward NTT times, microseconds (Boemer et al.,
# "Intel HEXL: Accelerating Homomorphic Encryption with Intel AVX512-IFMA52", 2021).
NTT_HEXL_FORWARD_US = {4096: 11.7, 8192: 25.4, 16384: 54.0, 32768: 113.0, 65536: 244.0}
NTT_NUMPY_BITS = 31  # the numpy reference multiplies residues in uint64: q < 2**32
NTT_SEAL_PRIMES = 4  # RNS primes per SEAL ciphertext polynomial (amortises the call)


def _bit_reverse_indices(n: int) -> np.ndarray:
    log_n = n.bit_length() - 1
    idx = np.arange(n)
    rev = np.zeros(n, dtype=np.int64)
    for b in range(log_n):
        rev |= ((idx >> b) & 1) << (log_n - 1 - b)
    return rev


def numpy_ntt_forward(n: int, q: int, psi: int) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy-vectorised iterative negacyclic NTT for ``q < 2**32`` (one stage per numpy pass).

    Same definition and order as :class:`safelight.he.NTT` with root ``psi``: Cooley-Tukey,
    natural order in, bit-reversed order out. Returns ``forward(a) -> new uint64 array``.
    """
    if q >= 1 << 32:
        raise ValueError("the numpy reference NTT needs q < 2**32 (uint64 products)")
    powers = np.empty(n, dtype=np.uint64)
    x = 1
    for e in range(n):
        powers[e] = x
        x = x * psi % q
    w = powers[_bit_reverse_indices(n)]
    qq = np.uint64(q)

    def forward(a: np.ndarray) -> np.ndarray:
        a = np.array(a, dtype=np.uint64)
        m, t = 1, n
        while m < n:
            t //= 2
            blk = a.reshape(m, 2, t)
            x = blk[:, 0, :]
            v = blk[:, 1, :] * w[m : 2 * m, None] % qq
            y = (x + (qq - v)) % qq
            blk[:, 0, :] = (x + v) % qq
            blk[:, 1, :] = y
            m *= 2
        return a

    return forward


def seal_ntt_us(n: int, bits: int = 60, primes: int = NTT_SEAL_PRIMES, repeats: int = 30) -> tuple[float, float] | None:
    """Microsoft SEAL's forward and inverse NTT, microseconds per prime, or None without tenseal.

    TenSEAL's ``sealapi`` exposes no bare NTT, but ``Evaluator.transform_to_ntt_inplace`` /
    ``transform_from_ntt_inplace`` on a BFV ciphertext run SEAL's negacyclic NTT on each of
    its 2 x ``primes`` polynomials and nothing else of note; the best call time divided by
    that count is SEAL's per-prime NTT time (plus a share of one binding call).
    """
    try:
        import tenseal.sealapi as sa
    except ImportError:
        return None
    parms = sa.EncryptionParameters(sa.SCHEME_TYPE.BFV)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(sa.CoeffModulus.Create(n, [bits] * primes))
    parms.set_plain_modulus(sa.PlainModulus.Batching(n, 20))
    ctx = sa.SEALContext(parms, True, sa.SEC_LEVEL_TYPE.NONE)
    keygen = sa.KeyGenerator(ctx)
    pk = sa.PublicKey()
    keygen.create_public_key(pk)
    ct = sa.Ciphertext()
    sa.Encryptor(ctx, pk).encrypt_zero(ct)
    ev = sa.Evaluator(ctx)
    polys = ct.size() * primes
    fwd = inv = float("inf")
    ev.transform_to_ntt_inplace(ct)  # warm-up
    ev.transform_from_ntt_inplace(ct)
    for _ in range(repeats):
        fwd = min(fwd, time_once(lambda: ev.transform_to_ntt_inplace(ct)))
        inv = min(inv, time_once(lambda: ev.transform_from_ntt_inplace(ct)))
    return fwd / polys * 1e6, inv / polys * 1e6


def _ntt_kernel_us(ntt, direction: str, isa: str, repeats: int = 30) -> float:
    """Best microseconds per call of the C++ kernel (timed in C++) on instruction-set path ``isa``."""
    previous = _core.isa()
    _core.set_isa(isa)
    try:
        return ntt.time_kernel(direction, repeats=repeats, inner=max(3, 200_000 // ntt.n)) * 1e6
    finally:
        _core.set_isa(previous)


def _ntt_bench(n: int) -> dict[str, Any]:
    isa = kernel_isa()
    q60, q50 = ntt_primes(60, n, 1)[0], ntt_primes(50, n, 1)[0]
    ntt60, ntt50 = NTT(n, q60), NTT(n, q50)
    ntt50_no_ifma = NTT(n, q50, ifma=False)
    by_path_60: dict[str, list[float]] = {}
    by_path_50: dict[str, list[float]] = {}
    for name in _core.available_isas():
        by_path_60[name] = [_ntt_kernel_us(ntt60, d, name) for d in ("forward", "inverse")]
        by_path_50[name] = [_ntt_kernel_us(ntt50_no_ifma, d, name) for d in ("forward", "inverse")]
        if name == "avx512" and "avx512ifma" in ntt50.paths:
            by_path_50["avx512ifma"] = [_ntt_kernel_us(ntt50, d, name) for d in ("forward", "inverse")]
    fwd60, inv60 = by_path_60[isa]
    path50 = ntt50.paths[0]
    fwd50, inv50 = by_path_50[path50 if path50 in by_path_50 else isa]

    # through the Python API (binding, validation of the input range), in place
    a = np.random.default_rng(6).integers(0, q60, n, dtype=np.uint64)
    api_us = best_time(lambda: ntt60.forward(a, out=a), repeats=200) * 1e6

    # numpy reference on a 31-bit prime, checked against safelight on the same prime (untimed)
    q31 = ntt_primes(NTT_NUMPY_BITS, n, 1)[0]
    ntt31 = NTT(n, q31)
    ref_forward = numpy_ntt_forward(n, q31, ntt31.roots[0])
    x = np.random.default_rng(7).integers(0, q31, n, dtype=np.uint64)
    if not np.array_equal(ref_forward(x), ntt31.forward(x)):
        raise AssertionError("safelight's NTT disagrees with the numpy reference")
    numpy_us = best_time(lambda: ref_forward(x), repeats=5) * 1e6

    seal = seal_ntt_us(n)
    extra: dict[str, Any] = {}
    if seal is None:
        ref, ref_value = f"numpy vectorised iterative NTT ({NTT_NUMPY_BITS}-bit prime)", numpy_us
        extra["seal_reference"] = "tenseal not installed"
    else:
        ref = (
            f"Microsoft SEAL NTT via tenseal.sealapi (60-bit primes; Evaluator.transform_to_ntt_inplace "
            f"on a BFV ciphertext / {2 * NTT_SEAL_PRIMES} polynomials)"
        )
        ref_value = seal[0]
        extra["seal_inverse_us"] = seal[1]
    return result(
        f"ntt_{n}",
        fwd60,
        "us",
        "lower",
        ref=ref,
        ref_value=ref_value,
        inverse_us=inv60,
        forward_us_50bit=fwd50,
        inverse_us_50bit=inv50,
        path_60bit=ntt60.paths[0],
        path_50bit=path50,
        isa=isa,
        forward_us_python_api=api_us,
        numpy_ref_us=numpy_us,
        **extra,
        us_by_path_60bit=by_path_60,
        us_by_path_50bit=by_path_50,
        published_reference_us=NTT_HEXL_FORWARD_US[n],
        published_reference="Intel HEXL AVX-512 forward NTT (Boemer et al. 2021)",
        stat="best of 30 batches, timed in C++ (kernel only)",
    )


for _n in NTT_SIZES:
    register(
        f"ntt_{_n}",
        f"forward negacyclic NTT, N={_n}, one 60-bit prime, one core, us (inverse and 50-bit/IFMA in the details)",
    )(lambda _n=_n: _ntt_bench(_n))
del _n
