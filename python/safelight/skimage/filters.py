"""``skimage.filters``' gaussian and sobel, computed on secret shares."""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..program.program import Program
from ..runtime.cluster import Cluster
from ..tasks.features import public_filter
from ..tasks.kernels import gaussian_kernel
from ._run import run, scheme_of

MAGNITUDE_SCALE = 16.0
_MODES = {"constant": "zero", "nearest": "nearest", "reflect": "reflect", "mirror": "mirror"}


def _float_image(image) -> np.ndarray:
    from skimage.util import img_as_float

    a = np.asarray(image)
    if a.ndim != 2:
        raise UnsupportedError("the private version takes a 2-D grey image")
    return a.astype(np.float64) if a.dtype.kind == "f" else img_as_float(a).astype(np.float64)


def _padding(mode: str, cval: float) -> str:
    if mode not in _MODES or (mode == "constant" and cval != 0):
        raise UnsupportedError(f"mode {mode!r} (cval {cval}) is not available on shares; use {sorted(_MODES)}")
    return _MODES[mode]


def gaussian(
    image,
    sigma=1.0,
    *,
    mode="nearest",
    cval=0,
    preserve_range=False,
    truncate=4.0,
    channel_axis=None,
    out=None,
    cluster: Cluster | None = None,
):
    """``skimage.filters.gaussian`` of a grey image (the filter is public: free on shares)."""
    if channel_axis is not None or out is not None or np.ndim(sigma) != 0:
        raise UnsupportedError("the private gaussian takes a grey image, one sigma and no out=")
    a = np.asarray(image, dtype=np.float64) if preserve_range else _float_image(image)
    parties, scheme = scheme_of(cluster)
    p = Program(parties, scheme=scheme, truncation="pair")
    p.output(
        public_filter(p, p.input("image", a.shape), gaussian_kernel(float(sigma), truncate), _padding(mode, cval)),
        "out",
    )
    return run(p, a, cluster)["out"]


def sobel(image, mask=None, *, axis=None, mode="reflect", cval=0.0, cluster: Cluster | None = None):
    """``skimage.filters.sobel``: one axis' response (a public filter), or the magnitude
    sqrt((s_0^2 + s_1^2) / 2), whose square root needs three servers (the secure inverse
    square root)."""
    if mask is not None:
        raise UnsupportedError("the private sobel takes no mask")
    a = _float_image(image)
    axes = [0, 1] if axis is None else ([axis] if np.isscalar(axis) else list(axis))
    edge, smooth = np.array([1.0, 0.0, -1.0]), np.array([0.25, 0.5, 0.25])
    parties, scheme = scheme_of(cluster)
    p = Program(parties, scheme=scheme, truncation="pair")
    x = p.input("image", a.shape)
    padding = _padding(mode, cval)
    # scipy.ndimage.convolve flips the kernel: correlate with the flipped one
    responses = [
        public_filter(p, x, (np.outer(edge, smooth) if ax == 0 else np.outer(smooth, edge))[::-1, ::-1], padding)
        for ax in axes
    ]
    if len(responses) == 1:
        p.output(responses[0], "out")
        return run(p, a, cluster)["out"]
    squares = [p.square(r) for r in responses]
    q = squares[0]
    for sq in squares[1:]:
        q = p.add(q, sq)
    q = p.rescale(p.mul_public(q, 1.0 / len(axes)))
    p.output(p.mul(q, p.rsqrt(p.add_public(q, 2.0**-16), bits=30)), "out")  # sqrt(q), 0 for q = 0
    # on the image times MAGNITUDE_SCALE: small magnitudes keep their precision under the root
    return run(p, a, cluster, MAGNITUDE_SCALE)["out"] / MAGNITUDE_SCALE
