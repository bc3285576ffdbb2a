"""Boolean shares of the sign of a shared value, by a garbled circuit between parties 0 and 1.

Party 0 garbles, party 1 evaluates ``msb(r + w mod 2^k)`` (k - 1 AND gates, half-gates,
free XOR), where r is a random k-bit mask of party 0 and w = x - r mod 2^k is revealed to
party 1 only (uniform, since r is). Everything that does not depend on x runs **offline**,
when the Program is known but before its inputs are used:

* the parties run random correlated OTs (IKNP), all of them in one pipelined extension:
  party 1 holds random bits rho with labels t = q xor rho * Delta, party 0 holds q;
* party 0 draws r and garbles, streaming the tables. r is a constant of the garbler, so its
  wires carry the *public* label 0 (zero-label r_i * Delta, as for constant wires in
  emp-style garbling): the evaluator knows its active label without any transfer, and the
  label reveals nothing since Delta is secret.

**Online**, per value: party 0 sends z = a0 - r (k bits); party 1 forms w = z + a1 and
sends d = w xor rho (k bits); party 0 answers e = G xor q xor d * Delta (16 bytes per bit,
G being the garbled zero-label of w), so that e xor t is the label of w. Party 1
evaluates. Nothing is decoded: the colour bits of the output label (party 1) and of the
output zero-label (party 0) are XOR shares of the sign. With three parties, party 2 first
hands its share to party 1 (a uniformly random value to party 1).
"""

from __future__ import annotations

import queue
import secrets
import threading
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from .. import _core, ring
from ..errors import ProtocolError
from ..gc import circuits
from ..gc.garble import colour, encode, evaluate, garble, random_delta, random_labels
from ..ot import COTReceiver, COTSender, cot_from_dealer_seed

CHUNK = 1 << 16  # instances per garbling chunk
GARBLER, EVALUATOR = 0, 1


@cache
def _msb_circuit(bits: int) -> circuits.Circuit:
    return circuits.msb_of_sum(bits)


@dataclass
class Prepared:
    """One sign computation's offline material on one party."""

    size: int
    bits: int
    first: int  # absolute index of the first instance (tweaks never repeat under one Delta)
    chunks: list = field(default_factory=list)  # per chunk: party-specific arrays
    r: np.ndarray | None = None  # garbler: the k-bit masks
    delta: np.ndarray | None = None  # garbler: the global offset of the labels


def _state(ctx) -> dict:
    return ctx.state.setdefault("gc", {"instances": 0, "prepared": {}})


def _ot(ctx, pipe):
    """This job's OT endpoint (base OTs run once per job, on first use)."""
    state = _state(ctx)
    if "ot" not in state:
        if ctx.party == GARBLER:
            state["ot"] = COTSender(delta=random_delta()).setup(pipe)
        else:
            state["ot"] = COTReceiver().setup(pipe)
        ctx.add_rounds(2)
    return state["ot"]


def _chunks(size: int) -> list[tuple[int, int]]:
    return [(lo, min(size, lo + CHUNK)) for lo in range(0, size, CHUNK)]


def bit_planes(values: np.ndarray, bits: int) -> np.ndarray:
    """uint8 (bits, n): bit i of every value in row i (little-endian)."""
    values = np.ascontiguousarray(values, dtype=np.uint64).reshape(-1)
    return _core.gc_bit_planes(values, bits, np.empty((bits, values.size), dtype=np.uint8))


def _mask(bits: int) -> np.uint64:
    return np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2**64 - 1)


def install_dealer_ots(ctx, seed: bytes, labels: np.ndarray | None) -> None:
    """Take this job's random OTs from the dealer instead of running IKNP: the garbler
    expands (q, Delta) from ``seed``; the evaluator expands its choice bits from ``seed``
    and gets their ``labels`` t (see :func:`safelight.ot.dealer_cot`)."""
    _state(ctx)["dealer_ots"] = {"seed": seed, "t": labels, "used": 0}


