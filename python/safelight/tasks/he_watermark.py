"""Watermark embedding of a BFV-encrypted photo on ONE server (``--scheme he``, issue 17).

The photo lives on the server as ciphertexts under a key only the owner holds; the
owner's watermark key and payload never reach the server at all, not even encrypted.

Layout (client, :class:`CellLayout`): the 64 x 64 thumbnail cells are the slots. Along
each axis a cell lists the pixels that overlap it (the same pixel twice where it straddles
two cells), K_h x K_w *entries* per cell; ciphertext e holds entry e of every cell, one
group of 4096 slots per colour (R, G, B; the fourth group is empty). Every weight the
server applies is then the same public function of the cell in every ciphertext: a
separable slot mask (``he_mix_outer``) of 64 + 64 numbers.

Job 1 (server): load the photo and keep it (``keep``: it stays on the server for job 2),
and sum the entries with their overlap weights (64 x the overlapped fraction of a pixel,
an integer): one ciphertext of three per-colour thumbnails, returned.

Client: decrypt the thumbnail (its own photo's 64 x 64 averages), compute the
projections, round them to the lattice with the key and the payload (the step BFV cannot
do: client-aided, 4096 values), and encrypt the change C' = M_h C M_w^T (the spread's
correction, :func:`.watermark_scheme.spread_correction`) shifted by one cell in each of
the 9 directions.

Job 2 (server): the bilinear spread of C' to every pixel (each pixel's two nearest cell
centres per axis lie within one cell of the cell holding its centre, so 9 shifted copies
times separable masks give it) added to D x the photo. The owner decrypts each pixel from
the entry of the cell holding its centre, divides by D, rounds and clips: the reference's
``to_uint8(embed(...))`` within one grey level (rounding ties and the masks' quantisation).

Parameters: n = 16384, q = three 60-bit primes, one key-switching prime (unused: no
relinearisation or rotation, so no evaluation keys are uploaded), t a 45-bit prime = 1 mod
2n. The results come back switched down to one prime.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import InputError
from ..he import bfv
from ..he.ntt import ntt_primes
from ..program.program import Program
from ..protocols.he_ops import as_words
from ..protocols.he_slots import slot_params_attrs
from ..runtime.cluster import Cluster
from . import watermark_scheme as scheme
from .he_filter import ciphertext_input
from .report import JobReport

RING_DEGREE = 16384
PRIME_BITS = (60, 60, 60)
SPECIAL_BITS = (60,)
PLAIN_BITS = 41
CELLS = scheme.GRID * scheme.GRID
GROUPS = RING_DEGREE // CELLS  # R, G, B and one empty group
OVERLAP_UNIT = scheme.GRID  # a pixel's overlap with a cell in 1/64 pixel: an integer
CHANGE_BITS = 8  # fixed point of the encrypted change C'
MASK_BITS = 8  # fixed point of the bilinear weights, per axis
SCALE = 1 << (CHANGE_BITS + 2 * MASK_BITS)  # D: the marked photo's fixed point
SHIFTS = [(dh, dw) for dh in (-1, 0, 1) for dw in (-1, 0, 1)]
KEEP = 1  # primes returned
# about 2048 x 2048 pixels (33 x 33 entries): 0.8 GB of ciphertexts up, 1.7 GB held by the server
MAX_CIPHERTEXTS = 1100


def he_params() -> bfv.Params:
    (t,) = ntt_primes(PLAIN_BITS, RING_DEGREE, 1)
    return bfv.Params(RING_DEGREE, q_bits=PRIME_BITS, special_bits=SPECIAL_BITS, t=t)


@dataclass(frozen=True)
class AxisPairs:
    """One axis of n pixels against the GRID cells: cell i's entries a are the pixels
    ``pixel[i, a]`` (-1: none) overlapping it by ``overlap[i, a]`` / 64 pixel; ``home``
    marks the entry of the cell that holds the pixel's centre; ``mask[d]`` (d = -1, 0, 1)
    is the bilinear weight of cell i + d for the pixel of a home entry (0 elsewhere)."""

    n: int

    @cached_property
    def _tables(self) -> tuple[np.ndarray, ...]:
        n, grid = self.n, scheme.GRID
        lists = []
        for i in range(grid):
            lo, hi = n * i, n * (i + 1)  # the cell in 1/64 pixel
            pixels = range(lo // OVERLAP_UNIT, -(-hi // OVERLAP_UNIT))
            lists.append([(r, min(OVERLAP_UNIT * (r + 1), hi) - max(OVERLAP_UNIT * r, lo)) for r in pixels])
        k = max(len(entries) for entries in lists)
        pixel = np.full((grid, k), -1, dtype=np.int64)
        overlap = np.zeros((grid, k), dtype=np.int64)
        for i, entries in enumerate(lists):
            for a, (r, ov) in enumerate(entries):
                pixel[i, a], overlap[i, a] = r, ov
        cells = np.arange(grid)[:, None]
        home = (pixel >= 0) & ((OVERLAP_UNIT * pixel + OVERLAP_UNIT // 2) // n == cells)
        b = scheme.bilinear(n)
        mask = np.zeros((3, grid, k))
        for d in (-1, 0, 1):
            target = cells + d
            ok = home & (target >= 0) & (target < grid)
            mask[d + 1][ok] = b[pixel[ok], np.broadcast_to(target, ok.shape)[ok]]
        return pixel, overlap, home, mask

    @property
    def entries(self) -> int:
        return self._tables[0].shape[1]

    pixel = property(lambda self: self._tables[0])
    overlap = property(lambda self: self._tables[1])
    home = property(lambda self: self._tables[2])
    mask = property(lambda self: self._tables[3])


@dataclass(frozen=True)
class CellLayout:
    """The photo's (entry, cell) slots: ciphertext e = a K_w + b holds entry (a, b) of every
    cell, slot g 4096 + 64 i + j for colour g of cell (i, j)."""

    height: int
    width: int

    @cached_property
    def rows(self) -> AxisPairs:
        return AxisPairs(self.height)

    @cached_property
    def cols(self) -> AxisPairs:
        return AxisPairs(self.width)

    @property
    def ciphertexts(self) -> int:
        return self.rows.entries * self.cols.entries

    def _entry_pixels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(E, GRID, GRID) row and column of each slot's pixel, and whether it has one."""
        ph, pw = self.rows.pixel, self.cols.pixel  # (GRID, K)
        r = np.broadcast_to(ph.T[:, None, :, None], (ph.shape[1], pw.shape[1], scheme.GRID, scheme.GRID))
        c = np.broadcast_to(pw.T[None, :, None, :], r.shape)
        shape = (self.ciphertexts, scheme.GRID, scheme.GRID)
        return r.reshape(shape), c.reshape(shape), (r >= 0).reshape(shape) & (c >= 0).reshape(shape)

    def pack(self, levels: np.ndarray) -> np.ndarray:
        """(E, n) slot values of the (h, w, 3) integer photo."""
        r, c, ok = self._entry_pixels()
        out = np.zeros((self.ciphertexts, GROUPS, scheme.GRID, scheme.GRID), dtype=np.int64)
        for g in range(3):
            out[:, g][ok] = levels[r[ok], c[ok], g]
        return out.reshape(self.ciphertexts, RING_DEGREE)

    def unpack(self, slots: np.ndarray) -> np.ndarray:
        """The (h, w, 3) photo from (E, n) slot values: each pixel from its home entry."""
        r, c, _ = self._entry_pixels()
        home = (self.rows.home.T[:, None, :, None] & self.cols.home.T[None, :, None, :]).reshape(r.shape)
        values = slots.reshape(self.ciphertexts, GROUPS, scheme.GRID, scheme.GRID)
        out = np.zeros((self.height, self.width, 3), dtype=slots.dtype)
        for g in range(3):
            out[r[home], c[home], g] = values[:, g][home]
        return out

    def thumbnail_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """rows (1, E, GRID), cols (1, E, GRID): the overlap weights of every entry."""
        ka, kb = self.rows.entries, self.cols.entries
        rows = np.repeat(self.rows.overlap.T, kb, axis=0)  # entry e = a kb + b -> row a
        cols = np.tile(self.cols.overlap.T, (ka, 1))
        return rows[None], cols[None]

    def spread_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """rows (E, 9, GRID), cols (E, 9, GRID): the bilinear weights (MASK_BITS) of the
        shifted change SHIFTS[s] for the pixel of each home entry."""
        qh = np.round(self.rows.mask * (1 << MASK_BITS)).astype(np.int64)  # (3, GRID, K)
        qw = np.round(self.cols.mask * (1 << MASK_BITS)).astype(np.int64)
        ka, kb = self.rows.entries, self.cols.entries
        rows = np.zeros((self.ciphertexts, len(SHIFTS), scheme.GRID), dtype=np.int64)
        cols = np.zeros_like(rows)
        for s, (dh, dw) in enumerate(SHIFTS):
            rows[:, s] = np.repeat(qh[dh + 1].T, kb, axis=0)
            cols[:, s] = np.tile(qw[dw + 1].T, (ka, 1))
        return rows, cols

    def thumbnail(self, slots: np.ndarray) -> np.ndarray:
        """(GRID * GRID,) the luma thumbnail from the decrypted per-colour sums."""
        sums = slots.reshape(GROUPS, CELLS)[:3].astype(np.float64)
        return (scheme.LUMA @ sums) / (self.height * self.width)


