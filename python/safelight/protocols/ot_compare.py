"""Comparisons, signs and ReLU between parties 0 and 1 from silent OT (issue 18, item 2).

The CrypTFlow2 way (Rathee et al., CCS 2020), on the silent correlated OTs of
:mod:`safelight.ot.silent` in both directions, instead of garbled circuits:

- **Millionaires.** ``[a < b]`` for party 0's ``a`` and party 1's ``b`` (``bits`` wide):
  both split their value into 4-bit digits. Per digit, a 1-out-of-16 OT whose 16 two-bit
  entries are party 0's ``([a_j < v], [a_j = v])`` for every v, masked by party 0's random
  output shares: party 1 reads the entry of its own digit. The 1-out-of-16 OT comes from 4
  random OTs: party 1 sends its digit XOR the random choice bits (4 bits), and entry v is
  masked by the hash of the XOR of the random-OT strings its bits select (distinct sums of
  independent uniform strings, hashed). Then a tree over the digits, high to low:
  ``lt = lt_hi ^ (eq_hi & lt_lo)``, ``eq = eq_hi & eq_lo``: AND gates on XOR shares.
- **AND gates** with bit triples made from one random OT in each direction (no message:
  the random OT's strings *are* the triple's cross terms), opened in one round per level.
- **Sign** of ``x = x0 + x1 mod 2^bits``: ``msb(x0) ^ msb(x1) ^ carry``, the carry of the
  low ``bits - 1`` bits being ``[2^(bits-1) - 1 - x0' < x1']``.
- **Multiplexer** ``s x`` for a boolean-shared bit ``s`` and an arithmetic-shared x: one
  correlated OT per direction with a 64-bit correction (plus the choice bit's correction).
- **ReLU** ``x - s x`` with s the sign.
- **Truncation** of |x| < 2^62 (dealer-free jobs): the shares' wrap is the OR of their top
  bits once 2^62 is added, made arithmetic by one random OT (:func:`truncate`).

The protocols draw their correlations from a link: :class:`OtLink` (silent OT, no third
party) or, when a dealer dealt them, :class:`.ot_dealt.DealtLink` (same messages).

Bytes per value at 40 bits (10 digits), per server: party 0 sends the 10 tables (40 bytes),
its AND openings and one 64-bit correction; party 1 the digits' corrections (5 bytes),
its openings and its correction; both 0.45 bit per silent COT on top.

Semi-honest, two parties; each call must be made by both with the same shapes.
"""

from __future__ import annotations

import secrets
import threading

import numpy as np

from .. import _core, ring
from ..errors import ProtocolError
from ..ot.base import Pipe
from ..ot.silent import BOOTSTRAP, MAIN, LpnParams, SilentReceiver, SilentSender

DIGIT = 4  # bits per digit of the millionaires' protocol (1-out-of-16 OTs)
ENTRIES = 1 << DIGIT
CHUNK = 1 << 16  # digits per chunk of the leaf OTs (bounds the 16 keys per digit in memory)
PAD_DOMAIN = 0x5AFE  # hash domain of the leaf pads (the random OTs use domain 0)


