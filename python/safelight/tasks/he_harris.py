"""Harris corner responses of a BFV-encrypted image on ONE server (``--scheme he``).

Encode (client): the grey image in [0, 1] as 8-bit levels I = round(255 x) (exact for a
uint8 grey photo), cut into tiles of HEIGHT x WIDTH slots whose border of ``halo`` pixels
overlaps the neighbouring tiles (zeros outside the image: scikit-image's zero padding),
two tiles per ciphertext (the two rows of the slot matrix), encrypted under a fresh
secret key with batch encoding, once per plaintext modulus. The client also uploads a
relinearisation key and Galois keys for rotations by +-1 and +-WIDTH slots.

Evaluate (server, :mod:`safelight.protocols.he_slots`): Sobel gradients as public stencils
(rotations), times a public 0/1 slot mask (gradients outside the image are zero, as
scikit-image pads the products with zeros: the halo's would leak into the window), the
three gradient products as ciphertext products, the Gaussian window as a
separable stencil with integer weights round(g 2^GAUSS_BITS), then the response
b det - a trace^2 for k = a / b: two more ciphertext products (multiplicative depth 2,
plus the mask's plaintext product, which costs as much noise).
Every value is an exact integer: the response of 8-bit levels reaches about 2^87, so the
circuit runs under two 48-bit plaintext primes and the client joins the residues by the
Chinese remainder theorem (``MODULI`` encryptions of the same image).

Decode (client): decrypt, join, read the tiles' cores back, divide by 255^4 (sum w)^4 b
(w: the integer Gaussian weights), and threshold: the client runs scikit-image's ``corner_peaks`` on the
decrypted response map. The server sees ciphertexts and public parameters only.

Parameters: n = 16384, q = five 60-bit primes, one 60-bit key-switching prime (360 bits,
within the 438 of the 128-bit table for n = 16384), t = two 48-bit primes = 1 mod 2n. The
noise budget left after the circuit is about 30 bits (tests/test_he_harris.py checks
decryption); results come back switched down to two primes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import InputError
from ..he import bfv
from ..he.ntt import ntt_primes
from ..program.program import Program
from ..protocols.he_ops import as_words
from ..protocols.he_slots import slot_params_attrs
from ..runtime.cluster import Cluster
from .he_filter import ciphertext_input
from .kernels import as_grey
from .report import JobReport, TaskResult

RING_DEGREE = 16384
PRIME_BITS = (60, 60, 60, 60, 60)
SPECIAL_BITS = (60,)
PLAIN_BITS = 48
MODULI = 2
WIDTH = 64  # a tile's width in slots; its height fills a slot row
HEIGHT = RING_DEGREE // 2 // WIDTH
ROTATIONS = [1, -1, WIDTH, -WIDTH]  # slot rotations the stencils take (Galois keys, in this order)
GAUSS_BITS = 12
KEEP = 2  # primes returned
LEVELS = 255
SOBEL_DIFF, SOBEL_SMOOTH = [-1, 0, 1], [1, 2, 1]


def he_params() -> list[bfv.Params]:
    """One parameter set per plaintext modulus (same q: one secret key serves all)."""
    return [
        bfv.Params(RING_DEGREE, q_bits=PRIME_BITS, special_bits=SPECIAL_BITS, t=t)
        for t in ntt_primes(PLAIN_BITS, RING_DEGREE, MODULI)
    ]


def gaussian_weights(sigma: float) -> list[int]:
    """scikit-image's 1-D Gaussian (truncate 4) as integers over 2^GAUSS_BITS."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return [int(v) for v in np.round(g / g.sum() * 2**GAUSS_BITS)]


