"""Boolean circuits for the garbled-circuit engine: the :class:`Circuit` container, a
:class:`CircuitBuilder` with constant folding, and circuits built programmatically.

Format (what :func:`safelight.gc.garble` and the C++ engine take):

* ``gates``: int32 array ``(G, 4)``, rows ``[op, in0, in1, out]`` with op 0 = XOR, 1 = AND,
  2 = INV (``in1`` ignored), in topological order, every wire written once;
* wires ``0 .. n_inputs - 1`` are the inputs, the garbler's first, then the evaluator's;
* ``outputs``: int32 wire ids.

Numbers are little-endian bit vectors (bit 0 first) of k bits, two's complement when signed.
Arithmetic secret shares ``x0 + x1 mod 2^k`` enter as the garbler's ``x0`` and the
evaluator's ``x1``. Costs are counted in AND gates (XOR and INV are free).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _core

OP_XOR, OP_AND, OP_INV = 0, 1, 2
_OP_NAMES = {OP_XOR: "XOR", OP_AND: "AND", OP_INV: "INV"}


class Circuit:
    """A validated Boolean circuit.

    ``gates`` int32 ``(G, 4)``; ``n_garbler_inputs`` + ``n_evaluator_inputs`` input wires
    (garbler's first); ``outputs`` int32 wire ids; ``n_wires`` (default: one more than the
    largest wire id used).
    """

    def __init__(
        self, gates, n_garbler_inputs: int, n_evaluator_inputs: int, outputs, n_wires: int | None = None, name: str = ""
    ):
        gates = np.ascontiguousarray(np.asarray(gates, dtype=np.int64).reshape(-1, 4))
        outputs = np.ascontiguousarray(np.asarray(outputs, dtype=np.int64).reshape(-1))
        if n_garbler_inputs < 0 or n_evaluator_inputs < 0:
            raise ValueError("input counts must be >= 0")
        n_inputs = n_garbler_inputs + n_evaluator_inputs
        used = [n_inputs - 1]
        if gates.size:
            used.append(int(gates[:, [1, 2, 3]].max()))
        if outputs.size:
            used.append(int(outputs.max()))
        if n_wires is None:
            n_wires = max(used) + 1
        for a in (gates, outputs):
            if a.size and (a.min() < 0 or a.max() >= 2**31):
                raise ValueError("gate fields and wire ids must be in [0, 2^31)")
        if not 0 <= n_wires < 2**31:
            raise ValueError(f"n_wires must be in [0, 2^31), got {n_wires}")
        self.gates = gates.astype(np.int32)
        self.outputs = outputs.astype(np.int32)
        self.gates.flags.writeable = False
        self.outputs.flags.writeable = False
        self.n_garbler_inputs = int(n_garbler_inputs)
        self.n_evaluator_inputs = int(n_evaluator_inputs)
        self.n_wires = int(n_wires)
        self.name = name
        # Validates (topological order, single assignment, ranges) in the engine.
        info = _core.gc_plan_info(self.gates, self.outputs, self.n_wires, self.n_inputs)
        self._n_and = int(info["n_and"])
        self.n_live_wires = int(info["n_slots"])

    @property
    def n_inputs(self) -> int:
        return self.n_garbler_inputs + self.n_evaluator_inputs

    @property
    def n_outputs(self) -> int:
        return int(self.outputs.shape[0])

    @property
    def n_gates(self) -> int:
        return int(self.gates.shape[0])

    @property
    def n_and(self) -> int:
        """AND gates: each costs two ciphertexts (32 bytes) per instance."""
        return self._n_and

    @property
    def garbler_wires(self) -> range:
        return range(0, self.n_garbler_inputs)

    @property
    def evaluator_wires(self) -> range:
        return range(self.n_garbler_inputs, self.n_inputs)

    def table_bytes(self, batch: int = 1) -> int:
        """Bytes of garbled tables for ``batch`` instances (32 per AND gate and instance)."""
        return 32 * self.n_and * batch

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (
            f"<Circuit{label}: {self.n_garbler_inputs}+{self.n_evaluator_inputs} inputs, "
            f"{self.n_outputs} outputs, {self.n_gates} gates, {self.n_and} AND>"
        )

    def evaluate_plain(self, inputs) -> np.ndarray:
        """Clear evaluation: ``inputs`` bits ``(n_inputs, batch)`` (or ``(n_inputs,)``) ->
        uint8 ``(n_outputs, batch)`` (or ``(n_outputs,)``)."""
        bits = np.asarray(inputs)
        single = bits.ndim == 1
        if single:
            bits = bits[:, None]
        if bits.ndim != 2 or bits.shape[0] != self.n_inputs:
            raise ValueError(f"inputs must have shape ({self.n_inputs}, batch), got {bits.shape}")
        wires = np.zeros((self.n_wires, bits.shape[1]), dtype=np.uint8)
        wires[: self.n_inputs] = bits.astype(np.uint8) & 1
        for op, a, b, c in self.gates.tolist():
            if op == OP_XOR:
                np.bitwise_xor(wires[a], wires[b], out=wires[c])
            elif op == OP_AND:
                np.bitwise_and(wires[a], wires[b], out=wires[c])
            else:
                np.bitwise_xor(wires[a], 1, out=wires[c])
        out = wires[self.outputs]
        return out[:, 0] if single else out

    def evaluate_plain_split(self, garbler_bits, evaluator_bits) -> np.ndarray:
        """:meth:`evaluate_plain` with the two parties' input bits given apart."""
        g = np.asarray(garbler_bits, dtype=np.uint8)
        e = np.asarray(evaluator_bits, dtype=np.uint8)
        if g.ndim == 1 and e.ndim == 2:
            g = g.reshape(-1, e.shape[1])
        if e.ndim == 1 and g.ndim == 2:
            e = e.reshape(-1, g.shape[1])
        return self.evaluate_plain(np.concatenate([g, e], axis=0))