def shifted_changes(change: np.ndarray) -> np.ndarray:
    """(9, n) slot values: C' (GRID x GRID, fixed point) moved so that slot (i, j) of copy
    s holds C'[i + dh, j + dw] (0 outside), in every colour group."""
    grid = scheme.GRID
    padded = np.zeros((grid + 2, grid + 2), dtype=np.int64)
    padded[1:-1, 1:-1] = change
    copies = [padded[1 + dh : 1 + dh + grid, 1 + dw : 1 + dw + grid].reshape(-1) for dh, dw in SHIFTS]
    return np.tile(np.stack(copies), (1, GROUPS))


def thumbnail_program(layout: CellLayout, params: bfv.Params, nbytes: int) -> Program:
    base = {"params": slot_params_attrs(params)}
    p = Program(parties=1)
    photo = p.apply(
        "he_load", [p.input("photo", ((nbytes + 7) // 8,))], {**base, "count": layout.ciphertexts, "nbytes": nbytes}
    )
    rows, cols = (p.input(name, (1, layout.ciphertexts, scheme.GRID)) for name in ("thumb_rows", "thumb_cols"))
    sums = p.apply("he_mix_outer", [photo, rows, cols], base)
    p.output(photo, "photo")
    p.output(p.apply("he_mod_switch", [sums], {**base, "keep": KEEP}), "thumbnail")
    return p


def marking_program(layout: CellLayout, params: bfv.Params, nbytes: int) -> Program:
    base = {"params": slot_params_attrs(params)}
    p = Program(parties=1)
    photo = p.input("photo", (layout.ciphertexts, 2, len(params.q), params.n))
    change = p.apply(
        "he_load", [p.input("change", ((nbytes + 7) // 8,))], {**base, "count": len(SHIFTS), "nbytes": nbytes}
    )
    rows, cols = (p.input(name, (layout.ciphertexts, len(SHIFTS), scheme.GRID)) for name in ("rows", "cols"))
    spread = p.apply("he_mix_outer", [change, rows, cols], base)
    marked = p.apply("he_combine", [photo, spread], {**base, "coeffs": [SCALE, 1]})
    p.output(p.apply("he_mod_switch", [marked], {**base, "keep": KEEP}), "marked")
    return p


def _centred(values: np.ndarray, t: int) -> np.ndarray:
    v = values.astype(np.int64)
    return np.where(v > t // 2, v - t, v)


def embed(
    image: Any, key: scheme.Key, bits: np.ndarray, *, cluster: Cluster | None = None
) -> tuple[np.ndarray, JobReport, dict[str, Any]]:
    """The marked photo (float64, before rounding), the report of the marking job and the
    extras (seconds per phase, bytes each way, the noise budget left)."""
    rgb = scheme.check_image(image)
    layout = CellLayout(*rgb.shape[:2])
    if layout.ciphertexts > MAX_CIPHERTEXTS:
        raise InputError(
            f"the HE embedding takes photos up to about 2048x2048 pixels ({layout.ciphertexts} ciphertexts of "
            f"at most {MAX_CIPHERTEXTS} for {rgb.shape[0]}x{rgb.shape[1]}, 48 bytes per pixel and colour); "
            "mark larger photos on shares (--servers 2 or 3)"
        )
    params = he_params()
    context = bfv.Context(params)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    sk = context.keygen()
    upload = context.encrypt_batch(layout.pack(rgb.astype(np.int64)), sk).to_bytes()
    seconds["encrypt"] = time.perf_counter() - t0
    model_id = "he-watermark-" + os.urandom(8).hex()
    own = cluster is None
    cluster = Cluster.local(1) if own else cluster
    try:
        t0 = time.perf_counter()
        rows, cols = layout.thumbnail_factors()
        first = cluster.run(
            thumbnail_program(layout, params, len(upload)),
            {
                "photo": ciphertext_input(as_words(upload)),
                "thumb_rows": ciphertext_input(rows),
                "thumb_cols": ciphertext_input(cols),
            },
            keep={"photo": model_id},
        )
        seconds["thumbnail_job"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows_out = np.ascontiguousarray(np.asarray(first.outputs["thumbnail"].shares[0]))
        sums = context.decrypt_batch(bfv.CiphertextBatch(context, rows_out, context.num_q - KEEP, False), sk)
        change = scheme.thumbnail_change(key.directions() @ layout.thumbnail(sums), key, bits)
        grid = scheme.GRID
        corrected = (
            scheme.spread_correction(layout.height)
            @ change.reshape(grid, grid)
            @ scheme.spread_correction(layout.width).T
        )
        fixed = np.round(corrected * (1 << CHANGE_BITS)).astype(np.int64)
        change_upload = context.encrypt_batch(shifted_changes(fixed), sk).to_bytes()
        seconds["client_rounding"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows, cols = layout.spread_factors()
        second = cluster.run(
            marking_program(layout, params, len(change_upload)),
            {
                "photo": first.kept["photo"],
                "change": ciphertext_input(as_words(change_upload)),
                "rows": ciphertext_input(rows),
                "cols": ciphertext_input(cols),
            },
        )
        seconds["marking_job"] = time.perf_counter() - t0
    finally:
        try:
            cluster.drop_model(model_id)
        finally:
            if own:
                cluster.close()
    t0 = time.perf_counter()
    batch = bfv.CiphertextBatch(
        context, np.ascontiguousarray(np.asarray(second.outputs["marked"].shares[0])), context.num_q - KEEP, False
    )
    slots = context.decrypt_batch(batch, sk).reshape(layout.ciphertexts, RING_DEGREE)
    budget = int(np.min(context.invariant_noise_budget(batch, sk)))
    marked = layout.unpack(_centred(slots, context.t)).astype(np.float64) / SCALE
    seconds["decrypt"] = time.perf_counter() - t0
    extras = {
        "seconds": seconds,
        "bytes": {
            "photo_up": len(upload),
            "thumbnail_down": rows_out.nbytes,
            "change_up": len(change_upload),
            "marked_down": batch.data.nbytes,
        },
        "thumbnail_report": JobReport.from_job(first),
        "noise_budget_bits": budget,
        "ciphertexts": layout.ciphertexts,
    }
    return marked, JobReport.from_job(second), extras
