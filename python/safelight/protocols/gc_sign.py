"""Boolean shares of the sign of a shared value, by a garbled circuit between parties 0 and 1.

Party 0 garbles, party 1 evaluates ``msb(r + w mod 2^k)`` (k - 1 AND gates, half-gates,
free XOR), where r is a random k-bit mask of party 0 and w = x - r mod 2^k is revealed to
party 1 only (uniform, since r is). Everything that does not depend on x runs **offline**,
when the Program is known but before its inputs are used:

* party 0 draws r, the zero-labels of every input wire, and garbles; it sends the tables and
  the labels of r's bits (which never change once r is fixed);
* the parties run random correlated OTs (IKNP): party 1 holds random bits rho with labels
  t = q xor rho * Delta, party 0 holds q.

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
from functools import lru_cache

import numpy as np

from .. import ring
from ..errors import ProtocolError
from ..gc import circuits
from ..gc.garble import colour, encode, evaluate, garble, random_delta, random_labels
from ..ot import COTReceiver, COTSender

CHUNK = 1 << 16  # instances per garbling chunk
GARBLER, EVALUATOR = 0, 1


@lru_cache(maxsize=None)
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
        ctx.links.rounds += 2
    return state["ot"]


def _chunks(size: int) -> list[tuple[int, int]]:
    return [(lo, min(size, lo + CHUNK)) for lo in range(0, size, CHUNK)]


def bit_planes(values: np.ndarray, bits: int) -> np.ndarray:
    """uint8 (bits, n): bit i of every value in row i (little-endian), via one unpackbits."""
    raw = np.ascontiguousarray(values, dtype=np.uint64).view(np.uint8).reshape(-1, 8)
    planes = np.unpackbits(raw, axis=1, bitorder="little")[:, :bits]
    return np.ascontiguousarray(planes.T)


def _mask(bits: int) -> np.uint64:
    return np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2**64 - 1)


def prepare(ctx, key: tuple, size: int, bits: int) -> None:
    """Offline part of one sign computation of ``size`` values (parties 0 and 1 only)."""
    if ctx.party not in (GARBLER, EVALUATOR) or size == 0:
        return
    pipe = ctx.pipe(1 - ctx.party)
    ot = _ot(ctx, pipe)
    state = _state(ctx)
    prep = Prepared(size, bits, state["instances"])
    state["instances"] += size
    circuit = _msb_circuit(bits)
    if ctx.party == GARBLER:
        prep.r = ring.random(secrets.token_bytes(16), (size,)) & _mask(bits)
        _garble_offline(ot, pipe, circuit, prep)
    else:
        for lo, hi in _chunks(size):
            m = hi - lo
            rho, t = ot.extend(bits * m, pipe)  # random choices and their labels
            labels = np.empty((2 * bits, m, 2), dtype=np.uint64)  # r's labels, then w's (filled online)
            labels[:bits] = pipe.recv("gc.r_labels")
            tables = pipe.recv("gc.tables")
            prep.chunks.append((np.asarray(rho, dtype=np.uint8).reshape(bits, m), t.reshape(bits, m, 2),
                                labels, tables))
    ctx.links.rounds += 2
    state["prepared"][key] = prep


class _Streamer:
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

    def __enter__(self) -> "_Streamer":
        return self

    def __exit__(self, *exc) -> None:
        self.outbox.put(None)
        self.thread.join()
        if self.errors and exc[0] is None:
            raise self.errors[0]


def _garble_offline(ot, pipe, circuit, prep: Prepared) -> None:
    """Garble chunk i+1 while chunk i's tables stream out."""
    bits = prep.bits
    with _Streamer(pipe) as out:
        for lo, hi in _chunks(prep.size):
            m = hi - lo
            q = ot.extend(bits * m, pipe).reshape(bits, m, 2)
            r_zero = random_labels(bits, m, seed=secrets.token_bytes(16))  # AES-CTR: fast, fresh key
            w_zero = random_labels(bits, m, seed=secrets.token_bytes(16))
            tables, out_zero = garble(circuit, np.concatenate([r_zero, w_zero]), ot.delta, prep.first + lo)
            out.put(("gc.r_labels", encode(r_zero, ot.delta, bit_planes(prep.r[lo:hi], bits))),
                    ("gc.tables", tables))
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
            ctx.links.rounds += 1
    prep = _state(ctx)["prepared"].pop(key, None)
    if prep is None or prep.size != flat.size or prep.bits != bits:
        raise ProtocolError(f"no garbled-circuit preprocessing for {key} ({flat.size} values, {bits} bits)")
    pipe = ctx.pipe(1 - ctx.party)
    ot = _ot(ctx, pipe)
    mask = _mask(bits)
    share = np.empty(flat.size, dtype=np.uint8)
    if ctx.party == GARBLER:
        pipe.send("gc.z", (flat - prep.r) & mask)  # wraps mod 2^64, then reduced mod 2^k
        d_all = np.unpackbits(pipe.recv("gc.d"), count=bits * flat.size).reshape(bits, flat.size)
        with _Streamer(pipe) as out:
            for (lo, hi), (gq, out_share) in zip(_chunks(flat.size), prep.chunks):
                out.put(("gc.e", encode(gq, ot.delta, d_all[:, lo:hi])))
                share[lo:hi] = out_share
    else:
        z = pipe.recv("gc.z")
        w_bits = bit_planes((z + flat) & mask, bits)  # (k, n)
        rho = np.concatenate([c[0] for c in prep.chunks], axis=1)
        pipe.send("gc.d", np.packbits(w_bits ^ rho))
        circuit = _msb_circuit(bits)
        for (lo, hi), (_, t, labels, tables) in zip(_chunks(flat.size), prep.chunks):
            np.bitwise_xor(pipe.recv("gc.e"), t, out=labels[bits:])  # the labels of w's bits
            out = evaluate(circuit, labels, tables, prep.first + lo)
            share[lo:hi] = colour(out)[0]
    ctx.links.rounds += 3
    return share.astype(np.uint64).reshape(x.shape)
