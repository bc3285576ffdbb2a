"""Private linear filtering on ONE server with homomorphic encryption (``--scheme he``).

Encode (client): the image's grey levels (0..255) are padded as the filter's padding
mode says, cut into tiles and packed as polynomial coefficients
(:mod:`safelight.he.packing`), then encrypted under a fresh BFV secret key that never
leaves the client (plaintext modulus 2^32, two 60-bit primes, ring degree n = 8192, or
16384 / 32768 when that packs a large kernel into fewer coefficients in all: see
:func:`ring_degree`).
Evaluate (server): one polynomial product per tile with the packed kernel (the
convolution of the whole tile at once, no rotations), then a modulus switch to one
prime so the download is smaller. Decode (client): decrypt, read the outputs out of
the coefficients, undo the kernel's fixed-point scale.

By default the kernel is public to the server (it knows which filter it applies); with
``encrypted_kernel`` the client encrypts the packed kernel as well and the server takes
ciphertext-ciphertext products (three 60-bit primes for the noise room; the size-3
results are decrypted with ``s`` and ``s^2``, so no evaluation key is sent). The image is
hidden by the encryption alone, with no second server and no dealer.

Kernel size and precision. A tile of ``ht x wt`` padded pixels must fit one polynomial
(``ht wt <= n``) and yields ``(ht-kh+1) (wt-kw+1)`` outputs, so large kernels waste most
coefficients at n = 8192 (a 31x31 kernel: 60x60 outputs of a 90x90 tile, 44 %; a 161x161
one, gaussian:20, does not fit at all); :func:`ring_degree` takes the degree with the
fewest coefficients over all tiles (for a 256x256 image: 8192 up to 17x17, 16384 at
31x31, 32768 beyond; gaussian:20 then uploads 82 MB and runs in about 1.5 s). The
kernel is quantised to ``f`` fractional bits, the largest ``f <= 24`` with
``255 * sum|round(w 2^f)| < 2^31`` (every output, a signed sum, must stay below ``t/2``):
22 bits for a normalised smoothing kernel, 19 for Sobel; at least 16, or the kernel is
refused. The result differs from plaintext filtering by at most ``255 kh kw 2^-(f+1)``
grey levels (0.47 for 31x31 at f = 22; the rounding errors of real kernels mostly cancel).
The noise growth of a plaintext product is ``sum|w 2^f| < 2^23``, far inside the 2^88 of
room that q / t leaves.

16-bit and float images (65536 levels) go as two 8-bit planes per channel, the high bytes
and the low bytes (twice the ciphertexts): the filter is linear, so 256 * high + low is the
filtered image, and each plane keeps the bounds above (one 16-bit level is 1/256 of the
high plane's grey level, whose error is at most 0.47 of it, and well below for usual kernels).
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import InputError
from ..he import bfv
from ..he.packing import ConvPacking
from ..program.ops import PADDING_MODES
from ..program.program import Program
from ..protocols.he_ops import as_words, params_attrs
from ..runtime.client import ProgressCallback
from ..runtime.cluster import Cluster
from ..sharing import Encoded, SharePayload
from .deprecation import accepts_old_call, renamed_results
from .kernels import correlation_kernel, image_values, kernel_from, to_image
from .report import JobReport, TaskResult

RING_DEGREE = 8192  # the default; larger kernels may take a larger one (ring_degree)
RING_DEGREES = (8192, 16384, 32768)
PRIME_BITS = (60, 60)
PLAIN_BITS = 32
KERNEL_FRAC_BITS = 16  # the least precision a kernel is quantised to (see _fixed_kernel)
MAX_KERNEL_FRAC_BITS = 24
MAX_KERNEL = 161  # kh, kw: gaussian:20, the largest spec kernel; 181 x 181 pixels fit n = 32768


ENCRYPTED_KERNEL_PRIME_BITS = (60, 60, 60)  # a ciphertext product needs more noise room
ENCRYPTED_KERNEL_KEEP = 2  # primes returned: size-3 results need more room than size 2


def params(encrypted_kernel: bool = False, n: int = RING_DEGREE) -> bfv.Params:
    bits = ENCRYPTED_KERNEL_PRIME_BITS if encrypted_kernel else PRIME_BITS
    return bfv.Params(n, q_bits=bits, t=1 << PLAIN_BITS)


def ring_degree(height: int, width: int, kh: int, kw: int) -> tuple[int, ConvPacking]:
    """The ring degree (and its packing) for a padded ``height x width`` plane and a
    ``kh x kw`` kernel: the fewest coefficients in all (tiles x n), ties to the smaller n."""
    best = None
    for n in RING_DEGREES:
        try:
            packing = ConvPacking.choose(1, height, width, 1, kh, kw, n)
        except InputError:
            continue
        if best is None or packing.tiles * n < best[1].tiles * best[0]:
            best = (n, packing)
    if best is None:
        raise InputError(
            f"a {kh}x{kw} kernel does not fit the HE filter's largest ring (n = {RING_DEGREES[-1]}); "
            "use --scheme shares (two servers), which takes any kernel size"
        )
    return best


def _planes(values: np.ndarray) -> np.ndarray:
    return values[None] if values.ndim == 2 else np.moveaxis(values, 2, 0)


def _fixed_kernel(kernel: np.ndarray) -> tuple[np.ndarray, int]:
    """The correlation kernel in fixed point (int64) and its fractional bits: the most
    precision for which every output fits the plaintext modulus (see the module docstring)."""
    k = correlation_kernel(kernel)
    if max(k.shape) > MAX_KERNEL:
        raise InputError(
            f"the HE filter takes kernels up to {MAX_KERNEL}x{MAX_KERNEL}, got {k.shape}; "
            "use --scheme shares (two servers) for larger ones"
        )
    for frac_bits in range(MAX_KERNEL_FRAC_BITS, KERNEL_FRAC_BITS - 1, -1):
        fixed = np.rint(k * (1 << frac_bits)).astype(np.int64)
        if np.abs(fixed).sum() * 255 < 1 << (PLAIN_BITS - 1):
            return fixed, frac_bits
    raise InputError(
        "the kernel's weights are too large for the plaintext modulus (sum of |w| * 255 "
        f"must stay below 2^{PLAIN_BITS - 1 - KERNEL_FRAC_BITS})"
    )


def build_program(
    packing: ConvPacking,
    cts: bfv.CiphertextBatch,
    kernel: np.ndarray,
    he: bfv.Params,
    encrypted_kernel: bfv.CiphertextBatch | None = None,
) -> Program:
    """One server, one op: input ``image`` (serialised ciphertexts) -> ``he_conv2d`` (public
    kernel) or ``he_conv2d_encrypted`` (input ``kernel``, one ciphertext) -> ``filtered``."""
    prog = Program(parties=1)
    x = prog.input("image", ((cts.nbytes + 7) // 8,))
    attrs = {"params": params_attrs(he), "count": cts.count, "nbytes": cts.nbytes}
    if encrypted_kernel is not None:
        k = prog.input("kernel", ((encrypted_kernel.nbytes + 7) // 8,))
        attrs.update(kernel_nbytes=encrypted_kernel.nbytes, keep=ENCRYPTED_KERNEL_KEEP)
        prog.output(prog.apply("he_conv2d_encrypted", [x, k], attrs), "filtered")
        return prog
    poly = kernel_polynomial(packing, kernel)
    index = np.flatnonzero(poly)
    attrs.update(kernel_index=index.tolist(), kernel_value=[int(v) for v in poly[index]], keep=1)
    prog.output(prog.apply("he_conv2d", [x], attrs), "filtered")
    return prog


def kernel_polynomial(packing: ConvPacking, kernel: np.ndarray) -> np.ndarray:
    """The packed kernel (fixed point, int64 (kh, kw)) as one polynomial mod 2^64."""
    return packing.pack_kernel(kernel.astype(np.int64).view(np.uint64)[None, None])[0, 0]


def ciphertext_input(array: np.ndarray, frac_bits: int = 16) -> Encoded:
    """A ciphertext tensor as the single server's input (it is not secret-shared: the
    encryption protects it)."""
    array = np.ascontiguousarray(array, dtype=np.uint64)
    return Encoded([SharePayload(0, array.shape, share=array)], array.shape, frac_bits, "ciphertext")


@accepts_old_call(
    "safelight.tasks.he_filter",
    ("kernel", "cluster", "padding", "encrypted_kernel", "on_progress"),
    inputs_name="image",
)
def run(
    inputs: np.ndarray,
    *,
    cluster: Cluster | None = None,
    kernel: str | np.ndarray,
    padding: str = "reflect",
    encrypted_kernel: bool = False,
    on_progress: ProgressCallback | None = None,
) -> TaskResult:
    """Filter an image on one server that sees only ciphertexts: encrypt, evaluate, decrypt.

    Parameters
    ----------
    inputs : uint8 or uint16 H x W [x C], or float array in [0, 1]
        The image (uint8 runs on 256 grey levels; uint16 and float on 65536, as two 8-bit
        planes: twice the ciphertexts).
    cluster : Cluster, optional
        A one-server cluster; by default one is started on loopback for this call.
    kernel : kernel spec string or 2-D float array
        Up to 161 x 161, the size of gaussian:20.
    padding : "reflect" (default), "mirror", "nearest" or "zero"
    encrypted_kernel : bool
        Encrypt the kernel too (the server learns neither the image nor the filter): one
        ciphertext-ciphertext product per tile instead of a plaintext product.
    on_progress : callable(party, step, of, op), optional

    Returns
    -------
    TaskResult
        ``outputs``: the filtered image (uint16 for a uint16 image, else uint8), ``report``
        (randomness ``"client key"``; ``client_seconds``: encrypt, decrypt), extras:
        ``values`` (float64, the image's shape, image scaled to [0, 1]), ``seconds`` (encrypt,
        server, decrypt), ``upload_bytes`` / ``download_bytes`` (the ciphertexts each way).
    """
    if padding not in PADDING_MODES:
        raise InputError(f"unknown padding {padding!r}; choose one of {sorted(PADDING_MODES)}")
    values, rendering = image_values(inputs)
    if values.ndim not in (2, 3):
        raise InputError(f"an image must be H x W or H x W x C, got shape {values.shape}")
    if values.min() < 0.0 or values.max() > 1.0:
        raise InputError(
            f"the HE filter takes images in [0, 1], got values from {values.min():g} to "
            f"{values.max():g}; rescale the float image first"
        )
    deep = np.asarray(inputs).dtype != np.uint8  # uint16 and float: 65536 levels, as two 8-bit planes
    k = kernel_from(kernel)
    fixed, frac_bits = _fixed_kernel(k)
    kh, kw = fixed.shape
    grey = np.rint(_planes(values) * (65535.0 if deep else 255.0)).astype(np.uint64)  # (C, H, W)
    if deep:  # (2C, H, W): the high bytes of every channel, then the low bytes
        grey = np.concatenate([grey >> np.uint64(8), grey & np.uint64(255)])
    pads = ((0, 0), (kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2))
    padded = np.pad(grey, pads, mode=PADDING_MODES[padding])
    channels, hp, wp = padded.shape
    n, packing = ring_degree(hp, wp, kh, kw)

    he = params(encrypted_kernel, n)
    context = bfv.Context(he)
    t0 = time.perf_counter()
    sk = context.keygen()
    polys = np.concatenate([packing.pack_input(plane[None])[:, 0] for plane in padded])
    cts = context.encrypt_coeffs(polys, sk, seeded=True, ntt=True)
    kernel_ct = (
        context.encrypt_coeffs(kernel_polynomial(packing, fixed)[None], sk, seeded=True, ntt=True)
        if encrypted_kernel
        else None
    )
    encrypt_s = time.perf_counter() - t0

    program = build_program(packing, cts, fixed, he, kernel_ct)
    uploads = {"image": ciphertext_input(as_words(cts.to_bytes()), program.frac_bits)}
    if kernel_ct is not None:
        uploads["kernel"] = ciphertext_input(as_words(kernel_ct.to_bytes()), program.frac_bits)
    t0 = time.perf_counter()
    if cluster is None:
        with Cluster.local(1) as local:
            job = local.run(program, uploads, on_progress)
    else:
        if cluster.parties != 1:
            raise InputError(f"the HE filter runs on one server; this cluster has {cluster.parties}")
        job = cluster.run(program, uploads, on_progress)
    server_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    returned = job.outputs["filtered"].shares[0]
    plain = context.decrypt_coeffs(bfv.CiphertextBatch(context, returned, context.num_q - returned.shape[2], False), sk)
    decrypt_s = time.perf_counter() - t0
    t = np.uint64(1 << PLAIN_BITS)
    centred = plain.astype(np.int64) - np.where(plain >= t // np.uint64(2), int(t), 0).astype(np.int64)
    tiles = packing.tiles
    out = np.stack(
        [
            packing.unpack_output(centred[c * tiles : (c + 1) * tiles, None].astype(np.uint64))[0]
            for c in range(channels)
        ]
    )
    out = out.astype(np.int64)
    if deep:
        out = out[: channels // 2] * 256 + out[channels // 2 :]
    result = out.astype(np.float64) / ((65535.0 if deep else 255.0) * (1 << frac_bits))
    result = result[0] if values.ndim == 2 else np.moveaxis(result, 0, 2)
    seconds = {"encrypt": encrypt_s, "server": server_s, "decrypt": decrypt_s}
    report = JobReport.from_job(job, "client key", {"encrypt": encrypt_s, "decrypt": decrypt_s})
    return TaskResult(
        to_image(result, kernel, rendering),
        report,
        {
            "values": result,
            "seconds": seconds,
            "upload_bytes": int(cts.nbytes + (kernel_ct.nbytes if kernel_ct is not None else 0)),
            "download_bytes": int(returned.nbytes),
        },
    )


__getattr__ = renamed_results("safelight.tasks.he_filter", {"HEFilterResult": TaskResult})