# ---------------------------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------------------------

Bits = list  # a little-endian list of wire handles


class CircuitBuilder:
    """Builds a :class:`Circuit` gate by gate with constant folding and structural hashing.

    Wire handles are ints; the constants are :attr:`ZERO` and :attr:`ONE` (they cost nothing
    and fold away: ``and_(x, ZERO)`` is ``ZERO``, ``xor(x, ONE)`` is ``inv(x)``, ...). Inputs
    may be declared in any order: :meth:`build` numbers the garbler's inputs first, then the
    evaluator's, then the gates, and drops gates that no output depends on.
    """

    ZERO = -1
    ONE = -2

    def __init__(self):
        self._kind: list[str] = []  # per handle: "g" / "e" / "x" (gate output)
        self._gates: list[tuple[int, int, int, int]] = []  # (op, a, b, out handle)
        self._cache: dict[tuple[int, int, int], int] = {}
        self._inv_of: dict[int, int] = {}

    # -- wires -------------------------------------------------------------------------------

    def _new(self, kind: str) -> int:
        self._kind.append(kind)
        return len(self._kind) - 1

    def garbler_input(self, n: int = 1) -> Bits:
        """``n`` new garbler input wires."""
        return [self._new("g") for _ in range(n)]

    def evaluator_input(self, n: int = 1) -> Bits:
        """``n`` new evaluator input wires."""
        return [self._new("e") for _ in range(n)]

    def const(self, bit) -> int:
        return self.ONE if int(bit) & 1 else self.ZERO

    def const_bits(self, value: int, k: int) -> Bits:
        """The k-bit two's complement constant ``value`` (little-endian)."""
        value %= 1 << k
        return [self.const((value >> i) & 1) for i in range(k)]

    @classmethod
    def is_const(cls, w: int) -> bool:
        return w < 0

    def _check(self, w: int) -> None:
        if not isinstance(w, (int, np.integer)) or w < self.ONE or w >= len(self._kind):
            raise ValueError(f"not a wire of this builder: {w!r}")

    def _gate(self, op: int, a: int, b: int) -> int:
        key = (op, min(a, b), max(a, b)) if op != OP_INV else (op, a, a)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out = self._new("x")
        self._gates.append((op, a, b, out))
        self._cache[key] = out
        return out

    # -- gates -------------------------------------------------------------------------------

    def xor(self, a: int, b: int) -> int:
        self._check(a)
        self._check(b)
        if a < 0 and b < 0:
            return self.const((a == self.ONE) ^ (b == self.ONE))
        if a < 0:
            a, b = b, a
        if b == self.ZERO:
            return a
        if b == self.ONE:
            return self.inv(a)
        if a == b:
            return self.ZERO
        if self._inv_of.get(a) == b or self._inv_of.get(b) == a:
            return self.ONE
        return self._gate(OP_XOR, a, b)

    def and_(self, a: int, b: int) -> int:
        self._check(a)
        self._check(b)
        if a < 0 and b < 0:
            return self.const((a == self.ONE) & (b == self.ONE))
        if a < 0:
            a, b = b, a
        if b == self.ZERO:
            return self.ZERO
        if b == self.ONE or a == b:
            return a
        if self._inv_of.get(a) == b or self._inv_of.get(b) == a:
            return self.ZERO
        return self._gate(OP_AND, a, b)

    def inv(self, a: int) -> int:
        self._check(a)
        if a < 0:
            return self.ONE if a == self.ZERO else self.ZERO
        if a in self._inv_of:
            return self._inv_of[a]
        out = self._gate(OP_INV, a, a)
        self._inv_of[out] = a
        self._inv_of.setdefault(a, out)
        return out

    def or_(self, a: int, b: int) -> int:
        """a | b = a ^ b ^ (a & b): one AND."""
        return self.xor(self.xor(a, b), self.and_(a, b))

    def mux(self, s: int, a: int, b: int) -> int:
        """``b if s else a`` = a ^ (s & (a ^ b)): one AND."""
        return self.xor(a, self.and_(s, self.xor(a, b)))

    # -- k-bit gadgets (little-endian bit lists) ---------------------------------------------

    def mux_bits(self, s: int, xs: Bits, ys: Bits) -> Bits:
        """``ys if s else xs``, bitwise: one AND per non-constant bit pair."""
        _same_width(xs, ys)
        return [self.mux(s, x, y) for x, y in zip(xs, ys)]

    def add(self, xs: Bits, ys: Bits, carry_in: int | None = None, carry_out: bool = False) -> Bits:
        """Ripple-carry ``xs + ys (+ carry_in) mod 2^k``: k - 1 ANDs (k with ``carry_out``,
        which appends the carry as bit k). Full adder with one AND:
        carry' = c ^ ((a ^ c) & (b ^ c))."""
        _same_width(xs, ys)
        c = self.ZERO if carry_in is None else carry_in
        out = []
        k = len(xs)
        for i, (a, b) in enumerate(zip(xs, ys)):
            t = self.xor(a, c)
            out.append(self.xor(t, b))
            if i < k - 1 or carry_out:
                c = self.xor(c, self.and_(t, self.xor(b, c)))
        if carry_out:
            out.append(c)
        return out

    def sub(self, xs: Bits, ys: Bits) -> Bits:
        """``xs - ys mod 2^k`` = xs + ~ys + 1: k - 1 ANDs."""
        return self.add(xs, [self.inv(y) for y in ys], carry_in=self.ONE)

    def neg(self, xs: Bits) -> Bits:
        """``-xs mod 2^k``."""
        return self.sub([self.ZERO] * len(xs), xs)

    def carry_ge(self, xs: Bits, ys: Bits) -> int:
        """Unsigned ``xs >= ys``: the carry out of xs + ~ys + 1 (k ANDs, fewer with constants)."""
        _same_width(xs, ys)
        c = self.ONE
        for a, b in zip(xs, ys):
            nb = self.inv(b)
            c = self.xor(c, self.and_(self.xor(a, c), self.xor(nb, c)))
        return c

    def lt(self, xs: Bits, ys: Bits, signed: bool = False) -> int:
        """``xs < ys`` (unsigned, or two's complement with ``signed``): k ANDs."""
        if signed:
            xs = xs[:-1] + [self.inv(xs[-1])]
            ys = ys[:-1] + [self.inv(ys[-1])]
        return self.inv(self.carry_ge(xs, ys))

    def gt(self, xs: Bits, ys: Bits, signed: bool = False) -> int:
        return self.lt(ys, xs, signed)

    def eq(self, xs: Bits, ys: Bits) -> int:
        """``xs == ys``: k - 1 ANDs (an AND tree over the XNORs)."""
        _same_width(xs, ys)
        terms = [self.inv(self.xor(a, b)) for a, b in zip(xs, ys)]
        while len(terms) > 1:
            nxt = [self.and_(terms[i], terms[i + 1]) for i in range(0, len(terms) - 1, 2)]
            if len(terms) % 2:
                nxt.append(terms[-1])
            terms = nxt
        return terms[0] if terms else self.ONE

    def relu(self, xs: Bits) -> Bits:
        """``x * (1 - sign(x))`` for two's complement x: k - 1 ANDs (the top bit is 0)."""
        keep = self.inv(xs[-1])
        return [self.and_(x, keep) for x in xs[:-1]] + [self.ZERO]

    def clip(self, xs: Bits, lo: int, hi: int) -> Bits:
        """``min(max(x, lo), hi)`` for signed x and public ``lo <= hi`` (k-bit values)."""
        k = len(xs)
        lo_b, hi_b = self.const_bits(lo, k), self.const_bits(hi, k)
        below = self.lt(xs, lo_b, signed=True)
        above = self.lt(hi_b, xs, signed=True)
        return self.mux_bits(below, self.mux_bits(above, xs, hi_b), lo_b)

    def compare_swap(self, xs: Bits, ys: Bits, signed: bool = False) -> tuple[Bits, Bits]:
        """``(min, max)`` of two k-bit values: 2k ANDs."""
        swap = self.lt(ys, xs, signed)
        d = [self.and_(swap, self.xor(a, b)) for a, b in zip(xs, ys)]
        return ([self.xor(a, t) for a, t in zip(xs, d)], [self.xor(b, t) for b, t in zip(ys, d)])

    def max_argmax(self, values: Sequence[Bits], signed: bool = False) -> tuple[Bits, Bits]:
        """Tournament tree over n k-bit values -> ``(max, index of the first maximum)``;
        the index has ``max(1, ceil(log2 n))`` bits. (n - 1) comparisons and muxes."""
        n = len(values)
        if n == 0:
            raise ValueError("max_argmax needs at least one value")
        m = max(1, (n - 1).bit_length())
        level = [(list(v), self.const_bits(i, m)) for i, v in enumerate(values)]
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level) - 1, 2):
                (lv, li), (rv, ri) = level[i], level[i + 1]
                right = self.lt(lv, rv, signed)  # strictly larger on the right: ties keep left
                nxt.append((self.mux_bits(right, lv, rv), self.mux_bits(right, li, ri)))
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        return level[0]

    # -- output ------------------------------------------------------------------------------

    def build(self, outputs: Sequence[int], name: str = "", prune: bool = True) -> Circuit:
        """The circuit with the given output wires (constants are materialised as
        ``XOR(w, w)`` / ``INV`` of it on the first input wire)."""
        outputs = [int(w) for w in outputs]
        for w in outputs:
            self._check(w)
        g_in = [h for h, k in enumerate(self._kind) if k == "g"]
        e_in = [h for h, k in enumerate(self._kind) if k == "e"]
        gates = list(self._gates)
        if any(w < 0 for w in outputs):
            if not g_in and not e_in:
                raise ValueError("a constant output needs at least one input wire")
            base = (g_in or e_in)[0]
            zero = len(self._kind)
            one = zero + 1
            gates += [(OP_XOR, base, base, zero), (OP_INV, zero, zero, one)]
            outputs = [zero if w == self.ZERO else one if w == self.ONE else w for w in outputs]
        if prune:
            live = set(outputs)
            kept = []
            for g in reversed(gates):
                if g[3] in live:
                    kept.append(g)
                    live.add(g[1])
                    live.add(g[2])
            gates = kept[::-1]
        number = {}
        for i, h in enumerate(g_in + e_in):
            number[h] = i
        base = len(g_in) + len(e_in)
        rows = []
        for i, (op, a, b, out) in enumerate(gates):
            number[out] = base + i
            rows.append((op, number[a], number[b] if op != OP_INV else 0, base + i))
        table = np.array(rows, dtype=np.int32).reshape(-1, 4)
        return Circuit(table, len(g_in), len(e_in), [number[w] for w in outputs], n_wires=base + len(gates), name=name)


