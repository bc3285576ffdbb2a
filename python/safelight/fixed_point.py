"""Fixed-point codec between float64 and the ring Z_2^64.

A real x is stored as round(x * 2^f) in two's complement, so the ring holds
signed values in [-2^63, 2^63) and products of two encodings carry 2f
fractional bits until they are rescaled (truncated).
"""

from __future__ import annotations

import numpy as np

from . import _core
from .errors import EncodingRangeError, InputError

DEFAULT_FRAC_BITS = 16


def check_frac_bits(frac_bits: int) -> int:
    if not isinstance(frac_bits, (int, np.integer)) or not 0 <= int(frac_bits) <= 62:
        raise InputError(f"frac_bits must be an integer in 0..62, got {frac_bits!r}")
    return int(frac_bits)


def max_magnitude(frac_bits: int = DEFAULT_FRAC_BITS) -> float:
    """Largest |x| that encodes without wrapping: 2^(63 - f)."""
    return float(2.0 ** (63 - check_frac_bits(frac_bits)))


def encode(x: np.ndarray, frac_bits: int = DEFAULT_FRAC_BITS) -> np.ndarray:
    """Encode floats as ring elements.

    Parameters
    ----------
    x : array_like of float
        Any shape; converted to float64.
    frac_bits : int
        Fractional bits f (0..62).

    Returns
    -------
    numpy.ndarray of uint64, same shape as ``x``: round-half-even(x * 2^f) mod 2^64.

    Raises
    ------
    EncodingRangeError
        If any value is NaN, infinite or |x * 2^f| >= 2^63; nothing is wrapped silently.
    """
    frac_bits = check_frac_bits(frac_bits)
    values = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty(values.shape, dtype=np.uint64)
    bad = _core.encode_fixed(values, frac_bits, out)
    if bad:
        flat = values.reshape(-1)
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.rint(flat * 2.0**frac_bits)
            rejected = ~((scaled < 2.0**63) & (scaled >= -(2.0**63)))
        idx = int(np.argmax(rejected))
        where = np.unravel_index(idx, values.shape) if values.ndim else ()
        what = "NaN or infinite" if not np.isfinite(flat[idx]) else "out of range"
        raise EncodingRangeError(
            f"{bad} value(s) cannot be encoded with {frac_bits} fractional bits; the first is "
            f"{what} at index {tuple(int(i) for i in where)}: {float(flat[idx])!r}. Values must be finite "
            f"with |x| < 2^{63 - frac_bits}; clean the data or use fewer fractional bits."
        )
    return out


def decode(x: np.ndarray, frac_bits: int = DEFAULT_FRAC_BITS) -> np.ndarray:
    """Decode ring elements (uint64, any shape) to float64: signed(x) * 2^-f."""
    frac_bits = check_frac_bits(frac_bits)
    ring = np.ascontiguousarray(x, dtype=np.uint64)
    out = np.empty(ring.shape, dtype=np.float64)
    _core.decode_fixed(ring, frac_bits, out)
    return out
