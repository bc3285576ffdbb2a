"""The watermark's embedding and detection as Programs on shares (two servers with any
randomness source, or three with rss3): the same algorithm as :mod:`.watermark_scheme`.

Secret inputs (from the client, as shares): the photo (h, w, 3) in grey levels, the key's
carrier ``carrier`` (PROJECTIONS, GRID^2) and, for embedding, ``offsets`` = dither + bit *
DELTA / 2 per projection; for the yes/no detector, ``signs`` = 1 - 2 * bit per projection.
Everything public: the photo's size, the geometry and gain candidates, DELTA.

- the luma and the thumbnails (any candidate crop) are public linear maps (``matmul_public``);
- projections x = carrier @ thumbnail and the change carrier^T (q - x): products of shares;
- rounding and ``frac`` are a ladder of comparisons with 2^k (k = 6..0) on values shifted
  into [0, 128): subtracting a shared bit times a public 2^k is local;
- clipping to [0, 255] between embedding passes: two ReLUs per pixel and channel;
- detection: soft values s = |frac(.) - 1/2| - 1/4 of the searched projections for every
  candidate at once, the candidates' scores, the largest (a secure max), its one-hot
  (comparisons with it); the chosen candidate's scaled projections, crop and thumbnail as
  sums of one-hot products, a second ladder on those projections only, and the regions'
  reliability (comparisons per thumbnail cell); the servers output the payload bits, their
  confidences, the fit and the verdict, as shares for the client only.
"""

from __future__ import annotations

import numpy as np

from ..program.program import Program, Tensor
from . import watermark_scheme as W
from .extremes import largest

LADDER = 7  # values shifted into [0, 2^LADDER)
SHIFT = 2 ** (LADDER - 1)  # |value| < SHIFT before the shift
LADDER_BITS = 26  # comparisons of values below 2^7 at 16 fractional bits, with room
PIXEL_BITS = 28  # clipping: values within a few hundred grey levels
SCORE_BITS = 24  # scores, soft values: below 2^4


def _luma(p: Program, image: Tensor) -> Tensor:
    h, w, _ = image.shape
    return p.reshape(p.matmul_public(p.reshape(image, (h * w, 3)), W.LUMA[:, None]), (h, w))


def _thumbnail(p: Program, y: Tensor, crop: float) -> Tensor:
    """(GRID * GRID, 1) the thumbnail of luma y (h, w) for a candidate crop."""
    h, w = y.shape
    rows = p.matmul_public(y, W.averaging(w, crop).T)  # (h, GRID)
    cells = p.matmul_public(p.transpose(rows, (1, 0)), W.averaging(h, crop).T)  # (GRID, GRID), transposed
    return p.reshape(p.transpose(cells, (1, 0)), (W.GRID * W.GRID, 1))


def _floor(p: Program, v: Tensor) -> tuple[Tensor, Tensor]:
    """(floor(v), v - floor(v)) for 0 <= v < 2^LADDER, by comparisons with 2^k."""
    whole = p.mul_public(v, 0.0, integer=True)
    zero = whole
    for k in range(LADDER - 1, -1, -1):
        at_least = p.add_public(p.neg(p.less(p.add_public(v, -(2.0**k)), zero, bits=LADDER_BITS)), 1.0)
        step = p.mul_public(at_least, 2**k, integer=True)
        v, whole = p.sub(v, step), p.add(whole, step)
    return whole, v


def _clip(p: Program, x: Tensor) -> Tensor:
    """min(max(x, 0), 255) = relu(x) - relu(x - 255), both ReLUs in one step."""
    n = x.shape[0]
    both = p.relu(p.concat([x, p.add_public(x, -255.0)], axis=0), bits=PIXEL_BITS)
    return p.sub(p.slice(both, 0, 0, n), p.slice(both, 0, n, 2 * n))


