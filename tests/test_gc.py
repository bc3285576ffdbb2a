"""Garbled-circuit engine: half-gates garbling / evaluation on every ISA path.

* the hash H(x, T) = AES_K(2x ^ T) ^ 2x ^ T and a pure-Python half-gates garbler pin the
  construction byte for byte (tables, output zero-labels);
* random circuits (hypothesis) garbled and evaluated decode to the clear evaluation, and
  every ISA path writes the same bytes as the scalar reference;
* chunked garbling (instance_offset) and any thread count give the one-shot bytes;
* the ready-made circuits equal numpy arithmetic on random and adversarial values;
* the Bristol Fashion reader; bad arguments give clear errors.
"""

from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from kernel_helpers import with_isa
from safelight import _core, gc
from safelight.gc import CircuitBuilder, circuits

pytestmark = pytest.mark.kernels

DATA = Path(__file__).parent / "data"
M128 = (1 << 128) - 1
PI_KEY = bytes.fromhex("243F6A8885A308D313198A2E03707344")


# ---------------------------------------------------------------------------------------------
# Reference model (pure Python integers)
# ---------------------------------------------------------------------------------------------


def to_int(label) -> int:
    return int(label[0]) | (int(label[1]) << 64)


def to_words(v: int):
    return [v & (2**64 - 1), v >> 64]


def dbl(x: int) -> int:
    return ((x << 1) & M128) ^ (0x87 if x >> 127 else 0)


def ref_hash_many(xs, tweaks):
    """H(x, T) for lists of 128-bit ints, with one AES-ECB call."""
    ks = [dbl(x) ^ t for x, t in zip(xs, tweaks)]
    enc = Cipher(algorithms.AES(PI_KEY), modes.ECB()).encryptor()
    blob = enc.update(b"".join(k.to_bytes(16, "little") for k in ks))
    return [int.from_bytes(blob[16 * i : 16 * i + 16], "little") ^ k for i, k in enumerate(ks)]


def ref_garble(circ, input_zero, delta, offset):
    """Half-gates garbler straight from the paper, instance by instance."""
    d = to_int(delta)
    n_in, batch = input_zero.shape[:2]
    tables = np.zeros((circ.n_and, batch, 2, 2), dtype=np.uint64)
    out = np.zeros((circ.n_outputs, batch, 2), dtype=np.uint64)
    for i in range(batch):
        w = {j: to_int(input_zero[j, i]) for j in range(n_in)}
        k = 0
        for op, a, b, c in circ.gates.tolist():
            if op == 0:
                w[c] = w[a] ^ w[b]
            elif op == 2:
                w[c] = w[a] ^ d
            else:
                A, B = w[a], w[b]
                pa, pb = A & 1, B & 1
                tg = (offset + i) | ((2 * k) << 64)
                te = (offset + i) | ((2 * k + 1) << 64)
                ha0, ha1, hb0, hb1 = ref_hash_many([A, A ^ d, B, B ^ d], [tg, tg, te, te])
                TG = ha0 ^ ha1 ^ (d if pb else 0)
                WG = ha0 ^ (TG if pa else 0)
                TE = hb0 ^ hb1 ^ A
                WE = hb0 ^ ((TE ^ A) if pb else 0)
                w[c] = WG ^ WE
                tables[k, i, 0] = to_words(TG)
                tables[k, i, 1] = to_words(TE)
                k += 1
        for j, o in enumerate(circ.outputs.tolist()):
            out[j, i] = to_words(w[o])
    return tables, out


def run_gc(circ, bits, seed=0, offset=0, threads=0):
    """Garble + encode + evaluate + decode on the active ISA; returns (bits, tables, out_zero)."""
    batch = bits.shape[1]
    delta = gc.random_delta(seed)
    zero = gc.random_labels(circ.n_inputs, batch, seed=seed + 1)
    tables, out_zero = gc.garble(circ, zero, delta, offset, threads=threads)
    labels = gc.encode(zero, delta, bits)
    out = gc.evaluate(circ, labels, tables, offset, threads=threads)
    # every output label is one of the two labels of its wire
    ok = (out == out_zero) | (out == (out_zero ^ delta))
    assert ok.all()
    return gc.decode(out, out_zero), tables, out_zero


