"""Dealer-free elementwise correlations (Beaver triples, squares, truncation pairs) from
oblivious transfer, between parties 0 and 1.

:func:`derive` turns each party's uniformly random shares of the random components of a
:class:`~safelight.protocols.preprocessing.Correlation` into shares of the derived
components, as the dealer's ``DERIVATIONS`` would, without a dealer. Party 0 is the
sender of IKNP correlated OTs (:class:`~safelight.ot.COTSender`, a job-wide endpoint with
its own offset Delta, separate from the garbled circuits' one), party 1 the receiver.

Correlated-message OT (the building block)
------------------------------------------
Party 1 extends correlated OTs with its *own* bits ``y_j`` as choices (no derandomisation
message is needed): ``t_j = q_j ^ y_j Delta``. Both hash them with the tweakable
correlation-robust hash of :mod:`safelight.ot` (tweak = the OT's index on the endpoint):
party 0 gets ``P0_j = H(q_j)`` and ``P1_j = H(q_j ^ Delta)``, party 1 gets
``H(t_j) = P_{y_j, j}``. For a message ``x_j`` of party 0, reduced mod ``2^w_j``, party
0 sends ``u_j = P1_j - P0_j + x_j mod 2^w_j`` and keeps ``P0_j``; party 1 sets
``z_j = y_j u_j - P_{y_j, j}``. Then ``P0_j + z_j = y_j x_j mod 2^w_j``. One OT carries up
to two 64-bit words (the hash has 128 bits).

mul / square (Gilboa)
---------------------
``a b = a0 b0 + a1 b1 + a0 b1 + b0 a1``: the local products plus two cross products, each
by Gilboa's method: party 1's value ``y`` is the choice bits, bit ``k`` of ``y`` selects
``x 2^k``, so the k-th OT only needs ``64 - k`` bits of message (``sum_k (64-k) = 2080``
bits per product, packed without padding, two products per 65 words). ``square``
needs the single product ``2 a0 a1``: the factor 2 drops bit 63 of ``a1``, so 63 OTs of
``63 - k`` bits. Per value: mul 128 OTs (2 KiB of IKNP traffic from party 1, 520 B of
messages from party 0), square 63 OTs (1008 B + 252 B).

trunc
-----
With ``r = r0 + r1 mod 2^64``, ``a = msb(r0)``, ``b = msb(r1)``, ``s = msb(r)``:

* ``s`` as XOR shares ``s0 ^ s1`` from the garbled circuit of
  :func:`~safelight.protocols.gc_sign.sign_bit_shares` on ``(r0, r1)`` (64-bit adder, 63
  AND gates; party 0 garbles);
* the wrap ``w = [r0 + r1 >= 2^64] = a b + (a ^ b)(1 - s)`` (the majority of a, b and
  the carry into bit 63, which is ``a ^ b ^ s``).

Both ``s = s0 ^ s1`` and ``w`` are functions ``f(b, s1)`` of party 1's two bits whose
coefficients party 0 can tabulate from its bits ``(a, s0)``:
``f = X0 + Xb b + Xs s1 + Xbs (b s1)`` (Moebius transform of the four table entries). So
three correlated-message OTs per value, with choices ``b, s1, b s1`` and two-word messages
(the ``s`` and ``w`` coefficients), give exact arithmetic shares of ``s`` and ``w``.
Then ``r_hi_i = (r_i >> f) - w_i 2^(64 - f)`` and ``r_msb_i = s_i``.

**r_hi is off by one unit at times**: ``r >> f = (r0 >> f) + (r1 >> f) + e - w 2^(64-f)``
where ``e = [(r0 mod 2^f) + (r1 mod 2^f) >= 2^f]`` is the carry of the low bits, which is
not computed: the shares sum to ``(r >> f) - e``, ``e`` in {0, 1} (``e = 1`` with
probability about 1/2). :mod:`~safelight.protocols.truncation` then returns
``floor(x / 2^f) + e``, within the one unit it already allows. ``r_msb`` is exact.

Security (semi-honest, no collusion)
------------------------------------
Party 0 receives only IKNP's ``u`` matrices (and the base-OT points), which are
pseudorandom whatever party 1's choice bits are (IKNP), plus, in trunc, the evaluator's
masked inputs of the garbled circuit (one-time padded by random choice bits). Party 1
receives, per OT, ``u_j`` in which ``P_{1-y_j, j}`` (a hash of the label it does not hold,
with a tweak never used before on this endpoint) is pseudorandom to it, so every ``u_j``
is uniform mod ``2^w_j`` and independent of party 0's values; in trunc it also receives
garbled tables and labels (:mod:`~safelight.protocols.gc_sign`). Each party's outputs are
its own OT pads plus local terms, so the views are simulatable from each party's own
input and output. Against malicious parties nothing is claimed (a cheating party can
make the correlation wrong).

Cost accounting: rounds are counted with ``ctx.add_rounds`` (2 for the base OTs on first
use, 2 per :func:`derive` call: the chunks are pipelined, party 1 extending chunk c+1
while party 0's messages of chunk c are in flight; the garbled circuit counts its own);
bytes are counted by the transport that carries the pipe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from .. import _core, ring
from ..errors import InputError, ProtocolError, UnsupportedError
from ..ot import COTReceiver, COTSender, empty_labels
from ..ot.silent import ChosenCOTReceiver, ChosenCOTSender
from . import gc_sign, ot_compare

SENDER, RECEIVER = 0, 1
# OTs per chunk: bounds memory (party 1 holds two chunks of about 50 bytes per OT, party 0
# one) whatever the tensor size; 2^18 OTs = 2048 values of "mul", 4160 of "square",
# 87381 of "trunc". Larger chunks measured no faster.
CHUNK_OTS = 1 << 18
# values per sign chunk in "trunc" (the millionaires hold about 256 bytes per value)
TRUNC_CHUNK = 1 << 18
_MSG = "otc.msg"

COMPONENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mul": (("a", "b"), ("c",)),
    "square": (("a",), ("c",)),
    "trunc": (("r",), ("r_hi", "r_msb")),
}


# ---- the job's OT endpoint ----------------------------------------------------------


def _state(ctx) -> dict:
    return ctx.state.setdefault("ot_correlations", {"calls": 0})


def _endpoint(ctx, pipe):
    """This job's correlated-OT endpoint for these correlations (base OTs on first use).
    Its own Delta: the garbled circuits' endpoint is not shared."""
    state = _state(ctx)
    if "ot" not in state:
        state["ot"] = (ChosenCOTSender() if ctx.party == SENDER else ChosenCOTReceiver()).setup(pipe)
        ctx.add_rounds(4)
    return state["ot"]


