"""Keyed locality-sensitive tags of an image embedding, for near-duplicate lookup.

Random-hyperplane LSH: the signs of ``bands * rows`` projections of the (unit) embedding,
cut into ``bands`` bands of ``rows`` bits. Two embeddings at angle theta agree on a bit with
probability 1 - theta/pi, on a whole band with (1 - theta/pi)^rows, and share at least one
band with 1 - (1 - (1 - theta/pi)^rows)^bands: near copies almost surely, unrelated photos
rarely. The hyperplanes come from the owner's key and each band travels only as
HMAC-SHA256(owner key, band index, band bits), truncated to 16 bytes: the server can test
tags for equality and nothing else. What it learns is the pattern of equal bands between
the owner's own entries and queries (see docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TAG_BYTES = 16


class Sketcher:
    def __init__(self, owner_key: bytes, dim: int, bands: int = 32, rows: int = 10) -> None:
        self.bands, self.rows, self.dim = bands, rows, dim
        derive = lambda info: HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(owner_key)  # noqa: E731
        self.tag_key = derive(b"safelight-store-lsh-tags")
        seed = int.from_bytes(derive(b"safelight-store-lsh-planes"), "little")
        self.planes = np.random.default_rng(seed).standard_normal((dim, bands * rows)).astype(np.float32)

    def bits(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, bands, rows) sign bits."""
        e = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.dim)
        return (e @ self.planes > 0).reshape(-1, self.bands, self.rows)

    def tags(self, embedding: np.ndarray) -> list[tuple[int, bytes]]:
        """(band, tag) pairs of one embedding."""
        return [(band, self.band_tag(band, row)) for band, row in enumerate(self.bits(embedding)[0])]

    def band_tag(self, band: int, row: np.ndarray) -> bytes:
        """The keyed tag of one band's bits."""
        msg = band.to_bytes(2, "little") + np.packbits(row).tobytes()
        return hmac.new(self.tag_key, msg, hashlib.sha256).digest()[:TAG_BYTES]
