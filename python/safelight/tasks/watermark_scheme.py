"""The watermark: spread-transform dither modulation (STDM) of a photo's low-frequency
luma, the plaintext reference of the private embedding and detection (issue 17).

Design (docs/watermark.md has the measured trade-offs):

- **Domain**: the luma Y = 0.299 R + 0.587 G + 0.114 B averaged over a 64 x 64 grid of cells
  (the *thumbnail* T = A Y A^T, A the public area-averaging matrix of the image's size).
  Everything below happens on T; the change goes back to full resolution through E with
  A E = I (bilinear upsampling, corrected), added to R, G and B alike. All public linear.
- **Carrier**: L = 192 orthonormal directions u_i in T's space, 3 per region of 8 x 8 cells,
  random combinations (from the key, AES-CTR) of the region's 2-D DCT basis functions with
  both frequencies below BAND and not both zero: smooth patterns (periods of 10 cells and
  more), no DC (brightness-proof), far below the frequencies JPEG, resizing and noise disturb.
- **Modulation**: projection x_i = <T, u_i>; the bit b (each payload bit is carried three
  times, in three quadrants) is embedded by moving x_i to the nearest point of the lattice
  DELTA Z + d_i + b DELTA / 2 (d_i a key-derived dither): T' = T + sum_i (q_i - x_i) u_i.
  The squared change is about L DELTA^2 / 12 over 4096 cells: a fixed PSNR (~41 dB).
- **Detection**: for each candidate geometry (the image as it is, or undoing a centre
  crop of 95..80 % rescaled to the original size) and gain (contrast 0.75..1.35), the
  soft value of projection i is s_i = |frac((x_i / g - d_i) / DELTA) - 1/2| - 1/4, in
  [-1/4, 1/4], positive for bit 0, negative for bit 1. The candidate with the largest fit =
  4 mean |s_i| over the searched projections wins; the fit of an unmarked photo is about
  0.5 (uniform), a marked one's near 1. ``present`` when the fit passes FIT_THRESHOLD (set
  for a false-positive rate below 1e-6: benchmarks/README.md). A bit is the sign of its
  copies' soft values' sum, each weighted by its region's reliability (clipped regions
  weigh little).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import ring
from ..errors import InputError

GRID = 64  # thumbnail cells per side
REGION = 8  # cells per side of a region: the thumbnail is 8 x 8 regions
REGIONS = GRID // REGION
BAND = 4  # a region's DCT frequencies of the carrier: both below BAND, not both zero
PER_REGION = 3
PROJECTIONS = REGIONS * REGIONS * PER_REGION  # 192: each payload bit three times, in three quadrants
PAYLOAD_BITS = 64
COPIES = PROJECTIONS // PAYLOAD_BITS
# the candidates' search uses the first SEARCH_PER_REGION projections of each region (half
# of them): on shares every searched projection costs a ladder of comparisons per candidate
SEARCH_PER_REGION = 2
DELTA = 33.0  # lattice step (grey levels, in the thumbnail's projection)
# reliability of a region at detection: cells of the suspect thumbnail within SATURATED grey
# levels of 0 or 255 are (nearly) clipped; a region's copies weigh (1 - clipped share)^4
SATURATED = 10.0
RELIABILITY_POWER = 4
# embedding passes; more make up for clipping at 0 and 255, but gained no bit accuracy on the
# benchmark photos and each costs two comparisons per pixel and channel on the servers
PASSES = 1
MIN_SIDE = 128
LUMA = np.array([0.299, 0.587, 0.114])
CROPS = (1.0, 0.95, 0.9, 0.85, 0.8)  # candidate centre crops undone at detection
GAINS = tuple(1.01**k for k in range(-29, 31))  # 0.75 .. 1.35 in 1 % steps, 1 included
# verdicts at a false-positive rate below 1e-6 (benchmarks/watermark_fpr.py, benchmarks/README.md)
FIT_THRESHOLD = 0.70
AGREEMENT_THRESHOLD = 0.40
KEY_BYTES = 32


# ---- key -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """A rights holder's secret: 32 random bytes."""

    secret: bytes

    @classmethod
    def generate(cls) -> Key:
        return cls(os.urandom(KEY_BYTES))

    def _seed(self, label: bytes) -> bytes:
        return hashlib.sha256(b"safelight-watermark/" + label + b"/" + self.secret).digest()[:16]

    def uniform(self, label: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform values in [0, 1) from AES-CTR under a key derived from the secret."""
        words = ring.random(self._seed(label), shape)
        return (words >> np.uint64(11)).astype(np.float64) / float(1 << 53)

    def directions(self) -> np.ndarray:
        """(PROJECTIONS, GRID * GRID) orthonormal smooth carrier directions."""
        return _directions(self.secret)

    def dither(self) -> np.ndarray:
        """(PROJECTIONS,) lattice offsets in [0, DELTA)."""
        return self.uniform(b"dither", (PROJECTIONS,)) * DELTA


@lru_cache(maxsize=4)
def _directions(secret: bytes) -> np.ndarray:
    """PER_REGION directions per region, each a random combination of the region's band
    (Box-Muller from AES-CTR uniforms), orthonormalised within the region; regions are
    disjoint, so all directions are orthonormal."""
    key = Key(secret)
    basis = region_band_basis()  # (K, REGION * REGION)
    u1 = key.uniform(b"carrier-1", (REGIONS * REGIONS, basis.shape[0], PER_REGION))
    u2 = key.uniform(b"carrier-2", (REGIONS * REGIONS, basis.shape[0], PER_REGION))
    g = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2 * np.pi * u2)
    out = np.zeros((PROJECTIONS, GRID, GRID))
    for r in range(REGIONS * REGIONS):
        q, _ = np.linalg.qr(g[r])  # (K, PER_REGION)
        local = (basis.T @ q).T.reshape(PER_REGION, REGION, REGION)
        ri, rj = divmod(r, REGIONS)
        out[r * PER_REGION : (r + 1) * PER_REGION, ri * REGION : (ri + 1) * REGION, rj * REGION : (rj + 1) * REGION] = (
            local
        )
    return out.reshape(PROJECTIONS, GRID * GRID)


@lru_cache(maxsize=1)
def region_band_basis() -> np.ndarray:
    """Orthonormal 2-D DCT-II basis functions of a REGION x REGION block with both
    frequencies below BAND, DC excluded: (K, REGION * REGION)."""
    n = np.arange(REGION)
    c = np.sqrt(2.0 / REGION) * np.cos(np.pi * (n[None, :] + 0.5) * np.arange(BAND)[:, None] / REGION)
    c[0] /= np.sqrt(2.0)
    return np.stack([np.outer(c[i], c[j]).reshape(-1) for i in range(BAND) for j in range(BAND) if i or j])


def region_of(projection: int) -> tuple[int, int]:
    return divmod(projection // PER_REGION, REGIONS)


def inner(projection: int) -> bool:
    """Whether a projection's region is away from the thumbnail's border (it survives a
    centre crop of up to 1 - 2 / REGIONS)."""
    ri, rj = region_of(projection)
    return 0 < ri < REGIONS - 1 and 0 < rj < REGIONS - 1


def quadrant_of(projection: int) -> int:
    ri, rj = region_of(projection)
    return (ri * 2 // REGIONS) * 2 + rj * 2 // REGIONS


QUADRANTS = (0, 3, 1, 2)  # the order quadrants take the bits in: diagonal ones first


@lru_cache(maxsize=4)
def _assignment(secret: bytes) -> np.ndarray:
    """(PROJECTIONS,) the payload bit each projection carries. A bit's copies lie in distinct
    quadrants of the thumbnail (saturated areas, the weak spot, are large but local), and at
    least one lies in an inner region (a centre crop keeps those): the k-th quadrant of
    QUADRANTS takes the next slots-per-quadrant bits of a key-derived cyclic order, into its
    inner slots first for even k and its border slots first for odd k; the slots' order
    within a quadrant is key-derived too."""
    key = Key(secret)
    order = np.argsort(key.uniform(b"assignment-order", (PAYLOAD_BITS,)))
    out = np.empty(PROJECTIONS, dtype=np.int64)
    for k, q in enumerate(QUADRANTS):
        mine = [i for i in range(PROJECTIONS) if quadrant_of(i) == q]
        shuffle = key.uniform(b"assignment-quadrant-%d" % q, (len(mine),))
        slots = [mine[i] for i in np.argsort(shuffle)]
        slots.sort(key=lambda i: inner(i) == (k % 2 == 1))  # stable: key order within each kind
        for rank, slot in enumerate(slots):
            out[slot] = order[(k * len(mine) + rank) % PAYLOAD_BITS]
    return out


def searched() -> np.ndarray:
    """(PROJECTIONS,) whether a projection takes part in the candidates' search."""
    return np.arange(PROJECTIONS) % PER_REGION < SEARCH_PER_REGION


@lru_cache(maxsize=1)
def region_means() -> np.ndarray:
    """(GRID * GRID, REGIONS * REGIONS): a thumbnail (flat) times this is its regions' means."""
    cell = np.arange(GRID * GRID)
    region = (cell // GRID // REGION) * REGIONS + cell % GRID // REGION
    out = np.zeros((GRID * GRID, REGIONS * REGIONS))
    out[cell, region] = 1.0 / (REGION * REGION)
    return out


@lru_cache(maxsize=1)
def region_projections() -> np.ndarray:
    """(REGIONS * REGIONS, PROJECTIONS): a value per region times this is that value for
    each of the region's projections."""
    return np.repeat(np.eye(REGIONS * REGIONS), PER_REGION, axis=1)


def reliability(thumb: np.ndarray) -> np.ndarray:
    """(PROJECTIONS,) the weight of each projection's soft value at detection: (1 - the share
    of its region's cells that are saturated)^RELIABILITY_POWER. Contrast and brightness
    changes clip bright and dark areas, and a clipped region's projections are noise."""
    t = np.asarray(thumb, dtype=np.float64).reshape(-1)
    share = ((t > 255.0 - SATURATED) | (t < SATURATED)) @ region_means()
    return ((1.0 - share) ** RELIABILITY_POWER) @ region_projections()


def parse_message(text: str) -> np.ndarray:
    """16 hex digits -> 64 bits (most significant first)."""
    s = str(text).strip().lower()
    if s.startswith("0x"):
        s = s[2:]
    if len(s) != 16 or any(ch not in "0123456789abcdef" for ch in s):
        raise InputError(f"the message must be 16 hex digits (64 bits), got {text!r}")
    value = int(s, 16)
    return np.array([(value >> (63 - i)) & 1 for i in range(64)], dtype=np.int64)


def format_message(bits: np.ndarray) -> str:
    value = 0
    for b in np.asarray(bits).astype(int):
        value = (value << 1) | int(b)
    return f"{value:016x}"


# ---- geometry ---------------------------------------------------------------------------------------


def averaging(n: int, crop: float = 1.0) -> np.ndarray:
    """(GRID, n): row i averages the pixels of cell i of the *original* image along one axis,
    read from an image that is the original's centre ``crop`` rescaled to n pixels (crop 1:
    the image itself). Pixels are unit intervals; partial overlaps are weighted."""
    edges = np.linspace(0.0, n, GRID + 1)  # cell edges in original coordinates
    # original coordinate y appears in the suspect at (y - (1 - crop) n / 2) / crop
    lo = (edges[:-1] - (1 - crop) * n / 2) / crop
    hi = (edges[1:] - (1 - crop) * n / 2) / crop
    px = np.arange(n)
    overlap = np.clip(np.minimum(hi[:, None], px[None, :] + 1) - np.maximum(lo[:, None], px[None, :]), 0, None)
    width = np.maximum(overlap.sum(axis=1, keepdims=True), 1e-12)
    return overlap / width


@lru_cache(maxsize=16)
def bilinear(n: int) -> np.ndarray:
    """(n, GRID): bilinear interpolation from the cells' centres (a pixel's value from the
    two nearest centres, the nearest one's beyond the first and last)."""
    centres = (np.arange(GRID) + 0.5) * n / GRID
    px = np.arange(n) + 0.5
    b = np.zeros((n, GRID))
    pos = np.clip(np.interp(px, centres, np.arange(GRID)), 0, GRID - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, GRID - 1)
    frac = pos - lo
    b[np.arange(n), lo] += 1 - frac
    b[np.arange(n), hi] += frac
    return b


@lru_cache(maxsize=16)
def spread_correction(n: int) -> np.ndarray:
    """(GRID, GRID): M = (A B)^-1, so that E = B M (B: :func:`bilinear`) has A E = I."""
    return np.linalg.inv(averaging(n) @ bilinear(n))


@lru_cache(maxsize=16)
def spread(n: int) -> np.ndarray:
    """(n, GRID): E with A E = I: bilinear interpolation from the cells' centres,
    corrected so that the thumbnail of the spread change is the change itself."""
    return bilinear(n) @ spread_correction(n)


def check_image(image: np.ndarray) -> np.ndarray:
    """An RGB (or grey) uint8 photo as float64 (h, w, 3) in [0, 255]."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise InputError(f"the watermark works on 8-bit photos (uint8), not {a.dtype}")
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InputError(f"expected an RGB or grey photo, got shape {a.shape}")
    if min(a.shape[:2]) < MIN_SIDE:
        raise InputError(
            f"the photo ({a.shape[0]}x{a.shape[1]}) is smaller than one watermark block: "
            f"at least {MIN_SIDE}x{MIN_SIDE} pixels"
        )
    return a[..., :3].astype(np.float64)


def thumbnail(rgb: np.ndarray, crop: float = 1.0) -> np.ndarray:
    """The GRID x GRID thumbnail of the luma (flattened)."""
    y = rgb @ LUMA
    h, w = y.shape
    return (averaging(h, crop) @ y @ averaging(w, crop).T).reshape(-1)


# ---- plaintext embedding and detection ------------------------------------------------------------


def lattice_targets(x: np.ndarray, dither: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """The nearest point of DELTA Z + d + b DELTA / 2 to each projection."""
    offset = dither + bits * (DELTA / 2)
    return np.round((x - offset) / DELTA) * DELTA + offset


def payload_bits(message: np.ndarray, key: Key) -> np.ndarray:
    """(PROJECTIONS,) the bit each projection carries (each payload bit twice)."""
    return np.asarray(message, dtype=np.int64)[_assignment(key.secret)]


def thumbnail_change(x: np.ndarray, key: Key, message: np.ndarray) -> np.ndarray:
    """(GRID * GRID,) the change of the thumbnail that moves the projections x onto their
    lattice targets (one embedding pass)."""
    u = key.directions()
    return u.T @ (lattice_targets(x, key.dither(), payload_bits(message, key)) - x)


def embed(image: np.ndarray, key: Key, message: np.ndarray) -> np.ndarray:
    """The marked photo (float64 in [0, 255]; :func:`to_uint8` rounds it). The lattice
    targets come from the photo; then PASSES times: add the change that moves the
    projections onto them, clip to [0, 255] (clipping undoes part of the change where
    the photo is saturated, the next pass makes up for it)."""
    rgb = check_image(image)
    u, d = key.directions(), key.dither()
    h, w = rgb.shape[:2]
    targets = lattice_targets(u @ thumbnail(rgb), d, payload_bits(message, key))
    marked = rgb
    for _ in range(PASSES):
        change = u.T @ (targets - u @ thumbnail(marked))
        marked = np.clip(marked + (spread(h) @ change.reshape(GRID, GRID) @ spread(w).T)[..., None], 0.0, 255.0)
    return marked


def to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def soft_values(x: np.ndarray, dither: np.ndarray, gain: float) -> np.ndarray:
    """|frac((x / g - d) / DELTA) - 1/2| - 1/4: + for bit 0, - for bit 1."""
    r = (x / gain - dither) / DELTA
    return np.abs(r - np.floor(r) - 0.5) - 0.25


@dataclass
class Detection:
    message: str
    bits: np.ndarray
    confidence: np.ndarray  # per payload bit, in [0, 1]
    fit: float  # 4 mean |s|: about 0.5 unmarked, near 1 marked
    present: bool
    crop: float
    gain: float
    score: float  # what the verdict compares: the fit, or the agreement with a given payload


def visible(crop: float) -> np.ndarray:
    """(PROJECTIONS,) whether a projection's region lies inside what a centre crop keeps."""
    lost = (1 - crop) / 2 * GRID  # cells lost on each side
    out = np.ones(PROJECTIONS, dtype=bool)
    for i in range(PROJECTIONS):
        ri, rj = region_of(i)
        for r in (ri, rj):
            if r * REGION < lost - 1e-9 or (r + 1) * REGION > GRID - lost + 1e-9:
                out[i] = False
    return out


def decide(soft: np.ndarray, weight: np.ndarray, key: Key) -> tuple[np.ndarray, np.ndarray]:
    """Payload bits and per-bit confidences from the soft values weighted by ``weight`` (each
    projection's reliability, 0 where a crop lost it): a bit is the sign of its copies'
    weighted sum, its confidence 4 |sum| / COPIES (1 for all copies clean and unclipped)."""
    per_bit = np.zeros(PAYLOAD_BITS)
    np.add.at(per_bit, _assignment(key.secret), weight * soft)
    return (per_bit < 0).astype(np.int64), np.minimum(1.0, 4 * np.abs(per_bit) / COPIES)


def agreement(soft: np.ndarray, valid: np.ndarray, carried: np.ndarray) -> float:
    """4 mean(s_i (1 - 2 b_i)) over the valid projections, b_i the bit an expected payload
    puts on projection i: about 0 (+-0.58 / sqrt(n)) without that mark, near 1 with it."""
    return float(4 * np.mean(soft[valid] * (1 - 2 * carried[valid])))


def detect(image: np.ndarray, key: Key, message: np.ndarray | None = None) -> Detection:
    """The payload of the best candidate (geometry, gain) and the verdict. The search runs
    over the :func:`searched` projections. Without a ``message``: the candidate of the
    largest fit, present when the fit passes FIT_THRESHOLD. With one (the yes/no detector
    for a key and a payload): the candidate of the largest agreement with it, present when
    that passes AGREEMENT_THRESHOLD. The bits come from every projection the candidate's
    crop keeps, weighted by :func:`reliability`."""
    rgb = check_image(image)
    u, d = key.directions(), key.dither()
    carried = None if message is None else payload_bits(message, key)
    best = None
    for crop in CROPS:
        thumb = thumbnail(rgb, crop)
        x = u @ thumb
        valid = visible(crop)
        search = valid & searched()
        for gain in GAINS:
            soft = soft_values(x, d, gain)
            score = float(4 * np.abs(soft[search]).mean()) if carried is None else agreement(soft, search, carried)
            if best is None or score > best[0]:
                best = (score, soft, valid, search, thumb, crop, gain)
    score, soft, valid, search, thumb, crop, gain = best
    bits, confidence = decide(soft, valid * reliability(thumb), key)
    fit = float(4 * np.abs(soft[search]).mean())
    present = fit >= FIT_THRESHOLD if carried is None else score >= AGREEMENT_THRESHOLD
    return Detection(format_message(bits), bits, confidence, fit, present, crop, float(gain), score)
