"""Single-server encrypted filtering with CKKS from OpenFHE (the optional ``openfhe`` wheels).

The same task as :mod:`safelight.tasks.filter` (a 2-D convolution with a public
kernel), but on *one* server holding only CKKS ciphertexts under the client's key
instead of two non-colluding servers holding secret shares:

client                                    server                               client
pad, tile, encrypt ──ciphertexts──► rotations, scalar products, adds ──► decrypt, untile
 (secret key stays)    + public context and rotation keys        (depth 1)

* **Packing.** The client pads the image (same padding modes as the shares task),
  stacks the colour planes on top of each other and cuts the tall padded array into
  bands of whole rows, each band filling every one of the ``N/2`` CKKS slots of one
  ciphertext in row-major order with a public row stride ``s``. Consecutive bands
  overlap by ``kh - 1`` rows so that each output row finds all of its inputs in one
  ciphertext; an image wider than a ciphertext is also cut into column tiles.
* **Server.** With the odd-sized correlation kernel ``K`` (``kh x kw``),
  ``out[p] = sum_ab K[a, b] x[p + a s + b]``: hoisted rotations by ``b`` (one digit
  decomposition shared by all of them), ``S_a = sum_b K[a, b] rot_b(x)`` with plaintext
  scalar products, then ``out = sum_a rot(S_a, a s)`` and one rescale. Only
  ``(kw - 1) + (kh - 1)`` rotation keys are needed and the multiplicative depth is 1.
  The second rotations act on ciphertexts that are not rescaled yet, so their
  key-switching noise is negligible. :func:`evaluate` is everything the server runs; it
  takes bytes (the public crypto context, the rotation keys, the ciphertexts) and the
  public kernel, and returns bytes.
* **Parameters.** CKKS at 128-bit classical security (``HEStd_128_classic``, OpenFHE's
  check against the HE standard), hybrid key switching, ``FIXEDMANUAL`` rescaling,
  depth 1: a 55-bit first modulus and a 40-bit scaling modulus (95-bit ``Q``). The
  smallest ring dimension OpenFHE accepts for them is 8192 (4096 slots); a larger one
  is taken when it needs fewer ciphertext bytes in all (fewer halo rows repeated
  between bands: 16384 for a 256 x 256 image and a 3 x 3 kernel). Results are within
  about 1e-3 grey levels of plaintext filtering.

OpenFHE's PyPI wheels carry a compiled extension for one CPython version (openfhe
1.6.1: CPython 3.10), so this module imports ``openfhe`` lazily; :func:`available` says
whether it imports, and :func:`run` raises :class:`~safelight.errors.UnsupportedError`
saying how to install it when it does not.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError, UnsupportedError
from ..program.ops import PADDING_MODES
from ..runtime.cluster import Cluster
from ..sharing import as_plain_values
from .deprecation import renamed_results
from .kernels import correlation_kernel, kernel_from, to_image
from .report import JobReport, PartyReport, TaskResult

__all__ = [
    "DEFAULT_FIRST_MOD_BITS",
    "DEFAULT_SCALING_BITS",
    "OPENFHE_WHEEL_PYTHONS",
    "ServerRequest",
    "Tiling",
    "available",
    "evaluate",
    "filter_image",
    "job_report",
    "require_openfhe",
    "run",
]

#: CPython versions the PyPI ``openfhe`` wheels (1.6.1) are built for.
OPENFHE_WHEEL_PYTHONS = ("3.10",)
DEFAULT_SCALING_BITS = 40  # scale of the encoded values: ~2^-26 relative error after one product
DEFAULT_FIRST_MOD_BITS = 55  # q0 / scale = 2^15: room for outputs up to |2^13| with margin
SECURITY_LEVEL = "HEStd_128_classic"
_RING_DIMS = tuple(1 << k for k in range(13, 18))
_AUTO_MAX_RING_DIM = 1 << 16

_lock = threading.Lock()  # OpenFHE keeps rotation keys in a process-wide cache


# --------------------------------------------------------------------------- availability


def _wheel_pythons() -> list[str]:
    """CPython versions whose extension the installed ``openfhe`` package carries (empty if none)."""
    try:
        spec = importlib.util.find_spec("openfhe")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    found = set()
    for folder in spec.submodule_search_locations:
        for path in glob.glob(os.path.join(folder, "openfhe.cpython-*")):
            tag = os.path.basename(path).split(".")[1].split("-")[1]  # cpython-310-x86_64... -> 310
            if tag.isdigit() and len(tag) >= 2:
                found.add(f"{tag[0]}.{tag[1:]}")
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


def _import_openfhe() -> Any:
    return importlib.import_module("openfhe")


def available() -> bool:
    """Whether the ``openfhe`` package imports on this interpreter."""
    try:
        _import_openfhe()
    except (ImportError, OSError):
        return False
    return True


def require_openfhe() -> Any:
    """The ``openfhe`` module, or :class:`UnsupportedError` saying why not and how to install it."""
    try:
        return _import_openfhe()
    except (ImportError, OSError) as exc:
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        built = _wheel_pythons()
        if built:
            what = (
                f"the installed openfhe package carries an extension for CPython {', '.join(built)} only, "
                f"and this is Python {here}"
            )
        else:
            what = (
                f"the openfhe package is not installed for this Python {here} "
                f"(its PyPI wheels are built for CPython {', '.join(OPENFHE_WHEEL_PYTHONS)})"
            )
        raise UnsupportedError(
            f"the OpenFHE backend cannot import openfhe ({type(exc).__name__}: {exc}): {what}. "
            f'Install it with `pip install "safelight[openfhe]"` under Python '
            f"{' or '.join(OPENFHE_WHEEL_PYTHONS)}, or use the two-server filter (safelight.tasks.filter)."
        ) from exc


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Tiling:
    """How a padded image is cut into ciphertexts (public: only sizes, no pixel values).

    The padded planes (``planes`` of them, each ``padded_height x padded_width``) are
    stacked into one tall array. Its valid correlation with a ``kh x kw`` kernel is cut
    into tiles of ``tile_rows x tile_cols`` outputs; a tile's inputs, a
    ``(tile_rows + kh - 1) x (tile_cols + kw - 1)`` block, fill one ciphertext in
    row-major order with row stride :attr:`stride`, zeros after.
    """

    planes: int
    height: int  # output (= image) height and width
    width: int
    kh: int
    kw: int
    slots: int
    tile_rows: int
    tile_cols: int

    @classmethod
    def plan(cls, planes: int, height: int, width: int, kh: int, kw: int, slots: int) -> Tiling:
        tall_rows = planes * (height + kh - 1) - (kh - 1)  # rows of the tall valid correlation
        max_cols = slots // kh - (kw - 1)  # at least one output row must fit
        if max_cols < 1:
            raise InputError(
                f"a {kh}x{kw} kernel does not fit in {slots} CKKS slots; use a smaller kernel or a larger ring_dim"
            )
        cols = min(width, max_cols)
        if cols < width:  # balance the column tiles
            cols = math.ceil(width / math.ceil(width / cols))
        rows = min(tall_rows, slots // (cols + kw - 1) - (kh - 1))
        rows = math.ceil(tall_rows / math.ceil(tall_rows / rows))  # balance the row bands
        return cls(planes, height, width, kh, kw, slots, rows, cols)

    @property
    def stride(self) -> int:
        """Slots between vertically adjacent pixels inside a ciphertext."""
        return self.tile_cols + self.kw - 1

    @property
    def tall_rows(self) -> int:
        return self.planes * (self.height + self.kh - 1) - (self.kh - 1)

    @property
    def origins(self) -> list[tuple[int, int]]:
        """Top-left output (row, column) of each tile in the tall valid correlation, in ciphertext order."""
        return [(r, c) for r in range(0, self.tall_rows, self.tile_rows) for c in range(0, self.width, self.tile_cols)]

    def pack(self, tall: np.ndarray) -> np.ndarray:
        """Tall padded array -> (tiles, slots) slot vectors."""
        out = np.zeros((len(self.origins), self.slots))
        in_rows, in_cols = self.tile_rows + self.kh - 1, self.stride
        for t, (r, c) in enumerate(self.origins):
            block = tall[r : r + in_rows, c : c + in_cols]
            grid = np.zeros((in_rows, in_cols))
            grid[: block.shape[0], : block.shape[1]] = block
            out[t, : grid.size] = grid.ravel()
        return out

    def unpack(self, slots: np.ndarray) -> np.ndarray:
        """(tiles, slots) decrypted outputs -> (planes, height, width) filtered planes."""
        tall = np.zeros((self.tall_rows + self.tile_rows, self.width + self.tile_cols))
        rows = self.tile_rows * self.stride
        for t, (r, c) in enumerate(self.origins):
            grid = slots[t, :rows].reshape(self.tile_rows, self.stride)
            tall[r : r + self.tile_rows, c : c + self.tile_cols] = grid[:, : self.tile_cols]
        step = self.height + self.kh - 1
        return np.stack([tall[p * step : p * step + self.height, : self.width] for p in range(self.planes)])


def rotation_steps(kernel: np.ndarray, stride: int) -> tuple[list[int], list[int]]:
    """Left rotations the server needs for an odd correlation kernel: (column steps b, row steps a*stride)."""
    cols = [b for b in range(1, kernel.shape[1]) if np.any(kernel[:, b])]
    rows = [a * stride for a in range(1, kernel.shape[0]) if np.any(kernel[a])]
    return cols, rows


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class ServerRequest:
    """Everything the server receives: public material and ciphertexts, nothing secret.

    ``context`` is the serialised CKKS crypto context (parameters only), ``rotation_keys``
    the serialised rotation (automorphism) keys, ``ciphertexts`` one serialised
    ciphertext per tile, ``kernel`` the public odd-sized correlation kernel (float64
    ``kh x kw``) and ``stride`` the public row stride of the packing.
    """

    context: bytes
    rotation_keys: bytes
    ciphertexts: list[bytes]
    kernel: np.ndarray
    stride: int


def evaluate(request: ServerRequest) -> list[bytes]:
    """The server's whole job: valid correlation of every ciphertext with the public kernel.

    Per ciphertext ``x``: hoisted rotations ``rot_b(x)`` for the kernel's columns,
    ``S_a = sum_b K[a, b] rot_b(x)`` (plaintext scalar products), ``sum_a rot(S_a, a s)``,
    one rescale. Returns the serialised result ciphertexts (at the last level: one RNS limb).
    """
    ofhe = require_openfhe()
    binary = ofhe.BINARY
    cc = ofhe.DeserializeCryptoContextString(request.context, binary)
    keys = ofhe.DeserializeEvalKeyMapString(request.rotation_keys, binary)
    kernel = np.asarray(request.kernel, dtype=np.float64)
    col_steps, _ = rotation_steps(kernel, request.stride)
    m = cc.GetCyclotomicOrder()
    out, tags = [], set()
    try:
        for blob in request.ciphertexts:
            ct = ofhe.DeserializeCiphertextString(blob, binary)
            tag = ct.GetKeyTag()
            if tag not in tags:
                cc.InsertEvalAutomorphismKey(keys, tag)
                tags.add(tag)
            shifted = {0: ct}
            if col_steps:
                digits = cc.EvalFastRotationPrecompute(ct)
                for b in col_steps:
                    shifted[b] = cc.EvalFastRotation(ct, b, m, digits)
            total = None
            for a in range(kernel.shape[0]):
                row = None
                for b, w in enumerate(kernel[a]):
                    if w == 0.0:
                        continue
                    term = cc.EvalMult(shifted[b], float(w))
                    row = term if row is None else cc.EvalAdd(row, term)
                if row is None:
                    continue
                if a:
                    row = cc.EvalRotate(row, a * request.stride)
                total = row if total is None else cc.EvalAdd(total, row)
            if total is None:  # an all-zero kernel
                total = cc.EvalMult(ct, 0.0)
            out.append(ofhe.Serialize(cc.Rescale(total), binary))
    finally:
        for tag in tags:  # drop this job's keys from OpenFHE's process-wide cache
            cc.InsertEvalAutomorphismKey(ofhe.EvalKeyMap(), tag)
    return out


# --------------------------------------------------------------------------- client


def job_report(
    seconds: Mapping[str, float], ciphertext_bytes: Mapping[str, int], key_bytes: Mapping[str, int]
) -> JobReport:
    """The :class:`JobReport` of one in-process OpenFHE job (no :class:`~safelight.runtime.client.JobResult`).

    The server received the ciphertexts, the crypto context and the rotation keys and
    returned the result ciphertexts: one server, one step (``ckks_conv2d``), no round with
    another server, no correlated randomness (``"client key"``). Its time is
    ``seconds["evaluate"]``; the client's ``keygen``, ``encrypt`` and ``decrypt`` go to
    ``client_seconds``.
    """
    up = int(ciphertext_bytes["upload"] + key_bytes["rotation_keys"] + key_bytes["context"])
    down = int(ciphertext_bytes["download"])
    server = float(seconds["evaluate"])
    return JobReport(
        wall_seconds=server,
        online_seconds=server,
        offline_seconds=0.0,
        parties=(PartyReport(0, server, server, 0.0, down, up, 0),),
        upload_bytes=up,
        download_bytes=down,
        rounds=0,
        randomness="client key",
        steps=(
            {"step": 0, "op": "ckks_conv2d", "seconds": server, "offline_seconds": 0.0, "rounds": 0, "bytes_sent": [0]},
        ),
        ops={"ckks_conv2d": {"calls": 1, "seconds": server, "rounds": 0, "bytes_sent": [0], "bytes_received": [0]}},
        client_seconds={step: float(seconds[step]) for step in ("keygen", "encrypt", "decrypt")},
    )


def _context(ofhe: Any, scaling_bits: int, first_mod_bits: int, ring_dim: int | None) -> Any:
    params = ofhe.CCParamsCKKSRNS()
    params.SetMultiplicativeDepth(1)
    params.SetScalingModSize(scaling_bits)
    params.SetFirstModSize(first_mod_bits)
    params.SetScalingTechnique(ofhe.ScalingTechnique.FIXEDMANUAL)
    params.SetKeySwitchTechnique(ofhe.KeySwitchTechnique.HYBRID)
    params.SetSecurityLevel(getattr(ofhe.SecurityLevel, SECURITY_LEVEL))
    if ring_dim:
        params.SetRingDim(ring_dim)
    try:
        cc = ofhe.GenCryptoContext(params)
    except RuntimeError as exc:
        raise InputError(
            f"OpenFHE refused the CKKS parameters (ring_dim={ring_dim}, scaling_bits={scaling_bits}, "
            f"first_mod_bits={first_mod_bits}): {exc}; leave ring_dim=None to get the smallest "
            "secure one"
        ) from None
    for feature in (ofhe.PKESchemeFeature.PKE, ofhe.PKESchemeFeature.KEYSWITCH, ofhe.PKESchemeFeature.LEVELEDSHE):
        cc.Enable(feature)
    return cc


def _plan(
    ofhe: Any,
    shape: tuple[int, int, int],
    kh: int,
    kw: int,
    ring_dim: int | None,
    scaling_bits: int,
    first_mod_bits: int,
) -> tuple[Any, Tiling, int]:
    """Crypto context and tiling: the given ring dimension, or the secure one with the fewest ciphertext bytes.

    OpenFHE gives the smallest ring dimension that is 128-bit secure for the moduli. A
    larger one only costs more per ciphertext, but wastes fewer slots on the ``kh - 1``
    halo rows repeated between bands; the choice minimises (ciphertexts x ring dimension),
    which is proportional to the bytes either way and to the server's work, ties going to
    the smaller dimension. Returns (context, tiling, smallest secure ring dimension).
    """
    cc = _context(ofhe, scaling_bits, first_mod_bits, None)
    smallest = cc.GetRingDimension()
    if ring_dim is not None:
        if ring_dim != smallest:
            cc = _context(ofhe, scaling_bits, first_mod_bits, ring_dim)
        return cc, Tiling.plan(*shape, kh, kw, ring_dim // 2), smallest
    costs = []
    for n in (d for d in _RING_DIMS if smallest <= d <= _AUTO_MAX_RING_DIM):
        try:
            tiling = Tiling.plan(*shape, kh, kw, n // 2)
        except InputError:
            continue
        costs.append((len(tiling.origins) * n, n, tiling))
    if not costs:  # the kernel fits no automatic choice: say so at the largest one
        Tiling.plan(*shape, kh, kw, _AUTO_MAX_RING_DIM // 2)
    _, best, tiling = min(costs, key=lambda c: c[:2])
    if best != smallest:
        cc = _context(ofhe, scaling_bits, first_mod_bits, best)
    return cc, tiling, smallest


def _check(
    image: object, kernel: str | np.ndarray, padding: str, ring_dim: int | None, scaling_bits: int, first_mod_bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate once at the boundary: (values H x W [x C], convolution kernel, correlation kernel)."""
    k = kernel_from(kernel)
    values, _ = as_plain_values(image)
    if values.ndim not in (2, 3):
        raise InputError(f"an image must be H x W or H x W x C, got shape {values.shape}")
    if padding not in PADDING_MODES:
        raise InputError(f"unknown padding {padding!r}; choose one of {sorted(PADDING_MODES)}")
    corr = correlation_kernel(k)
    h, w = values.shape[:2]
    if corr.shape[0] > 2 * h or corr.shape[1] > 2 * w:
        raise InputError(f"a {k.shape[0]}x{k.shape[1]} kernel is too large for a {h}x{w} image")
    if ring_dim is not None and ring_dim not in _RING_DIMS:
        raise InputError(
            f"ring_dim must be one of {list(_RING_DIMS)} (or None for the smallest secure one), got {ring_dim}"
        )
    if not (20 <= scaling_bits < first_mod_bits <= 60):
        raise InputError(f"need 20 <= scaling_bits < first_mod_bits <= 60, got {scaling_bits} and {first_mod_bits}")
    bound = float(np.abs(k).sum() * np.abs(values).max())
    limit = 2.0 ** (first_mod_bits - scaling_bits - 2)
    if bound > limit:
        raise InputError(
            f"the filter output may reach {bound:.4g} in magnitude, beyond the {limit:.4g} that "
            f"first_mod_bits - scaling_bits = {first_mod_bits - scaling_bits} bits can hold; "
            "scale the kernel or the image down, or raise first_mod_bits"
        )
    return values, k, corr


