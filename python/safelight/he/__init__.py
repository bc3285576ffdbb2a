"""Lattice homomorphic-encryption building blocks (the sharp primitives, not recipes).

- :class:`NTT`: negacyclic number-theoretic transform over RNS primes
  (forward, inverse, pointwise and negacyclic polynomial products).
- :func:`ntt_primes`: NTT-friendly primes just below a power of two.
- :mod:`~safelight.he.bfv`: the BFV scheme in RNS form (:class:`BfvParams`,
  :class:`BfvContext`, keys, ciphertext batches, plaintext-matrix products,
  re-randomisation with noise flooding, ciphertext products, relinearisation,
  rotations and batch encoding).
"""

from .bfv import (
    CiphertextBatch,
    GaloisKeys,
    NoiseBudgetExhaustedError,
    PlaintextBatch,
    PublicKey,
    RelinKey,
    SecretKey,
)
from .bfv import Context as BfvContext
from .bfv import Params as BfvParams
from .ntt import NTT, is_prime, ntt_primes

__all__ = [
    "NTT",
    "BfvContext",
    "BfvParams",
    "CiphertextBatch",
    "GaloisKeys",
    "NoiseBudgetExhaustedError",
    "PlaintextBatch",
    "PublicKey",
    "RelinKey",
    "SecretKey",
    "is_prime",
    "ntt_primes",
]
