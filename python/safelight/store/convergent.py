"""Convergent (content-keyed) deterministic encryption of stored files.

The content key of a file comes from its SHA-256 digest through the key server's OPRF
(:mod:`.oprf`), so equal files get equal keys and equal ciphertexts (the store deduplicates
them), while the store cannot test guesses of predictable files offline: every guess needs
the key server, which rate-limits. ``plain=True`` derives the key from the digest alone
(classic convergent encryption: no key server, but guessable files can be confirmed by
anyone holding the ciphertext); it is an explicit opt-in.

Encryption is AES-SIV (RFC 5297, from ``cryptography``): deterministic and authenticated;
any change to the ciphertext is rejected on decryption.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import InputError

AD = b"safelight-store-v1"


@dataclass(frozen=True)
class Sealed:
    blob_id: str  # SHA-256 of the ciphertext (hex): the store's dedup key
    key: bytes  # the content key (64 bytes, AES-SIV-256): kept by the owner, wrapped
    ciphertext: bytes


def digest(data: bytes) -> bytes:
    return hashlib.sha256(b"safelight-content\0" + data).digest()


def content_key(prf_output: bytes) -> bytes:
    """The AES-SIV key from the OPRF output (or, plain convergent, from the digest)."""
    return HKDF(hashes.SHA256(), 64, salt=None, info=b"safelight-store-content-key").derive(prf_output)


def seal(data: bytes, key: bytes) -> Sealed:
    ciphertext = AESSIV(key).encrypt(data, [AD])
    return Sealed(hashlib.sha256(ciphertext).hexdigest(), key, ciphertext)


def open_sealed(ciphertext: bytes, key: bytes) -> bytes:
    try:
        return AESSIV(key).decrypt(ciphertext, [AD])
    except InvalidTag:
        raise InputError("ciphertext is corrupt, truncated or not for this key (authentication failed)") from None