def run(
    inputs: object,
    *,
    cluster: Cluster | None = None,
    kernel: str | np.ndarray,
    padding: str = "reflect",
    ring_dim: int | None = None,
    scaling_bits: int = DEFAULT_SCALING_BITS,
    first_mod_bits: int = DEFAULT_FIRST_MOD_BITS,
) -> TaskResult:
    """Filter an image on a single server that only sees CKKS ciphertexts.

    Runs the client (key generation, padding, packing, encryption; decryption after)
    and the server (:func:`evaluate`) in this process, exchanging only bytes. The result
    equals :func:`safelight.tasks.filter.plaintext` to within about 1e-3 grey levels.

    Parameters
    ----------
    inputs : array-like, uint8 H x W or H x W x C, or float in [0, 1]
        The image.
    cluster : None
        The server step runs in this process; a cluster is refused (the BFV filter,
        :mod:`safelight.tasks.he_filter`, runs on a server of a cluster).
    kernel : kernel spec (``gaussian:SIGMA | box:K | sharpen | sobel-x | sobel-y``) or a
        2-D float array of convolution weights (scipy.ndimage.convolve orientation)
    padding : "reflect" (default), "mirror", "nearest" or "zero", as in tasks.filter
    ring_dim : CKKS ring dimension (8192 ... 131072); None picks, from the smallest
        that OpenFHE accepts at 128-bit security for the moduli (8192 with the
        defaults) up to 65536, the one with the fewest ciphertext bytes for this image
    scaling_bits, first_mod_bits : bit sizes of the scaling modulus and of the first
        (last remaining) modulus; their difference bounds the output magnitude

    Returns
    -------
    TaskResult
        ``outputs``: the filtered image, uint8 (``tasks.filter.to_image(values, kernel)``);
        ``report``: :func:`job_report`; extras (also attributes): ``values`` float64 with the
        image's shape, image scaled to [0, 1]; ``seconds`` {"keygen", "encrypt", "evaluate",
        "decrypt"} (client steps include serialisation, the server step its
        deserialisation); ``ciphertext_bytes`` {"upload", "download"}; ``key_bytes``
        {"rotation_keys", "context"}, the public material the server also needs (sent once
        per key pair, not per image); ``params``, the CKKS parameters and packing (ring
        dimension, slots, moduli, tiles, rotations).

    Raises
    ------
    UnsupportedError
        ``openfhe`` does not import on this Python (its wheels are CPython 3.10 only), or
        a cluster was given.
    InputError
        A bad image, kernel, padding or parameter.
    """
    if cluster is not None:
        raise UnsupportedError(
            "the OpenFHE filter runs its server step in this process and takes no cluster; "
            "leave cluster=None, or use safelight.tasks.he_filter (BFV) on a one-server cluster"
        )
    values, k, corr = _check(inputs, kernel, padding, ring_dim, scaling_bits, first_mod_bits)
    ofhe = require_openfhe()
    binary = ofhe.BINARY
    planes = values[None] if values.ndim == 2 else np.moveaxis(values, 2, 0)
    kh, kw = corr.shape
    seconds: dict[str, float] = {}

    with _lock:
        # client: keys and public material
        start = time.perf_counter()
        cc, tiling, smallest = _plan(ofhe, planes.shape, kh, kw, ring_dim, scaling_bits, first_mod_bits)
        slots = tiling.slots
        col_steps, row_steps = rotation_steps(corr, tiling.stride)
        keys = cc.KeyGen()
        tag = keys.secretKey.GetKeyTag()
        if col_steps or row_steps:
            cc.EvalRotateKeyGen(keys.secretKey, col_steps + row_steps)
        context_blob = ofhe.Serialize(cc, binary)
        key_blob = (
            ofhe.Serialize(cc.GetEvalAutomorphismKeyMap(tag), binary)
            if col_steps or row_steps
            else ofhe.Serialize(ofhe.EvalKeyMap(), binary)
        )
        cc.InsertEvalAutomorphismKey(ofhe.EvalKeyMap(), tag)  # the client itself never rotates
        seconds["keygen"] = time.perf_counter() - start

        # client: pad, pack, encrypt
        start = time.perf_counter()
        pad = ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2))
        tall = np.pad(planes, pad, mode=PADDING_MODES[padding]).reshape(-1, planes.shape[2] + kw - 1)
        uploads = [
            ofhe.Serialize(cc.Encrypt(keys.publicKey, cc.MakeCKKSPackedPlaintext(vec.tolist())), binary)
            for vec in tiling.pack(tall)
        ]
        seconds["encrypt"] = time.perf_counter() - start

        # server
        start = time.perf_counter()
        downloads = evaluate(ServerRequest(context_blob, key_blob, uploads, corr, tiling.stride))
        seconds["evaluate"] = time.perf_counter() - start

        # client: decrypt, unpack
        start = time.perf_counter()
        decrypted = np.empty((len(downloads), slots))
        for t, blob in enumerate(downloads):
            plain = cc.Decrypt(ofhe.DeserializeCiphertextString(blob, binary), keys.secretKey)
            plain.SetLength(slots)
            decrypted[t] = plain.GetRealPackedValue()
        filtered = tiling.unpack(decrypted)
        result = filtered[0] if values.ndim == 2 else np.moveaxis(filtered, 0, 2)
        seconds["decrypt"] = time.perf_counter() - start

    params = {
        "scheme": "CKKS",
        "library": f"openfhe {getattr(ofhe, '__version__', '?')}",
        "security": SECURITY_LEVEL,
        "ring_dim": cc.GetRingDimension(),
        "smallest_secure_ring_dim": smallest,
        "slots": slots,
        "multiplicative_depth": 1,
        "scaling_bits": scaling_bits,
        "first_mod_bits": first_mod_bits,
        "log2_q": round(math.log2(float(cc.GetModulus())), 1),
        "key_switching": "HYBRID",
        "ciphertexts": len(uploads),
        "tile": [tiling.tile_rows, tiling.tile_cols],
        "stride": tiling.stride,
        "rotations": col_steps + row_steps,
    }
    ciphertext_bytes = {"upload": sum(map(len, uploads)), "download": sum(map(len, downloads))}
    key_bytes = {"rotation_keys": len(key_blob), "context": len(context_blob)}
    return TaskResult(
        to_image(result, k),
        job_report(seconds, ciphertext_bytes, key_bytes),
        {
            "values": np.ascontiguousarray(result),
            "seconds": seconds,
            "ciphertext_bytes": ciphertext_bytes,
            "key_bytes": key_bytes,
            "params": params,
        },
    )


def filter_image(
    image: object,
    kernel: str | np.ndarray,
    padding: str = "reflect",
    ring_dim: int | None = None,
    scaling_bits: int = DEFAULT_SCALING_BITS,
    first_mod_bits: int = DEFAULT_FIRST_MOD_BITS,
) -> TaskResult:
    """The 0.1 call shape of :func:`run`, kept for one release (DeprecationWarning)."""
    warnings.warn(
        "safelight.tasks.openfhe_filter.filter_image is the 0.1 call shape, which works for one more "
        "release; call safelight.tasks.openfhe_filter.run(image, kernel=..., padding=..., ...)",
        DeprecationWarning,
        stacklevel=2,
    )
    return run(
        image,
        kernel=kernel,
        padding=padding,
        ring_dim=ring_dim,
        scaling_bits=scaling_bits,
        first_mod_bits=first_mod_bits,
    )


__getattr__ = renamed_results("safelight.tasks.openfhe_filter", {"OpenFHEFilterResult": TaskResult})
