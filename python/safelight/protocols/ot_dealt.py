"""The OT path's correlations dealt by the dealer process (issue 18, item 4).

With a dealer the user already trusts not to collude with a server, the comparisons of
:mod:`.ot_compare` need no silent OT: the dealer deals exactly the three correlations
they draw, each mostly expanded from a per-party seed, and sends only what ties the two
parties' halves together:

- **1-out-of-16 random OTs** for the millionaires' digits: party 0 expands 16 two-bit
  pads P[w] per digit (32 bits), party 1 a random choice c; the dealer sends party 1
  P[c] (2 bits per digit). Online, party 1 sends u = digit ^ c (4 bits) and party 0 the
  table T'[w] = T[w ^ u] ^ P[w] (32 bits); party 1 reads T'[c] ^ P[c] = T[digit]. These
  are the silent path's messages; only where the pads come from changes.
- **AND triples**: party 0 expands (a0, b0, c0), party 1 (a1, b1); the dealer sends party
  1 c1 = (a0 ^ a1)(b0 ^ b1) ^ c0 (1 bit per triple).
- **Random OTs of 64-bit strings**, one each way per multiplexed value: the sender
  expands (r0, r1), the receiver its choice; the dealer sends the receiver r_choice
  (8 bytes).

Dealer traffic per sign of k bits: 2 bits per 4-bit digit, 1 bit per AND gate and 8
bytes to each party for the multiplexer (about 21 bytes per value at k = 40); the
servers' own traffic is the silent path's without the silent OT. Trust: the dealer
knows every pad, triple and string (as it knows its Beaver triples); a server's view is
the silent path's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

from .. import _core
from ..errors import ProtocolError
from .ot_compare import ENTRIES, random_bits, table_entries

SEED_BYTES = 16
LEAF, AND, MUX_01, MUX_10 = 1, 2, 3, 4  # PRG nonces of the streams under a party's seed
DEAL_CHUNK = 1 << 20  # values the dealer makes at a time (bounded memory; a multiple of 32)
NAMES = ("otp:leaf", "otp:and", "otp:mux")  # the dealt tensors (the last one to both parties)
LOW_FIELDS = np.uint32(0x55555555)  # bit 0 of every 2-bit table entry


@dataclass(frozen=True)
class Demand:
    """What a job's OT-path comparisons draw: digits, AND triples, multiplexed values."""

    leaves: int = 0
    ands: int = 0
    mux: int = 0

    def __add__(self, other: Demand) -> Demand:
        return Demand(self.leaves + other.leaves, self.ands + other.ands, self.mux + other.mux)

    def __bool__(self) -> bool:
        return bool(self.leaves or self.ands or self.mux)

    def shapes(self, party: int) -> dict[str, tuple[int, ...]]:
        """Name -> shape (uint64 words, bytes packed in order) of the tensors ``party``
        receives from the dealer: P[c] four per byte and c1 eight per byte (party 1), the
        chosen strings (both)."""
        if party == 1:
            return {NAMES[0]: (-(-self.leaves // 32),), NAMES[1]: (-(-self.ands // 64),), NAMES[2]: (self.mux,)}
        return {NAMES[2]: (self.mux,)}

    def dealt_bytes(self, party: int) -> int:
        """What ``party`` holds of the dealt material (for admission; it stays packed)."""
        return 8 * sum(s[0] for s in self.shapes(party).values())


def _bytes(seed: bytes, nonce: int, lo: int, n: int) -> np.ndarray:
    """Bytes lo .. lo+n-1 of the AES-CTR stream (seed, nonce)."""
    first = lo // 16
    words = np.empty(-(-(lo + n - 16 * first) // 8) + 1, dtype=np.uint64)
    _core.prg_fill(seed, words, nonce, first)
    return words.view(np.uint8)[lo - 16 * first : lo - 16 * first + n]


def pads(seed: bytes, lo: int, n: int) -> np.ndarray:
    """Party 0's 16 two-bit pads of digits lo..lo+n-1, packed in a uint32 (entry w at bits 2w)."""
    return _bytes(seed, LEAF, 4 * lo, 4 * n).view(np.uint32)


def choices(seed: bytes, lo: int, n: int) -> np.ndarray:
    """Party 1's random 4-bit choices of digits lo..lo+n-1."""
    return _bytes(seed, LEAF, lo, n) & np.uint8(ENTRIES - 1)


def triple_parts(seed: bytes, lo: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, c) bits of AND triples lo..lo+n-1 expanded from a party's seed (party 1 uses
    a and b; its c comes from the dealer)."""
    raw = _bytes(seed, AND, lo, n)
    return raw & 1, (raw >> 1) & 1, (raw >> 2) & 1


def strings(seed: bytes, nonce: int, lo: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A sender's random-OT strings (r0, r1) of OTs lo..lo+n-1."""
    pairs = _bytes(seed, nonce, 16 * lo, 16 * n).view(np.uint64).reshape(n, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def choice_bits(seed: bytes, nonce: int, lo: int, n: int) -> np.ndarray:
    """A receiver's random choice bits of OTs lo..lo+n-1."""
    return _bytes(seed, nonce, lo, n) & np.uint8(1)


def _permuted_tables() -> np.ndarray:
    """(16 * 16,) uint32: entry w of row a * 16 + u is ([a < w ^ u], [a == w ^ u]), packed:
    party 0's table of digit a before its output shares and pads, read at w = c."""
    out = np.zeros(ENTRIES * ENTRIES, dtype=np.uint32)
    for a in range(ENTRIES):
        for u in range(ENTRIES):
            for w in range(ENTRIES):
                v = w ^ u
                out[a * ENTRIES + u] |= np.uint32((int(a < v) | int(a == v) << 1) << (2 * w))
    return out


PERMUTED = _permuted_tables()


# ---- the dealer's side ------------------------------------------------------------------------


def deal(demand: Demand) -> tuple[list[bytes], list[dict[str, np.ndarray]]]:
    """Fresh seeds for parties 0 and 1, and the tensors each receives (see :meth:`Demand.shapes`),
    made DEAL_CHUNK values at a time."""
    seeds = [secrets.token_bytes(SEED_BYTES), secrets.token_bytes(SEED_BYTES)]
    out: list[dict[str, np.ndarray]] = [
        {k: np.zeros(v, dtype=np.uint64) for k, v in demand.shapes(p).items()} for p in (0, 1)
    ]
    leaf = out[1][NAMES[0]].view(np.uint8)  # P[c] per digit, four per byte (DEAL_CHUNK % 32 == 0)
    for lo in range(0, demand.leaves, DEAL_CHUNK):
        n = min(DEAL_CHUNK, demand.leaves - lo)
        packed = pack_pairs(table_entries(pads(seeds[0], lo, n), choices(seeds[1], lo, n)))
        leaf[lo // 4 : lo // 4 + packed.size] = packed
    bits = out[1][NAMES[1]].view(np.uint8)  # c1 per AND gate, eight per byte
    for lo in range(0, demand.ands, DEAL_CHUNK):
        n = min(DEAL_CHUNK, demand.ands - lo)
        a0, b0, c0 = triple_parts(seeds[0], lo, n)
        a1, b1, _ = triple_parts(seeds[1], lo, n)
        packed = np.packbits(((a0 ^ a1) & (b0 ^ b1)) ^ c0)
        bits[lo // 8 : lo // 8 + packed.size] = packed
    for receiver, (sender_seed, nonce) in ((1, (seeds[0], MUX_01)), (0, (seeds[1], MUX_10))):
        chosen = out[receiver][NAMES[2]]
        for lo in range(0, demand.mux, DEAL_CHUNK):
            n = min(DEAL_CHUNK, demand.mux - lo)
            r0, r1 = strings(sender_seed, nonce, lo, n)
            c = choice_bits(seeds[receiver], nonce, lo, n).astype(bool)
            chosen[lo : lo + n] = np.where(c, r1, r0)
    return seeds, out


def pack_pairs(values: np.ndarray) -> np.ndarray:
    """2-bit values, four per byte (first in the low bits)."""
    padded = np.zeros(-(-values.size // 4) * 4, dtype=np.uint8)
    padded[: values.size] = values
    q = padded.reshape(-1, 4)
    return q[:, 0] | (q[:, 1] << 2) | (q[:, 2] << 4) | (q[:, 3] << 6)


def unpack_pairs(packed: np.ndarray, n: int) -> np.ndarray:
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)
    return ((packed[:, None] >> shifts[None, :]) & 3).reshape(-1)[:n]


# ---- the parties' side ------------------------------------------------------------------------


class DealtLink:
    """Parties 0 and 1's correlations for :mod:`.ot_compare` from the dealer: the same
    methods as its silent-OT link, drawn in order from the dealt streams."""

    def __init__(self, party: int, pipe, seed: bytes, dealt: dict[str, np.ndarray], demand: Demand) -> None:
        if len(seed) != SEED_BYTES:
            raise ProtocolError("the dealer's OT-path seed must be 16 bytes")
        for name, shape in demand.shapes(party).items():
            got = dealt.get(name)
            if got is None or got.dtype != np.uint64 or got.shape != shape:
                raise ProtocolError(f"the dealer's {name} does not match the program's comparisons")
        self.party, self.pipe, self.seed, self.demand = party, pipe, seed, demand
        self.used = {"leaves": 0, "ands": 0, "mux": 0}
        # party 1 keeps the pads and third bits packed and unpacks each draw's part
        self._leaf = dealt[NAMES[0]].view(np.uint8) if party == 1 else None
        self._and = dealt[NAMES[1]].view(np.uint8) if party == 1 else None
        self._mux = dealt[NAMES[2]]

    def _take(self, kind: str, n: int) -> int:
        lo = self.used[kind]
        if lo + n > getattr(self.demand, kind):
            raise ProtocolError(f"the program draws more OT-path {kind} than the dealer dealt")
        self.used[kind] = lo + n
        return lo

    def rot_pairs(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        lo = self._take("mux", n)
        mine, theirs = (MUX_01, MUX_10) if self.party == 0 else (MUX_10, MUX_01)
        r0, r1 = strings(self.seed, mine, lo, n)
        return r0, r1, choice_bits(self.seed, theirs, lo, n), self._mux[lo : lo + n].copy()

    def and_triples(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo = self._take("ands", n)
        a, b, c = triple_parts(self.seed, lo, n)
        if self.party == 1:
            first = lo // 8
            c = np.unpackbits(self._and[first : -(-(lo + n) // 8)])[lo - 8 * first : lo - 8 * first + n]
        return a, b, c

    def leaves(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = digits.size
        lo = self._take("leaves", n)
        if self.party == 1:
            c = choices(self.seed, lo, n)
            self.pipe.send("cmp.d", _pack_nibbles(digits ^ c))
            tables = np.ascontiguousarray(self.pipe.recv("cmp.tables")).view(np.uint32)
            if tables.shape != (n,):
                raise ProtocolError("party 0 sent tables of the wrong size")
            first = lo // 4
            pads_c = unpack_pairs(self._leaf[first : -(-(lo + n) // 4)], 4 * (-(-(lo + n) // 4) - first))
            got = table_entries(tables, c) ^ pads_c[lo - 4 * first : lo - 4 * first + n]
            return got & 1, got >> 1
        u = _unpack_nibbles(self.pipe.recv("cmp.d"), n)
        lt, eq = random_bits(n), random_bits(n)
        tables = PERMUTED[digits.astype(np.intp) * ENTRIES + u]
        tables ^= LOW_FIELDS * lt.astype(np.uint32)
        tables ^= (LOW_FIELDS << np.uint32(1)) * eq.astype(np.uint32)
        tables ^= pads(self.seed, lo, n)
        self.pipe.send("cmp.tables", tables.view(np.uint8))
        return lt, eq

    def check_done(self) -> None:
        """Every dealt correlation was drawn (tests: the declared demand is exact)."""
        if self.used != {"leaves": self.demand.leaves, "ands": self.demand.ands, "mux": self.demand.mux}:
            raise ProtocolError(f"the program drew {self.used} of the dealt {self.demand}")


def _pack_nibbles(values: np.ndarray) -> np.ndarray:
    padded = np.zeros(-(-values.size // 2) * 2, dtype=np.uint8)
    padded[: values.size] = values
    return padded[0::2] | (padded[1::2] << 4)


def _unpack_nibbles(packed: np.ndarray, n: int) -> np.ndarray:
    packed = np.asarray(packed, dtype=np.uint8)
    if packed.shape != (-(-n // 2),):
        raise ProtocolError("party 1 sent digit corrections of the wrong size")
    out = np.empty(2 * packed.size, dtype=np.uint8)
    out[0::2], out[1::2] = packed & 15, packed >> 4
    return out[:n]


def install(ctx, seed: bytes, dealt: dict[str, np.ndarray], demand: Demand) -> None:
    """Make the dealt correlations this job's link for :mod:`.ot_compare` (parties 0 and 1)."""
    link = DealtLink(ctx.party, ctx.pipe(1 - ctx.party), seed, dealt, demand)
    ctx.state.setdefault("ot_compare", {})["link"] = link
