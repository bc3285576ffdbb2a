"""Encode and decode: n-party additive secret sharing over Z_2^64.

A secret x (fixed-point encoded) is split into n shares that add up to x mod
2^64. Parties 0..n-2 receive only a fresh 16-byte seed each; their share is
the AES-CTR expansion of that seed, which they compute themselves. The last
party receives the correction share x - sum(expanded seeds). The upload is
therefore one ring tensor plus 16 bytes per other server, and every proper
subset of the payloads is uniformly distributed whatever x is.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import fixed_point, ring
from .errors import InputError

SEED_BYTES = 16
SUPPORTED_PARTIES = (2, 3)
_FLOAT_DTYPES = (np.float16, np.float32, np.float64)


@dataclass(frozen=True)
class SharePayload:
    """What one server receives for one tensor: a seed or a correction share.

    Attributes
    ----------
    party : int
    shape : tuple of int
    seed : bytes or None
        16-byte PRG seed (parties 0..n-2).
    share : numpy.ndarray of uint64 or None
        Correction share (party n-1), shape ``shape``.
    """

    party: int
    shape: tuple[int, ...]
    seed: bytes | None = None
    share: np.ndarray | None = field(default=None, repr=False)

    def materialize(self) -> np.ndarray:
        """The party's share as a uint64 array (expands the seed if needed)."""
        if self.share is not None:
            return self.share
        assert self.seed is not None
        return ring.random(self.seed, self.shape)

    @property
    def upload_bytes(self) -> int:
        return SEED_BYTES if self.share is None else int(self.share.nbytes)

    def __repr__(self) -> str:  # never print seeds or shares
        kind = "seed" if self.share is None else "share"
        return f"SharePayload(party={self.party}, shape={self.shape}, {kind})"


@dataclass(frozen=True)
class ReplicatedPayload:
    """What one of three servers receives for one tensor under replicated sharing.

    The secret is x = x_0 + x_1 + x_2 (mod 2^64); server i holds x_i and x_(i+1). x_0 and
    x_1 are AES-CTR expansions of two seeds, x_2 the correction x - x_0 - x_1: server 0
    gets two seeds, servers 1 and 2 a seed and the correction. The upload is two ring
    tensors plus four seeds, the least a 2-out-of-3 sharing allows (each share is held
    by two servers), and any single server's payload is uniform whatever x is.

    Attributes
    ----------
    party : int
    shape : tuple of int
    seeds : pair of (bytes or None)
        The seeds of this server's two shares, in order; None for the correction.
    correction : numpy.ndarray of uint64 or None
        x_2 (servers 1 and 2), shape ``shape``.
    """

    party: int
    shape: tuple[int, ...]
    seeds: tuple[bytes | None, bytes | None]
    correction: np.ndarray | None = field(default=None, repr=False)

    def materialize(self) -> np.ndarray:
        """The server's two shares stacked: shape (2, *shape), uint64."""
        out = np.empty((2, *self.shape), dtype=np.uint64)
        for j, seed in enumerate(self.seeds):
            if seed is None:
                assert self.correction is not None
                out[j] = self.correction
            else:
                out[j] = ring.random(seed, self.shape)
        return out

    @property
    def upload_bytes(self) -> int:
        return SEED_BYTES * sum(s is not None for s in self.seeds) + (
            0 if self.correction is None else int(self.correction.nbytes)
        )

    def __repr__(self) -> str:  # never print seeds or shares
        kinds = ", ".join("seed" if s is not None else "correction" for s in self.seeds)
        return f"ReplicatedPayload(party={self.party}, shape={self.shape}, {kinds})"


@dataclass(frozen=True)
class Encoded:
    """A secret-shared tensor ready to upload: one payload per server.

    Attributes
    ----------
    payloads : list of SharePayload (additive) or ReplicatedPayload (rss3), one per party
    shape : tuple of int
        Shape of the secret (images keep H x W [x C]).
    frac_bits : int
    source_dtype : str
        ``"uint8"`` for images (stored as x/255), else the float dtype name;
        :func:`decode` returns this dtype.
    scheme : str
        ``"additive"`` or ``"rss3"`` (replicated sharing on three servers).
    """

    payloads: list[SharePayload] | list[ReplicatedPayload]
    shape: tuple[int, ...]
    frac_bits: int
    source_dtype: str
    scheme: str = "additive"

    @property
    def parties(self) -> int:
        return len(self.payloads)

    @property
    def upload_bytes(self) -> int:
        return sum(p.upload_bytes for p in self.payloads)


@dataclass(frozen=True)
class Shared:
    """Shares of a result as returned by the servers, ready for :func:`decode`."""

    shares: list[np.ndarray]
    frac_bits: int
    source_dtype: str = "float64"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.shares[0].shape)


def check_parties(parties: int) -> int:
    if parties not in SUPPORTED_PARTIES:
        raise InputError(f"parties must be 2 or 3, got {parties!r}")
    return int(parties)