def _same_width(xs, ys) -> None:
    if len(xs) != len(ys):
        raise ValueError(f"bit widths differ: {len(xs)} vs {len(ys)}")


# ---------------------------------------------------------------------------------------------
# Bit conversion helpers
# ---------------------------------------------------------------------------------------------


def to_bits(values, k: int) -> np.ndarray:
    """Integers (any int dtype, two's complement mod 2^k) -> uint8 bits ``(k, *shape)``,
    little-endian (row 0 = bit 0). ``k <= 64``."""
    if not 1 <= k <= 64:
        raise ValueError(f"k must be in [1, 64], got {k}")
    v = np.asarray(values)
    if v.dtype == object:
        v = np.array([int(x) % (1 << 64) for x in v.ravel()], dtype=np.uint64).reshape(v.shape)
    v = v.astype(np.uint64)  # wraps negatives mod 2^64
    shifts = np.arange(k, dtype=np.uint64).reshape((k,) + (1,) * v.ndim)
    return ((v[None] >> shifts) & np.uint64(1)).astype(np.uint8)


def from_bits(bits, signed: bool = False) -> np.ndarray:
    """uint8 bits ``(k, *shape)`` (little-endian) -> uint64 (or int64 when ``signed``)."""
    b = np.asarray(bits).astype(np.uint64) & np.uint64(1)
    k = b.shape[0]
    if not 1 <= k <= 64:
        raise ValueError(f"k must be in [1, 64], got {k}")
    shifts = np.arange(k, dtype=np.uint64).reshape((k,) + (1,) * (b.ndim - 1))
    v = np.bitwise_or.reduce(b << shifts, axis=0).astype(np.uint64)
    if not signed:
        return v
    if k < 64:
        top = np.uint64(1) << np.uint64(k - 1)
        v = (v ^ top) - top  # sign-extend (wraps mod 2^64)
    return v.view(np.int64)


