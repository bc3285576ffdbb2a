"""Replicated secret sharing on three servers (scheme ``rss3``): honest majority, no dealer.

A secret x in Z_2^64 is x_0 + x_1 + x_2; server i holds (x_i, x_(i+1)) (indices mod 3), so
any two servers can rebuild x and any one sees two uniform values. The servers are
semi-honest and at most one is curious: that is what lets them compute with no third
party and no offline phase (ABY3, Falcon and MP-SPDZ's replicated ring work the same way).

Keys. At its first interactive step a job's server i draws a 16-byte key k_i and sends it
to server i-1 over their TLS link, so key k_j is known to servers j and j-1, exactly the
pair that holds share j. Keyed BLAKE2b turns (key, step, call, label) into an AES-CTR seed;
from it come shared random values (no communication) and zero-sharings
alpha_i = F(k_i) - F(k_(i+1)), which add up to 0 and which no single server can predict
for another.

Products. z_i = x_i y_i + x_i y_(i+1) + x_(i+1) y_i + alpha_i adds up to x y; each server
sends z_i to server i-1 (one ring element per output, one round): a matmul or a
convolution costs its output size, whatever its inner dimension. Two local ring
products do it: x_i (y_i + y_(i+1)) + x_(i+1) y_i.

Truncation (``trunc_bits`` on a product, ``trunc_pair``/``rescale`` alone), exact up to
one unit for |z| < 2^62, three rounds, about 14 bytes per value per server on average.
The roles rotate with the step: a and b compute, h helps (a, b, h = s, s+1, s+2 mod 3).
h draws r = r_a + r_hb (r_a known to a, r_hb to b) and shares r >> d and msb(r) between
a and b (a's parts from their common key, b's sent by h). b learns c = z + 2^62 + r
(uniform: r is unknown to b) from a's and h's masked parts and computes, as for a
dealer's truncation pair,

    z >> d = (c >> d) - (r >> d) + msb(r) (1 - msb(c)) 2^(64-d) - 2^(62-d),

sending msb(c) (a uniform bit) to a; a and b then re-split their two parts into the three
replicated shares under masks h cannot see. The helper is the third server itself, which
the honest-majority model already trusts not to collude: no party outside the three.

Comparisons. The sign of x mod 2^k comes from a boolean circuit on bit-sliced replicated
bits (64 values per word; an AND costs each server one bit: z_i = a_i b_i ^ a_i b_(i+1)
^ a_(i+1) b_i ^ alpha_i, sent to server i-1). Server k knows A = x_k + x_(k+1) and shares
its low k bits; B = x_(k+2) is known to servers k+1 and k+2 and is shared for free (the
values are cut in three chunks, each server playing k in one, so all send alike); the
carry into bit k-1 of A + B comes from a log-depth generate/propagate tree (about 3k
ANDs). The sign bit b = e ^ c (e = b_k ^ b_(k+1) known to server k, c = b_(k+2))
becomes arithmetic with one input sharing and one product, and ReLU(x) = x (1 - b) =
x - t - e (x - 2t) with t = c x: two product rounds after the circuit.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core, ring
from ..errors import ProgramError, ProtocolError
from ..program.ops import OPS, Context, OpSpec, check_axis, conv_attrs, register, register_scheme
from .nonlinear import bitonic_stages, pool_geometry, sign_bits, sort_geometry

SCHEME = "rss3"
KEY_BYTES = 16
OFFSET_BITS = 62
PRODUCTS = ("mul", "square", "matmul", "conv2d")
# interactive ops with a replicated protocol here; every other op of the library is local
# and linear, and runs on each of a server's two shares as it would on an additive share
PROTOCOL_OPS = (
    *PRODUCTS,
    *("trunc_pair", "rescale", "reveal", "relu", "less", "max_pool2d", "sort", "topk", "max", "argmax"),
    *("reciprocal", "rsqrt", "smallest_k"),
)


def prev(i: int) -> int:
    return (i - 1) % 3


def succ(i: int) -> int:
    return (i + 1) % 3


def _check_trunc_bits(op: str, attrs: dict[str, Any]) -> int:
    bits = attrs.get("trunc_bits", 0)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= OFFSET_BITS:
        raise ProgramError(f"{op}: trunc_bits must be an integer in 0..{OFFSET_BITS}")
    if bits and op not in PRODUCTS:
        raise ProgramError(f"{op}: only products take trunc_bits")
    return bits


# ---- the job's keys and randomness ----------------------------------------------------------


@dataclass
class Keys:
    own: bytes  # k_i, shared with server i-1
    succ: bytes  # k_(i+1), shared with server i+1
    step: int = -1
    calls: int = 0  # protocol calls in the running step (the same sequence on every server)


class Session:
    """One server's view of the replicated protocols within one step."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.i = ctx.party
        keys = ctx.state.get(SCHEME)
        if keys is None:
            keys = ctx.state[SCHEME] = _exchange_keys(ctx)
        if keys.step != ctx.step:
            keys.step, keys.calls = ctx.step, 0
        self.keys = keys

    def call(self) -> int:
        """A fresh call index: every server numbers its protocol calls in the same order."""
        self.keys.calls += 1
        return self.keys.calls

    def _seed(self, key: bytes, call: int, label: str) -> bytes:
        message = f"{self.ctx.step}:{call}:{label}".encode()
        return hashlib.blake2b(message, key=key, digest_size=16).digest()

    def rand(self, which: int, call: int, label: str, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform ring elements under key k_(i+which) (known to this server and one other)."""
        key = self.keys.own if which == 0 else self.keys.succ
        return ring.random(self._seed(key, call, label), shape)

    def rand_of(self, holder: int, call: int, label: str, shape: tuple[int, ...]) -> np.ndarray:
        """Randomness under key k_holder (servers holder and holder-1); this server must know it."""
        if holder == self.i:
            return self.rand(0, call, label, shape)
        assert holder == succ(self.i), "a key this server does not hold"
        return self.rand(1, call, label, shape)

    def zero(self, call: int, shape: tuple[int, ...]) -> np.ndarray:
        """This server's part of an additive sharing of zero: F(k_i) - F(k_(i+1))."""
        return ring.sub(*(ring.random(seed, shape) for seed in self.zero_seeds(call)))

    def zero_seeds(self, call: int) -> tuple[bytes, bytes]:
        """The seeds of the two streams of a zero-sharing (for kernels that mask as they go)."""
        return self._seed(self.keys.own, call, "zero"), self._seed(self.keys.succ, call, "zero")

    def reshare(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """From 3-out-of-3 parts (z_i here) to replicated shares: send z_i to server i-1.
        With ``out`` (shape (2, ...)), ``z`` is already its row 0 and the share from
        server i+1 arrives straight into row 1: no fresh buffers, no copies."""
        fresh = out is None
        if out is None:
            out = np.empty((2, *z.shape), dtype=z.dtype)
        got = self.ctx.exchange({prev(self.i): [z]}, {succ(self.i): 1}, into={succ(self.i): [out[1]]})[succ(self.i)][0]
        check_received(got, z.shape, z.dtype)
        if fresh:
            out[0] = z
        return out


def check_received(got: np.ndarray, shape: tuple[int, ...], dtype: Any) -> None:
    if got.shape != tuple(shape) or got.dtype != np.dtype(dtype):
        raise ProtocolError(f"a server sent {got.dtype}{list(got.shape)} where {np.dtype(dtype)}{list(shape)} was due")


def _exchange_keys(ctx: Context) -> Keys:
    mine = os.urandom(KEY_BYTES)
    got = ctx.exchange({prev(ctx.party): [np.frombuffer(mine, dtype=np.uint8).copy()]}, {succ(ctx.party): 1})
    theirs = got[succ(ctx.party)][0]
    check_received(theirs, (KEY_BYTES,), np.uint8)
    return Keys(mine, theirs.tobytes())


# ---- products and truncation ------------------------------------------------------------------


def _shares(*tensors: np.ndarray) -> list[np.ndarray]:
    """Both shares of each tensor, contiguous, in order (the kernels' arguments)."""
    return [np.ascontiguousarray(t[k]) for t in tensors for k in (0, 1)]


def _masked_part(
    sess: Session, op: str, x: np.ndarray, y: np.ndarray, attrs: dict[str, Any], out: np.ndarray | None = None
) -> np.ndarray:
    """z_i = x_i y_i + x_i y_(i+1) + x_(i+1) y_i plus a zero-sharing: this server's
    3-out-of-3 part of x y. Elementwise products mask inside the kernel, block by block
    (into ``out`` when given)."""
    call = sess.call()
    if op in ("mul", "square"):
        return _core.rss_mul_masked(*_shares(x, x if op == "square" else y), *sess.zero_seeds(call), out=out)
    ysum = ring.add(y[0], y[1])
    if op == "matmul":
        out = ring.matmul(x[0], ysum)
        ring.add(out, ring.matmul(x[1], y[0]), out=out)
    else:
        g = conv_attrs(attrs)
        geometry = (g["stride"], g["padding"], g["dilation"], g["groups"])
        out = ring.conv2d(x[0], ysum, *geometry)
        ring.add(out, ring.conv2d(x[1], y[0], *geometry), out=out)
    return ring.add(out, sess.zero(call, out.shape), out=out)


def product(sess: Session, op: str, x: np.ndarray, y: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    bits = int(attrs.get("trunc_bits", 0))
    if bits:
        return truncate(sess, _masked_part(sess, op, x, y, attrs), bits)
    if op in ("mul", "square"):  # the kernel writes row 0 of the result, the peer's share lands in row 1
        out = np.empty(x.shape, dtype=np.uint64)
        return sess.reshare(_masked_part(sess, op, x, y, attrs, out=out[0]), out=out)
    return sess.reshare(_masked_part(sess, op, x, y, attrs))


def mul(sess: Session, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise replicated product (no truncation): one round, one element per value."""
    return product(sess, "mul", x, y, {})


def truncate(sess: Session, z: np.ndarray, bits: int) -> np.ndarray:
    """Replicated shares of z / 2^bits (floor, or one unit more) from 3-out-of-3 parts z_i
    that already include a zero-sharing; see the module docstring. The values are cut in
    three chunks with the roles (a, b, h) rotated, so every server does each role once
    and sends about the same bytes."""
    ctx = sess.ctx
    call = sess.call()
    shape = z.shape
    flat = z.reshape(-1)
    bounds = np.linspace(0, flat.size, 4).astype(int)
    chunks = [_TruncChunk(sess, call, k, bits, flat[bounds[k] : bounds[k + 1]]) for k in range(3)]
    for phase in range(3):
        sends: dict[int, list[np.ndarray]] = {}
        receive: dict[int, int] = {}
        for chunk in chunks:
            for peer, arrays in chunk.sends(phase).items():
                sends.setdefault(peer, []).extend(arrays)
            for peer, count in chunk.receives(phase).items():
                receive[peer] = receive.get(peer, 0) + count
        got = ctx.exchange(sends, receive)
        for chunk in chunks:
            mine = {peer: [got[peer].pop(0) for _ in range(count)] for peer, count in chunk.receives(phase).items()}
            chunk.received(phase, mine)
    out = np.empty((2, flat.size), dtype=np.uint64)
    for k, chunk in enumerate(chunks):
        out[:, bounds[k] : bounds[k + 1]] = chunk.result
    return out.reshape((2, *shape))


class _TruncChunk:
    """One chunk of a truncation, with roles a = (call + k) mod 3, b = a + 1, h = a - 1."""

    def __init__(self, sess: Session, call: int, k: int, bits: int, z: np.ndarray) -> None:
        self.sess, self.call, self.bits, self.z = sess, call, bits, np.ascontiguousarray(z)
        self.a = (sess.ctx.step + k) % 3
        self.b, self.h = succ(self.a), prev(self.a)
        self.role = "a" if sess.i == self.a else "b" if sess.i == self.b else "h"
        self.n = self.z.size
        self.low = np.uint64((1 << bits) - 1)
        self.label = f"t{k}"
        self.result = np.empty((2, self.n), dtype=np.uint64)

    def rand(self, holder: int, name: str) -> np.ndarray:
        return self.sess.rand_of(holder, self.call, f"{self.label}.{name}", (self.n,))

    def sends(self, phase: int) -> dict[int, list[np.ndarray]]:
        a, b, h, bits = self.a, self.b, self.h, self.bits
        if phase == 0 and self.role == "h":
            r_a, r_hb = self.rand(a, "r_a"), self.rand(h, "r_hb")
            r = ring.add(r_a, r_hb)
            hi_b = ring.sub(r >> np.uint64(bits), self.rand(a, "hi"))
            msb_b = ((r >> np.uint64(63)) - self.rand(a, "msb")) & self.low
            return {b: [ring.add(self.z, r_a), hi_b, _pack_small(msb_b, bits)]}
        if phase == 0 and self.role == "a":
            return {b: [ring.add(self.z, np.full(self.n, np.uint64(1 << OFFSET_BITS)))]}
        if phase == 1 and self.role == "b":
            return {a: [self.msb_c_bits], h: [self.comp_h]}
        if phase == 2 and self.role == "a":
            return {h: [self.result[0]]}
        return {}

    def receives(self, phase: int) -> dict[int, int]:
        if phase == 0 and self.role == "b":
            return {self.a: 1, self.h: 3}
        if phase == 1 and self.role in ("a", "h"):
            return {self.b: 1}
        if phase == 2 and self.role == "h":
            return {self.a: 1}
        return {}

    def received(self, phase: int, got: dict[int, list[np.ndarray]]) -> None:
        a, b, h, bits, n = self.a, self.b, self.h, self.bits, self.n
        top_unit = 1 << (64 - bits)
        if phase == 0 and self.role == "b":
            (m_a,), (m_h, hi_b, msb_packed) = got[a], got[h]
            for arr in (m_a, m_h, hi_b):
                check_received(arr, (n,), np.uint64)
            msb_b = _unpack_small(msb_packed, bits, n)
            c = ring.add(ring.add(m_a, self.z), ring.add(m_h, self.rand(h, "r_hb")))
            top = c >> np.uint64(63)
            y_b = ring.sub(c >> np.uint64(bits), hi_b)
            ring.add(y_b, ring.mul_scalar(ring.mul(msb_b, np.uint64(1) - top), top_unit), out=y_b)
            y_b -= np.uint64(1 << (OFFSET_BITS - bits))
            self.result[0] = self.rand(b, "out")  # k_b: servers b and a
            self.comp_h = ring.add(y_b, self.rand(b, "mask"))
            self.result[1] = self.comp_h
            self.msb_c_bits = np.packbits(top.astype(np.uint8), bitorder="little")
        elif phase == 1 and self.role == "a":
            (packed,) = got[b]
            check_received(packed, ((n + 7) // 8,), np.uint8)
            no_top = np.uint64(1) - np.unpackbits(packed, count=n, bitorder="little").astype(np.uint64)
            msb_a = self.rand(a, "msb") & self.low
            y_a = ring.sub(ring.mul_scalar(ring.mul(msb_a, no_top), top_unit), self.rand(a, "hi"))
            comp_b = self.rand(b, "out")
            self.result[0] = ring.sub(ring.sub(y_a, comp_b), self.rand(b, "mask"))
            self.result[1] = comp_b
        elif phase == 1 and self.role == "h":
            (comp_h,) = got[b]
            check_received(comp_h, (n,), np.uint64)
            self.result[0] = comp_h
        elif phase == 2 and self.role == "h":
            (comp_a,) = got[a]
            check_received(comp_a, (n,), np.uint64)
            self.result[1] = comp_a


def _pack_small(values: np.ndarray, bits: int) -> np.ndarray:
    """``bits``-bit values in the fewest whole bytes each, as uint8 (the transport's small dtype)."""
    width = 1 if bits <= 8 else 2 if bits <= 16 else 4 if bits <= 32 else 8
    return values.astype(f"<u{width}").view(np.uint8)


def _unpack_small(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    width = 1 if bits <= 8 else 2 if bits <= 16 else 4 if bits <= 32 else 8
    check_received(packed, (n * width,), np.uint8)
    return packed.view(f"<u{width}").astype(np.uint64)


def reveal(sess: Session, x: np.ndarray) -> np.ndarray:
    """Open x to all three servers: each sends its first share to the next server."""
    got = sess.ctx.exchange({succ(sess.i): [np.ascontiguousarray(x[0])]}, {prev(sess.i): 1})[prev(sess.i)][0]
    check_received(got, x.shape[1:], np.uint64)
    return ring.add(ring.add(x[0], x[1]), got)


def public(i: int, value: np.ndarray) -> np.ndarray:
    """Replicated shares of a public value: (value, 0, 0)."""
    out = np.zeros((2, *value.shape), dtype=np.uint64)
    if i == 0:
        out[0] = value
    elif i == 2:
        out[1] = value
    return out


# ---- bit-sliced boolean circuits -----------------------------------------------------------------


def and_gates(sess: Session, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AND of boolean replicated words (shape (2, ...)): each server sends one bit per gate."""
    call = sess.call()
    out = np.empty(x.shape, dtype=np.uint64)
    return sess.reshare(_core.rss_and_masked(*_shares(x, y), *sess.zero_seeds(call), out=out[0]), out=out)


def sign_planes(sess: Session, x: np.ndarray, nbits: int) -> np.ndarray:
    """Boolean replicated words (2, W) of the sign bit (bit nbits-1) of x mod 2^nbits."""
    a_sh, b_sh = _input_planes(sess, x, nbits)
    top = np.bitwise_xor(a_sh[:, nbits - 1], b_sh[:, nbits - 1])
    m = nbits - 1
    if m == 0:
        return top
    gen = and_gates(sess, a_sh[:, :m], b_sh[:, :m])
    prop = np.bitwise_xor(a_sh[:, :m], b_sh[:, :m])
    carry = _group_generate(sess, gen, prop)
    return np.bitwise_xor(top, carry)


def _word_chunks(words: int) -> list[tuple[int, int]]:
    """Three ranges of 64-value words, one per rotation of the input role (server k shares
    its values in chunk k), so that every server sends the same bytes."""
    bounds = [words * k // 3 for k in range(4)]
    return [(bounds[k], bounds[k + 1]) for k in range(3)]


def _input_planes(sess: Session, x: np.ndarray, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean replicated words (2, nbits, W) of A and B with A + B = x. In chunk k, server k
    knows A = x_k + x_(k+1) and shares it (s_k from their common key with server k-1, s_(k+1)
    = A ^ s_k sent to server k+1: one round), and B = x_(k+2), which servers k+1 and k+2
    hold, is shared for free."""
    i = sess.i
    flat = x.reshape(2, -1)
    n = flat.shape[1]
    words = (n + 63) // 64
    call = sess.call()
    a_sh = np.zeros((2, nbits, words), dtype=np.uint64)
    b_sh = np.zeros_like(a_sh)
    sends: dict[int, list[np.ndarray]] = {}
    into = None
    for k, (w0, w1) in enumerate(_word_chunks(words)):
        if w0 == w1:
            continue
        part = flat[:, 64 * w0 : min(n, 64 * w1)]
        role = (i - k) % 3
        if role == 0:  # shares (k, k+1)
            planes = _core.bit_planes(ring.add(*_shares(part)), nbits)
            a_sh[0, :, w0:w1] = sess.rand(0, call, f"A{k}", planes.shape)  # k_k: servers k and k-1
            a_sh[1, :, w0:w1] = np.bitwise_xor(planes, a_sh[0, :, w0:w1])
            sends[succ(i)] = [np.ascontiguousarray(a_sh[1, :, w0:w1])]
        elif role == 1:  # shares (k+1, k+2): s_(k+1) arrives; B = x_(k+2) is the second share
            into = (w0, w1)
            b_sh[1, :, w0:w1] = _core.bit_planes(np.ascontiguousarray(part[1]), nbits)
        else:  # shares (k+2, k): B = x_(k+2) is the first share, s_k from the key k_k
            a_sh[1, :, w0:w1] = sess.rand(1, call, f"A{k}", (nbits, w1 - w0))
            b_sh[0, :, w0:w1] = _core.bit_planes(np.ascontiguousarray(part[0]), nbits)
    got = sess.ctx.exchange(sends, {prev(i): 1} if into else {})
    if into:
        s = got[prev(i)][0]
        check_received(s, (nbits, into[1] - into[0]), np.uint64)
        a_sh[0, :, into[0] : into[1]] = s
    return a_sh, b_sh


def bit_decompose(sess: Session, x: np.ndarray, nbits: int) -> np.ndarray:
    """Every bit of x mod 2^nbits as boolean replicated words (2, nbits, W): A + B with all
    carries from a Sklansky prefix tree over (generate, propagate), log2(nbits) AND rounds of
    about nbits gates per value each."""
    a_sh, b_sh = _input_planes(sess, x, nbits)
    total = np.bitwise_xor(a_sh, b_sh)
    m = nbits - 1  # carries into bits 1..nbits-1 come from bits 0..nbits-2
    if m == 0:
        return total
    gen = and_gates(sess, np.ascontiguousarray(a_sh[:, :m]), np.ascontiguousarray(b_sh[:, :m]))
    prop = np.ascontiguousarray(total[:, :m])
    span = 1
    while span < m:
        upd = np.array([j for j in range(m) if (j // span) % 2 == 1])
        par = (upd // span) * span - 1
        left = np.concatenate([prop[:, upd], prop[:, upd]], axis=1)
        right = np.concatenate([gen[:, par], prop[:, par]], axis=1)
        products = and_gates(sess, left, right)
        gen[:, upd] = np.bitwise_xor(gen[:, upd], products[:, : len(upd)])
        prop[:, upd] = products[:, len(upd) :]
        span *= 2
    out = total.copy()
    out[:, 1:] = np.bitwise_xor(total[:, 1:], gen)  # bit j ^= carry into j = generate of [0, j)
    return out


def highest_bit(sess: Session, bits: np.ndarray) -> np.ndarray:
    """One-hot boolean words (2, nbits, W) of the highest set bit of each value: a prefix OR
    from the top (a | b = a ^ b ^ ab, Sklansky, one AND per update) and neighbouring XORs."""
    q = np.ascontiguousarray(bits[:, ::-1])  # q[t] = bit nbits-1-t
    n = q.shape[1]
    span = 1
    while span < n:
        upd = np.array([t for t in range(n) if (t // span) % 2 == 1])
        par = (upd // span) * span - 1
        both = and_gates(sess, np.ascontiguousarray(q[:, upd]), np.ascontiguousarray(q[:, par]))
        q[:, upd] = np.bitwise_xor(np.bitwise_xor(q[:, upd], q[:, par]), both)
        span *= 2
    q = q[:, ::-1]  # q[j] = OR of bits j..nbits-1
    onehot = q.copy()
    onehot[:, :-1] = np.bitwise_xor(q[:, :-1], q[:, 1:])
    return np.ascontiguousarray(onehot)


def _group_generate(sess: Session, gen: np.ndarray, prop: np.ndarray) -> np.ndarray:
    """The carry out of bits 0..m-1 (generate of the whole group) by a log-depth tree:
    (G, P)_hi o (G, P)_lo = (G_hi ^ P_hi G_lo, P_hi P_lo). The lowest group's P is never
    needed (no carry comes in), so it is not computed."""
    while gen.shape[1] > 1:
        m = gen.shape[1]
        pairs = m // 2
        lo_g, hi_g = gen[:, 0 : 2 * pairs : 2], gen[:, 1 : 2 * pairs : 2]
        lo_p, hi_p = prop[:, 0 : 2 * pairs : 2], prop[:, 1 : 2 * pairs : 2]
        # one AND round: P_hi G_lo for every pair, P_hi P_lo for every pair but the lowest
        left = np.concatenate([hi_p, hi_p[:, 1:]], axis=1)
        right = np.concatenate([lo_g, lo_p[:, 1:]], axis=1)
        products = and_gates(sess, np.ascontiguousarray(left), np.ascontiguousarray(right))
        new_g = np.bitwise_xor(hi_g, products[:, :pairs])
        new_p = np.concatenate([np.zeros_like(hi_p[:, :1]), products[:, pairs:]], axis=1)
        if m % 2:
            new_g = np.concatenate([new_g, gen[:, m - 1 :]], axis=1)
            new_p = np.concatenate([new_p, prop[:, m - 1 :]], axis=1)
        gen, prop = new_g, new_p
    return gen[:, 0]


def _unpack(words: np.ndarray, count: int) -> np.ndarray:
    """Bits 0..count-1 of each row of words (..., W) as 0/1 values (..., count)."""
    rows = np.ascontiguousarray(words).reshape(-1, words.shape[-1])
    bits = _core.unpack_bits(rows.reshape(-1), rows.size * 64).reshape(rows.shape[0], -1)[:, :count]
    return np.ascontiguousarray(bits).reshape((*words.shape[:-1], count))


@dataclass
class _Pending:
    """Server k's input share e_(k+1) of a chunk, on its way to server k+1."""

    send: np.ndarray | None = None  # what this server sends to its successor
    into: tuple[slice, ...] | None = None  # where this server puts what its predecessor sends


def _bit_to_arithmetic_parts(sess: Session, planes: np.ndarray, shape: tuple[int, ...]):
    """From boolean replicated bits b = b_0 ^ b_1 ^ b_2 (words (2, *lead, W)) to two arithmetic
    replicated values of ``shape`` = (*lead, count) with b = e + c - 2 e c: in chunk k (see
    :func:`_word_chunks`) e = b_k ^ b_(k+1), which server k knows and shares as an input, and
    c = b_(k+2), which servers k+1 and k+2 hold. Returns [c], [e] and the input share still
    to be sent (:class:`_Pending`)."""
    i = sess.i
    count = shape[-1]
    c = np.zeros((2, *shape), dtype=np.uint64)
    e = np.zeros((2, *shape), dtype=np.uint64)
    pending = _Pending()
    call = sess.call()
    for k, (w0, w1) in enumerate(_word_chunks(planes.shape[-1])):
        lo, hi = 64 * w0, min(count, 64 * w1)
        if lo >= hi:
            continue
        cut = (Ellipsis, slice(lo, hi))
        part_shape = (*shape[:-1], hi - lo)
        role = (i - k) % 3
        words = planes[..., w0:w1]
        if role == 0:  # shares (k, k+1): e in the clear; [e] = (e_k from k_k, e - e_k, 0)
            e_plain = _unpack(np.bitwise_xor(words[0], words[1]), hi - lo)
            e[0][cut] = sess.rand(0, call, f"e{k}", part_shape)
            e[1][cut] = ring.sub(e_plain, np.ascontiguousarray(e[0][cut]))
            pending.send = np.ascontiguousarray(e[1][cut])
        elif role == 1:  # shares (k+1, k+2): c is the second; e_(k+1) arrives, e_(k+2) = 0
            c[1][cut] = _unpack(words[1], hi - lo)
            pending.into = cut
        else:  # shares (k+2, k): c is the first; e_k from the key k_k
            c[0][cut] = _unpack(words[0], hi - lo)
            e[1][cut] = sess.rand(1, call, f"e{k}", part_shape)
    return c, e, pending


def _with_input(
    sess: Session, sends: dict[int, list[np.ndarray]], receive: dict[int, int], e: np.ndarray, pending: _Pending
) -> dict[int, list[np.ndarray]]:
    """One exchange carrying, besides ``sends``, the pending input share of [e]."""
    i = sess.i
    if pending.send is not None:
        sends = {**sends, succ(i): [*sends.get(succ(i), []), pending.send]}
    if pending.into is not None:
        receive = {**receive, prev(i): receive.get(prev(i), 0) + 1}
    got = sess.ctx.exchange(sends, receive)
    if pending.into is not None:
        share = got[prev(i)].pop()
        check_received(share, e[0][pending.into].shape, np.uint64)
        e[0][pending.into] = share
    return got


def _product_and_input(sess: Session, x: np.ndarray, y: np.ndarray, e: np.ndarray, pending: _Pending) -> np.ndarray:
    """One round: the replicated product x y, and the pending input share of [e]."""
    i = sess.i
    z = _masked_part(sess, "mul", x, y, {})
    other = _with_input(sess, {prev(i): [z]}, {succ(i): 1}, e, pending)[succ(i)][0]
    check_received(other, z.shape, np.uint64)
    return np.stack([z, other])


def relu(sess: Session, x: np.ndarray, nbits: int) -> np.ndarray:
    """max(x, 0) = x (1 - b), b the sign bit: x - t - e (x - 2 t), t = b_2 x."""
    shape = x.shape[1:]
    planes = sign_planes(sess, x, nbits)
    b2, e, pending = _bit_to_arithmetic_parts(sess, planes, (int(np.prod(shape)),))
    t = _product_and_input(sess, b2, x.reshape(2, -1), e, pending).reshape(x.shape)
    e = e.reshape(x.shape)
    inner = ring.sub(x, ring.add(t, t))
    et = mul(sess, e, inner)
    return ring.sub(ring.sub(x, t), et)


def negative(sess: Session, x: np.ndarray, nbits: int) -> np.ndarray:
    """Arithmetic replicated 1{x < 0} (0 or 1 in ring units)."""
    planes = sign_planes(sess, x, nbits)
    return bits_to_arithmetic(sess, planes, int(np.prod(x.shape[1:]))).reshape(x.shape)


def bits_to_arithmetic(sess: Session, planes: np.ndarray, count: int) -> np.ndarray:
    """Boolean replicated bits (words (2, *lead, W)) as arithmetic replicated 0/1 values
    (2, *lead, count): b = e + b_2 - 2 e b_2 with e shared by server 0, then one product."""
    b2, e, pending = _bit_to_arithmetic_parts(sess, planes, (*planes.shape[1:-1], count))
    _with_input(sess, {}, {}, e, pending)  # the product needs every share of [e]: share it first
    eb = mul(sess, e, b2)
    return ring.sub(ring.add(e, b2), ring.add(eb, eb))


def pairwise_max(sess: Session, a: np.ndarray, b: np.ndarray, nbits: int) -> np.ndarray:
    """max(a, b) = b + relu(a - b)."""
    return ring.add(b, relu(sess, ring.sub(a, b), nbits))


# ---- the scheme ----------------------------------------------------------------------------------------


class ShareView:
    """What a local op sees when it runs on one of a server's two shares: that share's index
    as its party (only share 0 takes a public constant, as party 0 does in additive sharing)."""

    def __init__(self, ctx: Context, share: int) -> None:
        self._ctx = ctx
        self.party = share
        self.parties = 3

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


class Replicated:
    """2-out-of-3 replicated sharing on three servers."""

    name = SCHEME
    parties = (3,)
    copies = 2
    offline_phase = False  # products need no correlated randomness: nothing to prepare

    @staticmethod
    def result(share: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(share[0])  # x_i: the three servers' first shares add up to x

    @staticmethod
    def check(op: str, attrs: dict[str, Any]) -> None:
        spec = OPS[op]
        if spec.scheme == "he":
            raise ProgramError(f"op {op!r} runs on ciphertexts, not on replicated shares")
        if op not in PROTOCOL_OPS and spec.interactive:
            raise ProgramError(f"op {op!r} has no protocol for replicated sharing (rss3) yet")
        if "reuse" in attrs:
            raise ProgramError(f"{op}: a reuse key is for additive sharing (replicated products open nothing)")
        _check_trunc_bits(op, attrs)

    @staticmethod
    def start(ctx: Context) -> None:
        """Agree on the job's pairwise keys (one round, 16 bytes to one neighbour)."""
        if SCHEME not in ctx.state:
            ctx.state[SCHEME] = _exchange_keys(ctx)

    @staticmethod
    def run(ctx: Context, spec: OpSpec, xs: list[Any], attrs: dict[str, Any]) -> Any:
        op = spec.name
        if op not in PROTOCOL_OPS:
            return local(ctx, spec, xs, attrs)
        sess = Session(ctx)
        if op in PRODUCTS:
            x = xs[0]
            y = xs[1] if op != "square" else xs[0]
            return product(sess, op, x, y, attrs)
        if op in ("trunc_pair", "rescale"):
            z = np.array(xs[0][0], copy=True)
            ring.add(z, sess.zero(sess.call(), z.shape), out=z)
            return truncate(sess, z, int(attrs["bits"]))
        if op == "reveal":
            return public(ctx.party, reveal(sess, xs[0]))
        if op == "relu":
            return relu(sess, xs[0], sign_bits(attrs))
        if op == "less":
            s = negative(sess, ring.sub(xs[0], xs[1]), sign_bits(attrs))
            return ring.mul_scalar(s, 1 << int(attrs.get("frac_bits", 16)))
        if op == "max_pool2d":
            return _max_pool(sess, xs[0], attrs)
        if op in ("max", "argmax"):
            return _reduce_max(sess, xs[0], attrs, with_index=op == "argmax")
        if op == "smallest_k":
            return _smallest_k(sess, xs[0], attrs)
        if op in ("reciprocal", "rsqrt"):
            frac = int(attrs.get("frac_bits", 16))
            fn = reciprocal if op == "reciprocal" else rsqrt
            return fn(sess, xs[0], _check_positive_bits(attrs, frac), frac)
        return _sort(sess, xs[0], attrs, descending=bool(attrs.get("descending", False)) or op == "topk")


def local(ctx: Context, spec: OpSpec, xs: list[np.ndarray], attrs: dict[str, Any]) -> np.ndarray:
    """A linear local op on each of this server's two shares."""
    parts = [spec.run(ShareView(ctx, (ctx.party + j) % 3), [x[j] for x in xs], attrs) for j in (0, 1)]
    out = np.empty((2, *parts[0].shape), dtype=np.uint64)
    out[0], out[1] = parts
    return out


def _max_pool(sess: Session, x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    (kh, kw), (sh, sw), (n, c, ho, wo) = pool_geometry(x.shape[1:], attrs)
    values = [
        np.ascontiguousarray(x[:, :, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw])
        for i in range(kh)
        for j in range(kw)
    ]
    bits = sign_bits(attrs)
    while len(values) > 1:
        half = len(values) // 2
        a = np.stack(values[:half], axis=1)
        b = np.stack(values[half : 2 * half], axis=1)
        m = pairwise_max(sess, a, b, bits)
        values = [np.ascontiguousarray(m[:, k]) for k in range(half)] + values[2 * half :]
    return values[0]


def _sort(sess: Session, x: np.ndarray, attrs: dict[str, Any], descending: bool) -> np.ndarray:
    """Bitonic network: per stage one batched max (a ReLU) and a local min = a + b - max."""
    x = np.array(x, copy=True)
    bits = sign_bits(attrs)
    for pairs in bitonic_stages(sort_geometry(x.shape[1:])):
        lo = np.array([p[0] for p in pairs])
        hi = np.array([p[1] for p in pairs])
        a, b = np.ascontiguousarray(x[..., lo]), np.ascontiguousarray(x[..., hi])
        top = pairwise_max(sess, a, b, bits)
        x[..., lo] = ring.sub(ring.add(a, b), top)
        x[..., hi] = top
    if descending:
        x = np.ascontiguousarray(x[..., ::-1])
    if "k" in attrs:
        x = np.ascontiguousarray(x[..., : attrs["k"]])
    return x


def _reduce_max(sess: Session, x: np.ndarray, attrs: dict[str, Any], with_index: bool) -> np.ndarray:
    """Max (or its first index, as a fixed-point number) along ``axis`` by a tournament of
    neighbours: each round compares values 2k and 2k+1 (the lower index wins ties, as in
    numpy) with one sign and one product that selects the value and the index together."""
    axis = check_axis(attrs.get("axis", -1), x.ndim - 1, "axis") + 1
    v = np.moveaxis(x, axis, -1)
    lead = v.shape[1:-1]
    v = np.ascontiguousarray(v).reshape(2, -1, v.shape[-1])
    unit = 1 << int(attrs.get("frac_bits", 16))
    index = np.broadcast_to(public(sess.i, np.arange(v.shape[-1], dtype=np.uint64) * np.uint64(unit))[:, None], v.shape)
    index = np.ascontiguousarray(index)
    bits = sign_bits(attrs)
    while v.shape[-1] > 1:
        pairs = v.shape[-1] // 2
        a, b, ia, ib = (np.ascontiguousarray(t[..., k : 2 * pairs : 2]) for t in (v, index) for k in (0, 1))
        b_wins = negative(sess, ring.sub(a, b), bits)  # 1{a < b}
        # one product selects both: (b - a, ib - ia) times 1{a < b}
        step = mul(sess, np.stack([b_wins, b_wins], axis=1), np.stack([ring.sub(b, a), ring.sub(ib, ia)], axis=1))
        v = np.concatenate([ring.add(a, np.ascontiguousarray(step[:, 0])), v[..., 2 * pairs :]], axis=-1)
        index = np.concatenate([ring.add(ia, np.ascontiguousarray(step[:, 1])), index[..., 2 * pairs :]], axis=-1)
    out = index if with_index else v
    return np.ascontiguousarray(out[..., 0]).reshape((2, *lead) if lead else (2, 1))


def _compare_exchange(sess: Session, v: np.ndarray, ix: np.ndarray, lo: np.ndarray, hi: np.ndarray, bits: int) -> None:
    """In place along the last axis: for each pair (lo[j], hi[j]) the smaller value (and its
    index) goes to lo[j], the larger to hi[j]; ties keep their order. One sign of a - b for
    all pairs at once and one product that moves value and index together."""
    a, b, ia, ib = (np.ascontiguousarray(t[..., pos]) for t in (v, ix) for pos in (lo, hi))
    swap = negative(sess, ring.sub(b, a), bits)  # 1{b < a}
    moved = mul(sess, np.stack([swap, swap], axis=1), np.stack([ring.sub(b, a), ring.sub(ib, ia)], axis=1))
    small = ring.add(a, np.ascontiguousarray(moved[:, 0]))
    small_ix = ring.add(ia, np.ascontiguousarray(moved[:, 1]))
    v[..., lo], ix[..., lo] = small, small_ix
    v[..., hi], ix[..., hi] = ring.sub(ring.add(a, b), small), ring.sub(ring.add(ia, ib), small_ix)


def _half_cleaners(size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The stages that sort a bitonic sequence of ``size`` (a power of two) ascending."""
    stages, d = [], size // 2
    while d >= 1:
        lo = np.array([i for i in range(size) if not i & d])
        stages.append((lo, lo + d))
        d //= 2
    return stages


def _smallest_k(sess: Session, x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """The k smallest values along the last axis, ascending, with their indices (ties: the
    lower index first is not promised). Blocks of K = 2^ceil(log2 k) are sorted by a bitonic
    network; then pairs of sorted blocks merge, keeping the K smallest: min(A[i], B[K-1-i])
    is a bitonic sequence holding them, sorted by log2 K half-cleaner stages. About
    n (log2(K)^2 / 4 + 1.5 log2 K) compare-exchanges in all, and the rounds of
    log2 K (log2 K + 1) / 2 + log2(n / K) (1 + log2 K) stages."""
    k, bits, frac = int(attrs["k"]), sign_bits(attrs), int(attrs.get("frac_bits", 16))
    lead, n = x.shape[1:-1], x.shape[-1]
    block = 1 << max(0, (k - 1).bit_length())
    blocks = -(-n // block)
    # padding: public values above every input (inputs are below 2^(bits-2) ring units)
    v = np.empty((2, int(np.prod(lead, dtype=np.int64)), blocks * block), dtype=np.uint64)
    v[:, :, :n] = x.reshape(2, -1, n)
    v[:, :, n:] = public(sess.i, np.full(blocks * block - n, (1 << (bits - 2)) - 1, dtype=np.uint64))[:, None, :]
    unit = np.uint64(1 << frac)
    ix = np.empty_like(v)
    ix[...] = public(sess.i, np.arange(blocks * block, dtype=np.uint64) * unit)[:, None, :]
    v, ix = v.reshape(2, -1, blocks, block), ix.reshape(2, -1, blocks, block)
    for pairs in bitonic_stages(block):  # sort every block at once
        _compare_exchange(sess, v, ix, np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), bits)
    while v.shape[2] > 1:
        pairs = v.shape[2] // 2
        left, right = slice(0, 2 * pairs, 2), slice(1, 2 * pairs, 2)
        # min(A[i], B[K-1-i]) in A's place: A ascending, B descending, one compare-exchange each
        merged = np.concatenate([v[:, :, left], v[:, :, right][..., ::-1]], axis=-1)
        merged_ix = np.concatenate([ix[:, :, left], ix[:, :, right][..., ::-1]], axis=-1)
        _compare_exchange(sess, merged, merged_ix, np.arange(block), np.arange(block, 2 * block), bits)
        merged, merged_ix = np.ascontiguousarray(merged[..., :block]), np.ascontiguousarray(merged_ix[..., :block])
        for lo, hi in _half_cleaners(block):
            _compare_exchange(sess, merged, merged_ix, lo, hi, bits)
        v = np.concatenate([merged, v[:, :, 2 * pairs :]], axis=2)
        ix = np.concatenate([merged_ix, ix[:, :, 2 * pairs :]], axis=2)
    out = np.stack([v[:, :, 0, :k], ix[:, :, 0, :k]], axis=2)  # (2, L, 2, k)
    return np.ascontiguousarray(out).reshape((2, *lead, 2, k))


NEWTON_STEPS = 3
SCALE_FRAC = 16  # extra fractional bits of the normalising constants (so that 0.8 2^-j is exact enough)
RSQRT_FRAC = 32  # fractional bits of rsqrt's constants 2^((f-1-j)/2)


def _normalize(sess: Session, x: np.ndarray, nbits: int, frac: int, factors: tuple[float, ...]):
    """For 0 < x < 2^(nbits-1) ring units with highest set bit j: c x 2^(frac-1-j) for each c
    in ``factors`` (so x' = x 2^(frac-1-j) lies in [0.5, 1) in real terms), in one product
    with one truncation, and the one-hot bits of j as arithmetic 0/1 values (2, nbits, n),
    of which any public function of j is a local linear combination."""
    n = int(np.prod(x.shape[1:]))
    flat = np.ascontiguousarray(x.reshape(2, n))
    onehot = bits_to_arithmetic(sess, highest_bit(sess, bit_decompose(sess, flat, nbits)), n)
    shift = nbits - frac + SCALE_FRAC
    scales = [_linear(onehot, [round(c * 2.0 ** (nbits - 1 - j + SCALE_FRAC)) for j in range(nbits)]) for c in factors]
    both = product(
        sess, "mul", np.stack([flat] * len(factors), axis=1), np.stack(scales, axis=1), {"trunc_bits": shift}
    )
    return [np.ascontiguousarray(both[:, k]) for k in range(len(factors))], onehot


def _linear(onehot: np.ndarray, constants: list[int]) -> np.ndarray:
    """Sum over j of onehot[:, j] * constants[j] (public integers): local."""
    out = np.zeros((2, onehot.shape[2]), dtype=np.uint64)
    for j, c in enumerate(constants):
        if c % (1 << 64):
            ring.add(out, ring.mul_scalar(np.ascontiguousarray(onehot[:, j]), c % (1 << 64)), out=out)
    return out


def _minus(i: int, offset: float, x: np.ndarray, frac: int) -> np.ndarray:
    """offset - x for a public real offset (local)."""
    return ring.sub(public(i, np.full(x.shape[1:], np.uint64(round(offset * 2**frac) % (1 << 64)))), x)


def _check_positive_bits(attrs: dict[str, Any], frac: int) -> int:
    bits = attrs.get("bits", 40)
    if isinstance(bits, bool) or not isinstance(bits, int) or not frac + 2 <= bits <= 46:
        raise ProgramError(f"bits must be an integer in {frac + 2}..46 (0 < x < 2^(bits-1) ring units), got {bits!r}")
    return bits


def reciprocal(sess: Session, x: np.ndarray, nbits: int, frac: int) -> np.ndarray:
    """1/x for 0 < x < 2^(nbits-1) ring units: normalise to x' in [0.5, 1), Newton
    y <- y (2 - x' y) from y_0 = 2.9142 - 2 x', then 1/x = y 2^(frac-1-j)."""
    (z,), onehot = _normalize(sess, x, nbits, frac, (1.0,))
    y = _minus(sess.i, 2.9142, ring.mul_scalar(z, 2), frac)
    for _ in range(NEWTON_STEPS):
        t = product(sess, "mul", z, y, {"trunc_bits": frac})
        y = product(sess, "mul", y, _minus(sess.i, 2.0, t, frac), {"trunc_bits": frac})
    scale = _linear(onehot, [1 << (nbits - 1 - j) for j in range(nbits)])
    return product(sess, "mul", y, scale, {"trunc_bits": nbits - frac}).reshape(x.shape)


def rsqrt(sess: Session, x: np.ndarray, nbits: int, frac: int) -> np.ndarray:
    """1/sqrt(x) for 0 < x < 2^(nbits-1) ring units: normalise to x' in [0.5, 1), Newton
    y <- y (1.5 - x' y^2 / 2) from y_0 = 1.8 - 0.8 x' (0.8 x' comes with x' from the same
    product), then 1/sqrt(x) = y 2^((frac-1-j)/2) by public constants of j."""
    (z, w), onehot = _normalize(sess, x, nbits, frac, (1.0, 0.8))
    y = _minus(sess.i, 1.8, w, frac)
    for _ in range(NEWTON_STEPS + 1):
        y2 = product(sess, "square", y, y, {"trunc_bits": frac})
        half = product(sess, "mul", z, y2, {"trunc_bits": frac + 1})  # x' y^2 / 2
        y = product(sess, "mul", y, _minus(sess.i, 1.5, half, frac), {"trunc_bits": frac})
    scale = _linear(onehot, [round(2.0 ** ((frac - 1 - j) / 2 + RSQRT_FRAC)) for j in range(nbits)])
    return product(sess, "mul", y, scale, {"trunc_bits": RSQRT_FRAC}).reshape(x.shape)


class _Positive:
    """Shapes of reciprocal/rsqrt (elementwise, for 0 < x < 2^(bits-1) ring units)."""

    @staticmethod
    def infer(shapes, attrs):
        _check_positive_bits(attrs, int(attrs.get("frac_bits", 16)))
        return shapes[0]

    @staticmethod
    def run(ctx, xs, attrs):
        raise ProgramError("reciprocal/rsqrt run on replicated shares only")


class _ReduceMax:
    """Shapes of max/argmax along ``axis`` (the axis removed; (1,) for a vector)."""

    @staticmethod
    def infer(shapes, attrs):
        sign_bits(attrs)
        x = shapes[0]
        axis = check_axis(attrs.get("axis", -1), len(x), "axis")
        return tuple(s for i, s in enumerate(x) if i != axis) or (1,)

    @staticmethod
    def run(ctx, xs, attrs):
        raise ProgramError("max/argmax run on replicated shares only")


class _SmallestK:
    """Shapes of smallest_k: (..., n) -> (..., 2, k), row 0 the values, row 1 the indices."""

    @staticmethod
    def infer(shapes, attrs):
        bits = sign_bits(attrs)
        k, n = attrs.get("k"), shapes[0][-1] if shapes[0] else 0
        if not isinstance(k, int) or not 1 <= k <= n:
            raise ProgramError(f"smallest_k: k must be an integer in 1..{n} (the last axis), got {k!r}")
        if bits < 4:
            raise ProgramError("smallest_k: bits must be at least 4")
        return (*shapes[0][:-1], 2, k)

    @staticmethod
    def run(ctx, xs, attrs):
        raise ProgramError("smallest_k runs on replicated shares only")


register("smallest_k", 1, interactive=True, scheme="replicated")(_SmallestK)
register("max", 1, interactive=True, scheme="replicated")(type("Max", (_ReduceMax,), {}))
register("argmax", 1, interactive=True, scheme="replicated")(type("ArgMax", (_ReduceMax,), {}))
register("reciprocal", 1, interactive=True, scheme="replicated")(type("Reciprocal", (_Positive,), {}))
register("rsqrt", 1, interactive=True, scheme="replicated")(type("Rsqrt", (_Positive,), {}))
register_scheme(Replicated())