def as_plain_values(x: object) -> tuple[np.ndarray, str]:
    """Validate an image or float tensor; return float64 values and the source dtype.

    uint8 images (H x W or H x W x C with C in 1, 3, 4) become x / 255 in [0, 1];
    float16/32/64 arrays of any non-empty shape are taken as they are.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise InputError(f"cannot read the input as an array: {exc}") from None
    if arr.size == 0:
        raise InputError(f"the input is empty (shape {arr.shape}); give at least one value")
    if arr.dtype == np.uint8:
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
            return arr.astype(np.float64) / 255.0, "uint8"
        raise InputError(f"a uint8 image must be H x W or H x W x C with C in (1, 3, 4), got shape {arr.shape}")
    if arr.dtype.type in _FLOAT_DTYPES:
        values = arr.astype(np.float64, copy=False)
        if not np.isfinite(values).all():
            raise InputError("the input contains NaN or infinite values; clean it before encoding")
        return values, arr.dtype.name
    raise InputError(
        f"unsupported dtype {arr.dtype}: give a uint8 image (H x W or H x W x C) "
        "or a float16/float32/float64 array (convert integers with .astype(float))"
    )


def share_ring(values: np.ndarray, parties: int) -> list[SharePayload]:
    """Split ring elements (uint64) into seed payloads plus one correction share."""
    parties = check_parties(parties)
    shape = tuple(values.shape)
    correction = np.array(values, dtype=np.uint64, copy=True, order="C")
    payloads = []
    for party in range(parties - 1):
        seed = secrets.token_bytes(SEED_BYTES)
        payload = SharePayload(party, shape, seed=seed)
        ring.sub(correction, payload.materialize(), out=correction)
        payloads.append(payload)
    payloads.append(SharePayload(parties - 1, shape, share=correction))
    return payloads


def share_replicated(values: np.ndarray) -> list[ReplicatedPayload]:
    """Split ring elements into 2-out-of-3 replicated shares: two seeds and one correction."""
    shape = tuple(values.shape)
    seeds = [secrets.token_bytes(SEED_BYTES), secrets.token_bytes(SEED_BYTES)]
    correction = np.array(values, dtype=np.uint64, copy=True, order="C")
    for seed in seeds:
        ring.sub(correction, ring.random(seed, shape), out=correction)
    return [
        ReplicatedPayload(0, shape, (seeds[0], seeds[1])),
        ReplicatedPayload(1, shape, (seeds[1], None), correction),
        ReplicatedPayload(2, shape, (None, seeds[0]), correction),
    ]


SCHEMES = ("additive", "rss3")


def encode(
    x: object, parties: int = 2, frac_bits: int = fixed_point.DEFAULT_FRAC_BITS, scheme: str = "additive"
) -> Encoded:
    """Secret-share an image or float tensor for ``parties`` servers.

    Parameters
    ----------
    x : array_like
        uint8 image (H x W or H x W x C) or float array of any shape.
    parties : int
        2 or 3 servers.
    frac_bits : int
        Fixed-point fractional bits (default 16).
    scheme : {"additive", "rss3"}
        ``rss3``: 2-out-of-3 replicated shares for three servers (``parties`` must be 3).

    Returns
    -------
    Encoded
        ``payloads[i]`` goes to server i only.
    """
    if scheme not in SCHEMES:
        raise InputError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if scheme == "rss3" and parties != 3:
        raise InputError(f"replicated sharing (rss3) is for 3 servers, got parties={parties!r}")
    values, source = as_plain_values(x)
    ring_values = fixed_point.encode(values, frac_bits)
    if scheme == "rss3":
        return Encoded(share_replicated(ring_values), tuple(values.shape), frac_bits, source, scheme)
    return Encoded(share_ring(ring_values, parties), tuple(values.shape), frac_bits, source)


def reconstruct(shares: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of the shares mod 2^64 (uint64)."""
    if not shares:
        raise InputError("no shares to reconstruct")
    total = np.array(shares[0], dtype=np.uint64, copy=True, order="C")
    for share in shares[1:]:
        if np.shape(share) != total.shape:
            raise InputError(f"share shapes differ: {np.shape(share)} vs {total.shape}")
        ring.add(total, np.ascontiguousarray(share, dtype=np.uint64), out=total)
    return total


def decode(x: Encoded | Shared, dtype: str | np.dtype | None = None) -> np.ndarray:
    """Reconstruct and decode a secret-shared tensor.

    Parameters
    ----------
    x : Encoded or Shared
        All parties' payloads or result shares.
    dtype : optional
        Output dtype; defaults to the source dtype. ``uint8`` gives an image:
        round(clip(x, 0, 1) * 255).

    Returns
    -------
    numpy.ndarray of the requested dtype and the secret's shape.
    """
    if isinstance(x, Encoded):
        # replicated: server i's first share is x_i, so the three first shares add up to x
        shares = [p.materialize()[0] if isinstance(p, ReplicatedPayload) else p.materialize() for p in x.payloads]
        frac_bits, source = x.frac_bits, x.source_dtype
    elif isinstance(x, Shared):
        shares, frac_bits, source = x.shares, x.frac_bits, x.source_dtype
    else:
        raise InputError(f"decode takes an Encoded or Shared value, got {type(x).__name__}")
    values = fixed_point.decode(reconstruct(shares), frac_bits)
    target = np.dtype(dtype or source)
    if target == np.uint8:
        return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return values.astype(target)
