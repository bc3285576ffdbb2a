"""Garbling and evaluation of a :class:`~safelight.gc.circuits.Circuit` over a batch of
independent instances (thin wrappers over the C++ engine, GIL released).

Labels are uint64 arrays ``(n_wires, batch, 2)``: 128-bit labels as two little-endian words.
The garbler picks a global offset ``delta`` (colour bit, bit 0 of ``delta[0]``, set) and the
zero-labels of the input wires; the label of bit v is ``zero ^ v * delta``. The evaluator
gets its input labels by oblivious transfer and the garbler's directly, evaluates, and
decodes with the colour bits of the output zero-labels.

Tweaks of the hash hold the absolute instance index ``instance_offset + i``: garbling a
batch in chunks gives the same tables as garbling it at once. Never garble two batches with
the same ``delta`` and overlapping instance ranges.
"""

from __future__ import annotations

import os

import numpy as np

from .. import _core
from .circuits import Circuit


def _aligned_empty(shape) -> np.ndarray:
    """uint64 array whose data starts on a 64-byte boundary: the AVX-512 path then loads
    whole cache lines and streams tables and output rows out with non-temporal stores."""
    n = int(np.prod(shape, dtype=np.int64)) * 8
    buf = np.empty(n + 64, dtype=np.uint8)
    off = (-buf.ctypes.data) % 64
    return buf[off : off + n].view(np.uint64).reshape(shape)


def _seed_key(seed) -> bytes:
    if isinstance(seed, (bytes, bytearray, memoryview)):
        key = bytes(seed)
        if len(key) != 16:
            raise ValueError(f"a bytes seed must be 16 bytes, got {len(key)}")
        return key
    seed = int(seed)
    if not 0 <= seed < 2**128:
        raise ValueError("an int seed must be in [0, 2^128)")
    return seed.to_bytes(16, "little")


def random_labels(n: int, batch: int, seed=None, nonce: int = 0) -> np.ndarray:
    """uint64 ``(n, batch, 2)`` random labels (64-byte aligned): from the OS when ``seed`` is
    None, else from AES-128-CTR keyed by ``seed`` (16 bytes or an int) with IV ``nonce || 0``."""
    out = _aligned_empty((n, batch, 2))
    if seed is None:
        out.view(np.uint8).reshape(-1)[:] = np.frombuffer(os.urandom(out.nbytes), dtype=np.uint8)
    else:
        _core.prg_fill(_seed_key(seed), out, nonce, 0)
    return out


def random_delta(seed=None) -> np.ndarray:
    """The garbler's global offset: uint64 ``(2,)`` random, with the colour bit forced to 1.
    ``seed`` None draws from the OS; otherwise deterministic (nonce 2^64-1 of the PRG, a
    stream :func:`random_labels` with a small nonce never touches)."""
    d = np.empty(2, dtype=np.uint64)
    if seed is None:
        d[:] = np.frombuffer(os.urandom(16), dtype=np.uint64)
    else:
        _core.prg_fill(_seed_key(seed), d, 2**64 - 1, 0)
    d[0] |= np.uint64(1)
    return d


def _labels(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint64:
        raise TypeError(f"{name} must have dtype uint64, got {a.dtype}")
    return np.ascontiguousarray(a)


def encode(input_zero, delta, bits, out: np.ndarray | None = None) -> np.ndarray:
    """Labels of the given bit values: ``zero ^ bit * delta``. ``bits`` broadcasts against
    ``input_zero[..., 0]`` (e.g. ``(n, batch)``). ``out`` (optional, may be ``input_zero``
    itself) receives the labels."""
    zero = _labels(input_zero, "input_zero")
    d = _labels(delta, "delta").reshape(2)
    bits = np.asarray(bits)
    shape = np.broadcast_shapes(zero.shape, bits.shape + (2,))
    zero = np.ascontiguousarray(np.broadcast_to(zero, shape))
    bits = np.ascontiguousarray(np.broadcast_to(bits, shape[:-1]), dtype=np.uint8)
    if out is None:
        out = _aligned_empty(shape)
    elif out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    return _core.gc_encode(zero, d, bits, out)


def garble(
    circuit: Circuit, input_zero, delta, instance_offset: int = 0, threads: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Garble ``circuit`` over ``batch`` instances.

    ``input_zero``: uint64 ``(circuit.n_inputs, batch, 2)`` zero-labels; ``delta``: uint64
    ``(2,)`` with bit 0 set. Returns ``(tables, output_zero)``: uint64
    ``(n_and, batch, 2, 2)`` (32 bytes per AND and instance) and ``(n_outputs, batch, 2)``.
    ``threads``: 0 = automatic (all cores for large batches)."""
    zero = _labels(input_zero, "input_zero")
    if zero.ndim != 3 or zero.shape[0] != circuit.n_inputs or zero.shape[2] != 2:
        raise ValueError(f"input_zero must have shape ({circuit.n_inputs}, batch, 2), got {zero.shape}")
    batch = zero.shape[1]
    tables = _aligned_empty((circuit.n_and, batch, 2, 2))
    out = _aligned_empty((circuit.n_outputs, batch, 2))
    _core.gc_garble(
        circuit.gates,
        circuit.outputs,
        circuit.n_wires,
        zero,
        _labels(delta, "delta"),
        instance_offset,
        tables,
        out,
        threads,
    )
    return tables, out


def evaluate(circuit: Circuit, input_labels, tables, instance_offset: int = 0, threads: int = 0) -> np.ndarray:
    """Evaluate the garbled ``circuit``: ``input_labels`` uint64 ``(n_inputs, batch, 2)``,
    ``tables`` from :func:`garble` -> output labels uint64 ``(n_outputs, batch, 2)``."""
    labels = _labels(input_labels, "input_labels")
    if labels.ndim != 3 or labels.shape[0] != circuit.n_inputs or labels.shape[2] != 2:
        raise ValueError(f"input_labels must have shape ({circuit.n_inputs}, batch, 2), got {labels.shape}")
    out = _aligned_empty((circuit.n_outputs, labels.shape[1], 2))
    _core.gc_evaluate(
        circuit.gates,
        circuit.outputs,
        circuit.n_wires,
        labels,
        _labels(tables, "tables"),
        instance_offset,
        out,
        threads,
    )
    return out


def colour(labels) -> np.ndarray:
    """Colour (point-and-permute) bits of labels ``(..., 2)`` -> uint8 ``(...)``."""
    a = np.asarray(labels)
    return (a[..., 0] & np.uint64(1)).astype(np.uint8)


def decode(output_labels, output_zero) -> np.ndarray:
    """Output bits uint8 ``(n_out, batch)``: colour(label) ^ colour(zero-label). ``output_zero``
    may also be just its colour bits (uint8 ``(n_out, batch)``), which is all the garbler
    needs to send."""
    z = np.asarray(output_zero)
    zc = (
        colour(z)
        if (z.dtype == np.uint64 and z.ndim >= 1 and z.shape[-1] == 2 and z.ndim == np.asarray(output_labels).ndim)
        else z.astype(np.uint8) & 1
    )
    return colour(output_labels) ^ zc
