"""Lattice homomorphic-encryption building blocks (the sharp primitives, not recipes).

- :class:`NTT`: negacyclic number-theoretic transform over RNS primes
  (forward, inverse, pointwise and negacyclic polynomial products).
- :func:`ntt_primes`: NTT-friendly primes just below a power of two.
"""

from .ntt import NTT, is_prime, ntt_primes

__all__ = ["NTT", "is_prime", "ntt_primes"]
