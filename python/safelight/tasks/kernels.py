"""Filter kernels and the images they filter, shared by the three filter tasks (two servers
on shares, one server with BFV, one server with CKKS through OpenFHE): kernel specs, the
plaintext reference (scipy), the correlation form the ops use, and how results are shown.

``correlation_kernel`` (the form the convolution ops take) lives with the ops; it is
re-exported here for the filters."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..program.ops import correlation_kernel
from ..sharing import as_plain_values

KERNEL_HELP = "gaussian:SIGMA | box:K | sharpen | sobel-x | sobel-y"


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised 2-D Gaussian with radius round(truncate * sigma), as scipy.ndimage.gaussian_filter."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def parse_kernel(spec: str) -> np.ndarray:
    """Turn a kernel spec (``gaussian:SIGMA``, ``box:K``, ``sharpen``, ``sobel-x``, ``sobel-y``) into weights."""
    name, _, arg = str(spec).strip().lower().partition(":")
    try:
        if name == "gaussian":
            sigma = float(arg)
            if not 0.1 <= sigma <= 20:
                raise ValueError
            return gaussian_kernel(sigma)
        if name == "box":
            k = int(arg)
            if not 1 <= k <= 31:
                raise ValueError
            return np.full((k, k), 1.0 / (k * k))
    except ValueError:
        raise InputError(
            f"bad kernel parameter in {spec!r}: gaussian:SIGMA needs 0.1 <= SIGMA <= 20, "
            "box:K needs an integer 1 <= K <= 31"
        ) from None
    fixed = {
        "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
        "sobel-x": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
        "sobel-y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    }
    if name in fixed and not arg:
        return np.array(fixed[name], dtype=np.float64)
    raise InputError(f"unknown kernel {spec!r}; choose one of: {KERNEL_HELP}")


def kernel_from(kernel: str | np.ndarray) -> np.ndarray:
    if isinstance(kernel, str):
        return parse_kernel(kernel)
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or min(k.shape) < 1 or max(k.shape) > 63 or not np.isfinite(k).all():
        raise InputError(f"a custom kernel must be a finite 2-D array of at most 63x63, got shape {k.shape}")
    return k


def image_values(image: np.ndarray) -> tuple[np.ndarray, np.dtype]:
    """Float64 values in [0, 1] of a uint8, uint16 (x / 65535) or float image, and the dtype
    its rendering keeps (:func:`to_image`): uint16 for uint16, uint8 otherwise."""
    arr = np.asarray(image)
    if arr.dtype == np.uint16:
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4) and arr.size):
            return arr.astype(np.float64) / 65535.0, np.dtype(np.uint16)
        raise InputError(f"a uint16 image must be H x W or H x W x C with C in (1, 3, 4), got shape {arr.shape}")
    values, _ = as_plain_values(arr)
    return values, np.dtype(np.uint8)


def plaintext(image: np.ndarray, kernel: str | np.ndarray, padding: str = "reflect") -> np.ndarray:
    """The same filter in plaintext with scipy.ndimage (float64 result, image scaled to [0, 1])."""
    from scipy import ndimage

    values, _ = image_values(image)
    k = kernel_from(kernel)
    mode = "constant" if padding == "zero" else padding
    if values.ndim == 2:
        return ndimage.convolve(values, k, mode=mode)
    return np.stack([ndimage.convolve(values[..., c], k, mode=mode) for c in range(values.shape[2])], axis=2)


def to_image(values: np.ndarray, kernel: str | np.ndarray, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """Filter output as an image: edge kernels (weights summing to 0) show |response|, clipped
    to [0, 1]; ``dtype`` uint8 (x 255), uint16 (x 65535) or float32 (as is)."""
    k = kernel_from(kernel)
    shown = np.clip(np.abs(values) if abs(k.sum()) < 1e-9 else values, 0.0, 1.0)
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return shown.astype(np.float32)
    if dtype not in (np.uint8, np.uint16):
        raise InputError(f"an image is rendered as uint8, uint16 or float32, not {dtype}")
    return np.rint(shown * float(np.iinfo(dtype).max)).astype(dtype)


__all__ = [
    "KERNEL_HELP",
    "as_grey",
    "correlation_kernel",
    "gaussian_kernel",
    "image_values",
    "kernel_from",
    "parse_kernel",
    "plaintext",
    "to_image",
]


def as_grey(image) -> np.ndarray:
    """The grey image in [0, 1] (float64) that the reference works on."""
    from skimage.color import rgb2gray

    a = np.asarray(image)
    if a.dtype == np.uint8:
        a = a / 255.0
    elif a.dtype == np.uint16:
        a = a / 65535.0
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise InputError("the image contains NaN or infinite values")
    else:
        raise InputError(f"the image must be uint8, uint16 or float in [0, 1], not {a.dtype}")
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = rgb2gray(a[..., :3])
    if a.ndim != 2:
        raise InputError(f"expected a grey or colour image, got shape {a.shape}")
    return np.clip(a.astype(np.float64), 0.0, 1.0)
