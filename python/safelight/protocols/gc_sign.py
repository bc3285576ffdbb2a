"""Boolean shares of the sign of a shared value, by a garbled circuit between parties 0 and 1.

Party 0 garbles, party 1 evaluates the circuit ``msb(a0 + a1 mod 2^k)`` (k - 1 AND gates,
half-gates, free XOR) where a_i is party i's share reduced mod 2^k:

1. party 1 obtains the labels of its k input bits by correlated OT (IKNP, the garbler's
   free-XOR offset is the OT correlation, so the OT output *is* the zero-label);
2. party 0 garbles with fresh random labels for its own bits and sends the garbled
   tables and the labels of its bits;
3. party 1 evaluates. No output is decoded: the colour bit of the output label (party 1)
   and of the output zero-label (party 0) are XOR shares of the sign.

Work runs in chunks of instances, so memory stays bounded and tables stream while the
next chunk is garbled. With three parties, party 2 first hands its share to party 1
(a uniformly random value to party 1) and holds a zero share of the bit.
"""

from __future__ import annotations

import queue
import secrets
import threading
from functools import lru_cache

import numpy as np

from .. import ring
from ..gc import circuits
from ..gc.garble import colour, encode, evaluate, garble, random_delta, random_labels
from ..ot import COTReceiver, COTSender

CHUNK = 1 << 16  # instances per garbling chunk
GARBLER, EVALUATOR = 0, 1


@lru_cache(maxsize=None)
def _msb_circuit(bits: int) -> circuits.Circuit:
    return circuits.msb_of_sum(bits)


def _state(ctx) -> dict:
    return ctx.state.setdefault("gc", {"instances": 0})


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


def sign_bit_shares(ctx, x: np.ndarray, bits: int) -> np.ndarray:
    """This party's XOR share (uint64 0/1, shape of x) of 1{x < 0}, for |x| < 2^(bits-1)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    if ctx.parties == 3:
        if ctx.party == 2:
            ctx.send(EVALUATOR, flat)
            return np.zeros(x.shape, dtype=np.uint64)
        if ctx.party == EVALUATOR:
            flat = ring.add(flat, ctx.recv(2))
            ctx.links.rounds += 1
    pipe = ctx.pipe(1 - ctx.party)
    ot = _ot(ctx, pipe)
    circuit = _msb_circuit(bits)
    state = _state(ctx)
    first = state["instances"]  # absolute instance index: tweaks never repeat under one delta
    state["instances"] += flat.size
    share = np.empty(flat.size, dtype=np.uint8)
    chunks = [(lo, min(flat.size, lo + CHUNK)) for lo in range(0, flat.size, CHUNK)]
    if ctx.party == GARBLER:
        _garble_chunks(ot, pipe, circuit, bits, flat, chunks, first, share)
    else:
        _evaluate_chunks(ot, pipe, circuit, bits, flat, chunks, first, share)
    ctx.links.rounds += 2 * len(chunks)
    return share.astype(np.uint64).reshape(x.shape)


def _garble_chunks(ot, pipe, circuit, bits, flat, chunks, first, share) -> None:
    """Garble chunk i+1 while chunk i's labels and tables stream out on a sender thread."""
    outbox: queue.Queue = queue.Queue(maxsize=1)
    errors: list[BaseException] = []

    def send() -> None:
        while (item := outbox.get()) is not None:
            try:
                if not errors:
                    pipe.send("gc.labels", item[0])
                    pipe.send("gc.tables", item[1])
            except BaseException as exc:  # re-raised on the garbling thread
                errors.append(exc)

    sender = threading.Thread(target=send, name="gc-send", daemon=True)
    sender.start()
    try:
        for lo, hi in chunks:
            m = hi - lo
            q = ot.extend(bits * m, pipe).reshape(bits, m, 2)  # evaluator's zero-labels
            own_zero = random_labels(bits, m, seed=secrets.token_bytes(16))  # AES-CTR: fast, fresh key
            tables, out_zero = garble(circuit, np.concatenate([own_zero, q]), ot.delta, first + lo)
            outbox.put((encode(own_zero, ot.delta, circuits.to_bits(flat[lo:hi], bits)), tables))
            share[lo:hi] = colour(out_zero)[0]
            if errors:
                raise errors[0]
    finally:
        outbox.put(None)
        sender.join()
    if errors:
        raise errors[0]


def _evaluate_chunks(ot, pipe, circuit, bits, flat, chunks, first, share) -> None:
    """Request chunk i+1's input labels (OT) before evaluating chunk i, so the garbler
    never waits for the evaluator to finish a chunk."""
    choices = [circuits.to_bits(flat[lo:hi], bits).reshape(-1) for lo, hi in chunks[:1]]
    pending = ot.extend(choices[0], pipe) if chunks else None
    for i, (lo, hi) in enumerate(chunks):
        m = hi - lo
        t = pending.reshape(bits, m, 2)
        if i + 1 < len(chunks):
            nlo, nhi = chunks[i + 1]
            pending = ot.extend(circuits.to_bits(flat[nlo:nhi], bits).reshape(-1), pipe)
        theirs = pipe.recv("gc.labels")
        tables = pipe.recv("gc.tables")
        out = evaluate(circuit, np.concatenate([theirs, t]), tables, first + lo)
        share[lo:hi] = colour(out)[0]
