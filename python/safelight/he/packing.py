"""Coefficient packing: a 2-D convolution (or a matrix product) as polynomial products.

In ``Z_t[X] / (X^n + 1)`` one product of two polynomials computes many dot products at
once when the operands are laid out right (the packing of Cheetah, Huang et al., USENIX
Security 2022). For a *valid*, stride-1 cross-correlation of an input tile of ``cp``
channels by ``ht x wt`` pixels with a ``kh x kw`` kernel::

    input  x(X) = sum_{c,y,u}   x[c, y, u]    X^(c ht wt + y wt + u)
    kernel k(X) = sum_{c,i,j}   w[c, i, j]    X^((cp-1-c) ht wt + (kh-1-i) wt + (kw-1-j))

the coefficient of ``X^((cp-1) ht wt + (Y+kh-1) wt + (U+kw-1))`` in ``x(X) k(X)`` is the
output ``sum_{c,i,j} x[c, Y+i, U+j] w[c, i, j]`` for ``0 <= Y <= ht-kh``,
``0 <= U <= wt-kw``. When ``cp ht wt <= n`` no other term reaches those positions:
channel mismatches and row overflows land below them, and the negacyclic wrap lands
below the lowest one. Every other coefficient is a partial sum (garbage that reveals
the operands, so protocols must mask *all* coefficients, not only the outputs).

A convolution of ``C`` channels to ``O`` outputs is then, per spatial tile ``s`` and
channel group ``g`` (``cp`` channels each)::

    out[s, o] = sum_g  x[s, g] * k[o, g]        (polynomial products)

:class:`ConvPacking` chooses the tile shape, packs inputs and kernels and reads outputs
back. Strided, dilated and grouped convolutions and matrix products are lowered to this
case on the shares themselves (padding and im2col are linear) by :func:`lower_conv2d`
and :func:`lower_matmul`. Arrays are uint64 (values mod ``2^64``, or mod ``t``).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import numpy as np

from ..errors import InputError

__all__ = ["ConvPacking", "Lowered", "lower_conv2d", "lower_matmul", "negacyclic_multiply"]


@dataclass(frozen=True)
class ConvPacking:
    """Packing of a valid stride-1 convolution ``(C, H, W) * (O, C, kh, kw) -> (O, H-kh+1, W-kw+1)``
    into ring degree ``n``.

    Attributes
    ----------
    cp : int
        Channels per polynomial; ``groups = ceil(C / cp)``.
    th, tw : int
        Output rows and columns per tile (input tiles are ``th+kh-1`` by ``tw+kw-1``).
    """

    channels: int
    height: int
    width: int
    outputs: int
    kh: int
    kw: int
    n: int
    cp: int
    th: int
    tw: int

    @classmethod
    def choose(cls, channels: int, height: int, width: int, outputs: int, kh: int, kw: int, n: int) -> ConvPacking:
        """The packing with the fewest polynomial products (ties: fewest tiles)."""
        ho, wo = height - kh + 1, width - kw + 1
        if min(channels, outputs, kh, kw, ho, wo) < 1:
            raise InputError(
                f"no valid convolution of a {channels}x{height}x{width} input by {outputs}x{channels}x{kh}x{kw}"
            )
        if kh * kw > n:
            raise InputError(f"a {kh}x{kw} kernel does not fit ring degree {n}")
        best = None
        for th in _divisor_like(ho):
            ht = th + kh - 1
            for tw in _divisor_like(wo):
                wt = tw + kw - 1
                if ht * wt > n:
                    continue
                groups = ceil(channels / min(channels, n // (ht * wt)))
                cp = ceil(channels / groups)  # same group count, balanced channels
                tiles = ceil(ho / th) * ceil(wo / tw)
                key = (tiles * groups, tiles)
                if best is None or key < best[0]:
                    best = (key, cls(channels, height, width, outputs, kh, kw, n, cp, th, tw))
        if best is None:
            raise InputError(f"a {kh}x{kw} kernel does not fit ring degree {n}")
        return best[1]

    # ---- geometry -----------------------------------------------------------
    @property
    def ht(self) -> int:
        return self.th + self.kh - 1

    @property
    def wt(self) -> int:
        return self.tw + self.kw - 1

    @property
    def out_height(self) -> int:
        return self.height - self.kh + 1

    @property
    def out_width(self) -> int:
        return self.width - self.kw + 1

    @property
    def groups(self) -> int:
        return ceil(self.channels / self.cp)

    @property
    def tile_rows(self) -> int:
        return ceil(self.out_height / self.th)

    @property
    def tile_cols(self) -> int:
        return ceil(self.out_width / self.tw)

    @property
    def tiles(self) -> int:
        return self.tile_rows * self.tile_cols

    @property
    def products(self) -> int:
        """Polynomial products per convolution (tiles x outputs x groups)."""
        return self.tiles * self.outputs * self.groups

    # ---- packing ------------------------------------------------------------
    def pack_input(self, x: np.ndarray) -> np.ndarray:
        """``x`` (C, H, W) -> polynomials (tiles, groups, n): tile ``s`` holds the input rows
        and columns its outputs need (tiles overlap by ``kh-1`` / ``kw-1``; the parts past
        the image are zero)."""
        x = np.asarray(x, dtype=np.uint64)
        if x.shape != (self.channels, self.height, self.width):
            raise InputError(
                f"input of shape {x.shape} does not match the packing ({self.channels}, {self.height}, {self.width})"
            )
        ht, wt, cp = self.ht, self.wt, self.cp
        padded = np.zeros(
            (self.groups * cp, self.tile_rows * self.th + self.kh - 1, self.tile_cols * self.tw + self.kw - 1),
            dtype=np.uint64,
        )
        padded[: self.channels, : self.height, : self.width] = x
        out = np.zeros((self.tile_rows, self.tile_cols, self.groups, self.n), dtype=np.uint64)
        for r in range(self.tile_rows):
            for c in range(self.tile_cols):
                block = padded[:, r * self.th : r * self.th + ht, c * self.tw : c * self.tw + wt]
                out[r, c, :, : cp * ht * wt] = block.reshape(self.groups, cp * ht * wt)
        return out.reshape(self.tiles, self.groups, self.n)

    def pack_kernel(self, w: np.ndarray) -> np.ndarray:
        """``w`` (O, C, kh, kw) -> polynomials (O, groups, n), reversed as the module says."""
        w = np.asarray(w, dtype=np.uint64)
        if w.shape != (self.outputs, self.channels, self.kh, self.kw):
            raise InputError(
                f"kernel of shape {w.shape} does not match the packing "
                f"({self.outputs}, {self.channels}, {self.kh}, {self.kw})"
            )
        ht, wt, cp = self.ht, self.wt, self.cp
        full = np.zeros((self.outputs, self.groups * cp, self.kh, self.kw), dtype=np.uint64)
        full[:, : self.channels] = w
        full = full.reshape(self.outputs, self.groups, cp, self.kh, self.kw)
        c = np.arange(cp)[:, None, None]
        i = np.arange(self.kh)[None, :, None]
        j = np.arange(self.kw)[None, None, :]
        index = ((cp - 1 - c) * ht * wt + (self.kh - 1 - i) * wt + (self.kw - 1 - j)).reshape(-1)
        out = np.zeros((self.outputs, self.groups, self.n), dtype=np.uint64)
        out[:, :, index] = full.reshape(self.outputs, self.groups, -1)
        return out

    def output_positions(self) -> np.ndarray:
        """Coefficient index of every output of a tile, shape (th, tw)."""
        base = (self.cp - 1) * self.ht * self.wt
        y = np.arange(self.th)[:, None] + self.kh - 1
        u = np.arange(self.tw)[None, :] + self.kw - 1
        return base + y * self.wt + u

    def unpack_output(self, polys: np.ndarray) -> np.ndarray:
        """Products (tiles, O, n) -> outputs (O, H-kh+1, W-kw+1)."""
        polys = np.asarray(polys)
        if polys.shape != (self.tiles, self.outputs, self.n):
            raise InputError(f"products of shape {polys.shape}, expected {(self.tiles, self.outputs, self.n)}")
        picked = polys[:, :, self.output_positions()]  # (tiles, O, th, tw)
        picked = picked.reshape(self.tile_rows, self.tile_cols, self.outputs, self.th, self.tw)
        full = picked.transpose(2, 0, 3, 1, 4).reshape(self.outputs, self.tile_rows * self.th, self.tile_cols * self.tw)
        return np.ascontiguousarray(full[:, : self.out_height, : self.out_width])


def _divisor_like(size: int) -> list[int]:
    """Candidate tile heights: every count of row tiles gives one balanced height."""
    return sorted({ceil(size / k) for k in range(1, size + 1)})


# ---- lowering general convolutions and matrix products to packed ones --------------------
@dataclass(frozen=True)
class Lowered:
    """One valid stride-1 convolution that computes part of a general one.

    ``inputs`` maps an input (N, C, H, W) to this part's (C', H', W'); ``kernel`` maps a
    kernel to (O', C', kh', kw'); the part's output (O', Ho, Wo) goes to
    ``out[batch, out_channels]`` of the general output (N, O, Ho, Wo).
    """

    packing: ConvPacking
    batch: int
    group: int
    out_channels: slice
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    group_channels: int
    kernel_size: tuple[int, int]
    im2col: bool

    def inputs(self, x: np.ndarray) -> np.ndarray:
        c = self.group_channels
        part = np.asarray(x, dtype=np.uint64)[self.batch, self.group * c : (self.group + 1) * c]
        ph, pw = self.padding
        if ph or pw:
            part = np.pad(part, ((0, 0), (ph, ph), (pw, pw)))
        if not self.im2col:
            return np.ascontiguousarray(part)
        kh, kw = self.kernel_size
        ho, wo = self.packing.height, self.packing.width
        (sh, sw), (dh, dw) = self.stride, self.dilation
        cols = np.empty((c, kh, kw, ho, wo), dtype=np.uint64)
        for i in range(kh):
            for j in range(kw):
                cols[:, i, j] = part[
                    :, i * dh : i * dh + (ho - 1) * sh + 1 : sh, j * dw : j * dw + (wo - 1) * sw + 1 : sw
                ]
        return cols.reshape(c * kh * kw, ho, wo)

    def kernel(self, w: np.ndarray) -> np.ndarray:
        part = np.asarray(w, dtype=np.uint64)[self.out_channels]
        if not self.im2col:
            return np.ascontiguousarray(part)
        return np.ascontiguousarray(part.reshape(part.shape[0], -1, 1, 1))


def lower_conv2d(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride=(1, 1),
    padding=(0, 0),
    dilation=(1, 1),
    groups: int = 1,
    n: int = 8192,
) -> list[Lowered]:
    """Split ``conv2d(x, w, stride, padding, dilation, groups)`` (as :func:`safelight.ring.conv2d`)
    into packed valid stride-1 convolutions: one per batch item and group; strided or
    dilated kernels go through im2col (then a 1x1 convolution)."""
    nb, c, h, w = x_shape
    o, cg, kh, kw = w_shape
    if c != cg * groups or o % groups:
        raise InputError(f"conv2d: input {x_shape}, kernel {w_shape} and groups={groups} do not match")
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
    og = o // groups
    hp, wp = h + 2 * padding[0], w + 2 * padding[1]
    im2col = stride != (1, 1) or dilation != (1, 1)
    if im2col:
        ho = (hp - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        wo = (wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        packing = ConvPacking.choose(cg * kh * kw, ho, wo, og, 1, 1, n)
    else:
        packing = ConvPacking.choose(cg, hp, wp, og, kh, kw, n)
    parts = []
    for b in range(nb):
        for g in range(groups):
            parts.append(
                Lowered(packing, b, g, slice(g * og, (g + 1) * og), stride, padding, dilation, cg, (kh, kw), im2col)
            )
    return parts


def lower_matmul(m: int, k: int, cols: int, n: int = 8192) -> ConvPacking:
    """``a (m, k) @ b (k, cols)`` as a 1x1 convolution of ``a.T`` viewed as (k, 1, m) by
    ``b.T`` viewed as (cols, k, 1, 1); outputs (cols, 1, m) are ``(a @ b).T``."""
    return ConvPacking.choose(k, 1, m, cols, 1, 1, n)


def negacyclic_multiply(a: np.ndarray, b: np.ndarray, modulus_bits: int = 64) -> np.ndarray:
    """Reference product of two polynomials mod ``X^n + 1`` and ``2^modulus_bits`` (uint64,
    last axis = coefficients), O(n * nnz(b)): for tests of the packings."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    n = a.shape[-1]
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=np.uint64)
    for k in np.flatnonzero(np.any(b.reshape(-1, n) != 0, axis=0)):
        shifted = np.roll(a, k, axis=-1)
        shifted[..., :k] = np.uint64(0) - shifted[..., :k]  # X^n = -1
        out += shifted * b[..., k : k + 1]
    if modulus_bits < 64:
        out &= np.uint64((1 << modulus_bits) - 1)
    return out