def random_bits(n, batch, seed):
    return np.random.default_rng(seed).integers(0, 2, (n, batch), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Hash and reference garbler
# ---------------------------------------------------------------------------------------------


def test_fixed_key_is_pi():
    assert _core.gc_fixed_key() == PI_KEY


@pytest.mark.parametrize("n", [1, 3, 4, 17])
def test_hash_matches_aes_reference(isa, n):
    rng = np.random.default_rng(n)
    x = rng.integers(0, 2**64, (n, 2), dtype=np.uint64)
    x[0] = [2**64 - 1, 2**64 - 1]  # top bit set: reduction by 0x87
    out = np.zeros_like(x)
    _core.gc_hash(x, 2**64 - n, 12345, out)
    want = ref_hash_many([to_int(r) for r in x], [(2**64 - n + i) | (12345 << 64) for i in range(n)])
    assert [to_int(r) for r in out] == want


@pytest.mark.parametrize("batch", [1, 5, 9])
def test_garbling_matches_python_half_gates(isa, batch):
    b = CircuitBuilder()
    x, y = b.garbler_input(3), b.evaluator_input(3)
    t = b.and_(x[0], y[0])
    u = b.and_(b.inv(t), b.xor(x[1], y[1]))
    v = b.and_(u, b.inv(x[2]))
    circ = b.build([t, u, v, b.xor(v, y[2]), b.inv(u)])
    zero = gc.random_labels(circ.n_inputs, batch, seed=7)
    delta = gc.random_delta(8)
    tables, out_zero = gc.garble(circ, zero, delta, instance_offset=1000)
    ref_t, ref_o = ref_garble(circ, zero, delta, 1000)
    np.testing.assert_array_equal(tables, ref_t)
    np.testing.assert_array_equal(out_zero, ref_o)


# ---------------------------------------------------------------------------------------------
# Random circuits
# ---------------------------------------------------------------------------------------------


@st.composite
def random_circuits(draw):
    n_g = draw(st.integers(0, 5))
    n_e = draw(st.integers(0 if n_g else 1, 5))
    n_in = n_g + n_e
    n_gates = draw(st.integers(0, 40))
    rows = []
    for g in range(n_gates):
        op = draw(st.sampled_from([0, 1, 1, 2]))
        a = draw(st.integers(0, n_in + g - 1))
        b = draw(st.integers(0, n_in + g - 1))
        rows.append((op, a, b if op != 2 else 0, n_in + g))
    n_wires = n_in + n_gates
    outputs = draw(st.lists(st.integers(0, n_wires - 1), min_size=1, max_size=8))
    return gc.Circuit(np.array(rows, dtype=np.int32).reshape(-1, 4), n_g, n_e, outputs)


@given(circ=random_circuits(), batch=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_random_circuits_all_isas(circ, batch, seed):
    bits = random_bits(circ.n_inputs, batch, seed)
    want = circ.evaluate_plain(bits)
    ref = None
    for isa in _core.available_isas():
        got, tables, out_zero = with_isa(isa, lambda: run_gc(circ, bits, seed % 1000, seed))
        np.testing.assert_array_equal(got, want, err_msg=isa)
        if ref is None:
            ref = (tables, out_zero)
        else:  # byte-identical to the scalar reference
            np.testing.assert_array_equal(tables, ref[0], err_msg=isa)
            np.testing.assert_array_equal(out_zero, ref[1], err_msg=isa)


def test_large_batch_crosses_chunks_and_threads(isa):
    circ = circuits.adder(16)
    batch = 5003 if isa != "scalar" else 1203
    bits = random_bits(circ.n_inputs, batch, 1)
    got, tables, out_zero = run_gc(circ, bits, 3)
    np.testing.assert_array_equal(got, circ.evaluate_plain(bits))
    for threads in (1, 2, 3):
        _, t2, o2 = run_gc(circ, bits, 3, threads=threads)
        np.testing.assert_array_equal(t2, tables)
        np.testing.assert_array_equal(o2, out_zero)
    if isa != "scalar":
        ref_t, ref_o = with_isa(
            "scalar",
            lambda: gc.garble(circ, gc.random_labels(circ.n_inputs, batch, seed=4)[:, :301], gc.random_delta(3)),
        )
        np.testing.assert_array_equal(tables[:, :301], ref_t)
        np.testing.assert_array_equal(out_zero[:, :301], ref_o)


@pytest.mark.parametrize("cuts", [[0, 1, 5, 64, 100], [0, 17, 33, 100], [0, 50, 100]])
def test_chunked_garbling_equals_one_shot(isa, cuts):
    circ = circuits.relu(8)
    batch = cuts[-1]
    zero = gc.random_labels(circ.n_inputs, batch, seed=11)
    delta = gc.random_delta(12)
    base = 2**40
    tables, out_zero = gc.garble(circ, zero, delta, base)
    bits = random_bits(circ.n_inputs, batch, 13)
    labels = gc.encode(zero, delta, bits)
    out = gc.evaluate(circ, labels, tables, base)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        t, o = gc.garble(circ, np.ascontiguousarray(zero[:, lo:hi]), delta, base + lo)
        np.testing.assert_array_equal(t, tables[:, lo:hi])
        np.testing.assert_array_equal(o, out_zero[:, lo:hi])
        e = gc.evaluate(circ, np.ascontiguousarray(labels[:, lo:hi]), np.ascontiguousarray(tables[:, lo:hi]), base + lo)
        np.testing.assert_array_equal(e, out[:, lo:hi])
    # a wrong offset garbles differently, and evaluation with it decodes garbage
    t_wrong, _ = gc.garble(circ, zero, delta, base + 1)
    assert not np.array_equal(t_wrong, tables)


def test_long_xor_chains_and_flips(isa):
    """XOR combinations past the operand limit are materialised; INV flips fold into them."""
    b = CircuitBuilder()
    xs = b.garbler_input(9) + b.evaluator_input(9)
    acc, outs = xs[0], []
    for i, x in enumerate(xs[1:]):
        acc = b.xor(acc, x)
        if i % 3 == 0:
            acc = b.inv(acc)
        outs.append(acc)
    t = b.and_(acc, b.xor(xs[3], b.inv(outs[5])))
    u = b.and_(b.inv(t), b.xor(outs[10], outs[2]))
    circ = b.build(outs + [t, u, b.inv(u), xs[4], xs[4], b.xor(t, t)], prune=False)
    bits = random_bits(circ.n_inputs, 37, 2)
    got, tables, out_zero = run_gc(circ, bits, 9)
    np.testing.assert_array_equal(got, circ.evaluate_plain(bits))
    ref = with_isa("scalar", lambda: run_gc(circ, bits, 9))
    np.testing.assert_array_equal(tables, ref[1])
    np.testing.assert_array_equal(out_zero, ref[2])


def test_plan_keeps_few_live_labels():
    circ = circuits.adder(32)
    assert circ.n_live_wires <= 8  # XORs folded, sums written straight to the output rows
    info = _core.gc_plan_info(circ.gates, circ.outputs, circ.n_wires, circ.n_inputs, 10**6)
    assert info["n_and"] == 31 and info["chunk"] >= 64
    assert _core.gc_plan_info(circ.gates, circ.outputs, circ.n_wires, 64, 10, 0)["threads"] == 1


def test_tweaks_differ_per_instance_and_gate():
    circ = circuits.adder(4)
    zero = np.repeat(gc.random_labels(circ.n_inputs, 1, seed=1), 8, axis=1)  # same labels
    tables, out_zero = gc.garble(circ, zero, gc.random_delta(2))
    rows = {tuple(tables[k, i].ravel()) for k in range(circ.n_and) for i in range(8)}
    assert len(rows) == circ.n_and * 8


def test_empty_batch_and_gateless_circuit(isa):
    circ = gc.Circuit(np.zeros((0, 4), np.int32), 2, 1, [2, 0, 0])
    bits = random_bits(3, 10, 0)
    got, tables, out_zero = run_gc(circ, bits)
    np.testing.assert_array_equal(got, bits[[2, 0, 0]])
    assert tables.shape == (0, 10, 2, 2)
    empty = gc.random_labels(circ.n_inputs, 0)
    t, o = gc.garble(circ, empty, gc.random_delta(1))
    assert t.shape == (0, 0, 2, 2) and o.shape == (3, 0, 2)


# ---------------------------------------------------------------------------------------------
# Ready-made circuits against numpy
# ---------------------------------------------------------------------------------------------


def adversarial(k, n, seed):
    """Random k-bit values plus 0, 1, -1, extremes and powers of two (as uint64 mod 2^k)."""
    m = (1 << k) - 1
    special = [0, 1, 2, m, m - 1, 1 << (k - 1), (1 << (k - 1)) - 1, (1 << (k - 1)) + 1]
    special += [1 << i for i in range(k)]
    rng = np.random.default_rng(seed)
    vals = np.concatenate(
        [np.array(special, dtype=np.uint64) & np.uint64(m), rng.integers(0, 2**63, n, dtype=np.uint64) & np.uint64(m)]
    )
    return vals


def pairs(k, seed, n=150):
    v = adversarial(k, n, seed)
    a = np.repeat(v[:40], 40)
    b = np.tile(v[:40], 40)
    rng = np.random.default_rng(seed + 1)
    a = np.concatenate([a, rng.permutation(v)])
    b = np.concatenate([b, v])
    return a, b


def signed(v, k):
    v = v.astype(np.uint64)
    top = np.uint64(1) << np.uint64(k - 1)
    if k == 64:
        return v.view(np.int64)
    return ((v ^ top) - top).view(np.int64)


def both_ways(circ, bits):
    """Clear evaluation, checked against a garbled run on the active ISA."""
    plain = circ.evaluate_plain(bits)
    garbled, _, _ = run_gc(circ, bits, 5)
    np.testing.assert_array_equal(garbled, plain)
    return plain


KS = [1, 2, 7, 8, 32, 64]


@pytest.mark.parametrize("k", KS)
def test_adder_subtractor(k):
    a, b = pairs(k, k)
    m = np.uint64((1 << k) - 1) if k < 64 else np.uint64(2**64 - 1)
    bits = np.concatenate([gc.to_bits(a, k), gc.to_bits(b, k)])
    add, sub = circuits.adder(k), circuits.subtractor(k)
    assert add.n_and == k - 1 and sub.n_and == k - 1
    np.testing.assert_array_equal(gc.from_bits(both_ways(add, bits)), (a + b) & m)
    np.testing.assert_array_equal(gc.from_bits(both_ways(sub, bits)), (a - b) & m)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("sgn", [False, True])
def test_comparator(k, sgn):
    a, b = pairs(k, 3 * k)
    bits = np.concatenate([gc.to_bits(a, k), gc.to_bits(b, k)])
    circ = circuits.comparator(k, signed=sgn)
    assert circ.n_and <= k
    want = (signed(a, k) < signed(b, k)) if sgn else (a < b)
    np.testing.assert_array_equal(both_ways(circ, bits)[0], want.astype(np.uint8))


@pytest.mark.parametrize("k", KS)
def test_msb_of_sum(k):
    x0, x1 = pairs(k, 5 * k)
    bits = np.concatenate([gc.to_bits(x0, k), gc.to_bits(x1, k)])
    circ = circuits.msb_of_sum(k)
    assert circ.n_and == k - 1
    s = (x0 + x1) >> np.uint64(k - 1) & np.uint64(1)
    np.testing.assert_array_equal(both_ways(circ, bits)[0], s.astype(np.uint8))
    masked = circuits.msb_of_sum(k, masked=True)
    assert masked.n_and == k - 1 and masked.n_garbler_inputs == k + 1
    r = np.random.default_rng(k).integers(0, 2, x0.shape[0], dtype=np.uint8)
    bits_m = np.concatenate([gc.to_bits(x0, k), r[None], gc.to_bits(x1, k)])
    np.testing.assert_array_equal(both_ways(masked, bits_m)[0], s.astype(np.uint8) ^ r)


@pytest.mark.parametrize("k", [2, 8, 16, 32, 64])
def test_relu(k):
    x0, x1 = pairs(k, 7 * k)
    m = np.uint64(2**64 - 1) if k == 64 else np.uint64((1 << k) - 1)
    x = signed((x0 + x1) & m, k)
    want = np.where(x > 0, x, 0).astype(np.uint64)
    circ = circuits.relu(k)
    assert circ.n_and == 2 * k - 2
    bits = np.concatenate([gc.to_bits(x0, k), gc.to_bits(x1, k)])
    np.testing.assert_array_equal(gc.from_bits(both_ways(circ, bits)), want)
    masked = circuits.relu(k, masked=True)
    r = np.random.default_rng(k).integers(0, 2**63, x0.shape[0], dtype=np.uint64) & m
    bits_m = np.concatenate([gc.to_bits(x0, k), gc.to_bits(r, k), gc.to_bits(x1, k)])
    out = gc.from_bits(both_ways(masked, bits_m))
    np.testing.assert_array_equal((out + r) & m, want)


@pytest.mark.parametrize(
    "k,lo,hi", [(8, -5, 17), (8, -128, 127), (8, 0, 0), (16, 0, 6 << 8), (32, -(2**31), -3), (64, -(2**40), 2**50)]
)
def test_clip_and_relu6(k, lo, hi):
    x0, x1 = pairs(k, 11 * k)
    m = np.uint64(2**64 - 1) if k == 64 else np.uint64((1 << k) - 1)
    x = signed((x0 + x1) & m, k)
    want = np.clip(x, lo, hi)
    bits = np.concatenate([gc.to_bits(x0, k), gc.to_bits(x1, k)])
    got = gc.from_bits(both_ways(circuits.clip(k, lo, hi), bits), signed=True)
    np.testing.assert_array_equal(got, want)
    if lo == 0 and hi == 6 << 8:
        r6 = gc.from_bits(both_ways(circuits.relu6(k, frac_bits=8), bits), signed=True)
        np.testing.assert_array_equal(r6, want)


def test_clip_rejects_bad_bounds():
    with pytest.raises(ValueError, match="lo <= hi"):
        circuits.clip(8, 5, 4)
    with pytest.raises(ValueError, match="fit"):
        circuits.clip(8, 0, 200)


@pytest.mark.parametrize("k", [1, 8, 33])
def test_mux(k):
    rng = np.random.default_rng(k)
    a = adversarial(k, 300, 1)
    b = rng.permutation(adversarial(k, 300, 2))
    s = rng.integers(0, 2, a.shape[0], dtype=np.uint8)
    circ = circuits.mux(k)
    assert circ.n_and == k
    bits = np.concatenate([gc.to_bits(a, k), gc.to_bits(b, k), s[None]])
    np.testing.assert_array_equal(gc.from_bits(both_ways(circ, bits)), np.where(s == 1, b, a))


@pytest.mark.parametrize("k,sgn", [(8, False), (8, True), (32, True)])
def test_compare_swap(k, sgn):
    a, b = pairs(k, 13 * k)
    bits = np.concatenate([gc.to_bits(a, k), gc.to_bits(b, k)])
    out = both_ways(circuits.compare_swap(k, signed=sgn), bits)
    lo, hi = gc.from_bits(out[:k]), gc.from_bits(out[k:])
    key = (lambda v: signed(v, k)) if sgn else (lambda v: v)
    want_lo = np.where(key(a) <= key(b), a, b)
    want_hi = np.where(key(a) <= key(b), b, a)
    np.testing.assert_array_equal(lo, want_lo)
    np.testing.assert_array_equal(hi, want_hi)


@pytest.mark.parametrize("n,k,sgn", [(1, 8, True), (2, 8, True), (5, 8, True), (8, 16, False), (9, 32, True)])
def test_max_argmax(n, k, sgn):
    rng = np.random.default_rng(n * k)
    batch = 200
    m = (1 << k) - 1
    pool = adversarial(k, 50, n)
    vals = pool[rng.integers(0, len(pool), (n, batch))]
    vals[:, :20] = vals[0, :20]  # ties: the first maximum wins
    x0 = rng.integers(0, 2**63, (n, batch), dtype=np.uint64) & np.uint64(m)
    x1 = (vals - x0) & np.uint64(m)
    bits = np.concatenate(
        [
            gc.to_bits(x0, k).transpose(1, 0, 2).reshape(n * k, batch),
            gc.to_bits(x1, k).transpose(1, 0, 2).reshape(n * k, batch),
        ]
    )
    key = signed(vals, k) if sgn else vals
    circ = circuits.argmax(n, k, signed=sgn, with_value=True)
    out = both_ways(circ, bits)
    idx_bits = max(1, (n - 1).bit_length())
    np.testing.assert_array_equal(gc.from_bits(out[:idx_bits]), np.argmax(key, axis=0))
    np.testing.assert_array_equal(gc.from_bits(out[idx_bits:]), vals[np.argmax(key, axis=0), np.arange(batch)])
    mx = both_ways(circuits.maximum(n, k, signed=sgn), bits)
    np.testing.assert_array_equal(gc.from_bits(mx), vals[np.argmax(key, axis=0), np.arange(batch)])


def test_bits_roundtrip():
    v = np.array([0, 1, -1, -(2**63), 2**63 - 1, 12345], dtype=np.int64)
    np.testing.assert_array_equal(gc.from_bits(gc.to_bits(v, 64), signed=True), v)
    np.testing.assert_array_equal(gc.from_bits(gc.to_bits(v, 8), signed=True), v.astype(np.int8).astype(np.int64))
    assert gc.to_bits(np.array([5, 6]), 3).shape == (3, 2)


# ---------------------------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------------------------


def test_builder_folds_constants():
    b = CircuitBuilder()
    x, y = b.garbler_input(1)[0], b.evaluator_input(1)[0]
    Z, O = b.ZERO, b.ONE
    assert b.and_(x, Z) == Z and b.and_(x, O) == x and b.and_(x, x) == x
    assert b.xor(x, Z) == x and b.xor(x, x) == Z and b.xor(Z, O) == O
    nx = b.inv(x)
    assert b.xor(x, O) == nx and b.inv(nx) == x and b.xor(x, nx) == O and b.and_(x, nx) == Z
    assert b.and_(x, y) == b.and_(y, x)  # structural hashing
    circ = b.build([Z, O, x, b.and_(x, y)])
    assert circ.n_and == 1
    bits = random_bits(2, 16, 3)
    out = both_ways(circ, bits)
    np.testing.assert_array_equal(out[0], 0)
    np.testing.assert_array_equal(out[1], 1)
    np.testing.assert_array_equal(out[3], bits[0] & bits[1])


def test_builder_orders_inputs_and_prunes():
    b = CircuitBuilder()
    e = b.evaluator_input(2)
    g = b.garbler_input(1)
    b.and_(e[0], e[1])  # unused: pruned
    circ = b.build([b.xor(g[0], e[1])])
    assert (circ.n_garbler_inputs, circ.n_evaluator_inputs, circ.n_and) == (1, 2, 0)
    bits = random_bits(3, 8, 0)  # rows: g0, e0, e1
    np.testing.assert_array_equal(circ.evaluate_plain(bits)[0], bits[0] ^ bits[2])
    with pytest.raises(ValueError, match="not a wire"):
        b.xor(g[0], 99)


# ---------------------------------------------------------------------------------------------
# Bristol Fashion
# ---------------------------------------------------------------------------------------------


def test_bristol_adder2_file(isa):
    circ = gc.read_bristol(DATA / "adder2.txt")
    assert (circ.n_garbler_inputs, circ.n_evaluator_inputs, circ.n_outputs) == (2, 2, 3)
    assert circ.n_and == 3
    x = np.arange(16, dtype=np.uint64)
    a, b = x & np.uint64(3), x >> np.uint64(2)
    bits = np.concatenate([gc.to_bits(a, 2), gc.to_bits(b, 2)])
    np.testing.assert_array_equal(gc.from_bits(both_ways(circ, bits)), a + b)


def test_bristol_mand_eq_eqw():
    # inputs x0 x1 (garbler) | y0 (evaluator); MAND: 3 = x0 & x1, 4 = x1 & y0;
    # 5 = 1; 6 = 3; 7 = 6 ^ 5; 8 = 0. Outputs: the last three wires 6, 7, 8.
    text = """5 9
2 2 1
1 3

4 2 0 1 1 2 3 4 MAND
1 1 1 5 EQ
1 1 3 6 EQW
2 1 6 5 7 XOR
1 1 0 8 EQ
"""
    circ = gc.parse_bristol(text)
    bits = random_bits(3, 64, 9)
    out = both_ways(circ, bits)
    np.testing.assert_array_equal(out[0], bits[0] & bits[1])
    np.testing.assert_array_equal(out[1], 1 - (bits[0] & bits[1]))
    np.testing.assert_array_equal(out[2], 0)


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "three header lines"),
        ("1 3\n1 2\n1 1\n2 1 0 1 2 NAND\n", "unsupported gate"),
        ("1 3\n1 2\n1 1\n2 1 0 1 2 XOR\n2 1 0 1 2 XOR\n", "announces 1 gates"),
        ("1 3\n2 1\n1 1\n2 1 0 1 2 XOR\n", "niv"),
        ("1 3\n1 2\n1 1\n2 1 0 7 2 AND\n", "out of range"),
        ("1 3\n1 2\n1 1\n2 1 0 1 1 AND\n", "output wire 1"),
        ("2 4\n1 2\n1 1\n2 1 0 3 2 AND\n2 1 0 1 3 XOR\n", "before it is written"),
        ("1 3\n1 2\n1 1\n2 1 0 x 2 AND\n", "integers"),
    ],
)
def test_bristol_errors(text, match):
    with pytest.raises(gc.BristolError, match=match):
        gc.parse_bristol(text)


