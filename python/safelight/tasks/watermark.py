"""Invisible watermarks (issue 17): keys, embedding and detection with the common task shape.

The scheme is :mod:`.watermark_scheme` (STDM of the low-frequency luma, a 64-bit payload
carried twice). ``plain=True`` runs its numpy reference on this machine; the private
embedding and detection on servers (shares or BFV ciphertexts) are not built yet, and say
so with an UnsupportedError instead of falling back to the local reference silently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, UnsupportedError
from ..runtime.cluster import Cluster
from . import watermark_scheme as scheme
from .report import TaskResult

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


def _private_not_built(what: str) -> UnsupportedError:
    return UnsupportedError(
        f"private watermark {what} on servers is not built yet (issue 17); plain=True (--plain) runs "
        "the reference on this machine, which sees the photo"
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def embed(
    image: Any, *, key: scheme.Key, message: str, cluster: Cluster | None = None, plain: bool = False
) -> TaskResult:
    """The marked photo (uint8, the image's shape as RGB); extras ``psnr``."""
    bits = scheme.parse_message(message)
    scheme.check_image(image)
    if not plain:
        raise _private_not_built("embedding")
    marked = scheme.to_uint8(scheme.embed(image, key, bits))
    return TaskResult(marked, None, {"psnr": psnr(scheme.check_image(image), marked), "message": message.lower()})


def detect(image: Any, *, key: scheme.Key, cluster: Cluster | None = None, plain: bool = False) -> TaskResult:
    """The recovered payload (16 hex digits); extras ``present``, ``fit``, ``confidence``
    (per bit), ``crop`` and ``gain`` of the best candidate."""
    scheme.check_image(image)
    if not plain:
        raise _private_not_built("detection")
    found = scheme.detect(image, key)
    extras = {
        "present": found.present,
        "fit": found.fit,
        "confidence": found.confidence,
        "crop": found.crop,
        "gain": found.gain,
    }
    return TaskResult(found.message, None, extras)


def run(image: Any, *, cluster: Cluster | None = None, operation: str = "embed", **options: Any) -> TaskResult:
    """The common task shape: ``operation`` "embed" (options key, message, plain) or
    "detect" (options key, plain)."""
    if operation == "embed":
        return embed(image, cluster=cluster, **options)
    if operation == "detect":
        return detect(image, cluster=cluster, **options)
    raise InputError(f"unknown operation {operation!r}: 'embed' or 'detect'")
