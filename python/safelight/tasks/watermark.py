"""Invisible watermarks (issue 17): keys, embedding and detection with the common task shape.

The scheme is :mod:`.watermark_scheme` (STDM of the low-frequency luma, a 64-bit payload
carried twice). By default the servers do the work on shares (:mod:`.watermark_private`:
two servers with a dealer or without one, or three with rss3); the photo, the key's
carrier and dither and the payload reach them as shares only. ``plain=True`` runs the
numpy reference on this machine instead. ``he=True`` embeds on ONE server holding the photo
as BFV ciphertexts (:mod:`.he_watermark`: the key never leaves this machine; the client
rounds the 64 x 64 thumbnail's projections between two server jobs). Detection runs on
shares or locally.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..runtime.cluster import Cluster
from ..sharing import decode, encode
from . import he_watermark
from . import watermark_private as private
from . import watermark_scheme as scheme
from .report import JobReport, TaskResult
from .servers import parties_and_scheme, run_program

KEY_KIND = "safelight-watermark-key"


def keygen(path: str | Path) -> scheme.Key:
    """A fresh key written to ``path`` (JSON, mode 0600); an existing file is never overwritten."""
    key = scheme.Key.generate()
    record = json.dumps({"kind": KEY_KIND, "version": 1, "secret": key.secret.hex()}) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(f"{path} exists: a watermark key is never overwritten (its marks would be lost)") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(record)
    return key


def load_key(path: str | Path) -> scheme.Key:
    """The key in ``path``; one clear InputError for anything else."""
    try:
        record = json.loads(Path(path).read_text())
        secret = bytes.fromhex(record["secret"])
        if record.get("kind") != KEY_KIND or len(secret) != scheme.KEY_BYTES:
            raise ValueError
    except FileNotFoundError:
        raise InputError(f"no key file at {path} (create one with 'safelight watermark keygen')") from None
    except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError):
        raise InputError(f"{path} is not a safelight watermark key file") from None
    return scheme.Key(secret)


def _shared(values: dict[str, np.ndarray], parties: int, scheme_name: str) -> dict:
    return {name: encode(np.asarray(v, dtype=np.float64), parties, scheme=scheme_name) for name, v in values.items()}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def embed(
    image: Any,
    *,
    key: scheme.Key,
    message: str,
    cluster: Cluster | None = None,
    plain: bool = False,
    servers: int = 2,
    no_dealer: bool = False,
    he: bool = False,
    comparisons: str = "auto",
) -> TaskResult:
    """The marked photo (uint8 RGB); extras ``psnr`` and ``message``. The servers see the
    photo, the key and the payload as shares only; the client rounds and clips the result.
    ``comparisons``: how two servers compute signs ("auto": the fewer bytes; "gc"; "ot")."""
    bits = scheme.parse_message(message)
    rgb = scheme.check_image(image)
    extras: dict[str, Any] = {}
    if he and plain:
        raise InputError("choose one: --plain (this machine) or --scheme he (one server on ciphertexts)")
    if plain:
        marked, report = scheme.to_uint8(scheme.embed(image, key, bits)), None
    elif he:
        values, report, extras = he_watermark.embed(image, key, bits, cluster=cluster)
        marked = scheme.to_uint8(values)
    else:
        parties, name = parties_and_scheme(cluster, servers)
        program = private.embed_program(*rgb.shape[:2], parties, name)
        offsets = key.dither() + scheme.payload_bits(bits, key) * (scheme.DELTA / 2)
        values = {"image": rgb, "carrier": key.directions(), "offsets": offsets[:, None]}
        job = run_program(program, _shared(values, parties, name), cluster, name, no_dealer, comparisons)
        marked, report = scheme.to_uint8(decode(job.outputs["marked"])), JobReport.from_job(job)
    return TaskResult(marked, report, {**extras, "psnr": psnr(rgb, marked), "message": message.lower()})


def detect(
    image: Any,
    *,
    key: scheme.Key,
    message: str | None = None,
    cluster: Cluster | None = None,
    plain: bool = False,
    servers: int = 2,
    no_dealer: bool = False,
    comparisons: str = "auto",
) -> TaskResult:
    """The recovered payload (16 hex digits); extras ``present`` (with ``message``: whether
    that payload is there, the yes/no detector), ``fit``, ``score``, ``confidence`` (per
    bit). The servers output only these, as shares for the client. ``comparisons`` as for
    :func:`embed`."""
    rgb = scheme.check_image(image)
    expected = None if message is None else scheme.parse_message(message)
    if plain:
        found = scheme.detect(image, key, expected)
        extras = {"present": found.present, "fit": found.fit, "score": found.score, "confidence": found.confidence}
        return TaskResult(found.message, None, {**extras, "crop": found.crop, "gain": found.gain})
    parties, name = parties_and_scheme(cluster, servers)
    program = private.detect_program(*rgb.shape[:2], parties, name, payload=expected is not None)
    assignment = np.zeros((scheme.PROJECTIONS, scheme.PAYLOAD_BITS))
    assignment[np.arange(scheme.PROJECTIONS), scheme.payload_bits(np.arange(scheme.PAYLOAD_BITS), key)] = 1.0
    values = {"image": rgb, "carrier": key.directions(), "dither": key.dither()[:, None], "assignment": assignment}
    if expected is not None:
        values["signs"] = (1 - 2 * scheme.payload_bits(expected, key))[:, None]
    job = run_program(program, _shared(values, parties, name), cluster, name, no_dealer, comparisons)
    out = {k: decode(v) for k, v in job.outputs.items()}
    bits = (out["bits"] > 0.5).astype(np.int64)
    extras = {
        "present": bool(out["present"][0] > 0.5),
        "fit": float(out["fit"][0]),
        "score": float(out["score"][0]),
        "confidence": np.minimum(1.0, out["confidence"]),
    }
    return TaskResult(scheme.format_message(bits), JobReport.from_job(job), extras)


def run(image: Any, *, cluster: Cluster | None = None, operation: str = "embed", **options: Any) -> TaskResult:
    """The common task shape: ``operation`` "embed" (options key, message, plain) or
    "detect" (options key, plain)."""
    if operation == "embed":
        return embed(image, cluster=cluster, **options)
    if operation == "detect":
        return detect(image, cluster=cluster, **options)
    raise InputError(f"unknown operation {operation!r}: 'embed' or 'detect'")
