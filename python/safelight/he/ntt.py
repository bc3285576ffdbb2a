"""Negacyclic number-theoretic transform over RNS primes (the lattice-HE polynomial core).

Polynomials live in ``Z_q[X] / (X^n + 1)`` for each prime ``q`` of an RNS basis; a
batch is a uint64 array of shape ``(len(primes), n)``, one row per prime (or ``(n,)``
for a single prime), every value in ``[0, q)``.

With ``psi`` the smallest primitive ``2n``-th root of unity mod ``q`` (``NTT.roots``)
and ``br(j)`` the ``log2(n)``-bit reversal of ``j``::

    forward(a)[j] = sum_i a[i] * psi ** ((2 * br(j) + 1) * i)   (mod q)

natural order in, bit-reversed order out: entry ``j`` is ``a(X)`` evaluated at
``psi ** (2 br(j) + 1)``. :meth:`NTT.inverse` undoes it exactly (``n^-1`` scaling
included), and the pointwise product of two transforms is the transform of the
negacyclic product, which is what :meth:`NTT.multiply` computes.

The C++ engine (``safelight._core.NttPlan``) uses Harvey's lazy butterflies with
Shoup-precomputed twiddles, on the scalar, AVX2 or AVX-512 path of the active ISA,
and on AVX-512 IFMA (52-bit multiply-add) for primes below ``2**50`` where the CPU has
it (pass ``ifma=False``, or set ``SAFELIGHT_NTT_IFMA=0`` before import, to avoid it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _core
from ..errors import InputError

__all__ = ["MAX_N", "MAX_PRIME_BITS", "MIN_N", "NTT", "is_prime", "ntt_primes"]

MIN_N = 1 << 4
MAX_N = 1 << 17
MAX_PRIME_BITS = 62  # q < 2**62: lazy values up to 4q fit a 64-bit word
IFMA_PRIME_BITS = 50  # q < 2**50 takes the IFMA path

# Deterministic Miller-Rabin bases for every n < 3.3e24 (Sorenson and Webster, 2015).
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(q: int) -> bool:
    """Deterministic primality test for ``q < 3.3e24`` (Miller-Rabin with fixed bases)."""
    q = int(q)
    if q < 2:
        return False
    for p in _MR_BASES:
        if q % p == 0:
            return q == p
    d, s = q - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
        x = pow(a, d, q)
        if x in (1, q - 1):
            continue
        for _ in range(s - 1):
            x = x * x % q
            if x == q - 1:
                break
        else:
            return False
    return True


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise InputError(f"n must be an int (a power of two), got {type(n).__name__}")
    n = int(n)
    if n < MIN_N or n > MAX_N or n & (n - 1):
        raise InputError(f"n must be a power of two from {MIN_N} to {MAX_N}, got {n}")
    return n


def ntt_primes(bits: int, n: int, count: int) -> list[int]:
    """The ``count`` largest NTT-friendly primes below ``2**bits`` for ring dimension ``n``.

    Parameters
    ----------
    bits : int
        Bit length bound, ``q < 2**bits``; at most 62.
    n : int
        Ring dimension (power of two); every prime returned is ``1 mod 2n``.
    count : int
        How many primes, returned in decreasing order.

    Returns
    -------
    list of int
        Distinct primes ``q = 1 (mod 2n)``, ``2**(bits-1) < q < 2**bits``.
    """
    n = _check_n(n)
    bits, count = int(bits), int(count)
    if not 2 <= bits <= MAX_PRIME_BITS:
        raise InputError(f"bits must be in 2..{MAX_PRIME_BITS}, got {bits}")
    if count < 0:
        raise InputError(f"count must be >= 0, got {count}")
    step = 2 * n
    q = ((1 << bits) - 1) // step * step + 1  # largest 1 mod 2n below 2**bits
    if q >= 1 << bits:
        q -= step
    out: list[int] = []
    while len(out) < count:
        if q <= 1 << (bits - 1):
            raise InputError(
                f"only {len(out)} primes = 1 mod {step} have exactly {bits} bits; ask for fewer or use more bits"
            )
        if is_prime(q):
            out.append(q)
        q -= step
    return out


def _as_u64(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype != np.uint64:
        if arr.dtype.kind not in "iu":
            raise InputError(f"{name} must hold integers (uint64 residues mod q), got dtype {arr.dtype}")
        if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
            raise InputError(f"{name} has negative values; reduce it mod q into [0, q) first")
        arr = arr.astype(np.uint64)
    return np.ascontiguousarray(arr)


class NTT:
    """Negacyclic NTT for ring dimension ``n`` and a list of RNS primes.

    Parameters
    ----------
    n : int
        Ring dimension, a power of two from 16 to 2**17.
    primes : int or sequence of int
        NTT primes: prime, ``q = 1 (mod 2n)`` and ``q < 2**62``
        (see :func:`ntt_primes`). One row of every array per prime.
    ifma : bool
        Allow the AVX-512 IFMA path for primes below ``2**50`` (default True).

    Raises
    ------
    InputError
        When ``n`` is not a power of two in range or a prime is not an NTT prime for ``n``.
    """

    def __init__(self, n: int, primes: int | Sequence[int], *, ifma: bool = True) -> None:
        self.n = _check_n(n)
        if isinstance(primes, (int, np.integer)):
            primes = [primes]
        qs = [int(q) for q in primes]
        if not qs:
            raise InputError("NTT needs at least one prime")
        for q in qs:
            if not 0 < q < 1 << 64:
                raise InputError(f"prime {q} is out of range; NTT primes satisfy 2 < q < 2**{MAX_PRIME_BITS}")
            problem = _core.ntt_prime_problem(self.n, q)
            if problem:
                raise InputError(problem)
        self.primes: tuple[int, ...] = tuple(qs)
        self.ifma = bool(ifma)
        self._plan = _core.NttPlan(self.n, qs)
        self._moduli = np.array(qs, dtype=np.uint64)

    @property
    def roots(self) -> tuple[int, ...]:
        """The primitive ``2n``-th root of unity ``psi`` used for each prime (the smallest one)."""
        return tuple(int(r) for r in self._plan.roots)

    @property
    def paths(self) -> list[str]:
        """Kernel path per prime: ``scalar``, ``avx2``, ``avx512`` or ``avx512ifma``."""
        return list(self._plan.paths(self.ifma))

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.primes), self.n)

    def _shape_ok(self, a: np.ndarray) -> bool:
        return a.shape == self.shape or (len(self.primes) == 1 and a.shape == (self.n,))

    def _input(self, a, name: str) -> np.ndarray:
        if type(a) is np.ndarray and a.dtype == np.uint64 and a.flags.c_contiguous and self._shape_ok(a):
            return a  # the common case, checked without copies (values are checked in C++)
        arr = _as_u64(a, name)
        if not self._shape_ok(arr):
            single = f" or ({self.n},)" if len(self.primes) == 1 else ""
            raise InputError(f"{name} must have shape {self.shape}{single} (one row per prime), got {arr.shape}")
        return arr

    def _output(self, out: np.ndarray | None, like: np.ndarray) -> np.ndarray:
        if out is None:
            return np.empty(like.shape, dtype=np.uint64)
        if not isinstance(out, np.ndarray) or out.dtype != np.uint64 or out.shape != like.shape:
            raise InputError(f"out must be a uint64 numpy array of shape {like.shape}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise InputError("out must be C-contiguous and writable")
        return out

    def _call(self, fn, *args) -> None:
        try:
            fn(*args)
        except ValueError as exc:  # e.g. values not reduced mod q
            raise InputError(str(exc)) from None

    def forward(self, a, out: np.ndarray | None = None) -> np.ndarray:
        """Forward NTT of each row: uint64 ``(k, n)`` (or ``(n,)``) in ``[0, q)`` -> same shape.

        ``out`` may be ``a`` itself (in place).
        """
        a = self._input(a, "a")
        out = self._output(out, a)
        self._call(self._plan.forward, a, out, self.ifma)
        return out

    def inverse(self, a, out: np.ndarray | None = None) -> np.ndarray:
        """Inverse NTT of each row (exact: ``inverse(forward(a)) == a``)."""
        a = self._input(a, "a")
        out = self._output(out, a)
        self._call(self._plan.inverse, a, out, self.ifma)
        return out

    def pointwise(self, a, b, out: np.ndarray | None = None) -> np.ndarray:
        """``a * b mod q`` elementwise, per row (the product in the NTT domain)."""
        a, b = self._input(a, "a"), self._input(b, "b")
        out = self._output(out, a)
        self._call(self._plan.pointwise, a, b, out)
        return out

    def multiply(self, a, b, out: np.ndarray | None = None) -> np.ndarray:
        """Negacyclic product ``a * b mod (X^n + 1, q)`` of coefficient arrays, per row.

        Computed as ``inverse(forward(a) * forward(b))``.
        """
        a, b = self._input(a, "a"), self._input(b, "b")
        out = self._output(out, a)
        fa = self.forward(a)
        fb = self.forward(b)
        self._call(self._plan.pointwise, fa, fb, fa)
        self._call(self._plan.inverse, fa, out, self.ifma)
        return out

    def time_kernel(self, direction: str = "forward", repeats: int = 20, inner: int = 50) -> float:
        """Best seconds per call of the first prime's ``direction`` kernel, timed in C++ (benchmarks)."""
        return float(self._plan.time_kernel(direction, repeats, inner, self.ifma))

    def __repr__(self) -> str:
        return f"NTT(n={self.n}, primes={list(self.primes)})"
