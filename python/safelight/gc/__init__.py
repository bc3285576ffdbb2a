"""Garbled circuits: free-XOR + half-gates (two ciphertexts per AND), point-and-permute,
fixed-key AES hash, evaluated over a whole tensor of independent instances at once.

::

    from safelight import gc

    circ = gc.circuits.msb_of_sum(32)                  # sign of x0 + x1 mod 2^32
    delta = gc.random_delta()
    zero = gc.random_labels(circ.n_inputs, batch)
    tables, out_zero = gc.garble(circ, zero, delta)    # garbler
    labels = gc.encode(zero, delta, bits)              # (garbler's directly, evaluator's by OT)
    out = gc.evaluate(circ, labels, tables)            # evaluator
    bits_out = gc.decode(out, out_zero)

The C++ engine (``safelight._core.gc_garble`` / ``gc_evaluate``) runs on the active ISA
path (scalar reference, AES-NI, VAES) and uses every core for large batches.
"""

from __future__ import annotations

from . import circuits
from .bristol import BristolError, parse_bristol, read_bristol
from .circuits import Circuit, CircuitBuilder, from_bits, to_bits
from .garble import colour, decode, encode, evaluate, garble, random_delta, random_labels

__all__ = [
    "BristolError",
    "Circuit",
    "CircuitBuilder",
    "circuits",
    "colour",
    "decode",
    "encode",
    "evaluate",
    "from_bits",
    "garble",
    "parse_bristol",
    "random_delta",
    "random_labels",
    "read_bristol",
    "to_bits",
]