# ---------------------------------------------------------------------------------------------
# Ready-made circuits. Inputs: the garbler's values first, then the evaluator's.
# ---------------------------------------------------------------------------------------------


def _shares(b: CircuitBuilder, k: int) -> tuple[Bits, Bits]:
    return b.garbler_input(k), b.evaluator_input(k)


def adder(k: int) -> Circuit:
    """``x + y mod 2^k``: garbler x, evaluator y (k bits each); k - 1 ANDs."""
    b = CircuitBuilder()
    x, y = _shares(b, k)
    return b.build(b.add(x, y), name=f"add{k}")


def multiplier(k: int) -> Circuit:
    """``x * y mod 2^k`` by shift and add: garbler x, evaluator y; about k^2 ANDs (a deep,
    AND-heavy circuit: the workload of the end-to-end garbling benchmark)."""
    b = CircuitBuilder()
    x, y = _shares(b, k)
    acc = [b.and_(xj, y[0]) for xj in x]
    for i in range(1, k):
        row = [b.and_(x[j], y[i]) for j in range(k - i)]
        acc = acc[:i] + b.add(acc[i:], row)
    return b.build(acc, name=f"mul{k}")


def subtractor(k: int) -> Circuit:
    """``x - y mod 2^k``: garbler x, evaluator y; k - 1 ANDs."""
    b = CircuitBuilder()
    x, y = _shares(b, k)
    return b.build(b.sub(x, y), name=f"sub{k}")