@dataclass
class Tiles:
    """The image cut into overlapping tiles of HEIGHT x WIDTH slots, cores of (HEIGHT - 2
    halo) x (WIDTH - 2 halo) pixels; two tiles per ciphertext."""

    height: int
    width: int
    halo: int

    @property
    def core(self) -> tuple[int, int]:
        return HEIGHT - 2 * self.halo, WIDTH - 2 * self.halo

    @property
    def grid(self) -> tuple[int, int]:
        ch, cw = self.core
        return -(-self.height // ch), -(-self.width // cw)

    @property
    def ciphertexts(self) -> int:
        rows, cols = self.grid
        return -(-rows * cols // 2)

    def pack(self, levels: np.ndarray) -> np.ndarray:
        """(ciphertexts, n) slot values: every tile's pixels, zeros outside the image."""
        h, ch, cw = self.halo, *self.core
        padded = np.zeros((self.grid[0] * ch + 2 * h, self.grid[1] * cw + 2 * h), dtype=np.int64)
        padded[h : h + self.height, h : h + self.width] = levels
        tiles = [
            padded[i * ch : i * ch + HEIGHT, j * cw : j * cw + WIDTH].reshape(-1)
            for i in range(self.grid[0])
            for j in range(self.grid[1])
        ]
        tiles += [np.zeros(HEIGHT * WIDTH, dtype=np.int64)] * (2 * self.ciphertexts - len(tiles))
        return np.stack(tiles).reshape(self.ciphertexts, RING_DEGREE)

    def inside(self) -> np.ndarray:
        """(ciphertexts, n) slot values: 1 where a slot holds one of the image's pixels."""
        return self.pack(np.ones((self.height, self.width), dtype=np.int64))

    def unpack(self, slots: np.ndarray) -> np.ndarray:
        """The image from (ciphertexts, n) slot values: each tile's core."""
        h, ch, cw = self.halo, *self.core
        tiles = slots.reshape(-1, HEIGHT, WIDTH)
        out = np.empty((self.grid[0] * ch, self.grid[1] * cw), dtype=slots.dtype)
        for index in range(self.grid[0] * self.grid[1]):
            i, j = divmod(index, self.grid[1])
            out[i * ch : (i + 1) * ch, j * cw : (j + 1) * cw] = tiles[index, h : h + ch, h : h + cw]
        return out[: self.height, : self.width]


def _ratio(k: float) -> Fraction:
    ratio = Fraction(k).limit_denominator(64)
    if not 0 < ratio < 1 or abs(float(ratio) - k) > 1e-9:
        raise InputError(f"the HE Harris takes k = a / b with b <= 64 in (0, 1), got {k!r}")
    return ratio


def tiles_for(height: int, width: int, sigma: float) -> Tiles:
    if not 0.3 <= sigma <= 3.0:
        raise InputError(f"the HE Harris takes sigma in 0.3..3, got {sigma!r}")
    halo = 1 + int(4.0 * sigma + 0.5)
    if height < 3 or width < 3:
        raise InputError(f"the image ({height}x{width}) is too small for Harris corners")
    return Tiles(height, width, halo)


def build_program(tiles: Tiles, params: list[bfv.Params], nbytes: list[int], sigma: float, k: float) -> Program:
    """One server: per modulus m, input ``image{m}`` (serialised ciphertexts), shared inputs
    ``relin`` and ``galois``; output ``response{m}`` (ciphertexts of b det - a trace^2)."""
    ratio = _ratio(k)
    gauss = gaussian_weights(sigma)
    key_shape = (len(params[0].q), 2, len(params[0].q) + len(params[0].special), params[0].n)

    p = Program(parties=1)
    relin = p.input("relin", key_shape)
    galois = p.input("galois", (len(ROTATIONS), *key_shape))
    inside = p.input("inside", (tiles.ciphertexts, params[0].n))  # public: 1 on the image's pixels
    for m, (he, size) in enumerate(zip(params, nbytes)):
        base = {"params": slot_params_attrs(he)}

        def stencil(x, step, weights, base=base):
            return p.apply("he_stencil", [x, galois], {**base, "step": step, "weights": weights, "steps": ROTATIONS})

        def mul(a, b, base=base):
            return p.apply("he_mul", [a, b, relin], base)

        x = p.apply(
            "he_load", [p.input(f"image{m}", ((size + 7) // 8,))], {**base, "count": tiles.ciphertexts, "nbytes": size}
        )
        # gradients are zero outside the image (scikit-image's zero padding of the products)
        g_row = p.apply("he_mul_slots", [stencil(stencil(x, 1, SOBEL_SMOOTH), WIDTH, SOBEL_DIFF), inside], base)
        g_col = p.apply("he_mul_slots", [stencil(stencil(x, 1, SOBEL_DIFF), WIDTH, SOBEL_SMOOTH), inside], base)
        rr, cc, rc = (
            stencil(stencil(mul(a, b), 1, gauss), WIDTH, gauss)
            for a, b in ((g_row, g_row), (g_col, g_col), (g_row, g_col))
        )
        trace = p.apply("he_combine", [rr, cc], {**base, "coeffs": [1, 1]})
        terms = [mul(rr, cc), mul(rc, rc), mul(trace, trace)]
        b, a = ratio.denominator, ratio.numerator
        response = p.apply("he_combine", terms, {**base, "coeffs": [b, -b, -a]})
        p.output(p.apply("he_mod_switch", [response], {**base, "keep": KEEP}), f"response{m}")
    return p


def _join(residues: list[np.ndarray], moduli: list[int]) -> np.ndarray:
    """Signed integers (as float64) from their residues mod each t (Chinese remainder)."""
    total = 1
    for t in moduli:
        total *= t
    value = np.zeros(residues[0].shape, dtype=object)
    for r, t in zip(residues, moduli):
        rest = total // t
        value = value + r.astype(object) * (rest * pow(rest, -1, t))
    value = value % total
    value = np.where(value > total // 2, value - total, value)
    return value.astype(np.float64)


def response(image: Any, *, cluster: Cluster | None = None, k: float = 0.05, sigma: float = 1.0) -> TaskResult:
    """The Harris response map (``corner_harris(method="k")``'s) of the 8-bit grey image,
    computed by one server on ciphertexts. TaskResult outputs: the map (float64); extras
    ``seconds`` (keys, encrypt, server, decrypt)."""
    grey = as_grey(image)
    levels = np.round(grey * LEVELS).astype(np.int64)
    tiles = tiles_for(*grey.shape, sigma)
    params = he_params()
    contexts = [bfv.Context(he) for he in params]
    t0 = time.perf_counter()
    sk = contexts[0].keygen()
    relin = contexts[0].relin_key(sk)
    galois = contexts[0].galois_keys(sk, steps=ROTATIONS, columns=False)
    keys_s = time.perf_counter() - t0
    slots = tiles.pack(levels)
    t0 = time.perf_counter()
    uploads = [c.encrypt_batch(slots % c.t, bfv.SecretKey(c, sk._data)).to_bytes() for c in contexts]
    encrypt_s = time.perf_counter() - t0
    program = build_program(tiles, params, [len(u) for u in uploads], sigma, k)
    inputs = {
        "relin": ciphertext_input(relin._data),
        "inside": ciphertext_input(tiles.inside().astype(np.uint64)),
        "galois": ciphertext_input(np.stack([galois._keys[contexts[0]._row_element(s)] for s in ROTATIONS])),
        **{f"image{m}": ciphertext_input(as_words(u)) for m, u in enumerate(uploads)},
    }
    t0 = time.perf_counter()
    if cluster is None:
        with Cluster.local(1) as local:
            job = local.run(program, inputs)
    else:
        job = cluster.run(program, inputs)
    server_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    residues, budget = [], []
    for m, c in enumerate(contexts):
        rows = np.asarray(job.outputs[f"response{m}"].shares[0])
        batch = bfv.CiphertextBatch(c, np.ascontiguousarray(rows), c.num_q - KEEP, False)
        key = bfv.SecretKey(c, sk._data)
        residues.append(c.decrypt_batch(batch, key).reshape(tiles.ciphertexts, RING_DEGREE))
        budget.append(int(np.min(c.invariant_noise_budget(batch, key))))
    joined = tiles.unpack(_join(residues, [c.t for c in contexts]))
    decrypt_s = time.perf_counter() - t0
    # the window's integer weights sum to (sum w)^2, not exactly 2^(2 GAUSS_BITS): divide by that
    scale = float(LEVELS) ** 4 * float(sum(gaussian_weights(sigma))) ** 4 * _ratio(k).denominator
    report = JobReport.from_job(job)
    seconds = {"keys": keys_s, "encrypt": encrypt_s, "server": server_s, "decrypt": decrypt_s}
    extras = {"seconds": seconds, "upload_bytes": sum(len(u) for u in uploads), "noise_budget_bits": min(budget)}
    return TaskResult(joined / scale, report, extras)


def harris(
    image: Any,
    *,
    cluster: Cluster | None = None,
    k: float = 0.05,
    sigma: float = 1.0,
    min_distance: int = 1,
    threshold_rel: float = 0.01,
) -> TaskResult:
    """Keypoints of the encrypted image's Harris response, thresholded by the client after
    decryption (``corner_peaks``). Outputs: keypoints (n, 2); extras ``responses`` and the
    whole ``response_map``."""
    from skimage.feature import corner_peaks

    result = response(image, cluster=cluster, k=k, sigma=sigma)
    peaks = corner_peaks(result.outputs, min_distance=min_distance, threshold_rel=threshold_rel)
    values = result.outputs[tuple(peaks.T)] if len(peaks) else np.empty(0)
    return TaskResult(peaks, result.report, {**result.extras, "responses": values, "response_map": result.outputs})
