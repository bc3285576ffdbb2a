"""Reading and writing image files at the boundary, with clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InputError


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 H x W (grey) or H x W x 3 (colour; alpha is dropped)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"input image {p} does not exist")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("L", "I;16", "I", "F", "1"):
                arr = np.asarray(im.convert("L"))
            else:
                arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read {p} as an image (corrupt or unsupported format): {exc}") from None
    if arr.size == 0:
        raise InputError(f"{p} is an empty image")
    return np.ascontiguousarray(arr)


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 image; the format follows the file extension."""
    from PIL import Image

    p = Path(path)
    if not p.parent.exists():
        raise InputError(f"output directory {p.parent} does not exist")
    try:
        Image.fromarray(image).save(p)
    except (ValueError, KeyError) as exc:
        raise InputError(f"cannot write {p}: unknown image format (use .png, .jpg, .tif, ...): {exc}") from None
    return p


def sample_image(name: str = "astronaut") -> np.ndarray:
    """A real photograph shipped with scikit-image (astronaut, coffee, chelsea, camera, ...)."""
    from skimage import data

    loader = getattr(data, name, None)
    if loader is None:
        raise InputError(f"scikit-image has no sample image {name!r}")
    return np.ascontiguousarray(loader())
