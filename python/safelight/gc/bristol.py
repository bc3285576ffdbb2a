"""Reader of the Bristol Fashion circuit format (https://nigelsmart.github.io/MPC-Circuits/).

Layout::

    ngates nwires
    niv n_1 ... n_niv          (input values and their bit counts)
    nov m_1 ... m_nov          (output values and their bit counts)

    2 1 a b c XOR              (c = a ^ b)
    2 1 a b c AND
    1 1 a c INV                (c = ~a)
    1 1 a c EQW                (c = a)
    1 1 v c EQ                 (c = constant v, 0 or 1)
    2m m a_1..a_m b_1..b_m c_1..c_m MAND

Input wires are 0 .. sum(n_i) - 1 in value order; outputs are the LAST sum(m_i) wires.
EQW becomes an alias (free), MAND becomes m AND gates, EQ constants become XOR(w, w) and
its inverse on the first input wire.
"""

from __future__ import annotations

import os

import numpy as np

from .circuits import OP_AND, OP_INV, OP_XOR, Circuit


class BristolError(ValueError):
    """A malformed Bristol Fashion file (the message names the line)."""


def _ints(tokens, line_no, what):
    try:
        return [int(t) for t in tokens]
    except ValueError:
        raise BristolError(f"line {line_no}: {what} must be integers, got {' '.join(tokens)!r}") from None


def parse_bristol(text: str, garbler_values: int | None = None, name: str = "") -> Circuit:
    """A :class:`Circuit` from Bristol Fashion text.

    ``garbler_values``: how many of the leading input values belong to the garbler (the rest
    are the evaluator's); default half of them rounded down, at least one.
    """
    lines = [(i + 1, ln.split()) for i, ln in enumerate(text.splitlines())]
    lines = [(i, t) for i, t in lines if t]
    if len(lines) < 3:
        raise BristolError("a Bristol Fashion file needs three header lines")
    (l1, h1), (l2, h2), (l3, h3) = lines[:3]
    if len(h1) != 2:
        raise BristolError(f"line {l1}: expected 'ngates nwires', got {' '.join(h1)!r}")
    n_gates, n_wires = _ints(h1, l1, "ngates and nwires")
    ni = _ints(h2, l2, "input counts")
    no = _ints(h3, l3, "output counts")
    if not ni or len(ni) != ni[0] + 1 or min(ni) < 0:
        raise BristolError(f"line {l2}: expected 'niv n_1 ... n_niv'")
    if not no or len(no) != no[0] + 1 or min(no) < 0:
        raise BristolError(f"line {l3}: expected 'nov m_1 ... m_nov'")
    in_sizes, out_sizes = ni[1:], no[1:]
    n_in, n_out = sum(in_sizes), sum(out_sizes)
    if n_in > n_wires or n_out > n_wires:
        raise BristolError(f"line {l1}: {n_wires} wires cannot hold {n_in} inputs / {n_out} outputs")
    body = lines[3:]
    if len(body) != n_gates:
        raise BristolError(f"header announces {n_gates} gates, file has {len(body)} gate lines")
    niv = len(in_sizes)
    if garbler_values is None:
        garbler_values = max(1, niv // 2) if niv else 0
    if not 0 <= garbler_values <= niv:
        raise BristolError(f"garbler_values must be in [0, {niv}], got {garbler_values}")
    n_garbler = sum(in_sizes[:garbler_values])

    alias: dict[int, int] = {}  # EQW: wire -> the wire it copies
    consts: dict[int, int] = {}  # EQ: wire -> 0/1
    rows: list[tuple[int, int, int, int]] = []
    extra = n_wires  # fresh wires for materialised constants
    const_wire: dict[int, int] = {}

    def wire(w: int, line_no: int) -> int:
        if not 0 <= w < n_wires:
            raise BristolError(f"line {line_no}: wire {w} out of range [0, {n_wires})")
        return alias.get(w, w)

    def materialise(v: int, line_no: int) -> int:
        nonlocal extra
        if v in const_wire:
            return const_wire[v]
        if n_in == 0:
            raise BristolError(f"line {line_no}: constants need at least one input wire")
        if 0 not in const_wire:
            rows.append((OP_XOR, 0, 0, extra))
            const_wire[0] = extra
            extra += 1
        if v == 1:
            rows.append((OP_INV, const_wire[0], 0, extra))
            const_wire[1] = extra
            extra += 1
        return const_wire[v]

    def operand(w: int, line_no: int) -> int:
        w = wire(w, line_no)
        return materialise(consts[w], line_no) if w in consts else w

    for line_no, tok in body:
        op = tok[-1].upper()
        nums = _ints(tok[:-1], line_no, "gate fields")
        if len(nums) < 2:
            raise BristolError(f"line {line_no}: gate line too short")
        nin, nout, args = nums[0], nums[1], nums[2:]
        if len(args) != nin + nout:
            raise BristolError(f"line {line_no}: {nin} inputs + {nout} outputs announced, {len(args)} wires given")
        ins, outs = args[:nin], args[nin:]
        for w in outs:
            if not n_in <= w < n_wires:
                raise BristolError(f"line {line_no}: output wire {w} must be in [{n_in}, {n_wires})")
        if op in ("XOR", "AND") and (nin, nout) == (2, 1):
            code = OP_XOR if op == "XOR" else OP_AND
            rows.append((code, operand(ins[0], line_no), operand(ins[1], line_no), outs[0]))
        elif op == "INV" and (nin, nout) == (1, 1):
            rows.append((OP_INV, operand(ins[0], line_no), 0, outs[0]))
        elif op == "EQW" and (nin, nout) == (1, 1):
            src = wire(ins[0], line_no)
            if src in consts:
                consts[outs[0]] = consts[src]
            else:
                alias[outs[0]] = src
        elif op == "EQ" and (nin, nout) == (1, 1):
            if ins[0] not in (0, 1):
                raise BristolError(f"line {line_no}: EQ takes a constant 0 or 1, got {ins[0]}")
            consts[outs[0]] = ins[0]
        elif op == "MAND" and nin == 2 * nout and nout >= 1:
            for j in range(nout):
                rows.append((OP_AND, operand(ins[j], line_no), operand(ins[nout + j], line_no), outs[j]))
        else:
            raise BristolError(f"line {line_no}: unsupported gate {nin} {nout} {op}")

    outputs = []
    for w in range(n_wires - n_out, n_wires):
        w = alias.get(w, w)
        outputs.append(materialise(consts[w], body[-1][0] if body else l3) if w in consts else w)
    gates = np.array(rows, dtype=np.int32).reshape(-1, 4)
    try:
        return Circuit(gates, n_garbler, n_in - n_garbler, outputs, n_wires=extra, name=name)
    except ValueError as e:
        raise BristolError(f"invalid circuit: {e}") from None


def read_bristol(path, garbler_values: int | None = None) -> Circuit:
    """:func:`parse_bristol` on a file."""
    with open(path, encoding="ascii") as f:
        text = f.read()
    return parse_bristol(text, garbler_values, name=os.path.basename(str(path)))