def test_bristol_garbler_values():
    text = (DATA / "adder2.txt").read_text()
    assert gc.parse_bristol(text, garbler_values=2).n_garbler_inputs == 4
    assert gc.parse_bristol(text, garbler_values=0).n_evaluator_inputs == 4
    with pytest.raises(ValueError, match="garbler_values"):
        gc.parse_bristol(text, garbler_values=3)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def small():
    circ = circuits.adder(4)
    zero = gc.random_labels(circ.n_inputs, 6, seed=1)
    delta = gc.random_delta(2)
    tables, out_zero = gc.garble(circ, zero, delta)
    return circ, zero, delta, tables, out_zero


def core_garble(circ, zero, delta, tables, out, offset=0, gates=None, outputs=None, n_wires=None):
    return _core.gc_garble(
        circ.gates if gates is None else gates,
        circ.outputs if outputs is None else outputs,
        circ.n_wires if n_wires is None else n_wires,
        zero,
        delta,
        offset,
        tables,
        out,
    )


def test_bad_shapes_and_dtypes(small):
    circ, zero, delta, tables, out_zero = small
    t, o = np.empty_like(tables), np.empty_like(out_zero)
    with pytest.raises(ValueError, match=r"input_zero must have shape \(8, batch, 2\)"):
        gc.garble(circ, zero[:7], delta)
    with pytest.raises(TypeError, match="uint64"):
        gc.garble(circ, zero.astype(np.int64), delta)
    with pytest.raises(ValueError, match="colour bit"):
        gc.garble(circ, zero, delta ^ np.uint64(1))
    with pytest.raises(ValueError, match=r"delta must have shape \(2,\)"):
        core_garble(circ, zero, np.ones(3, np.uint64), t, o)
    with pytest.raises(ValueError, match=r"tables_out must have shape \(3, 6, 2, 2\)"):
        core_garble(circ, zero, delta, np.empty((3, 5, 2, 2), np.uint64), o)
    with pytest.raises(ValueError, match=r"output_zero_out must have shape \(4, 6, 2\)"):
        core_garble(circ, zero, delta, t, np.empty((3, 6, 2), np.uint64))
    with pytest.raises(TypeError, match="C-contiguous"):
        core_garble(circ, zero[:, ::2], delta, t[:, :3], o[:, :3])
    with pytest.raises(TypeError, match="writable"):
        o.flags.writeable = False
        core_garble(circ, zero, delta, t, o)
    o = np.empty_like(out_zero)
    with pytest.raises(ValueError, match="share memory"):
        core_garble(circ, zero, delta, t, zero[:4])
    with pytest.raises(ValueError, match="instance_offset must be >= 0"):
        core_garble(circ, zero, delta, t, o, offset=-1)
    with pytest.raises(ValueError, match="pass 2\\^64"):
        core_garble(circ, zero, delta, t, o, offset=2**64 - 5)
    core_garble(circ, zero, delta, t, o, offset=2**64 - 6)  # last instance 2^64 - 1 is fine
    with pytest.raises(ValueError, match=r"input_labels must have shape"):
        gc.evaluate(circ, zero[:, :, :1], tables)
    with pytest.raises(ValueError, match=r"tables must have shape \(3, 6, 2, 2\)"):
        gc.evaluate(circ, zero, tables[:2])
    with pytest.raises(ValueError, match="threads"):
        gc.garble(circ, zero, delta, threads=-1)


