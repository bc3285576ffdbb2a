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

import secrets
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
    for lo in range(0, flat.size, CHUNK):
        hi = min(flat.size, lo + CHUNK)
        mine = circuits.to_bits(flat[lo:hi], bits)  # (k, m) uint8, little-endian
        m = hi - lo
        if ctx.party == GARBLER:
            q = ot.extend(bits * m, pipe).reshape(bits, m, 2)
            own_zero = random_labels(bits, m, seed=secrets.token_bytes(16))  # AES-CTR: fast, fresh key
            tables, out_zero = garble(circuit, np.concatenate([own_zero, q]), ot.delta, first + lo)
            pipe.send("gc.labels", encode(own_zero, ot.delta, mine))
            pipe.send("gc.tables", tables)
            share[lo:hi] = colour(out_zero)[0]
        else:
            t = ot.extend(mine.reshape(-1), pipe).reshape(bits, m, 2)
            theirs = pipe.recv("gc.labels")
            tables = pipe.recv("gc.tables")
            out = evaluate(circuit, np.concatenate([theirs, t]), tables, first + lo)
            share[lo:hi] = colour(out)[0]
        ctx.links.rounds += 2
    return share.astype(np.uint64).reshape(x.shape)