def comparator(k: int, signed: bool = False) -> Circuit:
    """One bit ``x < y``: garbler x, evaluator y; k ANDs."""
    b = CircuitBuilder()
    x, y = _shares(b, k)
    return b.build([b.lt(x, y, signed)], name=f"lt{k}{'s' if signed else 'u'}")


def msb_of_sum(k: int, masked: bool = False) -> Circuit:
    """Sign (most significant bit) of ``x0 + x1 mod 2^k`` from arithmetic shares (garbler x0,
    evaluator x1): k - 1 ANDs. With ``masked`` the garbler adds one more input bit r and the
    output is ``msb ^ r`` (an XOR share of the sign; free)."""
    b = CircuitBuilder()
    x0, x1 = _shares(b, k)
    s = b.add(x0, x1)[-1]
    if masked:
        s = b.xor(s, b.garbler_input(1)[0])
    return b.build([s], name=f"msb{k}")


def _masked_out(b: CircuitBuilder, bits: Bits, masked: bool) -> Bits:
    """With ``masked``: the garbler inputs k bits r (after its share) and the output is
    ``value - r mod 2^k`` (so r and the output are arithmetic shares of the value)."""
    if not masked:
        return bits
    r = b.garbler_input(len(bits))
    return b.sub(bits, r)