def embed_program(height: int, width: int, parties: int = 2, scheme: str = "additive") -> Program:
    """Inputs ``image`` (h, w, 3), ``carrier`` (P, GRID^2), ``offsets`` (P, 1); output
    ``marked`` (h, w, 3), unclipped after the last pass (the owner rounds and clips)."""
    p = Program(parties, scheme=scheme, truncation="pair")
    image = p.input("image", (height, width, 3))
    carrier = p.input("carrier", (W.PROJECTIONS, W.GRID * W.GRID))
    offsets = p.input("offsets", (W.PROJECTIONS, 1))
    transposed = p.transpose(carrier, (1, 0))
    x = p.matmul(carrier, _thumbnail(p, _luma(p, image), 1.0))
    # q = DELTA round((x - offset) / DELTA) + offset
    v = p.add_public(p.rescale(p.mul_public(p.sub(x, offsets), 1.0 / W.DELTA)), SHIFT + 0.5)
    whole, _ = _floor(p, v)
    targets = p.add(p.mul_public(p.add_public(whole, -SHIFT), W.DELTA, integer=True), offsets)
    flat = p.reshape(image, (height * width * 3,))
    marked = image
    for step in range(W.PASSES):
        now = x if step == 0 else p.matmul(carrier, _thumbnail(p, _luma(p, marked), 1.0))
        change = p.reshape(p.matmul(transposed, p.sub(targets, now)), (W.GRID, W.GRID))
        cols = p.matmul_public(change, W.spread(width).T)  # (GRID, w)
        delta = p.transpose(p.matmul_public(p.transpose(cols, (1, 0)), W.spread(height).T), (1, 0))  # (h, w)
        spread3 = p.reshape(p.concat([p.reshape(delta, (height, width, 1))] * 3, axis=2), (height * width * 3,))
        flat = p.add(flat, spread3)
        if step + 1 < W.PASSES:
            flat = _clip(p, flat)
        marked = p.reshape(flat, (height, width, 3))
    p.output(marked, "marked")
    return p


def _abs(p: Program, x: Tensor) -> Tensor:
    """|x| = 2 relu(x) - x."""
    return p.sub(p.mul_public(p.relu(x, bits=SCORE_BITS), 2, integer=True), x)


def _soft(p: Program, v: Tensor) -> Tensor:
    """|frac(v) - 1/2| - 1/4 for |v| < SHIFT (v = x / g / DELTA - d / DELTA)."""
    _, frac = _floor(p, p.add_public(v, float(SHIFT)))
    return p.add_public(_abs(p, p.add_public(frac, -0.5)), -0.25)


def _chosen_rows(p: Program, chosen: Tensor, rows: int) -> Tensor:
    n = chosen.shape[0]
    return p.reshape(p.concat([p.reshape(chosen, (1, n))] * rows, axis=0), (rows, n))


def _reliability(p: Program, thumb: Tensor) -> Tensor:
    """(1, PROJECTIONS) (1 - share of the region's saturated cells)^4, as W.reliability."""
    cells = W.GRID * W.GRID
    flat = p.reshape(thumb, (cells,))
    zero = p.mul_public(flat, 0.0, integer=True)
    dark = p.less(flat, p.add_public(zero, W.SATURATED), bits=PIXEL_BITS)
    bright = p.less(p.add_public(zero, 255.0 - W.SATURATED), flat, bits=PIXEL_BITS)
    share = p.matmul_public(p.reshape(p.add(dark, bright), (1, cells)), W.region_means())  # (1, regions)
    power = p.add_public(p.neg(share), 1.0)
    for _ in range(int(np.log2(W.RELIABILITY_POWER))):
        power = p.square(power)
    return p.matmul_public(power, W.region_projections())


