"""BFV homomorphic encryption over RNS primes (a sharp primitive, not a recipe).

Scheme (Brakerski / Fan-Vercauteren) over ``R = Z[X] / (X^n + 1)``:

- ciphertext modulus ``q``: a product of distinct NTT primes (each ``= 1 mod 2n``,
  below ``2**61``), held per prime ("RNS limbs"), never as a big integer;
- plaintext modulus ``t``: ``2**k`` with ``1 <= k <= 64`` for coefficient encoding
  (``t = 2**64`` is ``Z_2^64``, the ring of safelight's secret shares), or a prime
  ``t = 1 mod 2n`` for batch (SIMD) encoding;
- optional special primes ``P`` for key switching; the 128-bit security check of the
  HomomorphicEncryption.org standard counts ``log2(q P)``.

Encryption of ``m`` is ``(c0, c1)`` with ``c0 + c1 s = round(q m / t) + e (mod q)``: the
scaling is the exact rounding ``floor(q/t) m + round((q mod t) m / t)``, so a product
by a plaintext ``p`` adds noise ``~|p|`` instead of ``(q mod t) |p|`` (which for
``t = 2**64`` would be as large as ``q``). The secret is uniform ternary; errors are
centred binomial with ``eta = 21`` (standard deviation 3.24, SEAL's default for its
``sigma = 3.2``); every random value comes from the project's AES-128-CTR PRG, seeded
from :func:`secrets.token_bytes` unless a ``seed`` is given (tests).

Decryption computes ``round(t x / q) mod t`` exactly in RNS (see ``bfv.hpp``) and, by
default, **refuses** a ciphertext whose noise budget is exhausted: when some
coefficient's invariant noise ``|v| / q`` exceeds ``1/4`` (noise budget 0 bits) it
raises :class:`NoiseBudgetExhaustedError` instead of returning values that may be
silently wrong. :meth:`Context.invariant_noise_budget` reports the budget in bits
like SEAL: ``floor(log2 q - log2 ||v||_inf - 1)``, ``v = t x mod q`` centred.

Products of ciphertexts (:meth:`Context.multiply`) follow Halevi-Polyakov-Shoup: exact
lifting to an auxiliary RNS base, the tensor product in the NTT domain, and the scaling
by ``t/q`` in exact RNS arithmetic; relinearisation and Galois automorphisms
(:meth:`Context.rotate_rows`, :meth:`Context.rotate_columns`) use hybrid key switching
with one digit per prime and the special primes. With a prime ``t = 1 mod 2n``,
:meth:`Context.encode_batch` packs ``n`` slots as a ``2 x n/2`` matrix (SEAL's layout)
so that products act slot by slot and rotations move slots.

Batches. Ciphertexts travel as :class:`CiphertextBatch`: a uint64 array of shape
``(count, 2, k, n)`` (``k`` primes at the batch's level, ``size`` 3 after a product
without relinearisation) plus its level and whether the rows are in the NTT domain.
Plaintexts for products are :class:`PlaintextBatch` (``(..., k, n)``). The batch calls
(:meth:`Context.encrypt_coeffs`, :meth:`Context.dot_plain`, ...) run in C++ over the
whole batch; avoid Python loops over polynomials.

Example
-------
>>> params = Params(4096, q_bits=[36, 36, 37], t=2**16)    # doctest: +SKIP
>>> ctx = Context(params); sk = ctx.keygen(); pk = ctx.public_key(sk)
>>> cts = ctx.encrypt_coeffs(values, sk)                     # (count, n) uint64
>>> pts = ctx.encode_plain_ntt(weights)                      # (k_out, count, n)
>>> out = ctx.dot_plain(ctx.to_ntt(cts), pts)                # (k_out, 2, L, n)
>>> ctx.decrypt_coeffs(ctx.rerandomize(out, pk, flood_bits=40), sk)
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Sequence

import numpy as np

from .. import _core
from ..errors import InputError, ProtocolError
from .ntt import NTT, ntt_primes

__all__ = [
    "MAX_MODULUS_BITS",
    "CiphertextBatch",
    "Context",
    "GaloisKeys",
    "NoiseBudgetExhaustedError",
    "Params",
    "PlaintextBatch",
    "PublicKey",
    "RelinKey",
    "SecretKey",
]

#: HomomorphicEncryption.org standard, classical 128-bit security, ternary secret:
#: the largest ``log2(q P)`` (bit length of the product) per ring degree.
MAX_MODULUS_BITS = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
MIN_N, MAX_N = 1024, 32768
MAX_PRIME_BITS = 61
MAX_PRIME_T_BITS = 60
FLOOD_MARGIN_BITS = 10  # flooding noise stays this far below q / t

_MAGIC = b"SLBFV1"
_HEADER = struct.Struct("<6s8sIBBBBI")  # magic, fingerprint, count, size, k, level, flags, n
_FLAG_NTT, _FLAG_SEEDED = 1, 2
_PK_MAGIC = b"SLBPK1"


class NoiseBudgetExhaustedError(ProtocolError):
    """A ciphertext's noise budget is exhausted: decrypting it could give wrong values.

    Raised by :meth:`Context.decrypt_coeffs` (with ``check=True``, the default) when the
    invariant noise of some coefficient exceeds ``q/4``. Use larger ``q`` (more or bigger
    primes), fewer or smaller plaintext multipliers, or less flooding noise.
    """


def _random_seed(seed: bytes | None, name: str = "seed") -> bytes:
    if seed is None:
        return secrets.token_bytes(16)
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != 16:
        raise InputError(f"{name} must be 16 bytes (or None for a fresh random seed)")
    return bytes(seed)


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


class Params:
    """BFV parameters: ring degree, ciphertext primes, plaintext modulus, special primes.

    Parameters
    ----------
    n : int
        Ring degree, a power of two from 1024 to 32768.
    q_bits : sequence of int, optional
        Bit sizes of the ciphertext primes (each 20..61); distinct NTT primes are chosen
        with :func:`safelight.he.ntt_primes` (the largest below ``2**bits``).
    t : int
        Plaintext modulus: ``2**k`` (``1 <= k <= 64``) or a prime ``= 1 mod 2n`` below
        ``2**60`` (batch encoding).
    q_primes : sequence of int, optional
        Explicit ciphertext primes instead of ``q_bits``.
    special_bits, special_primes : sequence of int, optional
        Key-switching primes ``P`` (bit sizes or explicit primes); needed by
        relinearisation and rotations.
    allow_insecure : bool
        Accept ``log2(q P)`` above the 128-bit security bound (tests only).

    Raises
    ------
    InputError
        Bad sizes, primes that are not NTT primes for ``n``, an unusable ``t``, or a
        modulus too large for 128-bit security (unless ``allow_insecure``).
    """

    def __init__(
        self,
        n: int,
        q_bits: Sequence[int] | None = None,
        *,
        t: int,
        q_primes: Sequence[int] | None = None,
        special_bits: Sequence[int] = (),
        special_primes: Sequence[int] | None = None,
        allow_insecure: bool = False,
    ) -> None:
        n = _check_int(n, "n")
        if n < MIN_N or n > MAX_N or n & (n - 1):
            raise InputError(f"n must be a power of two from {MIN_N} to {MAX_N}, got {n}")
        self.n = n
        t = _check_int(t, "t")
        if t >= 2 and t & (t - 1) == 0:
            if t > 1 << 64:
                raise InputError(f"a power-of-two t must be at most 2**64, got 2**{t.bit_length() - 1}")
            self.t_bits = t.bit_length() - 1
            self.t_pow2 = True
        else:
            if t < 3 or t >= 1 << MAX_PRIME_T_BITS or _core.ntt_prime_problem(n, t) != "":
                raise InputError(
                    f"t must be a power of two 2**k (1 <= k <= 64) or a prime = 1 mod 2n = "
                    f"{2 * n} below 2**{MAX_PRIME_T_BITS} (batch encoding), got {t}"
                )
            self.t_bits = t.bit_length()
            self.t_pow2 = False
        self.t = t
        if (q_bits is None) == (q_primes is None):
            raise InputError("give exactly one of q_bits (prime bit sizes) or q_primes (explicit primes)")
        if special_primes is not None and special_bits:
            raise InputError("give special_bits or special_primes, not both")
        taken: set[int] = set()
        if q_primes is not None:
            q = [_check_int(p, "q_primes entry") for p in q_primes]
            taken.update(q)
        if special_primes is not None:
            special = [_check_int(p, "special_primes entry") for p in special_primes]
            taken.update(special)
        if q_primes is None:
            q = self._choose(q_bits, taken)
        if special_primes is None:
            special = self._choose(special_bits, taken)
        if not q:
            raise InputError("the ciphertext modulus needs at least one prime")
        self.q: tuple[int, ...] = tuple(q)
        self.special: tuple[int, ...] = tuple(special)
        for p in self.q + self.special:
            if not 0 < p < 1 << MAX_PRIME_BITS:
                raise InputError(f"prime {p} is out of range: BFV primes are below 2**{MAX_PRIME_BITS}")
            why = _core.ntt_prime_problem(n, p)
            if why:
                raise InputError(why)
        if len(set(self.q + self.special)) != len(self.q + self.special):
            raise InputError("the primes of q and P must be distinct")
        if t in self.q + self.special:
            raise InputError("t must differ from every ciphertext prime")
        self.modulus_bits = self._product(self.q + self.special).bit_length()
        self.q_bits = self._product(self.q).bit_length()
        if self.q_bits < self.t_bits + 8:
            raise InputError(
                f"q ({self.q_bits} bits) must exceed t ({self.t_bits} bits) by at least 8 bits "
                "of noise room (and by far more for useful circuits)"
            )
        limit = MAX_MODULUS_BITS[n]
        self.secure = self.modulus_bits <= limit
        if not self.secure and not allow_insecure:
            raise InputError(
                f"log2(q P) = {self.modulus_bits} bits is above {limit}, the 128-bit security bound "
                f"for n = {n} (HomomorphicEncryption.org standard, ternary secret); use fewer or "
                f"smaller primes, a larger n, or allow_insecure=True for tests"
            )

    def _choose(self, bits: Sequence[int] | None, taken: set[int]) -> list[int]:
        out: list[int] = []
        for b in bits or ():
            b = _check_int(b, "prime bit size")
            if not 20 <= b <= MAX_PRIME_BITS:
                raise InputError(f"prime bit sizes must be in 20..{MAX_PRIME_BITS}, got {b}")
            count = 1
            while True:
                cands = ntt_primes(b, self.n, count)
                fresh = [p for p in cands if p not in taken]
                if fresh:
                    out.append(fresh[0])
                    taken.add(fresh[0])
                    break
                count += 1
        return out

    @staticmethod
    def _product(primes: Sequence[int]) -> int:
        prod = 1
        for p in primes:
            prod *= p
        return prod

    @property
    def fingerprint(self) -> bytes:
        """8 bytes identifying (n, q, P, t): serialised ciphertexts carry it."""
        text = f"bfv|{self.n}|{','.join(map(str, self.q))}|{','.join(map(str, self.special))}|{self.t}"
        return hashlib.sha256(text.encode()).digest()[:8]

    def __repr__(self) -> str:
        return (
            f"Params(n={self.n}, q_primes={list(self.q)}, t={'2**' + str(self.t_bits) if self.t_pow2 else self.t}"
            f", special_primes={list(self.special)}, log2(qP)={self.modulus_bits})"
        )


class SecretKey:
    """A BFV secret key (uniform ternary, NTT form over q and P). Its repr hides the key."""

    def __init__(self, context: Context, data: np.ndarray) -> None:
        self.context = context
        self._data = data

    def __repr__(self) -> str:
        return f"SecretKey(n={self.context.n}, <secret>)"


class PublicKey:
    """A BFV public key ``(-(a s + e), a)`` in NTT form; ``a`` is expanded from a 16-byte seed."""

    def __init__(self, context: Context, data: np.ndarray, seed: bytes) -> None:
        self.context = context
        self._data = data
        self._seed = seed

    def to_bytes(self) -> bytes:
        """Serialise: ``pk0`` rows and the seed of ``a`` (about half the size of both rows)."""
        return _PK_MAGIC + self.context.params.fingerprint + self._seed + self._data[0].tobytes()

    @classmethod
    def from_bytes(cls, context: Context, data: bytes) -> PublicKey:
        """Inverse of :meth:`to_bytes`; raises InputError on a malformed or foreign key."""
        L, n = context.num_q, context.n
        size = len(_PK_MAGIC) + 8 + 16 + 8 * L * n
        data = bytes(data)
        if len(data) != size or data[:6] != _PK_MAGIC:
            raise InputError(
                f"not a serialised BFV public key for these parameters ({len(data)} bytes, expected {size})"
            )
        if data[6:14] != context.params.fingerprint:
            raise InputError("this public key was made for other BFV parameters (fingerprint mismatch)")
        seed = data[14:30]
        pk = np.empty((2, L, n), dtype=np.uint64)
        pk[0] = np.frombuffer(data, dtype="<u8", count=L * n, offset=30).reshape(L, n)
        if not context._core.is_reduced(pk[0]):
            raise InputError("public key rows are not reduced mod their primes")
        pk[1] = context._core.uniform_rows(seed, 0, L)
        return cls(context, pk, seed)

    def __repr__(self) -> str:
        return f"PublicKey(n={self.context.n}, primes={self.context.num_q})"


class RelinKey:
    """A relinearisation key (key switching from ``s^2`` to ``s``): ``(L, 2, L + K, n)`` in NTT form."""

    def __init__(self, context: Context, data: np.ndarray) -> None:
        self.context = context
        self._data = data

    def __repr__(self) -> str:
        return f"RelinKey(n={self.context.n}, digits={self._data.shape[0]})"


class GaloisKeys:
    """Key-switching keys for Galois automorphisms ``X -> X^g``, one per element ``g``.

    ``elements`` lists the ``g`` available; :meth:`Context.rotate_rows` composes the
    rotations it needs from them.
    """

    def __init__(self, context: Context, keys: dict[int, np.ndarray]) -> None:
        self.context = context
        self._keys = keys

    @property
    def elements(self) -> list[int]:
        return sorted(self._keys)

    def __repr__(self) -> str:
        return f"GaloisKeys(n={self.context.n}, elements={len(self._keys)})"


class PlaintextBatch:
    """Plaintext polynomials lifted to the primes of one level: uint64 ``(..., k, n)``.

    Made by :meth:`Context.encode_plain_ntt`; ``ntt`` tells the form of the rows.
    """

    def __init__(self, data: np.ndarray, level: int, ntt: bool) -> None:
        self.data = data
        self.level = level
        self.ntt = ntt

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"PlaintextBatch(shape={self.data.shape}, level={self.level}, ntt={self.ntt})"


class CiphertextBatch:
    """A batch of BFV ciphertexts: uint64 ``data`` of shape ``(count, size, k, n)``.

    Attributes
    ----------
    data : numpy.ndarray
        ``(count, size, k, n)`` uint64, row ``i`` of each polynomial reduced mod ``q_i``.
    level : int
        Primes dropped by mod switching (``k = L - level``).
    ntt : bool
        Whether the rows are in the NTT domain.
    seeds : numpy.ndarray or None
        ``(count, 16)`` uint8 for fresh secret-key encryptions whose ``c1`` is the
        expansion of a seed (serialised as the seed); None once ``c1`` changes.
    """

    def __init__(
        self, context: Context, data: np.ndarray, level: int, ntt: bool, seeds: np.ndarray | None = None
    ) -> None:
        self.context = context
        self.data = data
        self.level = level
        self.ntt = ntt
        self.seeds = seeds

    @property
    def count(self) -> int:
        return self.data.shape[0]

    @property
    def size(self) -> int:
        return self.data.shape[1]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index) -> CiphertextBatch:
        """A sub-batch (an int gives a batch of one)."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        seeds = None if self.seeds is None else np.ascontiguousarray(self.seeds[index])
        return CiphertextBatch(self.context, np.ascontiguousarray(self.data[index]), self.level, self.ntt, seeds)

    @property
    def nbytes(self) -> int:
        """Size of :meth:`to_bytes` in bytes."""
        count, size, k, n = self.data.shape
        polys = 1 if self.seeds is not None else size
        return _HEADER.size + 8 * count * polys * k * n + (16 * count if self.seeds is not None else 0)

    def to_bytes(self) -> bytes:
        """Serialise (header, little-endian rows; seeded ciphertexts send ``c0`` and the seed)."""
        count, size, k, n = self.data.shape
        flags = (_FLAG_NTT if self.ntt else 0) | (_FLAG_SEEDED if self.seeds is not None else 0)
        head = _HEADER.pack(_MAGIC, self.context.params.fingerprint, count, size, k, self.level, flags, n)
        if self.seeds is not None:
            return head + self.data[:, 0].astype("<u8", copy=False).tobytes() + self.seeds.tobytes()
        return head + self.data.astype("<u8", copy=False).tobytes()

    def __repr__(self) -> str:
        return (
            f"CiphertextBatch(count={self.count}, size={self.size}, level={self.level}, ntt={self.ntt}, "
            f"seeded={self.seeds is not None})"
        )