def _random_cots(ctx, pipe, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n random correlated OTs (t = q xor rho * Delta): the garbler gets (q, Delta), the
    evaluator (rho, t). From the dealer when it dealt them, else by IKNP extension (all of
    one sign computation at once, so the garbler then garbles without waiting on the
    evaluator chunk by chunk)."""
    dealt = _state(ctx).get("dealer_ots")
    if dealt is None:
        ot = _ot(ctx, pipe)
        return (ot.extend(n, pipe), ot.delta) if ctx.party == GARBLER else ot.extend(n, pipe)
    offset = dealt["used"]
    dealt["used"] += n
    if ctx.party == GARBLER:
        return cot_from_dealer_seed(dealt["seed"], n, "sender", offset=offset)
    if dealt["t"] is None or dealt["t"].shape[0] < offset + n:
        raise ProtocolError("the dealer sent fewer random OTs than the program needs")
    return cot_from_dealer_seed(dealt["seed"], n, "receiver", t=dealt["t"][offset : offset + n], offset=offset)


def prepare(ctx, key: tuple, size: int, bits: int) -> None:
    """Offline part of one sign computation of ``size`` values (parties 0 and 1 only)."""
    if ctx.party not in (GARBLER, EVALUATOR) or size == 0:
        return
    pipe = ctx.pipe(1 - ctx.party)
    state = _state(ctx)
    prep = Prepared(size, bits, state["instances"])
    state["instances"] += size
    circuit = _msb_circuit(bits)
    if ctx.party == GARBLER:
        prep.r = ring.random(secrets.token_bytes(16), (size,)) & _mask(bits)
        q_all, prep.delta = _random_cots(ctx, pipe, bits * size)
        _garble_offline(q_all, pipe, circuit, prep)
    else:
        rho_all, t_all = _random_cots(ctx, pipe, bits * size)  # random choices and their labels
        for lo, hi in _chunks(size):
            m = hi - lo
            rho, t = rho_all[bits * lo : bits * hi], t_all[bits * lo : bits * hi]
            # r's labels, then t: online e xor t becomes w's labels in place (every page of
            # the buffer is touched here, offline: first-touch faults cost ~1 s/GB on a VM)
            labels = np.empty((2 * bits, m, 2), dtype=np.uint64)
            labels[:bits] = 0  # the public labels of the garbler's constant r
            labels[bits:] = t.reshape(bits, m, 2)
            tables = pipe.recv("gc.tables")
            prep.chunks.append((np.asarray(rho, dtype=np.uint8).reshape(bits, m), labels, tables))
    ctx.add_rounds(2)
    state["prepared"][key] = prep


class Streamer:
    """Sends named tensors on a background thread (one in flight), so the caller computes the
    next chunk while the previous one is on the wire. Errors surface on the caller's thread."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.outbox: queue.Queue = queue.Queue(maxsize=1)
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="gc-send", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.outbox.get()) is not None:
            try:
                if not self.errors:
                    for name, array in item:
                        self.pipe.send(name, array)
            except BaseException as exc:  # re-raised on the computing thread
                self.errors.append(exc)

    def put(self, *named: tuple[str, np.ndarray]) -> None:
        if self.errors:
            raise self.errors[0]
        self.outbox.put(named)

    def __enter__(self) -> Streamer:
        return self

    def __exit__(self, *exc) -> None:
        self.outbox.put(None)
        self.thread.join()
        if self.errors and exc[0] is None:
            raise self.errors[0]


def _garble_offline(q_all: np.ndarray, pipe, circuit, prep: Prepared) -> None:
    """Garble chunk i+1 while chunk i's tables stream out."""
    bits, delta = prep.bits, prep.delta
    with Streamer(pipe) as out:
        for lo, hi in _chunks(prep.size):
            m = hi - lo
            q = q_all[bits * lo : bits * hi].reshape(bits, m, 2)
            zero = np.zeros((2 * bits, m, 2), dtype=np.uint64)
            # r is a constant of the garbler: its wires get the public label 0 (zero-label
            # r_i * Delta), so no label of r is ever sent; w's zero-labels are fresh random
            encode(zero[:bits], delta, bit_planes(prep.r[lo:hi], bits), out=zero[:bits])
            zero[bits:] = random_labels(bits, m, seed=secrets.token_bytes(16))  # AES-CTR, fresh key
            tables, out_zero = garble(circuit, zero, delta, prep.first + lo)
            w_zero = zero[bits:]
            out.put(("gc.tables", tables))
            prep.chunks.append((np.bitwise_xor(w_zero, q), colour(out_zero)[0]))  # G xor q, output share


def sign_bit_shares(ctx, x: np.ndarray, bits: int, key: tuple) -> np.ndarray:
    """This party's XOR share (uint64 0/1, shape of x) of 1{x < 0}, for |x| < 2^(bits-1)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    if ctx.parties == 3:
        if ctx.party == 2:
            ctx.send(EVALUATOR, flat)
            return np.zeros(x.shape, dtype=np.uint64)
        if ctx.party == EVALUATOR:
            flat = ring.add(flat, ctx.recv(2))
            ctx.add_rounds(1)
    prep = _state(ctx)["prepared"].pop(key, None)
    if prep is None or prep.size != flat.size or prep.bits != bits:
        raise ProtocolError(f"no garbled-circuit preprocessing for {key} ({flat.size} values, {bits} bits)")
    pipe = ctx.pipe(1 - ctx.party)
    mask = _mask(bits)
    share = np.empty(flat.size, dtype=np.uint8)
    if ctx.party == GARBLER:
        pipe.send("gc.z", (flat - prep.r) & mask)  # wraps mod 2^64, then reduced mod 2^k
        d_all = np.unpackbits(pipe.recv("gc.d"), count=bits * flat.size).reshape(bits, flat.size)
        with Streamer(pipe) as out:
            for (lo, hi), (gq, out_share) in zip(_chunks(flat.size), prep.chunks):
                out.put(("gc.e", encode(gq, prep.delta, d_all[:, lo:hi], out=gq)))  # gq is used once
                share[lo:hi] = out_share
    else:
        z = pipe.recv("gc.z")
        w_bits = bit_planes((z + flat) & mask, bits)  # (k, n)
        rho = np.concatenate([c[0] for c in prep.chunks], axis=1)
        pipe.send("gc.d", np.packbits(w_bits ^ rho))
        circuit = _msb_circuit(bits)
        for (lo, hi), (_, labels, tables) in zip(_chunks(flat.size), prep.chunks):
            np.bitwise_xor(labels[bits:], pipe.recv("gc.e"), out=labels[bits:])  # e xor t: w's labels
            out = evaluate(circuit, labels, tables, prep.first + lo)
            share[lo:hi] = colour(out)[0]
    ctx.add_rounds(3)
    return share.astype(np.uint64).reshape(x.shape)