@pytest.mark.parametrize(
    "rows,outputs,match",
    [
        ([[3, 0, 1, 2]], [2], "unknown op 3"),
        ([[0, 0, 5, 2]], [2], "second input wire 5 is out of range"),
        ([[0, 0, 2, 2]], [2], "read before it is written"),
        ([[1, 0, 1, 1]], [1], "output wire 1 is an input wire"),
        ([[1, 0, 1, 2], [0, 0, 1, 2]], [2], "written twice"),
        ([[1, 0, 1, 2]], [3], "output 0: wire 3 is never written"),
        ([[1, 0, 1, 2]], [9], "out of range"),
    ],
)
def test_invalid_circuits(rows, outputs, match):
    with pytest.raises(ValueError, match=match):
        gc.Circuit(np.array(rows, np.int32), 1, 1, outputs, n_wires=4)


def test_circuit_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match=r"\[0, 2\^31\)"):
        gc.Circuit([[0, 0, 1, 2**32 + 2]], 1, 1, [2], n_wires=3)
    with pytest.raises(ValueError, match=r"\[0, 2\^31\)"):
        gc.Circuit([[0, 0, 1, 2]], 1, 1, [-1])


def test_gates_array_checks(small):
    circ, zero, delta, tables, out_zero = small
    t, o = np.empty_like(tables), np.empty_like(out_zero)
    with pytest.raises(ValueError, match=r"gates must have shape \(n_gates, 4\)"):
        core_garble(circ, zero, delta, t, o, gates=np.zeros((2, 3), np.int32))
    with pytest.raises(TypeError, match="gates must have dtype int32"):
        core_garble(circ, zero, delta, t, o, gates=circ.gates.astype(np.int64))
    with pytest.raises(ValueError, match="circuit has 8 inputs but only 5 wires"):
        core_garble(circ, zero, delta, t, o, n_wires=5)