class OtLink:
    """Silent COTs both ways between parties 0 and 1, and random OTs from them.

    ``party`` 0 or 1; both build theirs on the same pipe (setup: party 0's sender first)."""

    def __init__(
        self, party: int, pipe: Pipe, *, params: LpnParams = MAIN, bootstrap: LpnParams = BOOTSTRAP, threads: int = 1
    ) -> None:
        self.party, self.pipe = party, pipe
        self.sender = SilentSender(params=params, bootstrap=bootstrap, threads=threads)
        self.receiver = SilentReceiver(params=params, bootstrap=bootstrap, threads=threads)
        first, second = (self.sender, self.receiver) if party == 0 else (self.receiver, self.sender)
        first.setup(pipe)
        second.setup(pipe)
        self.tweaks = [0, 0]  # hash tweaks used as sender, as receiver
        self.threads = threads
        self._buffer = np.empty((0, 2), dtype=np.uint64)

    def _scratch(self, n: int) -> np.ndarray:
        """A reused (n, 2) buffer for the raw COTs (fresh pages cost more than the copy)."""
        if self._buffer.shape[0] < n:
            self._buffer = np.empty((n, 2), dtype=np.uint64)
        return self._buffer[:n]

    def rot_send(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Random OT strings (n, 2) uint64 ``(r0, r1)``; the other party holds one of them."""
        z = self.sender.extend(n, self.pipe, out=self._scratch(n))
        r0, r1 = np.empty_like(z), np.empty_like(z)
        _core.ot_hash_pair(z, self.sender.delta, r0, r1, self.tweaks[0], 0, self.threads)
        self.tweaks[0] += n
        return r0, r1

    def rot_recv(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Random choice bits (uint8) and the chosen strings (n, 2) uint64."""
        w, c = self.receiver.extend(n, self.pipe, out=self._scratch(n))
        r = np.empty_like(w)
        _core.ot_hash(w, r, self.tweaks[1], 0, self.threads)
        self.tweaks[1] += n
        return c, r

    # ---- the correlations the protocols below draw (a dealer's link deals the same) ----
    def rot_pairs(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """n random OTs of 64-bit strings in each direction: my sender strings r0, r1, my
        choices (uint8) and the strings I chose (uint64 each)."""
        r0, r1, c, rc = _both_ways(self, n)
        return r0[:, 0].copy(), r1[:, 0].copy(), c, rc[:, 0].copy()

    def and_triples(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _and_triples_from_rots(self, n)

    def leaves(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """My XOR shares of (lt, eq) of every 4-bit digit (flat uint8): see the module docstring."""
        return (_leaves_sender if self.party == 0 else _leaves_receiver)(self, digits)


def _both_ways(link: OtLink, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n random OTs in each direction: my sender strings (r0, r1), my choices and strings.
    Party 0 extends as sender first, party 1 as receiver first, so that each silent OT
    iteration's message is read while it is sent (never two large sends at once)."""
    if link.party == 0:
        r0, r1 = link.rot_send(n)
        c, rc = link.rot_recv(n)
    else:
        c, rc = link.rot_recv(n)
        r0, r1 = link.rot_send(n)
    return r0, r1, c, rc


def job_link(ctx):
    """The job's link between parties 0 and 1: the dealer's (:class:`.ot_dealt.DealtLink`,
    installed with the job's material) when it dealt the correlations, else silent OT set
    up on first use (two bootstraps: about 0.2 s and 1.5 MB each way)."""
    state = ctx.state.setdefault("ot_compare", {})
    if "link" not in state:
        state["link"] = OtLink(ctx.party, ctx.pipe(1 - ctx.party))
        ctx.add_rounds(6)
    return state["link"]


def sign_rounds(bits: int) -> int:
    """Rounds of :func:`sign`: the digits' corrections and tables, one per AND level."""
    digits = -(-(bits - 1) // DIGIT)
    return 2 + max(0, (digits - 1).bit_length())


# rounds of one relu at 40 bits: its sign, then the multiplexer's corrections and strings
RELU_ROUNDS = sign_rounds(40) + 2
# what the OT path holds: the link (two silent OT instances with their output buffers) and,
# per value of one relu, its digits, pads, tables, triples and multiplexer strings
LINK_BYTES = 2 * 16 * (MAIN.n + 2 * MAIN.base) + 64 * CHUNK * 16
WORK_BYTES_PER_VALUE = 256


def _exchange(pipe: Pipe, name: str, array: np.ndarray) -> np.ndarray:
    """Send mine and receive the other's in one round: the send runs on a helper thread,
    so that neither party blocks in a send the other is not yet reading (a full socket)."""
    failed: list[BaseException] = []

    def send() -> None:
        try:
            pipe.send(name, array)
        except BaseException as exc:  # re-raised below
            failed.append(exc)

    sender = threading.Thread(target=send, name="ot-compare-send", daemon=True)
    sender.start()
    try:
        got = pipe.recv(name)
    finally:
        sender.join()
    if failed:
        raise failed[0]
    return got


def random_bits(n: int) -> np.ndarray:
    """n uniform bits (uint8) from a fresh AES-CTR seed (the output shares a party hides)."""
    return ring.random(secrets.token_bytes(16), (-(-n // 8),)).view(np.uint8)[:n] & np.uint8(1)


def _pack(bits: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(bits, dtype=np.uint8).reshape(-1))


def _unpack(data: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(data, count=n)


# ---- AND gates -------------------------------------------------------------------------------


def _and_triples_from_rots(link: OtLink, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n random AND triples (XOR shares a, b, c with c = a & b), uint8, no message: the
    cross term a0 b1 comes from a random OT party 0 -> 1 (a0 = lsb r0 ^ lsb r1, b1 = the
    choice, shares lsb r0 and lsb r_c), a1 b0 from one in the other direction. Made
    CHUNK at a time: only their bits are kept."""
    a, b, c = (np.empty(n, dtype=np.uint8) for _ in range(3))
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        r0, r1, choice, rc = _both_ways(link, hi - lo)
        s0, s1 = (r0[:, 0] & 1).astype(np.uint8), (r1[:, 0] & 1).astype(np.uint8)
        a[lo:hi] = s0 ^ s1  # my a: the difference of my sender strings
        b[lo:hi] = choice  # my b: my receiver choice
        # a_me b_other = s0 ^ (the other's got); a_other b_me = got ^ (the other's s0)
        c[lo:hi] = (a[lo:hi] & b[lo:hi]) ^ s0 ^ (rc[:, 0] & 1).astype(np.uint8)
    return a, b, c


def and_gates(link, x: np.ndarray, y: np.ndarray, triple, name: str) -> np.ndarray:
    """XOR shares of x & y (uint8 0/1 arrays of one shape), one round."""
    a, b, c = triple
    d, e = x ^ a, y ^ b
    other = _unpack(_exchange(link.pipe, name, _pack(np.concatenate([d, e]))), 2 * d.size)
    d, e = d ^ other[: d.size], e ^ other[d.size :]
    z = c ^ (d & b) ^ (e & a)
    return z ^ (d & e) if link.party == 0 else z


# ---- millionaires ---------------------------------------------------------------------------------


def _digits(values: np.ndarray, bits: int) -> np.ndarray:
    """(n, q) 4-bit digits, most significant first."""
    q = -(-bits // DIGIT)
    shifts = np.arange(q - 1, -1, -1, dtype=np.uint64) * np.uint64(DIGIT)
    return ((values[:, None] >> shifts[None, :]) & np.uint64(ENTRIES - 1)).astype(np.uint8)


def leaf_tables(r0, r1, flips, a, lt, eq, tweak: int) -> np.ndarray:
    """The 1-out-of-16 tables (uint32, 16 two-bit entries) of m digits in numpy: the
    definition that ``_core.ot_millionaire_tables`` computes (tests compare the two).
    r0, r1: (m, 4, 2) random-OT strings; flips: (m, 4) the receiver's corrections."""
    m = len(a)
    diff = r0 ^ r1
    chosen = r0 ^ (diff & (np.uint64(0) - flips.astype(np.uint64)[:, :, None]))  # r_{d_i}
    keys = np.empty((ENTRIES, m, 2), dtype=np.uint64)
    keys[0] = chosen[:, 0] ^ chosen[:, 1] ^ chosen[:, 2] ^ chosen[:, 3]
    for entry in range(1, ENTRIES):
        low = (entry & -entry).bit_length() - 1  # bit `low` of the entry is OT DIGIT - 1 - low
        keys[entry] = keys[entry & (entry - 1)] ^ diff[:, DIGIT - 1 - low]
    v = np.arange(ENTRIES, dtype=np.uint8)[:, None]
    tables = np.zeros(m, dtype=np.uint32)
    for entry in range(ENTRIES):
        pad = np.empty((m, 2), dtype=np.uint64)
        _core.ot_hash(np.ascontiguousarray(keys[entry]), pad, tweak, PAD_DOMAIN)
        value = ((a < v[entry]).astype(np.uint8) ^ lt) | (((a == v[entry]).astype(np.uint8) ^ eq) << 1)
        tables |= (value ^ (pad[:, 0] & np.uint64(3)).astype(np.uint8)).astype(np.uint32) << np.uint32(2 * entry)
    return tables


def _leaves_sender(link: OtLink, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Party 0: random output shares (lt, eq) per digit; the tables go out after every
    chunk's corrections came in (so the silent OT's messages stay in order)."""
    flat = np.ascontiguousarray(digits.reshape(-1))
    n = flat.size
    lt, eq = random_bits(n), random_bits(n)
    tables = np.empty(n, dtype=np.uint32)  # 16 two-bit entries per digit
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        m = hi - lo
        tweak = link.tweaks[0]
        r0, r1 = link.rot_send(DIGIT * m)
        flips = _unpack(link.pipe.recv("cmp.d"), DIGIT * m)
        _core.ot_millionaire_tables(r0, r1, flips, flat[lo:hi], lt[lo:hi], eq[lo:hi], tweak, PAD_DOMAIN, tables[lo:hi])
    link.pipe.send("cmp.tables", tables.view(np.uint8))  # the wire takes bytes, not uint32
    return lt, eq


def table_entries(tables: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The 2-bit entry ``index`` of each packed 1-out-of-16 table (uint32, entry v at bits 2v)."""
    return ((tables >> (2 * index.astype(np.uint32))) & np.uint32(3)).astype(np.uint8)


def _leaves_receiver(link: OtLink, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Party 1: its shares of (lt, eq) per digit, read from party 0's tables."""
    flat = digits.reshape(-1)
    n = flat.size
    bit_of = (flat[:, None] >> np.arange(DIGIT - 1, -1, -1, dtype=np.uint8)) & 1  # (n, 4), msb first
    pads = np.empty(n, dtype=np.uint8)
    for lo in range(0, n, CHUNK):  # streams the corrections; the tables are read after
        hi = min(n, lo + CHUNK)
        m = hi - lo
        tweak = link.tweaks[1]
        c, r = link.rot_recv(DIGIT * m)
        link.pipe.send("cmp.d", _pack(bit_of[lo:hi] ^ c.reshape(m, DIGIT)))
        r = r.reshape(m, DIGIT, 2)
        key = r[:, 0] ^ r[:, 1] ^ r[:, 2] ^ r[:, 3]
        pad = np.empty_like(key)
        _core.ot_hash(key, pad, tweak, PAD_DOMAIN, link.threads)
        pads[lo:hi] = (pad[:, 0] & np.uint64(3)).astype(np.uint8)
    tables = np.ascontiguousarray(link.pipe.recv("cmp.tables")).view(np.uint32)
    got = table_entries(tables, flat) ^ pads
    return got & 1, got >> 1


def tree_ands(n: int, q: int) -> int:
    """AND gates of the tree over q digits of n values (what :func:`less_than` draws)."""
    total = 0
    while q > 1:
        pairs = q // 2
        total += n * pairs * (1 if (pairs == 1 and q == 2) else 2)
        q = pairs + q % 2
    return total


def sign_demand(n: int, bits: int) -> tuple[int, int, int]:
    """(digits, AND triples, multiplexer OTs) that one sign of n values at ``bits`` and the
    multiplexer after it draw: what a dealer deals for them (:mod:`.ot_dealt`)."""
    q = -(-(bits - 1) // DIGIT)
    return n * q, tree_ands(n, q), n


def less_than(link, value: np.ndarray, bits: int) -> np.ndarray:
    """XOR shares (uint8) of [a < b], party 0 giving a, party 1 b (unsigned, ``bits`` wide)."""
    value = np.ascontiguousarray(value, dtype=np.uint64).reshape(-1)
    digits = _digits(value, bits)
    n, q = digits.shape
    lt, eq = link.leaves(np.ascontiguousarray(digits.reshape(-1)))
    lt, eq = lt.reshape(n, q), eq.reshape(n, q)
    level = 0
    while lt.shape[1] > 1:
        pairs = lt.shape[1] // 2
        hi_lt, lo_lt = lt[:, 0 : 2 * pairs : 2], lt[:, 1 : 2 * pairs : 2]
        hi_eq, lo_eq = eq[:, 0 : 2 * pairs : 2], eq[:, 1 : 2 * pairs : 2]
        last = pairs == 1 and lt.shape[1] == 2  # the root: its eq is not needed
        x = np.concatenate([hi_eq.reshape(-1)] if last else [hi_eq.reshape(-1), hi_eq.reshape(-1)])
        y = np.concatenate([lo_lt.reshape(-1)] if last else [lo_lt.reshape(-1), lo_eq.reshape(-1)])
        z = and_gates(link, x, y, link.and_triples(x.size), f"cmp.and{level}")
        new_lt = hi_lt ^ z[: n * pairs].reshape(n, pairs)
        new_eq = None if last else z[n * pairs :].reshape(n, pairs)
        if lt.shape[1] % 2:  # an odd digit out moves up unchanged
            new_lt = np.concatenate([new_lt, lt[:, -1:]], axis=1)
            new_eq = np.concatenate([new_eq, eq[:, -1:]], axis=1)
        lt, eq = new_lt, new_eq if new_eq is not None else eq[:, :1]
        level += 1
    return lt[:, 0]


def sign(link, share: np.ndarray, bits: int) -> np.ndarray:
    """XOR shares (uint8) of the top bit of x mod 2^bits, x = share0 + share1 (1{x < 0}
    when |x| < 2^(bits-1))."""
    flat = np.ascontiguousarray(share, dtype=np.uint64).reshape(-1)
    low = np.uint64((1 << (bits - 1)) - 1)
    mine = flat & low
    value = low - mine if link.party == 0 else mine
    carry = less_than(link, value, bits - 1)
    top = ((flat >> np.uint64(bits - 1)) & np.uint64(1)).astype(np.uint8)
    return (top ^ carry).reshape(np.shape(share))


def multiplex(link, s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Arithmetic shares of s * x for XOR-shared bits s (uint8) and arithmetic-shared x.

    Each party, as OT sender for its (s_i, x_i): the other receives m_{s_other} with
    m_t = (s_i ^ t) x_i - r_i; r_i is set so that m_0 is its own random-OT string (no
    message), m_1 = m_0 + (1 - 2 s_i) x_i goes out as one 64-bit correction."""
    s = np.ascontiguousarray(s, dtype=np.uint8).reshape(-1)
    x = np.ascontiguousarray(x, dtype=np.uint64).reshape(-1)
    n = s.size
    r0, r1, c, rc = link.rot_pairs(n)
    pipe = link.pipe
    e = _unpack(_exchange(pipe, "mux.e", _pack(s ^ c)), n).astype(bool)  # mine out, the other's correction in
    # the other obtains my string under t ^ e for its wanted t: string(t) = r_{t ^ e}
    first = np.where(e, r1, r0)  # string(0)
    second = np.where(e, r0, r1)  # string(1)
    step = np.where(s.astype(bool), ring.neg(x), x)  # (1 - 2 s_i) x_i
    y = _exchange(pipe, "mux.y", ring.sub(ring.add(first, step), second))  # m_1 - string(1), both ways
    mine = ring.sub(ring.mul(s.astype(np.uint64), x), first)  # r_i = s_i x_i - m_0
    got = np.where(s.astype(bool), ring.add(y, rc), rc)  # m_{s_me}: + y when s_me = 1
    return ring.add(mine, got)


def private_product(link: OtLink, bit: np.ndarray | None, value: np.ndarray | None, n: int) -> np.ndarray:
    """Arithmetic shares of b v for party 1's bits b (uint8) and party 0's values v (uint64),
    from one random OT per value, party 0 sending: party 1 sends e = b ^ c (its choice c),
    party 0 keeps r_e as its share and sends v - r_e + r_(1^e) (8 bytes); party 1 takes
    -r_c, plus that message when b = 1. Two rounds."""
    pipe = link.pipe
    if link.party == 0:
        r0, r1 = link.rot_send(n)
        e = _unpack(pipe.recv("prod.e"), n).astype(bool)
        kept = np.where(e, r1[:, 0], r0[:, 0])
        other = np.where(e, r0[:, 0], r1[:, 0])
        pipe.send("prod.y", ring.add(ring.sub(np.ascontiguousarray(value, dtype=np.uint64), kept), other))
        return kept
    c, rc = link.rot_recv(n)
    b = np.ascontiguousarray(bit, dtype=np.uint8)
    pipe.send("prod.e", _pack(b ^ c))
    y = pipe.recv("prod.y")
    if y.shape != (n,) or y.dtype != np.uint64:
        raise ProtocolError("party 0 sent a product message of the wrong shape")
    chosen = np.ascontiguousarray(rc[:, 0])
    return np.where(b.astype(bool), ring.sub(y, chosen), ring.neg(chosen))


TRUNCATE_ROUNDS = 2
OFFSET_BITS = 62  # |x| < 2^62: x + 2^62 has its top bit clear


def truncate(link: OtLink, share: np.ndarray, bits: int) -> np.ndarray:
    """Shares of floor(x / 2^bits) or one less, for |x| < 2^62, with one random OT per value.

    With x' = x + 2^62 in [0, 2^63) (party 0 adds the offset), the top bit of x' is known
    to be 0, so the wrap of x'0 + x'1 past 2^64 is m0 OR m1 (the top bits of the two
    shares): the carry into bit 63 must then equal m0 ^ m1. Then
    x' >> f = (x'0 >> f) + (x'1 >> f) + carry - wrap 2^(64-f), the carry of the low bits
    being the one-unit error, and wrap 2^(64-f) = K - (1 - m0)(1 - m1) K with K = 2^(64-f):
    one product of a bit of party 1 and a value of party 0 (:func:`private_product`)."""
    flat = np.ascontiguousarray(share, dtype=np.uint64).reshape(-1)
    k = np.uint64(1 << (64 - bits))
    if link.party == 0:
        shifted = flat + np.uint64(1 << OFFSET_BITS)
        low = (np.uint64(1) - (shifted >> np.uint64(63))) * k  # (1 - m0) K
        both = private_product(link, None, low, flat.size)
        y = ring.add(shifted >> np.uint64(bits), both)
        return (y - np.uint64((1 << (64 - bits)) + (1 << (OFFSET_BITS - bits)))).reshape(np.shape(share))
    clear = (np.uint64(1) - (flat >> np.uint64(63))).astype(np.uint8)  # 1 - m1
    both = private_product(link, clear, None, flat.size)
    return ring.add(flat >> np.uint64(bits), both).reshape(np.shape(share))


def relu(link, share: np.ndarray, bits: int = 40) -> np.ndarray:
    """Arithmetic shares of max(x, 0) for |x| < 2^(bits-1) (ring units)."""
    flat = np.ascontiguousarray(share, dtype=np.uint64).reshape(-1)
    negative = sign(link, flat, bits)
    return ring.sub(flat, multiplex(link, negative, flat)).reshape(np.shape(share))
