"""An oblivious PRF (2HashDH) over the prime-order subgroup of edwards25519 (libsodium via PyNaCl).

F_k(x) = H2(x, k * H1(x)). The client blinds H1(x) with a random scalar r and sends
B = r * H1(x), a uniformly random group element whatever x is; the key server answers
Z = k * B; the client removes r: r^-1 * Z = k * H1(x). The key server learns nothing about
x, and the client learns F_k(x) only for the x it asked about. H1 hashes to the group with
libsodium's Elligator map (its output lies in the prime-order subgroup); every received
point is validated (on the curve, in the subgroup, not of small order).

Semi-honest key server: the output is not verified against a public key (a verifiable OPRF
would add a DLEQ proof); a key server that answers with another key only breaks
deduplication, never confidentiality, since the content key still needs that answer.
"""

from __future__ import annotations

import hashlib
import os

from ..errors import ProtocolError

POINT_BYTES = 32
SCALAR_BYTES = 32


def _nacl():
    from nacl import bindings

    return bindings


def random_scalar() -> bytes:
    nacl = _nacl()
    while True:
        s = nacl.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        if any(s):
            return s


def check_point(p: bytes, what: str = "point") -> bytes:
    if (
        not isinstance(p, (bytes, bytearray))
        or len(p) != POINT_BYTES
        or not _nacl().crypto_core_ed25519_is_valid_point(bytes(p))
    ):
        raise ProtocolError(f"{what} is not a valid element of the edwards25519 prime-order group")
    return bytes(p)


def hash_to_group(x: bytes) -> bytes:
    digest = hashlib.sha512(b"safelight-oprf-h1\0" + x).digest()
    return _nacl().crypto_core_ed25519_from_uniform(digest[:32])


def blind(x: bytes) -> tuple[bytes, bytes]:
    """Client: (r, B = r * H1(x))."""
    r = random_scalar()
    return r, _nacl().crypto_scalarmult_ed25519_noclamp(r, hash_to_group(x))


def evaluate(key: bytes, blinded: bytes) -> bytes:
    """Key server: Z = k * B, after checking B."""
    return _nacl().crypto_scalarmult_ed25519_noclamp(key, check_point(blinded, "blinded request"))


def finalize(x: bytes, r: bytes, evaluated: bytes) -> bytes:
    """Client: F_k(x) = H2(x, r^-1 * Z) (32 bytes)."""
    nacl = _nacl()
    n = nacl.crypto_scalarmult_ed25519_noclamp(
        nacl.crypto_core_ed25519_scalar_invert(r), check_point(evaluated, "key server answer")
    )
    return hashlib.sha256(b"safelight-oprf-h2\0" + len(x).to_bytes(8, "little") + x + n).digest()


def direct(key: bytes, x: bytes) -> bytes:
    """F_k(x) computed with the key (tests; what the protocol must equal)."""
    n = _nacl().crypto_scalarmult_ed25519_noclamp(key, hash_to_group(x))
    return hashlib.sha256(b"safelight-oprf-h2\0" + len(x).to_bytes(8, "little") + x + n).digest()