# ---------------------------------------------------------------------------
# label helpers (encode by bit values, bit planes)
# ---------------------------------------------------------------------------
@given(st.integers(0, 3000), st.integers(0, 2**32 - 1))
def test_encode_matches_numpy_reference(n, seed):
    rng = np.random.default_rng(seed)
    zero = rng.integers(0, 2**64, (n, 2), dtype=np.uint64)
    delta = gc.random_delta(seed=seed.to_bytes(16, "little"))
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    expect = zero ^ (bits.astype(np.uint64)[:, None] * np.uint64(2**64 - 1) & delta)
    np.testing.assert_array_equal(gc.encode(zero, delta, bits), expect)
    np.testing.assert_array_equal(gc.encode(zero, delta, bits, out=zero), expect)  # in place


def test_encode_uses_only_the_low_bit_and_broadcasts():
    zero = np.zeros((3, 4, 2), dtype=np.uint64)
    delta = gc.random_delta(seed=b"\x01" * 16)
    got = gc.encode(zero, delta, np.array([2, 3, 254, 255], dtype=np.int64))  # broadcast over rows
    assert got.shape == (3, 4, 2)
    np.testing.assert_array_equal(got[:, [0, 2]], 0)
    np.testing.assert_array_equal(got[:, [1, 3]], np.broadcast_to(delta, (3, 2, 2)))
    with pytest.raises(ValueError, match="out must have shape"):
        gc.encode(zero, delta, np.zeros(4, np.uint8), out=np.empty((4, 2), np.uint64))