# ---- packing messages of varying widths -------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Fields of fixed bit widths packed back to back into 64-bit words, per row."""

    widths: tuple[int, ...]
    offsets: tuple[int, ...]
    words: int
    masks: np.ndarray  # (fields,) uint64

    @staticmethod
    def of(widths: tuple[int, ...]) -> _Layout:
        offsets = tuple(int(o) for o in np.cumsum((0,) + widths[:-1]))
        words = -(-sum(widths) // 64)
        masks = np.array([(1 << w) - 1 for w in widths], dtype=np.uint64)
        return _Layout(widths, offsets, words, masks)


def _pack(fields: list[np.ndarray], layout: _Layout, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """(words, R) words holding the fields (each (R,) uint64, already reduced mod 2^width)."""
    out.fill(0)
    for row, width, off in zip(fields, layout.widths, layout.offsets):
        j, sh = divmod(off, 64)
        if sh == 0:
            np.bitwise_or(out[j], row, out=out[j])
            continue
        np.left_shift(row, np.uint64(sh), out=tmp)
        np.bitwise_or(out[j], tmp, out=out[j])
        if sh + width > 64:
            np.right_shift(row, np.uint64(64 - sh), out=tmp)
            np.bitwise_or(out[j + 1], tmp, out=out[j + 1])
    return out


def _unpack(packed: np.ndarray, layout: _Layout, fields: list[np.ndarray], tmp: np.ndarray) -> None:
    """Inverse of :func:`_pack` into the (R,) rows ``fields``; each is correct mod 2^width,
    its higher bits are left unmasked (every caller reduces them away)."""
    for row, width, off in zip(fields, layout.widths, layout.offsets):
        j, sh = divmod(off, 64)
        np.right_shift(packed[j], np.uint64(sh), out=row)
        if sh + width > 64:
            np.left_shift(packed[j + 1], np.uint64(64 - sh), out=tmp)
            np.bitwise_or(row, tmp, out=row)


# ---- correlated-message OT transfers, chunked and pipelined -------------------------


@dataclass
class _Chunk:
    """One chunk of OTs: ``fields`` OTs per row, ``rows`` rows, ``words`` (1 or 2) 64-bit
    message words per OT, OT ``f * rows + i`` for field f of row i.

    choices (party 1): a function giving the (fields, rows) uint8 choice bits.
    add_messages (party 0): adds x to the (fields, rows, words) array it is given.
    finish: gets this party's (fields, rows, words) shares of y x (mod 2^width per field;
    the array may be modified in place).
    """

    fields: int
    rows: int
    words: int
    layout: _Layout  # widths of the fields * words packed fields (field-major)
    finish: Callable[[np.ndarray], None]
    choices: Callable[[], np.ndarray] | None = None
    add_messages: Callable[[np.ndarray], None] | None = None


class _Buffers:
    """Reused scratch arrays (a fresh large array costs a page fault per 4 KiB)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def labels(self, name: str, n: int) -> np.ndarray:
        buf = self.arrays.get(name)
        if buf is None or buf.shape[0] < n:
            buf = self.arrays[name] = empty_labels(n)
        return buf[:n]

    def words(self, name: str, n: int) -> np.ndarray:
        buf = self.arrays.get(name)
        if buf is None or buf.size < n:
            buf = self.arrays[name] = np.empty(n, dtype=np.uint64)
        return buf[:n]


def _field_rows(a: np.ndarray, chunk: _Chunk) -> list[np.ndarray]:
    """The packed fields' rows of a (fields, rows, words) array, field-major."""
    return [a[f, :, w] for f in range(chunk.fields) for w in range(chunk.words)]


def _send_chunk(ot: COTSender | ChosenCOTSender, delta: np.ndarray, pipe, chunk: _Chunk, bufs: _Buffers) -> None:
    n, W, R = chunk.fields * chunk.rows, chunk.words, chunk.rows
    first = ot.count
    q = ot.extend(n, pipe, out=bufs.labels("q", n))
    p0, p1 = bufs.labels("p0", n), bufs.labels("p1", n)
    _core.ot_hash_pair(q, delta, p0, p1, first, ot.domain, ot.threads)
    p0 = p0[:, :W].reshape(chunk.fields, R, W)
    u = bufs.words("u", n * W).reshape(chunk.fields, R, W)
    np.subtract(p1[:, :W].reshape(chunk.fields, R, W), p0, out=u)
    chunk.add_messages(u)
    np.bitwise_and(u, chunk.layout.masks.reshape(chunk.fields, 1, W), out=u)
    packed = bufs.words("packed", chunk.layout.words * R).reshape(chunk.layout.words, R)
    pipe.send(_MSG, _pack(_field_rows(u, chunk), chunk.layout, packed, bufs.words("tmp", R)))
    chunk.finish(p0)


class _Pending:
    """Party 1's chunk between its OT extension and party 0's message for it."""

    def __init__(self, ot: COTReceiver | ChosenCOTReceiver, pipe, chunk: _Chunk, bufs: _Buffers) -> None:
        n = chunk.fields * chunk.rows
        bits = np.ascontiguousarray(chunk.choices(), dtype=np.uint8).reshape(-1)
        first = ot.count
        t = ot.extend(bits, pipe, out=bufs.labels("t", n))
        self.pads = bufs.labels("pads", n)
        _core.ot_hash(t, self.pads, first, ot.domain, ot.threads)
        self.select = bufs.words("select", n)
        np.copyto(self.select, bits)
        np.negative(self.select, out=self.select)  # 0 or all ones
        self.chunk, self.bufs = chunk, bufs
        self.message: Any = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def receive_in_background(self, pipe) -> None:
        """Read party 0's message on a helper thread, so that this party can send the next
        chunk's OT extension meanwhile (neither party then blocks on a full socket)."""

        def read() -> None:
            try:
                self.message = pipe.recv(_MSG)
            except BaseException as exc:  # re-raised by finish on the calling thread
                self.error = exc

        self.thread = threading.Thread(target=read, name="otc-recv", daemon=True)
        self.thread.start()

    def finish(self) -> None:
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise self.error
        chunk, R, W = self.chunk, self.chunk.rows, self.chunk.words
        packed = np.asarray(self.message)
        if packed.dtype != np.uint64 or packed.shape != (chunk.layout.words, R):
            raise ProtocolError(
                f"party 0 sent an OT message of {packed.dtype} {packed.shape}, "
                f"expected uint64 ({chunk.layout.words}, {R}): the parties disagree on the correlation"
            )
        u = self.bufs.words("u", chunk.fields * R * W).reshape(chunk.fields, R, W)
        _unpack(packed, chunk.layout, _field_rows(u, chunk), self.bufs.words("tmp", R))
        self.message = None
        np.bitwise_and(u, self.select.reshape(chunk.fields, R, 1), out=u)
        pads = self.pads[:, :W].reshape(chunk.fields, R, W)
        np.subtract(u, pads, out=u)
        chunk.finish(u)


def _transfer(ctx, chunks) -> None:
    """Run the chunks' correlated-message OTs (the same sequence on both parties)."""
    pipe = ctx.pipe(1 - ctx.party)
    ot = _endpoint(ctx, pipe)
    if ctx.party == SENDER:
        delta, bufs = ot.delta, _Buffers()
        for chunk in chunks:
            _send_chunk(ot, delta, pipe, chunk, bufs)
    elif getattr(ot, "sequential", False):  # silent OT: its iterations' messages share the pipe
        bufs = _Buffers()
        for chunk in chunks:
            pending = _Pending(ot, pipe, chunk, bufs)
            pending.message = pipe.recv(_MSG)
            pending.finish()
    else:
        slots, pending = (_Buffers(), _Buffers()), None
        for k, chunk in enumerate(chunks):
            nxt = _Pending(ot, pipe, chunk, slots[k % 2])
            if pending is not None:
                pending.finish()
            nxt.receive_in_background(pipe)
            pending = nxt
        if pending is not None:
            pending.finish()
    ctx.add_rounds(2)


# ---- Gilboa products ----------------------------------------------------------------


@cache
def _gilboa_layout(scale: int) -> _Layout:
    """Two products per row: for each, the OT of bit k carries 64 - scale - k bits."""
    widths = tuple(64 - scale - k for k in range(64 - scale))
    return _Layout.of(widths + widths)


def _gilboa_chunk(party: int, mine: np.ndarray, scale: int, deliver: Callable[[np.ndarray], None]) -> _Chunk:
    """Two rows of R products ``2^scale x y``: ``mine`` (2, R) is x on party 0, y on party
    1; ``deliver`` gets this party's (2, R) shares of the products."""
    K, R = 64 - scale, mine.shape[1]
    shifts = np.arange(scale, 64, dtype=np.uint64).reshape(1, K, 1)

    def finish(shares: np.ndarray) -> None:
        s = shares.reshape(2, K, R)
        np.left_shift(s, shifts, out=s)  # the OT of bit k of y carries x 2^(scale + k)
        deliver(np.sum(s, axis=1, dtype=np.uint64))

    def choices() -> np.ndarray:
        planes = gc_sign.bit_planes(mine.reshape(-1), K)  # (K, 2R): bit k of every y
        return planes.reshape(K, 2, R).transpose(1, 0, 2)

    def add_messages(u: np.ndarray) -> None:
        v = u.reshape(2, K, R)
        np.add(v, mine.reshape(2, 1, R), out=v)

    if party == SENDER:
        return _Chunk(2 * K, R, 1, _gilboa_layout(scale), finish, add_messages=add_messages)
    return _Chunk(2 * K, R, 1, _gilboa_layout(scale), finish, choices=choices)


def _mul_chunks(party: int, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """c += shares of a0 b1 + b0 a1 (party 0 holds a0, b0; party 1 a1, b1): row 0 of each
    chunk is a0 b1, row 1 b0 a1."""
    m = max(1, CHUNK_OTS // 128)
    for lo in range(0, a.size, m):
        hi = min(a.size, lo + m)
        mine = np.stack([a[lo:hi], b[lo:hi]] if party == SENDER else [b[lo:hi], a[lo:hi]])

        def deliver(shares: np.ndarray, lo: int = lo, hi: int = hi) -> None:
            ring.add(c[lo:hi], shares[0], out=c[lo:hi])
            ring.add(c[lo:hi], shares[1], out=c[lo:hi])

        yield _gilboa_chunk(party, mine, 0, deliver)


def _square_chunks(party: int, a: np.ndarray, c: np.ndarray):
    """c += shares of 2 a0 a1: each chunk's values split in two rows (the last one padded)."""
    m = max(2, (CHUNK_OTS // 63) & ~1)
    for lo in range(0, a.size, m):
        hi = min(a.size, lo + m)
        mine = np.zeros(hi - lo + (hi - lo) % 2, dtype=np.uint64)
        mine[: hi - lo] = a[lo:hi]

        def deliver(shares: np.ndarray, lo: int = lo, hi: int = hi) -> None:
            ring.add(c[lo:hi], shares.reshape(-1)[: hi - lo], out=c[lo:hi])

        yield _gilboa_chunk(party, mine.reshape(2, -1), 1, deliver)


# ---- truncation pairs ---------------------------------------------------------------


class _TwoParties:
    """The job context seen as a two-party one (parties 0 and 1 derive, whatever the job's
    party count), for the garbled circuit."""

    parties = 2

    def __init__(self, ctx) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


_TRUNC_LAYOUT = _Layout.of((64,) * 6)


def _wrap_table(a: np.ndarray, s0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Party 0's OT messages (3, n, 2) and local term (n, 2) for f(b, s1) = (s, w), from its
    bits a = msb(r0) and s0: s = s0 ^ s1 and w = a b + (a ^ b)(1 - s), written
    f = X0 + Xb b + Xs s1 + Xbs b s1 (mod 2^64); the messages are (Xb, Xs, Xbs)."""
    f = {}
    for b in (0, 1):
        for s1 in (0, 1):
            s = s0 ^ np.uint64(s1)
            w = (a & np.uint64(b)) | ((a ^ np.uint64(b)) & (s ^ np.uint64(1)))  # a b, a ^ b exclusive
            f[b, s1] = np.stack([s, w], axis=-1)
    x0 = f[0, 0]
    return np.stack([f[1, 0] - x0, f[0, 1] - x0, f[1, 1] - f[1, 0] - f[0, 1] + x0]), x0


def _trunc(ctx, r: np.ndarray, bits: int, r_hi: np.ndarray, r_msb: np.ndarray) -> None:
    """Fill r_hi and r_msb (flat) from this party's flat shares r."""
    two = _TwoParties(ctx)
    s = np.empty(r.size, dtype=np.uint64)  # XOR shares of msb(r), by the OT millionaires
    link = ot_compare.job_link(two)
    for lo in range(0, r.size, TRUNC_CHUNK):
        hi = min(r.size, lo + TRUNC_CHUNK)
        s[lo:hi] = ot_compare.sign(link, r[lo:hi], 64)
        ctx.add_rounds(ot_compare.sign_rounds(64))
    _transfer(ctx, _trunc_chunks(ctx.party, r, s, bits, r_hi, r_msb))


def _trunc_chunks(party: int, r, s, bits, r_hi, r_msb):
    """Three OTs per value (party 1's choices b, s1, b s1) giving shares of (s, w)."""
    msb = r >> np.uint64(63)
    m = max(1, CHUNK_OTS // 3)
    for lo in range(0, r.size, m):
        hi = min(r.size, lo + m)
        coeffs, x0 = _wrap_table(msb[lo:hi], s[lo:hi]) if party == SENDER else (None, None)

        def finish(shares: np.ndarray, lo: int = lo, hi: int = hi, x0=x0) -> None:
            sw = shares.sum(axis=0, dtype=np.uint64)  # (n, 2): arithmetic shares of (s, w)
            if x0 is not None:
                sw += x0
            r_msb[lo:hi] = sw[:, 0]
            wrap = np.ascontiguousarray(sw[:, 1])
            ring.mul_scalar(wrap, 1 << (64 - bits), out=wrap)
            ring.sub(r[lo:hi] >> np.uint64(bits), wrap, out=r_hi[lo:hi])  # (r_i >> f) - w_i 2^(64-f)

        if party == SENDER:
            yield _Chunk(
                3, hi - lo, 2, _TRUNC_LAYOUT, finish, add_messages=lambda u, coeffs=coeffs: np.add(u, coeffs, out=u)
            )
        else:
            b, s1 = msb[lo:hi].astype(np.uint8), s[lo:hi].astype(np.uint8)
            yield _Chunk(3, hi - lo, 2, _TRUNC_LAYOUT, finish, choices=lambda b=b, s1=s1: np.stack([b, s1, b & s1]))


# ---- entry point --------------------------------------------------------------------


def _validated(kind: str, mine: dict, attrs: dict) -> tuple[dict[str, np.ndarray], int]:
    if kind not in COMPONENTS:
        raise UnsupportedError(
            f"no OT derivation for correlation kind {kind!r}; "
            f"supported: {sorted(COMPONENTS)} (matmul/conv2d come from the HE engine)"
        )
    names = COMPONENTS[kind][0]
    if set(mine) != set(names):
        raise InputError(f"a {kind!r} correlation needs the random components {sorted(names)}, got {sorted(mine)}")
    arrays = {}
    for name in names:
        arr = np.asarray(mine[name])
        if arr.dtype != np.uint64:
            raise InputError(f"component {name!r} must be a uint64 array of ring shares, got {arr.dtype}")
        arrays[name] = arr
    if kind == "mul" and arrays["a"].shape != arrays["b"].shape:
        raise InputError(
            f"mul: a and b must have one shape (elementwise), got {arrays['a'].shape} and {arrays['b'].shape}"
        )
    bits = 0
    if kind == "trunc":
        bits = attrs.get("bits")
        if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not 1 <= bits <= 63:
            raise InputError(f"trunc: attrs['bits'] must be an integer in 1..63, got {bits!r}")
    return arrays, int(bits)


def derive(ctx, kind: str, mine: dict[str, np.ndarray], attrs: dict) -> dict[str, np.ndarray]:
    """This party's shares of a correlation's derived components, made with the other party.

    Run by parties 0 and 1 together, with the same ``kind``, shapes and ``attrs``.

    Parameters
    ----------
    ctx
        The job context: ``party`` (0 or 1), ``pipe(peer)`` (a named-tensor pipe to the
        other party), ``state`` (a dict kept for the job: the OT endpoint lives there) and
        ``links.rounds``.
    kind : {"mul", "square", "trunc"}
        The correlation kind (see ``preprocessing.DERIVATIONS``).
    mine : dict of str -> ndarray
        This party's uniformly random uint64 shares of the random components:
        ``{"a", "b"}`` (same shape) for mul, ``{"a"}`` for square, ``{"r"}`` for trunc.
    attrs : dict
        ``{"bits": f}`` (1..63) for trunc; ignored otherwise.

    Returns
    -------
    dict of str -> ndarray
        uint64 arrays of the random components' shape: ``{"c"}`` with
        ``c0 + c1 = a * b`` (mul) or ``a * a`` (square), or ``{"r_hi", "r_msb"}`` with
        ``r_msb0 + r_msb1 = r >> 63`` exactly and ``r_hi0 + r_hi1 = (r >> f) - e``,
        ``e`` in {0, 1} the carry of the low f bits of the shares (not computed), all mod
        2^64 with ``a``, ``b``, ``r`` the sums of the two parties' shares.

    Raises
    ------
    UnsupportedError
        For another kind, or when called by a party other than 0 and 1.
    InputError
        For missing components, non-uint64 shares or bad ``bits``.
    ProtocolError, PeerUnavailableError
        When the other party disagrees on the correlation or is gone.
    """
    if ctx.party not in (SENDER, RECEIVER):
        raise UnsupportedError(f"OT correlations run between parties 0 and 1; party {ctx.party} has no part")
    arrays, bits = _validated(kind, mine, attrs)
    shape = next(iter(arrays.values())).shape
    flat = {k: np.ascontiguousarray(v).reshape(-1) for k, v in arrays.items()}
    state = _state(ctx)
    state["calls"] += 1
    if kind == "trunc":
        r_hi = np.empty(flat["r"].size, dtype=np.uint64)
        r_msb = np.empty(flat["r"].size, dtype=np.uint64)
        if flat["r"].size:
            _trunc(ctx, flat["r"], bits, r_hi, r_msb)
        return {"r_hi": r_hi.reshape(shape), "r_msb": r_msb.reshape(shape)}
    a = flat["a"]
    if kind == "mul":
        c = ring.mul(a, flat["b"])
        chunks = _mul_chunks(ctx.party, a, flat["b"], c)
    else:
        c = ring.mul(a, a)
        chunks = _square_chunks(ctx.party, a, c)
    if a.size:
        _transfer(ctx, chunks)
    return {"c": c.reshape(shape)}