def relu(k: int, masked: bool = False) -> Circuit:
    """``ReLU(x0 + x1)`` bits (= x * (1 - sign)) from arithmetic shares: 2k - 2 ANDs
    (3k - 3 with ``masked``: garbler's mask r last, output relu - r)."""
    b = CircuitBuilder()
    x0, x1 = _shares(b, k)
    return b.build(_masked_out(b, b.relu(b.add(x0, x1)), masked), name=f"relu{k}")


def clip(k: int, lo: int, hi: int, masked: bool = False) -> Circuit:
    """``min(max(x0 + x1, lo), hi)`` (signed, public bounds lo <= hi) from shares."""
    if lo > hi:
        raise ValueError(f"clip needs lo <= hi, got lo={lo}, hi={hi}")
    lim = 1 << (k - 1)
    if not (-lim <= lo < lim and -lim <= hi < lim):
        raise ValueError(f"bounds must fit in signed {k}-bit values")
    b = CircuitBuilder()
    x0, x1 = _shares(b, k)
    return b.build(_masked_out(b, b.clip(b.add(x0, x1), lo, hi), masked), name=f"clip{k}")


def relu6(k: int, frac_bits: int = 0, masked: bool = False) -> Circuit:
    """``clip(x0 + x1, 0, 6 * 2^frac_bits)``: ReLU6 on fixed-point shares."""
    return clip(k, 0, 6 << frac_bits, masked=masked)


def mux(k: int) -> Circuit:
    """``b if s else a``: garbler a, b (k bits each), evaluator s (1 bit); k ANDs."""
    bl = CircuitBuilder()
    a, c = bl.garbler_input(k), bl.garbler_input(k)
    s = bl.evaluator_input(1)[0]
    return bl.build(bl.mux_bits(s, a, c), name=f"mux{k}")


def compare_swap(k: int, signed: bool = False) -> Circuit:
    """``(min(x, y), max(x, y))`` (2k output bits, min first): garbler x, evaluator y; 2k ANDs."""
    b = CircuitBuilder()
    x, y = _shares(b, k)
    lo, hi = b.compare_swap(x, y, signed)
    return b.build(lo + hi, name=f"cswap{k}")


def _shared_values(b: CircuitBuilder, n: int, k: int) -> list[Bits]:
    x0 = [b.garbler_input(k) for _ in range(n)]
    x1 = [b.evaluator_input(k) for _ in range(n)]
    return [b.add(u, v) for u, v in zip(x0, x1)]


def maximum(n: int, k: int, signed: bool = True) -> Circuit:
    """Max of n values given as shares (garbler value shares 0..n-1, then the evaluator's):
    n(k-1) ANDs for the additions, about 2k(n-1) for the tree."""
    b = CircuitBuilder()
    value, _ = b.max_argmax(_shared_values(b, n, k), signed)
    return b.build(value, name=f"max{n}x{k}")


def argmax(n: int, k: int, signed: bool = True, with_value: bool = False) -> Circuit:
    """Index (``max(1, ceil(log2 n))`` bits) of the first maximum of n shared values; with
    ``with_value`` the max value bits follow the index bits."""
    b = CircuitBuilder()
    value, index = b.max_argmax(_shared_values(b, n, k), signed)
    return b.build(index + (value if with_value else []), name=f"argmax{n}x{k}")


def op_name(op: int) -> str:
    return _OP_NAMES.get(int(op), str(op))