@given(st.integers(0, 5000), st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_bit_planes_matches_unpackbits(n, bits, seed):
    from safelight.protocols.gc_sign import bit_planes

    values = np.random.default_rng(seed).integers(0, 2**64, n, dtype=np.uint64)
    expect = np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")[:, :bits].T
    np.testing.assert_array_equal(bit_planes(values, bits), expect)


def test_label_helpers_check_arguments():
    with pytest.raises(ValueError, match="2 words per bit"):
        _core.gc_encode(np.zeros(6, np.uint64), np.ones(2, np.uint64), np.zeros(2, np.uint8), np.zeros(6, np.uint64))
    with pytest.raises(ValueError, match="bits must be in 1..64"):
        _core.gc_bit_planes(np.zeros(3, np.uint64), 65, np.zeros((65, 3), np.uint8))
    with pytest.raises(ValueError, match="out must have shape"):
        _core.gc_bit_planes(np.zeros(3, np.uint64), 4, np.zeros((3, 4), np.uint8))


@given(st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1)), min_size=1, max_size=20))
def test_multiplier_circuit_garbled(pairs):
    circ = circuits.multiplier(16)
    x = np.array([p[0] for p in pairs], dtype=np.uint64)
    y = np.array([p[1] for p in pairs], dtype=np.uint64)
    delta = gc.random_delta(seed=b"\x02" * 16)
    zero = gc.random_labels(circ.n_inputs, x.size, seed=b"\x03" * 16)
    tables, out_zero = gc.garble(circ, zero, delta)
    labels = gc.encode(zero, delta, np.concatenate([gc.to_bits(x, 16), gc.to_bits(y, 16)]))
    bits = gc.decode(gc.evaluate(circ, labels, tables), out_zero)
    got = (bits.astype(np.uint64) << np.arange(16, dtype=np.uint64)[:, None]).sum(axis=0)
    np.testing.assert_array_equal(got, (x * y) & np.uint64(0xFFFF))
    assert circ.n_and <= 16 * 16