PlainLike = PlaintextBatch | np.ndarray | Sequence[int]


class Context:
    """A BFV context: the C++ engine for one :class:`Params`, and every operation.

    All batch methods take and return numpy arrays / batches, validate their inputs
    once here and run in C++ (threads over the batch where it is large).
    """

    def __init__(self, params: Params) -> None:
        if not isinstance(params, Params):
            raise InputError(f"Context needs a Params, got {type(params).__name__}")
        self.params = params
        try:
            self._core = _core.BfvContext(
                params.n,
                list(params.q),
                list(params.special),
                params.t_pow2,
                params.t_bits if params.t_pow2 else 0,
                0 if params.t_pow2 else params.t,
            )
        except ValueError as exc:
            raise InputError(str(exc)) from None

    # ------------------------------------------------------------------ basics
    @property
    def n(self) -> int:
        return self.params.n

    @property
    def t(self) -> int:
        return self.params.t

    @property
    def num_q(self) -> int:
        """``L``: the primes of ``q`` (a level-``l`` ciphertext has ``L - l`` rows per polynomial)."""
        return len(self.params.q)

    @property
    def dot_paths(self) -> list[str]:
        """Kernel path of :meth:`dot_plain` per prime: ``scalar``, ``avx512`` or ``avx512ifma``."""
        return list(self._core.dot_paths())

    def log2_q(self, level: int = 0) -> float:
        return float(self._core.log2_q(level))

    def __repr__(self) -> str:
        return f"Context({self.params!r})"

    # -------------------------------------------------------------------- keys
    def keygen(self, seed: bytes | None = None) -> SecretKey:
        """A fresh uniform ternary secret key (``seed``: 16 bytes for reproducible tests)."""
        return SecretKey(self, self._core.keygen_secret(_random_seed(seed)))

    def public_key(self, sk: SecretKey, seed: bytes | None = None) -> PublicKey:
        """The public key of ``sk``; ``seed`` (16 bytes) fixes both ``a`` and the error."""
        self._check_key(sk, SecretKey)
        base = _random_seed(seed)
        a_seed = hashlib.sha256(b"bfv-pk-a" + base).digest()[:16]
        e_seed = hashlib.sha256(b"bfv-pk-e" + base).digest()[:16]
        return PublicKey(self, self._core.keygen_public(sk._data, a_seed, e_seed), a_seed)

    def _check_key(self, key, kind) -> None:
        if not isinstance(key, kind):
            raise InputError(f"expected a {kind.__name__}, got {type(key).__name__}")
        if key.context is not self and key.context.params.fingerprint != self.params.fingerprint:
            raise InputError(f"this {kind.__name__} belongs to other BFV parameters")

    # --------------------------------------------------------------- plaintexts
    def _plain(self, values, name: str = "values") -> np.ndarray:
        """Any integer array-like -> uint64 (count, n) reduced mod t (zero-padded)."""
        arr = np.asarray(values)
        if arr.dtype == object:
            try:
                arr = np.vectorize(lambda v: int(v) % self.t, otypes=[object])(arr).astype(np.uint64)
            except (TypeError, ValueError):
                raise InputError(f"{name} must hold integers") from None
        elif arr.dtype.kind == "b":
            arr = arr.astype(np.uint64)
        elif arr.dtype.kind in "iu":
            if arr.dtype.kind == "i":
                if self.params.t_pow2:  # two's complement mod 2^64, then mod 2^k
                    arr = arr.astype(np.int64).view(np.uint64)
                else:
                    arr = np.mod(arr.astype(np.int64), np.int64(self.t)).astype(np.uint64)
            else:
                arr = arr.astype(np.uint64)
            if self.params.t_pow2 and self.t < 1 << 64:
                arr = arr & np.uint64(self.t - 1)
            elif not self.params.t_pow2:
                arr = np.mod(arr, np.uint64(self.t))
        else:
            raise InputError(f"{name} must hold integers (uint64 or int64, taken mod t), got dtype {arr.dtype}")
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.shape[-1] > self.n:
            raise InputError(f"{name} has {arr.shape[-1]} coefficients per polynomial; at most n = {self.n}")
        if arr.shape[-1] < self.n:
            pad = [(0, 0)] * (arr.ndim - 1) + [(0, self.n - arr.shape[-1])]
            arr = np.pad(arr, pad)
        return np.ascontiguousarray(arr, dtype=np.uint64)

    def encode_plain_ntt(self, values, level: int = 0) -> PlaintextBatch:
        """Plaintext polynomials for products, lifted to each prime and transformed.

        Parameters
        ----------
        values : array-like of int, shape ``(..., m)`` with ``m <= n``
            Coefficients mod ``t`` (int64 / negative values are taken mod ``t``), read as
            centred representatives in ``(-t/2, t/2]``; zero-padded to ``n``.
        level : int
            Level of the ciphertexts they will multiply.

        Returns
        -------
        PlaintextBatch
            uint64 ``(..., k, n)`` in NTT form, ``k = L - level``; e.g. ``(k_out, m_in, n)``
            values give the ``(k_out, m_in, k, n)`` matrix :meth:`dot_plain` takes.
        """
        k = self._rows(level)
        arr = self._plain(values)
        lead = arr.shape[:-1]
        flat = arr.reshape(-1, self.n)
        lifted = self._core.lift_plain(flat, k)
        self._core.to_ntt(lifted)
        return PlaintextBatch(lifted.reshape(*lead, k, self.n), level, True)

    def _rows(self, level: int) -> int:
        level = _check_int(level, "level")
        if not 0 <= level < self.num_q:
            raise InputError(f"level must be in 0..{self.num_q - 1}, got {level}")
        return self.num_q - level

    # --------------------------------------------------------------- encryption
    def encrypt_coeffs(
        self, values, key: SecretKey | PublicKey, *, seeded: bool = True, ntt: bool = False, seed: bytes | None = None
    ) -> CiphertextBatch:
        """Encrypt polynomials given by their coefficients, one ciphertext per row.

        Parameters
        ----------
        values : array-like of int, shape ``(count, m)`` or ``(m,)``, ``m <= n``
            Coefficients, taken mod ``t`` (zero-padded to ``n``).
        key : SecretKey or PublicKey
            Secret-key encryption is smaller when ``seeded`` (``c1`` sent as its seed).
        seeded : bool
            Secret key only: keep the 16-byte seeds of ``c1`` so that :meth:`CiphertextBatch.to_bytes`
            sends about half the data. The batch is the same either way.
        ntt : bool
            Return the rows in the NTT domain (what :meth:`dot_plain` takes).
        seed : bytes, optional
            16 bytes for reproducible randomness (tests); fresh random by default.

        Returns
        -------
        CiphertextBatch
            ``(count, 2, L, n)`` at level 0.
        """
        arr = self._plain(values)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2:
            raise InputError(f"values must have shape (count, m) or (m,), got {arr.shape}")
        s = _random_seed(seed)
        if isinstance(key, SecretKey):
            self._check_key(key, SecretKey)
            data, seeds = self._core.encrypt_sk(arr, key._data, s, bool(ntt))
            return CiphertextBatch(self, data, 0, bool(ntt), seeds if seeded else None)
        self._check_key(key, PublicKey)
        data = self._core.encrypt_pk(arr, key._data, s, bool(ntt))
        return CiphertextBatch(self, data, 0, bool(ntt))

    def encrypt(self, values, key: SecretKey | PublicKey, **kwargs) -> CiphertextBatch:
        """One polynomial (``(m,)``, ``m <= n``) -> a batch of one (see :meth:`encrypt_coeffs`)."""
        arr = self._plain(values)
        if arr.ndim != 1:
            raise InputError(f"encrypt takes one polynomial (m,), got shape {arr.shape}; use encrypt_coeffs")
        return self.encrypt_coeffs(arr[None], key, **kwargs)

    # --------------------------------------------------------------- decryption
    def _check_batch(self, batch, name: str = "batch") -> CiphertextBatch:
        if not isinstance(batch, CiphertextBatch):
            raise InputError(f"{name} must be a CiphertextBatch, got {type(batch).__name__}")
        if batch.context is not self and batch.context.params.fingerprint != self.params.fingerprint:
            raise InputError(f"{name} belongs to other BFV parameters")
        return batch

    def decrypt_coeffs(self, batch: CiphertextBatch, sk: SecretKey, *, check: bool = True) -> np.ndarray:
        """Decrypt every ciphertext of ``batch`` to its coefficients.

        Parameters
        ----------
        batch : CiphertextBatch
            Any level, size 2 or 3, either form.
        sk : SecretKey
        check : bool
            Raise :class:`NoiseBudgetExhaustedError` if some ciphertext's noise budget is
            0 (its noise exceeds ``q/4`` in some coefficient), instead of returning values
            that may be wrong. Costs nothing extra (the noise is a by-product of the
            rounding).

        Returns
        -------
        numpy.ndarray
            uint64 ``(count, n)`` in ``[0, t)`` (for ``t = 2**64``, elements of ``Z_2^64``).
        """
        self._check_batch(batch)
        self._check_key(sk, SecretKey)
        values, worst = self._core.decrypt(batch.data, sk._data, batch.ntt)
        if check:
            bad = np.flatnonzero(worst >= np.uint64(1 << 62))
            if bad.size:
                raise NoiseBudgetExhaustedError(
                    f"{bad.size} of {batch.count} ciphertexts (first: index {int(bad[0])}) have no noise budget "
                    "left: their noise exceeds q/4, so decryption could be wrong. Use a larger q, smaller "
                    "plaintext multipliers or less flooding (decrypt_coeffs(..., check=False) skips this check)"
                )
        return values

    def decrypt(self, batch: CiphertextBatch, sk: SecretKey, *, check: bool = True) -> np.ndarray:
        """A batch of one -> its ``(n,)`` coefficients (see :meth:`decrypt_coeffs`)."""
        if self._check_batch(batch).count != 1:
            raise InputError(f"decrypt takes a batch of one ciphertext, got {batch.count}; use decrypt_coeffs")
        return self.decrypt_coeffs(batch, sk, check=check)[0]

    def invariant_noise_budget(self, batch: CiphertextBatch, sk: SecretKey) -> np.ndarray:
        """Noise budget in bits per ciphertext, int64 ``(count,)`` (0 when exhausted).

        ``floor(log2 q - log2 ||v||_inf - 1)`` with ``v = t (c0 + c1 s) mod q`` centred
        (SEAL's definition), from an exact CRT composition of ``v``.
        """
        self._check_batch(batch)
        self._check_key(sk, SecretKey)
        return self._core.noise_budget(batch.data, sk._data, batch.ntt)

    def phase(self, batch: CiphertextBatch, sk: SecretKey) -> np.ndarray:
        """``x = c0 + c1 s (+ c2 s^2) mod q`` per ciphertext, uint64 ``(count, k, n)`` in coefficient
        form (``x = round(q m / t) + noise``): for noise inspection and tests."""
        self._check_batch(batch)
        self._check_key(sk, SecretKey)
        return self._core.phase(batch.data, sk._data, batch.ntt)

    # -------------------------------------------------------------- conversions
    def to_ntt(self, batch):
        """The batch (CiphertextBatch or PlaintextBatch) with its rows in the NTT domain."""
        return self._convert(batch, True)

    def from_ntt(self, batch):
        """The batch with its rows in coefficient form."""
        return self._convert(batch, False)

    def _convert(self, batch, ntt: bool):
        if isinstance(batch, PlaintextBatch):
            if batch.ntt == ntt:
                return batch
            data = batch.data.copy()
            (self._core.to_ntt if ntt else self._core.from_ntt)(data)
            return PlaintextBatch(data, batch.level, ntt)
        self._check_batch(batch)
        if batch.ntt == ntt:
            return batch
        data = batch.data.copy()
        (self._core.to_ntt if ntt else self._core.from_ntt)(data)
        return CiphertextBatch(self, data, batch.level, ntt, batch.seeds)

    # --------------------------------------------------------------- arithmetic
    def _same(self, a: CiphertextBatch, b: CiphertextBatch) -> None:
        self._check_batch(a, "a")
        self._check_batch(b, "b")
        if a.level != b.level or a.ntt != b.ntt:
            raise InputError(
                f"operands differ in level ({a.level} vs {b.level}) or form (ntt {a.ntt} vs {b.ntt}); "
                "mod switch / convert one of them first"
            )
        if a.data.shape != b.data.shape:
            raise InputError(f"operands have different shapes {a.data.shape} and {b.data.shape}")

    def add(self, a: CiphertextBatch, b: CiphertextBatch) -> CiphertextBatch:
        """Elementwise sum of two batches (same shape, level and form)."""
        self._same(a, b)
        return CiphertextBatch(self, self._core.add(a.data, b.data), a.level, a.ntt)

    def sub(self, a: CiphertextBatch, b: CiphertextBatch) -> CiphertextBatch:
        """Elementwise difference ``a - b``."""
        self._same(a, b)
        return CiphertextBatch(self, self._core.sub(a.data, b.data), a.level, a.ntt)

    def negate(self, a: CiphertextBatch) -> CiphertextBatch:
        """``-a``."""
        self._check_batch(a, "a")
        return CiphertextBatch(self, self._core.negate(a.data), a.level, a.ntt)

    def _plain_for(self, batch: CiphertextBatch, values, name: str) -> np.ndarray:
        arr = self._plain(values, name)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[0] not in (1, batch.count):
            raise InputError(f"{name} must have shape (m,) or ({batch.count}, m), got {arr.shape}")
        return arr

    def add_plain(self, batch: CiphertextBatch, values) -> CiphertextBatch:
        """``batch + values`` (plaintexts ``(m,)`` for all, or ``(count, m)``), scaled exactly."""
        self._check_batch(batch)
        arr = self._plain_for(batch, values, "values")
        scaled = self._core.scale_plain(arr, batch.level)  # (1 or count, k, n)
        if batch.ntt:
            self._core.to_ntt(scaled)
        data = batch.data.copy()
        c0 = np.ascontiguousarray(data[:, 0])
        c0 = self._core.add(c0, np.ascontiguousarray(np.broadcast_to(scaled, c0.shape)))
        data[:, 0] = c0
        return CiphertextBatch(self, data, batch.level, batch.ntt)

    def sub_plain(self, batch: CiphertextBatch, values) -> CiphertextBatch:
        """``batch - values``."""
        arr = self._plain_for(self._check_batch(batch), values, "values")
        neg = (np.uint64(0) - arr) if self.t == 1 << 64 else np.mod(np.uint64(self.t) - arr, np.uint64(self.t))
        return self.add_plain(batch, neg)

    def multiply_plain(self, batch: CiphertextBatch, plain: PlainLike) -> CiphertextBatch:
        """``batch * plain``: a PlaintextBatch ``(1 or count, k, n)`` in NTT form, or coefficients
        ``(m,)`` / ``(count, m)`` (any values mod ``t``, read centred). The result keeps the batch's form."""
        self._check_batch(batch)
        k = batch.data.shape[2]
        if isinstance(plain, PlaintextBatch):
            if not plain.ntt:
                plain = self.to_ntt(plain)
            if plain.level != batch.level:
                raise InputError(f"plaintext level {plain.level} differs from the batch's level {batch.level}")
            pt = plain.data.reshape(-1, k, self.n)
        else:
            arr = self._plain_for(batch, plain, "plain")
            pt = self.encode_plain_ntt(arr, batch.level).data
        if pt.shape[0] not in (1, batch.count):
            raise InputError(f"plaintext batch has {pt.shape[0]} polynomials; expected 1 or {batch.count}")
        data = batch.data if batch.ntt else self.to_ntt(batch).data
        out = self._core.multiply_plain_ntt(data, np.ascontiguousarray(pt))
        if not batch.ntt:
            self._core.from_ntt(out)
        return CiphertextBatch(self, out, batch.level, batch.ntt)

    def dot_plain(self, cts: CiphertextBatch, pts: PlaintextBatch, *, threads: bool = True) -> CiphertextBatch:
        """Plaintext matrix times ciphertext vector: ``out[j] = sum_i cts[i] * pts[j, i]``.

        Parameters
        ----------
        cts : CiphertextBatch
            ``(m, 2, k, n)`` in NTT form (:meth:`to_ntt`).
        pts : PlaintextBatch
            ``(k_out, m, k, n)`` in NTT form at the same level (:meth:`encode_plain_ntt` of
            ``(k_out, m, n)`` values), e.g. a convolution's weights summed over input channels.
        threads : bool
            Spread the ``k_out * k`` output rows over worker threads when large.

        Returns
        -------
        CiphertextBatch
            ``(k_out, 2, k, n)`` in NTT form. The C++ kernel accumulates the products
            lazily (128-bit, or 52-bit halves on AVX-512 IFMA for primes below ``2**50``)
            and reduces once per output (every 15+ terms).
        """
        self._check_batch(cts, "cts")
        if not isinstance(pts, PlaintextBatch):
            raise InputError(f"pts must be a PlaintextBatch (see encode_plain_ntt), got {type(pts).__name__}")
        if not cts.ntt or not pts.ntt:
            raise InputError("dot_plain takes ciphertexts and plaintexts in NTT form: convert with ctx.to_ntt")
        if cts.level != pts.level:
            raise InputError(f"plaintexts are encoded for level {pts.level}, ciphertexts are at level {cts.level}")
        if cts.size != 2:
            raise InputError("dot_plain takes ciphertexts of size 2 (relinearise first)")
        m, _, k, n = cts.data.shape
        if pts.data.ndim != 4 or pts.data.shape[1:] != (m, k, n):
            raise InputError(f"pts must have shape (k_out, {m}, {k}, {n}), got {pts.data.shape}")
        out = self._core.dot_plain(cts.data, pts.data, bool(threads))
        return CiphertextBatch(self, out, cts.level, True)

    # ------------------------------------------------------- noise and levels
    def max_flood_bits(self, level: int = 0) -> int:
        """The largest ``flood_bits`` :meth:`rerandomize` accepts at ``level``."""
        return int(self.log2_q(level)) - self.params.t_bits - FLOOD_MARGIN_BITS

    def rerandomize(
        self, batch: CiphertextBatch, pk: PublicKey, flood_bits: int = 0, seed: bytes | None = None
    ) -> CiphertextBatch:
        """Re-randomise for circuit privacy: add a fresh public-key encryption of zero and,
        with ``flood_bits > 0``, noise uniform in ``[-2**flood_bits, 2**flood_bits)`` on ``c0``.

        Noise flooding hides the noise a computation left (which depends on the plaintexts
        it used) when ``flood_bits`` exceeds that noise by a statistical security margin
        (e.g. 40 bits more). ``flood_bits`` may exceed 64 and is at most
        ``log2(q) - log2(t) - 10`` (:meth:`max_flood_bits`).
        """
        self._check_batch(batch)
        self._check_key(pk, PublicKey)
        flood_bits = _check_int(flood_bits, "flood_bits")
        limit = self.max_flood_bits(batch.level)
        if not 0 <= flood_bits <= limit:
            raise InputError(
                f"flood_bits must be in 0..{limit} at level {batch.level} "
                f"(log2 q - log2 t - {FLOOD_MARGIN_BITS}), got {flood_bits}"
            )
        if batch.size != 2:
            raise InputError("rerandomize takes ciphertexts of size 2 (relinearise first)")
        data = batch.data.copy()
        self._core.rerandomize(data, pk._data, _random_seed(seed), flood_bits, batch.ntt)
        return CiphertextBatch(self, data, batch.level, batch.ntt)

    def mod_switch_to_next(self, batch: CiphertextBatch) -> CiphertextBatch:
        """Drop the last prime: ``c' = round(c q' / q)``, the message unchanged, noise scaled down
        by ``q_last`` (plus a rounding term ~``||s||_1``). Works in either form."""
        self._check_batch(batch)
        if batch.level + 1 >= self.num_q:
            raise InputError("the batch is at the last level: no prime left to drop")
        out = self._core.mod_switch_to_next(batch.data, batch.ntt)
        return CiphertextBatch(self, out, batch.level + 1, batch.ntt)

    # ---------------------------------------- multiplication and key switching
    def relin_key(self, sk: SecretKey, seed: bytes | None = None) -> RelinKey:
        """The relinearisation key of ``sk`` (needs special primes in the parameters)."""
        self._check_key(sk, SecretKey)
        self._need_special("relinearisation")
        return RelinKey(self, self._core.keygen_relin(sk._data, _random_seed(seed)))

    def galois_keys(
        self, sk: SecretKey, steps: Sequence[int] | None = None, *, columns: bool = True, seed: bytes | None = None
    ) -> GaloisKeys:
        """Galois keys for row rotations by ``steps`` (default: every power of two, both
        directions, as SEAL) and, with ``columns``, for swapping the two rows."""
        self._check_key(sk, SecretKey)
        self._need_special("rotations")
        half = self.n // 2
        if steps is None:
            steps = []
            s = 1
            while s < half:
                steps += [s, -s]
                s *= 2
        elements = {self._row_element(_check_int(st, "step")) for st in steps}
        if columns:
            elements.add(2 * self.n - 1)
        elements.discard(1)
        base = _random_seed(seed)
        keys = {}
        for g in sorted(elements):
            gseed = hashlib.sha256(b"bfv-galois" + base + g.to_bytes(8, "little")).digest()[:16]
            keys[g] = self._core.keygen_galois(sk._data, g, gseed)
        return GaloisKeys(self, keys)

    def _need_special(self, what: str) -> None:
        if not self.params.special:
            raise InputError(
                f"{what} needs key-switching primes: create Params with special_bits "
                "(e.g. one prime as large as the largest q prime)"
            )

    def _row_element(self, steps: int) -> int:
        """Galois element of a left rotation of both rows by ``steps`` (3^steps mod 2n)."""
        half = self.n // 2
        return pow(3, steps % half, 2 * self.n)

    def multiply(self, a: CiphertextBatch, b: CiphertextBatch, relin_key: RelinKey | None = None) -> CiphertextBatch:
        """Ciphertext product ``a * b`` (elementwise over the batches).

        RNS multiplication after Halevi-Polyakov-Shoup: the inputs are lifted exactly to
        an auxiliary base, the tensor product is taken in the NTT domain and scaled by
        ``t/q`` with exact RNS arithmetic (see ``bfv.hpp``). The result has 3 polynomials,
        or 2 when ``relin_key`` is given (relinearised). It keeps the inputs' form.
        """
        self._same(a, b)
        if a.size != 2:
            raise InputError("multiply takes ciphertexts of size 2 (relinearise first)")
        data = self._core.multiply(a.data, a.data if b is a else b.data, a.ntt)
        out = CiphertextBatch(self, data, a.level, False)
        if relin_key is not None:
            out = self.relinearize(out, relin_key)
        return self.to_ntt(out) if a.ntt else out

    def square(self, a: CiphertextBatch, relin_key: RelinKey | None = None) -> CiphertextBatch:
        """``a * a`` (cheaper than :meth:`multiply`: one lift, three products per slot)."""
        return self.multiply(a, a, relin_key)

    def relinearize(self, batch: CiphertextBatch, relin_key: RelinKey) -> CiphertextBatch:
        """A size-3 batch -> size 2 decrypting to the same values (keeps the batch's form)."""
        self._check_batch(batch)
        self._check_key(relin_key, RelinKey)
        if batch.size != 3:
            raise InputError(f"relinearize takes ciphertexts of size 3, got size {batch.size}")
        coeff = self.from_ntt(batch)
        out = CiphertextBatch(self, self._core.relinearize(coeff.data, relin_key._data), batch.level, False)
        return self.to_ntt(out) if batch.ntt else out

    def apply_galois(self, batch: CiphertextBatch, g: int, keys: GaloisKeys) -> CiphertextBatch:
        """The automorphism ``X -> X^g`` (``g`` odd, below ``2n``), switched back to the secret key."""
        self._check_batch(batch)
        self._check_key(keys, GaloisKeys)
        g = _check_int(g, "g")
        if g not in keys._keys:
            raise InputError(f"no Galois key for element {g}; available: {keys.elements}")
        if batch.size != 2:
            raise InputError("Galois automorphisms take ciphertexts of size 2 (relinearise first)")
        coeff = self.from_ntt(batch)
        out = CiphertextBatch(self, self._core.apply_galois(coeff.data, g, keys._keys[g]), batch.level, False)
        return self.to_ntt(out) if batch.ntt else out

    def rotate_rows(self, batch: CiphertextBatch, steps: int, keys: GaloisKeys) -> CiphertextBatch:
        """Batch encoding: rotate both rows of the ``2 x n/2`` slot matrix left by ``steps``
        (negative: right), composing the available Galois keys (powers of two by default)."""
        half = self.n // 2
        steps = _check_int(steps, "steps") % half
        if steps == 0:
            return batch
        g = self._row_element(steps)
        if g in keys._keys:
            return self.apply_galois(batch, g, keys)
        out = batch
        bit = 0
        while steps:
            if steps & 1:
                gb = self._row_element(1 << bit)
                if gb not in keys._keys:
                    raise InputError(
                        f"no Galois key for a rotation by {1 << bit}; generate keys for it "
                        "(galois_keys(sk, steps=[...]))"
                    )
                out = self.apply_galois(out, gb, keys)
            steps >>= 1
            bit += 1
        return out

    def rotate_columns(self, batch: CiphertextBatch, keys: GaloisKeys) -> CiphertextBatch:
        """Batch encoding: swap the two rows of the slot matrix (``X -> X^(2n-1)``)."""
        return self.apply_galois(batch, 2 * self.n - 1, keys)

    # --------------------------------------------------------- batch encoding
    def _slot_index(self) -> np.ndarray:
        if getattr(self, "_slots", None) is None:
            if self.params.t_pow2:
                raise InputError(
                    "batch encoding needs a prime t = 1 mod 2n (got a power of two): "
                    "use coefficient encoding, or Params(t=ntt_primes(bits, n, 1)[0])"
                )
            n, half, log_n = self.n, self.n // 2, self.n.bit_length() - 1
            idx = np.empty((2, half), dtype=np.int64)
            e = 1
            for j in range(half):
                for row, exp in ((0, e), (1, 2 * n - e)):
                    k = (exp - 1) // 2
                    idx[row, j] = int(format(k, f"0{log_n}b")[::-1], 2)
                e = e * 3 % (2 * n)
            self._slots = idx
            self._slot_ntt = NTT(n, self.t)
        return self._slots

    def encode_batch(self, values) -> np.ndarray:
        """Slot values -> plaintext coefficients (batch / SIMD encoding, prime ``t``).

        Parameters
        ----------
        values : array-like of int, shape ``(count, n)``, ``(n,)`` or ``(count, 2, n/2)``
            Slot values mod ``t``; slot ``(r, j)`` of the ``2 x n/2`` matrix is entry
            ``r * n/2 + j`` of a flat row (zero-padded when shorter).

        Returns
        -------
        numpy.ndarray
            uint64 ``(count, n)`` coefficients (``(n,)`` for one flat row), to encrypt with
            :meth:`encrypt_coeffs` or to use as plaintexts. Products and sums of
            ciphertexts act slot by slot; :meth:`rotate_rows` / :meth:`rotate_columns`
            move slots.
        """
        idx = self._slot_index()
        arr = np.asarray(values)
        if arr.ndim >= 2 and arr.shape[-2:] == (2, self.n // 2):
            arr = arr.reshape(*arr.shape[:-2], self.n)
        arr = self._plain(arr, "values")
        single = arr.ndim == 1
        flat = arr.reshape(-1, self.n)
        spread = np.zeros_like(flat)
        spread[:, idx.reshape(-1)] = flat
        out = np.stack([self._slot_ntt.inverse(row) for row in spread]) if len(flat) else spread
        return out[0] if single else out.reshape(arr.shape)

    def decode_batch(self, coeffs) -> np.ndarray:
        """Plaintext coefficients -> slot values, uint64 ``(count, 2, n/2)`` (or ``(2, n/2)``)."""
        idx = self._slot_index()
        arr = self._plain(coeffs, "coeffs")
        single = arr.ndim == 1
        flat = arr.reshape(-1, self.n)
        evals = np.stack([self._slot_ntt.forward(row) for row in flat]) if len(flat) else flat
        out = evals[:, idx]
        return out[0] if single else out

    def encrypt_batch(self, values, key: SecretKey | PublicKey, **kwargs) -> CiphertextBatch:
        """:meth:`encode_batch` then :meth:`encrypt_coeffs` (slots ``(count, n)`` or ``(count, 2, n/2)``)."""
        coeffs = self.encode_batch(values)
        return self.encrypt_coeffs(coeffs[None] if coeffs.ndim == 1 else coeffs, key, **kwargs)

    def decrypt_batch(self, batch: CiphertextBatch, sk: SecretKey, *, check: bool = True) -> np.ndarray:
        """:meth:`decrypt_coeffs` then :meth:`decode_batch`: uint64 ``(count, 2, n/2)``."""
        return self.decode_batch(self.decrypt_coeffs(batch, sk, check=check))

    # ----------------------------------------------------------- serialisation
    def batch_from_bytes(self, data: bytes) -> CiphertextBatch:
        """Inverse of :meth:`CiphertextBatch.to_bytes`; raises InputError on malformed input."""
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise InputError("not a serialised BFV ciphertext batch (too short)")
        magic, fp, count, size, k, level, flags, n = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise InputError("not a serialised BFV ciphertext batch (bad magic)")
        if fp != self.params.fingerprint:
            raise InputError("this ciphertext batch was made for other BFV parameters (fingerprint mismatch)")
        if n != self.n or size not in (2, 3) or not 1 <= k <= self.num_q or level != self.num_q - k:
            raise InputError(f"inconsistent batch header (n={n}, size={size}, k={k}, level={level})")
        if flags & ~(_FLAG_NTT | _FLAG_SEEDED):
            raise InputError("unknown flags in the batch header")
        seeded, ntt = bool(flags & _FLAG_SEEDED), bool(flags & _FLAG_NTT)
        if seeded and (size != 2 or level != 0):
            raise InputError("a seeded batch must be fresh: size 2 at level 0")
        polys = 1 if seeded else size
        body = 8 * count * polys * k * n
        expected = _HEADER.size + body + (16 * count if seeded else 0)
        if len(data) != expected:
            raise InputError(f"batch is {len(data)} bytes, its header says {expected}")
        rows = np.frombuffer(data, dtype="<u8", count=count * polys * k * n, offset=_HEADER.size)
        out = np.empty((count, size, k, n), dtype=np.uint64)
        seeds = None
        if seeded:
            out[:, 0] = rows.reshape(count, k, n)
            seeds = np.frombuffer(data, dtype=np.uint8, offset=_HEADER.size + body).reshape(count, 16).copy()
            self._core.expand_seeded_c1(seeds, out, ntt)
        else:
            out[:] = rows.reshape(count, size, k, n)
        if not self._core.is_reduced(out):
            raise InputError("ciphertext rows are not reduced mod their primes (corrupt or foreign data)")
        return CiphertextBatch(self, out, level, ntt, seeds)
