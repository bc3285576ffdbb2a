"""SIFT-like keypoints and upright descriptors on secret shares (issue 16).

The algorithm, the same in :func:`sift_program` (on shares) and :func:`plaintext_maps`
(numpy, the reference it must equal):

- **scale space**: the grey image in [0, 1] blurred to sigma_0 = 1.6 (assuming 0.5 of
  camera blur), then ``INTERVALS + 2`` more separable Gaussian blurs per octave (public
  kernels, radius 4 sigma, mirrored borders) to sigma_0 2^(i / INTERVALS); the next octave
  starts from the image at 2 sigma_0, every other pixel. Differences of Gaussians: local.
- **keypoints** at DoG levels 1..INTERVALS of each octave: a pixel at least as large as
  its 26 neighbours (a separable 3x3 max on every level, then the max of three levels)
  and above the contrast threshold, or at most as small and below minus it, and not on an
  edge: r tr(H)^2 < (r + 1)^2 det(H) for the DoG's 2x2 Hessian (r = 10). Interior pixels
  only (one pixel from each side). No sub-pixel refinement and no orientation: upright.
- **descriptors**, upright, 4x4 cells x 8 orientations, computed densely for each level:
  every pixel's gradient (central differences of the level's Gaussian image) votes its
  magnitude into one of 8 orientation bins (:mod:`.orientation`: no atan, no square root),
  the votes are pooled by a public tent kernel of one cell's width (3 sigma, bilinear
  weighting as SIFT's), and at every GRID-th pixel the 16 cells around it (centres at
  round((k - 1.5) cell) pixels), weighted by a Gaussian of two cells, form the
  128-vector; then SIFT's normalisation (unit length, clipped at 0.2, unit length again)
  with the secure inverse square root.

The servers output the keypoint masks and the grid's descriptors, both as shares; the
client (:func:`keypoints_and_descriptors`) lists its keypoints and interpolates each one's
descriptor from the four grid points around it. The servers learn neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import fixed_point
from ..errors import InputError
from ..program.program import Program, Tensor
from .extremes import pairwise_max
from .kernels import as_grey
from .orientation import binned_gradient, central_difference, plaintext_magnitude, votes

SIGMA0 = 1.6
CAMERA_BLUR = 0.5
INTERVALS = 3
CONTRAST = 0.01  # |DoG| threshold for an image in [0, 1]
EDGE_RATIO = 10.0
MAGNIFY = 3.0  # a cell is this many sigmas wide
GRID = 4  # descriptors at every GRID-th pixel of each octave
MIN_SIDE = 24  # the smallest octave
SIFT_SCALE = 8.0  # the servers work on the image times this
KERNEL_BITS = 20  # fractional bits of each 1-D blur kernel (two passes, one truncation)
LEVELS = (4,)  # 8 signed orientation bins: the fold, then 4 parts of 45 degrees (exact tests)
REFINEMENTS = 2
# comparison widths (|x| < 2^(bits-1) ring units at 16 fractional bits)
GRADIENT_BITS = 22  # central differences below 2 SIFT_SCALE, turned frames sqrt(2) more: below 2^20.5
DOG_BITS = 21  # |DoG| below SIFT_SCALE = 2^19 units
EDGE_BITS = 40  # the Hessian test: |16 ((r + 1)^2 det - r tr^2)| below 2^23
CLIP = 0.2  # SIFT's clip of normalised descriptors (on the client)
WEIGHT_BITS = 8  # the cells' Gaussian weights as integers over 2^8: no truncation of the grid
# eps of the first normalisation (image units squared): descriptors of flat areas, whose
# gradients are noise, stay short instead of being blown up to unit length
EPS = 1e-4
NORM_BITS = 36  # sums of squares of 128 weighted pooled values (each below 23) below 2^17


def gaussian_1d(sigma: float) -> np.ndarray:
    radius = max(1, int(4.0 * sigma + 0.5))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def tent_1d(width: float) -> np.ndarray:
    """Bilinear weights of a cell ``width`` pixels wide, normalised."""
    radius = int(np.ceil(width)) - 1
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    t = np.maximum(0.0, 1.0 - np.abs(x) / width)
    return t / t.sum()


def level_sigmas() -> list[float]:
    """sigma of each Gaussian image of an octave (octave-relative)."""
    return [SIGMA0 * 2.0 ** (i / INTERVALS) for i in range(INTERVALS + 3)]


def blur_increments() -> list[float]:
    """The first blur (from the camera's 0.5), then each level's from the one before."""
    s = level_sigmas()
    return [float(np.sqrt(SIGMA0**2 - CAMERA_BLUR**2))] + [
        float(np.sqrt(s[i] ** 2 - s[i - 1] ** 2)) for i in range(1, len(s))
    ]


def octave_count(height: int, width: int) -> int:
    n = 0
    while min(height, width) >> n >= MIN_SIDE:
        n += 1
    return n


def cell_offsets(level: int) -> np.ndarray:
    """Pixel offsets of the 4 cell centres along one axis at DoG ``level``."""
    cell = MAGNIFY * level_sigmas()[level]
    return np.round((np.arange(4) - 1.5) * cell).astype(int)


def cell_weights() -> np.ndarray:
    """(16,) Gaussian weights of the cells (sigma two cells), row-major over (i, j)."""
    k = np.arange(4) - 1.5
    return np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / (2 * 2.0**2)).reshape(16)


def grid_points(n: int) -> np.ndarray:
    return np.arange(GRID // 2, n, GRID)


@dataclass
class Geometry:
    height: int
    width: int
    octaves: int

    def shape(self, octave: int) -> tuple[int, int]:
        h, w = self.height, self.width
        for _ in range(octave):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    def grid(self, octave: int) -> tuple[int, int]:
        h, w = self.shape(octave)
        return len(grid_points(h)), len(grid_points(w))


def geometry(height: int, width: int) -> Geometry:
    octaves = octave_count(height, width)
    if octaves < 1:
        raise InputError(f"the image ({height}x{width}) is too small for SIFT: at least {MIN_SIDE}x{MIN_SIDE}")
    return Geometry(height, width, octaves)


# ---- on shares ---------------------------------------------------------------------------------


def _blur(p: Program, x: Tensor, kernel: np.ndarray, mode: str, layout: str = "hw") -> Tensor:
    """Separable correlation with a public 1-D kernel on both axes, one truncation."""
    ring_kernel = fixed_point.encode(kernel, KERNEL_BITS)
    y = x
    for shape in ((1, len(kernel), 1), (1, 1, len(kernel))):
        attrs = {"kernel": ring_kernel.reshape(shape).tolist(), "padding": mode, "layout": layout}
        y = p.apply("conv2d_public", [y], attrs, frac_bits=y.frac_bits + KERNEL_BITS)
    return p.rescale(y)


def _inner(p: Program, x: Tensor, dr: int, dc: int) -> Tensor:
    """The interior window of x (..., h, w) shifted by (dr, dc): x[..., 1+dr : h-1+dr, 1+dc : w-1+dc]."""
    h, w = x.shape[-2:]
    a = len(x.shape) - 2
    return p.slice(p.slice(x, a, 1 + dr, h - 1 + dr), a + 1, 1 + dc, w - 1 + dc)


def _cube_extremes(p: Program, dogs: Tensor) -> tuple[Tensor, Tensor]:
    """(highest, lowest), each (levels - 2, h - 2, w - 2): the max and the min over each
    interior pixel's 3x3x3 neighbourhood. The max and the min (a max of -dogs) run in the
    same steps: separable 3x3 maxima on every level, then the max of three levels."""
    n, h, w = dogs.shape
    both = p.reshape(p.concat([dogs, p.neg(dogs)], axis=0), (1, 2 * n, h, w))
    rows = p.max_pool2d(both, (1, 3), stride=1, bits=DOG_BITS)
    square = p.reshape(p.max_pool2d(rows, (3, 1), stride=1, bits=DOG_BITS), (2 * n, h - 2, w - 2))

    def levels(first: int, last: int):  # levels first..last of both halves
        return p.concat([p.slice(square, 0, first, last), p.slice(square, 0, n + first, n + last)], axis=0)

    pairs = pairwise_max(p, levels(0, n - 1), levels(1, n), DOG_BITS)  # (2 (n - 1), ...)
    m = n - 1
    low = p.concat([p.slice(pairs, 0, 0, m - 1), p.slice(pairs, 0, m, 2 * m - 1)], axis=0)
    high = p.concat([p.slice(pairs, 0, 1, m), p.slice(pairs, 0, m + 1, 2 * m)], axis=0)
    cube = pairwise_max(p, low, high, DOG_BITS)  # (2 (n - 2), ...)
    return p.slice(cube, 0, 0, n - 2), p.neg(p.slice(cube, 0, n - 2, 2 * (n - 2)))


def _keypoints(p: Program, dogs: Tensor) -> Tensor:
    """(INTERVALS, h - 2, w - 2) 0/1: the keypoint mask of DoG levels 1..INTERVALS."""
    n = dogs.shape[0]
    centre = _inner(p, p.slice(dogs, 0, 1, n - 1), 0, 0)
    highest, lowest = _cube_extremes(p, dogs)
    zeros = p.mul_public(centre, 0.0, integer=True)
    t = CONTRAST * SIFT_SCALE
    # one comparison step: centre < highest, lowest < centre, t - centre < 0, centre + t < 0
    tests = p.less(
        p.concat([centre, lowest, p.add_public(p.neg(centre), t), p.add_public(centre, t)], axis=0),
        p.concat([highest, centre, zeros, zeros], axis=0),
        bits=DOG_BITS,
    )
    k = n - 2
    not_max, not_min, above, below = (p.slice(tests, 0, i * k, (i + 1) * k) for i in range(4))
    is_max, is_min = p.add_public(p.neg(not_max), 1.0), p.add_public(p.neg(not_min), 1.0)
    # the Hessian: second differences (local); 4 dxy keeps it an integer combination
    mid = p.slice(dogs, 0, 1, n - 1)
    dxx = p.sub(p.add(_inner(p, mid, 0, 1), _inner(p, mid, 0, -1)), p.mul_public(centre, 2, integer=True))
    dyy = p.sub(p.add(_inner(p, mid, 1, 0), _inner(p, mid, -1, 0)), p.mul_public(centre, 2, integer=True))
    e = p.sub(p.add(_inner(p, mid, 1, 1), _inner(p, mid, -1, -1)), p.add(_inner(p, mid, 1, -1), _inner(p, mid, -1, 1)))
    trace = p.add(dxx, dyy)
    prods = p.mul(p.concat([dxx, e, trace], axis=0), p.concat([dyy, e, trace], axis=0))
    xy, ee, tt = (p.slice(prods, 0, i * k, (i + 1) * k) for i in range(3))
    r = EDGE_RATIO
    # 16 ((r + 1)^2 det - r tr^2) = (r + 1)^2 (16 dxx dyy - e^2) - 16 r tr^2 > 0
    margin = p.sub(
        p.sub(
            p.mul_public(xy, 16 * int((r + 1) ** 2), integer=True), p.mul_public(ee, int((r + 1) ** 2), integer=True)
        ),
        p.mul_public(tt, int(16 * r), integer=True),
    )
    not_edge = p.less(p.mul_public(margin, 0.0, integer=True), margin, bits=EDGE_BITS)
    picked = p.mul(p.concat([is_max, is_min], axis=0), p.concat([above, below], axis=0))
    extremum = p.add(p.slice(picked, 0, 0, k), p.slice(picked, 0, k, 2 * k))
    return p.mul(extremum, not_edge)


def _orientation_votes(p: Program, gauss: Tensor) -> Tensor:
    """(8, h, w): each pixel's gradient magnitude in its orientation bin, once per octave."""
    binned = binned_gradient(
        p,
        central_difference(p, gauss, 0),
        central_difference(p, gauss, 1),
        LEVELS,
        REFINEMENTS,
        GRADIENT_BITS,
        signed=True,
    )
    return votes(p, binned)


def _descriptors(p: Program, orientation_votes: Tensor, level: int) -> Tensor:
    """(128, gh, gw): the unnormalised descriptors at DoG ``level`` on the grid, pooled
    from the octave's orientation votes (8, h, w)."""
    h, w = orientation_votes.shape[1:]
    cell = MAGNIFY * level_sigmas()[level]
    pooled = _blur(p, orientation_votes, tent_1d(cell), "zero", layout="chw")  # (8, h, w)
    offsets = cell_offsets(level)
    margin = int(np.abs(offsets).max())
    padded = p.pad(pooled, (margin, margin, margin, margin))
    rows, cols = grid_points(h), grid_points(w)
    parts = []
    for di in offsets:
        for dj in offsets:
            r0, c0 = margin + rows[0] + di, margin + cols[0] + dj
            window = p.slice(padded, 1, r0, r0 + GRID * (len(rows) - 1) + 1, GRID)
            parts.append(p.slice(window, 2, c0, c0 + GRID * (len(cols) - 1) + 1, GRID))
    stacked = p.concat(parts, axis=0)  # (16 * 8, gh, gw): cell-major, then orientation
    weights = np.round(np.repeat(cell_weights(), 8) * 2**WEIGHT_BITS)[:, None, None]
    return _read_at(p, p.mul_public_array(stacked, weights, integer=True), stacked.frac_bits + WEIGHT_BITS)


def _read_at(p: Program, x: Tensor, frac_bits: int) -> Tensor:
    """The same ring values read at another fixed-point scale (free: a relabelling)."""
    return p.apply("reshape", [x], {"shape": list(x.shape)}, frac_bits=frac_bits)


def _normalised(p: Program, v: Tensor, eps: float) -> Tensor:
    """Rows of v (n, 128) divided by sqrt(|v|^2 + eps)."""
    norm = p.rsqrt(p.add_public(p.sum(p.square(v), axes=(1,), keepdims=True), eps), bits=NORM_BITS)
    return p.mul(v, p.concat([norm] * v.shape[1], axis=1))


def sift_program(height: int, width: int, parties: int = 3, scheme: str = "rss3") -> Program:
    """The private SIFT-like pipeline on a ``height`` x ``width`` grey image times
    :data:`SIFT_SCALE` (input ``image``). Outputs per octave o: ``keys{o}`` (INTERVALS,
    h_o - 2, w_o - 2) keypoint masks of the interior, ``desc{o}`` (INTERVALS, gh_o * gw_o,
    128) normalised grid descriptors."""
    geo = geometry(height, width)
    p = Program(parties, scheme=scheme, truncation="pair")
    increments = blur_increments()
    base = _blur(p, p.input("image", (height, width)), gaussian_1d(increments[0]), "mirror")
    for o in range(geo.octaves):
        gauss = [base]
        for sigma in increments[1:]:
            gauss.append(_blur(p, gauss[-1], gaussian_1d(sigma), "mirror"))
        h, w = gauss[0].shape
        dogs = p.concat([p.reshape(p.sub(gauss[i + 1], gauss[i]), (1, h, w)) for i in range(len(gauss) - 1)], axis=0)
        p.output(_keypoints(p, dogs), f"keys{o}")
        octave_votes = _orientation_votes(p, gauss[1])
        grid = [_descriptors(p, octave_votes, level) for level in range(1, INTERVALS + 1)]
        gh, gw = geo.grid(o)
        rows = p.transpose(p.reshape(p.concat(grid, axis=0), (INTERVALS, 128, gh * gw)), (0, 2, 1))
        flat = p.reshape(rows, (INTERVALS * gh * gw, 128))
        p.output(p.reshape(_normalised(p, flat, EPS * SIFT_SCALE**2), (INTERVALS, gh * gw, 128)), f"desc{o}")
        if o + 1 < geo.octaves:
            base = p.slice(p.slice(gauss[INTERVALS], 0, 0, h, 2), 1, 0, w, 2)
    return p


# ---- the plaintext reference ------------------------------------------------------------------


def _np_blur(x: np.ndarray, kernel: np.ndarray, mode: str) -> np.ndarray:
    from scipy.ndimage import correlate1d

    mode = {"zero": "constant"}.get(mode, mode)
    return correlate1d(correlate1d(x, kernel, axis=-2, mode=mode), kernel, axis=-1, mode=mode)


def _np_central(x: np.ndarray, axis: int) -> np.ndarray:
    out = np.zeros_like(x)
    src = np.moveaxis(x, axis, 0)
    dst = np.moveaxis(out, axis, 0)
    dst[1:-1] = src[2:] - src[:-2]
    return out


def _np_keypoints(dogs: np.ndarray) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    n = dogs.shape[0]
    cubes = sliding_window_view(dogs, (3, 3, 3))  # (n - 2, h - 2, w - 2, 3, 3, 3)
    highest, lowest = cubes.max(axis=(-3, -2, -1)), cubes.min(axis=(-3, -2, -1))
    mid = dogs[1 : n - 1]
    centre = mid[:, 1:-1, 1:-1]
    dxx = mid[:, 1:-1, 2:] + mid[:, 1:-1, :-2] - 2 * centre
    dyy = mid[:, 2:, 1:-1] + mid[:, :-2, 1:-1] - 2 * centre
    dxy = (mid[:, 2:, 2:] + mid[:, :-2, :-2] - mid[:, 2:, :-2] - mid[:, :-2, 2:]) / 4
    trace, det = dxx + dyy, dxx * dyy - dxy**2
    t = CONTRAST
    extremum = ((centre >= highest) & (centre > t)) | ((centre <= lowest) & (centre < -t))
    return (extremum & ((EDGE_RATIO + 1) ** 2 * det - EDGE_RATIO * trace**2 > 0)).astype(np.float64)


def _np_orientation_votes(gauss: np.ndarray) -> np.ndarray:
    gr, gc = _np_central(gauss, 0), _np_central(gauss, 1)
    theta = np.arctan2(gr, gc) % (2 * np.pi)
    bins = np.minimum((theta // (np.pi / 4)).astype(int), 7)
    hist = np.zeros((8, *gauss.shape))
    np.put_along_axis(hist, bins[None], plaintext_magnitude(gr, gc, LEVELS, REFINEMENTS)[None], axis=0)
    return hist


def _np_descriptors(hist: np.ndarray, level: int) -> np.ndarray:
    h, w = hist.shape[1:]
    pooled = _np_blur(hist, tent_1d(MAGNIFY * level_sigmas()[level]), "zero")
    offsets = cell_offsets(level)
    margin = int(np.abs(offsets).max())
    padded = np.pad(pooled, ((0, 0), (margin, margin), (margin, margin)))
    rows, cols = grid_points(h), grid_points(w)
    parts = [padded[:, margin + rows + di][:, :, margin + cols + dj] for di in offsets for dj in offsets]
    weights = np.round(np.repeat(cell_weights(), 8) * 2**WEIGHT_BITS) / 2**WEIGHT_BITS
    stacked = np.concatenate(parts, axis=0) * weights[:, None, None]
    return stacked  # (128, gh, gw)


def _np_normalised(v: np.ndarray, eps: float) -> np.ndarray:
    return v / np.sqrt(np.sum(v**2, axis=-1, keepdims=True) + eps)


def plaintext_maps(grey: np.ndarray) -> dict[str, np.ndarray]:
    """What :func:`sift_program` outputs, computed in floating point on ``grey`` in [0, 1]."""
    geo = geometry(*grey.shape)
    increments = blur_increments()
    base = _np_blur(np.asarray(grey, dtype=np.float64), gaussian_1d(increments[0]), "mirror")
    out = {}
    for o in range(geo.octaves):
        gauss = [base]
        for sigma in increments[1:]:
            gauss.append(_np_blur(gauss[-1], gaussian_1d(sigma), "mirror"))
        dogs = np.stack([gauss[i + 1] - gauss[i] for i in range(len(gauss) - 1)])
        out[f"keys{o}"] = _np_keypoints(dogs)
        hist = _np_orientation_votes(gauss[1])
        grid = np.stack([_np_descriptors(hist, level) for level in range(1, INTERVALS + 1)])
        out[f"desc{o}"] = _np_normalised(grid.reshape(INTERVALS, 128, -1).transpose(0, 2, 1), EPS)
        base = gauss[INTERVALS][::2, ::2]
    return out


# ---- the client's part --------------------------------------------------------------------------


def _clipped(d: np.ndarray) -> np.ndarray:
    """SIFT's illumination step on the client: unit length, clipped at 0.2, unit length."""
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    d = np.minimum(d, CLIP)
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


def keypoints_and_descriptors(maps: dict[str, np.ndarray], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints (n, 3) as [row, col, scale] in the image's pixels, descriptors (n, 128))
    from the decoded outputs: each keypoint's descriptor interpolated bilinearly from the
    four grid points around it at its octave and level, then made unit length again."""
    geo = geometry(height, width)
    points, descs = [], []
    for o in range(geo.octaves):
        h, w = geo.shape(o)
        gh, gw = geo.grid(o)
        keys, grid = maps[f"keys{o}"], maps[f"desc{o}"].reshape(INTERVALS, gh, gw, 128)
        for level in range(INTERVALS):
            rows, cols = np.nonzero(keys[level] > 0.5)
            rows, cols = rows + 1, cols + 1  # interior to octave pixels
            u = np.clip((rows - GRID // 2) / GRID, 0, gh - 1)
            v = np.clip((cols - GRID // 2) / GRID, 0, gw - 1)
            u0, v0 = (
                np.minimum(u.astype(int), gh - 2 if gh > 1 else 0),
                np.minimum(v.astype(int), gw - 2 if gw > 1 else 0),
            )
            u1, v1 = np.minimum(u0 + 1, gh - 1), np.minimum(v0 + 1, gw - 1)
            fu, fv = (u - u0)[:, None], (v - v0)[:, None]
            g = grid[level]
            d = (1 - fu) * ((1 - fv) * g[u0, v0] + fv * g[u0, v1]) + fu * ((1 - fv) * g[u1, v0] + fv * g[u1, v1])
            d = _clipped(d)
            scale = SIGMA0 * 2.0 ** (o + (level + 1) / INTERVALS)
            points.append(np.stack([rows * 2.0**o, cols * 2.0**o, np.full(len(rows), scale)], axis=1))
            descs.append(d)
    if not points:
        return np.empty((0, 3)), np.empty((0, 128))
    return np.concatenate(points), np.concatenate(descs)


def plaintext_sift(image: Any) -> tuple[np.ndarray, np.ndarray]:
    """The reference: keypoints and descriptors of the same algorithm in numpy."""
    grey = as_grey(image)
    return keypoints_and_descriptors(plaintext_maps(grey), *grey.shape)