def detect_program(
    height: int, width: int, parties: int = 2, scheme: str = "additive", payload: bool = False
) -> Program:
    """Inputs ``image``, ``carrier``, ``dither`` (P, 1), ``assignment`` (P, 64) (0/1: the
    payload bit of each projection) and, with ``payload``, ``signs`` (P, 1) (1 - 2 bit).
    Outputs ``bits`` (64, 0/1), ``confidence`` (64: 4 |weighted sum of the bit's soft
    values| / COPIES), ``fit``, ``score`` and ``present`` (0/1) of the best candidate: the
    largest fit, or the largest agreement with the payload, over the searched projections.

    The search's soft values take a ladder per searched projection and candidate; the
    chosen candidate's scaled projections are then picked by one-hot products and only they
    take a second ladder, for every projection its crop keeps, weighted by reliability."""
    p = Program(parties, scheme=scheme, truncation="pair")
    image = p.input("image", (height, width, 3))
    carrier = p.input("carrier", (W.PROJECTIONS, W.GRID * W.GRID))
    dither = p.input("dither", (W.PROJECTIONS, 1))
    assignment = p.input("assignment", (W.PROJECTIONS, W.PAYLOAD_BITS))
    signs = p.input("signs", (W.PROJECTIONS, 1)) if payload else None
    search = np.flatnonzero(W.searched())
    y = _luma(p, image)
    thumbs = p.concat([_thumbnail(p, y, crop) for crop in W.CROPS], axis=1)  # (GRID^2, C)
    x = p.matmul(carrier, thumbs)  # (P, C)
    c, g = len(W.CROPS), len(W.GAINS)
    n = g * c  # candidates, gain-major: index gain * c + crop
    inverse_gains = np.repeat(1.0 / np.array(W.GAINS) / W.DELTA, c)[None, :]  # (1, n)
    scaled = p.rescale(p.mul_public_array(p.concat([x] * g, axis=1), inverse_gains))  # (P, n)
    d = p.rescale(p.mul_public(dither, 1.0 / W.DELTA))  # (P, 1)
    # the search, over the searched projections
    s_scaled, s_d = p.take(scaled, search), p.take(d, search)
    soft = _soft(p, p.sub(s_scaled, p.concat([s_d] * n, axis=1)))  # (S, n)
    visible = np.stack([W.visible(crop) for crop in W.CROPS], axis=1)  # (P, C)
    valid = np.tile(visible[search], (1, g)).astype(np.float64)
    weights = valid * 4.0 / valid.sum(axis=0, keepdims=True)  # 4 mean over the valid projections
    fits = p.sum(p.rescale(p.mul_public_array(_abs(p, soft), weights)), axes=(0,))  # (n,)
    if payload:
        agreeing = p.mul(soft, p.concat([p.take(signs, search)] * n, axis=1))
        scores = p.sum(p.rescale(p.mul_public_array(agreeing, weights)), axes=(0,))
    else:
        scores = fits
    best = largest(p, scores, SCORE_BITS)
    chosen = p.add_public(p.neg(p.less(scores, p.concat([best] * n, axis=0), bits=SCORE_BITS)), 1.0)  # one-hot (n,)
    # the chosen candidate: its fit and scaled projections (one-hot products), its crop's
    # visible projections and thumbnail
    picked = p.sum(
        p.mul(p.concat([scaled, p.reshape(fits, (1, n))], axis=0), _chosen_rows(p, chosen, W.PROJECTIONS + 1)),
        axes=(1,),
    )
    x_chosen = p.reshape(p.slice(picked, 0, 0, W.PROJECTIONS), (W.PROJECTIONS, 1))
    soft_chosen = p.reshape(_soft(p, p.sub(x_chosen, d)), (1, W.PROJECTIONS))
    crop_chosen = p.sum(p.reshape(chosen, (g, c)), axes=(0,))  # (C,) one-hot over crops
    kept = p.matmul_public(p.reshape(crop_chosen, (1, c)), visible.T.astype(np.float64))  # (1, P)
    thumb = p.matmul(thumbs, p.reshape(crop_chosen, (c, 1)))  # (GRID^2, 1)
    weight = p.mul(kept, _reliability(p, thumb))
    per_bit = p.reshape(p.matmul(p.mul(weight, soft_chosen), assignment), (W.PAYLOAD_BITS,))
    p.output(p.less(per_bit, p.mul_public(per_bit, 0.0, integer=True), bits=SCORE_BITS), "bits")
    p.output(p.mul_public(_abs(p, per_bit), 4.0 / W.COPIES), "confidence")
    p.output(p.slice(picked, 0, W.PROJECTIONS, W.PROJECTIONS + 1), "fit")
    p.output(best, "score")
    threshold = W.AGREEMENT_THRESHOLD if payload else W.FIT_THRESHOLD
    p.output(p.less(p.add_public(p.mul_public(best, 0.0, integer=True), threshold), best, bits=SCORE_BITS), "present")
    return p
