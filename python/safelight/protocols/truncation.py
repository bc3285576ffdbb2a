"""Truncation with a dealer-provided pair: exact for any number of parties.

For x with |x| < 2^62 (signed), let x' = x + 2^62 in [0, 2^63). The dealer
shares a uniform r together with r >> f (logical) and msb(r). The parties
open c = x' + r mod 2^64 (uniform, so it reveals nothing) and set

    x >> f = (c >> f) - (r >> f) + msb(r) (1 - msb(c)) 2^(64-f) - 2^(62-f),

where msb(r)(1 - msb(c)) is exactly the wrap of x' + r past 2^64. The result
is the floor of x / 2^f up to one unit (the borrow of the low bits), always:
unlike two-party local truncation there is no rare large error.

Without a dealer (``method="ot"``, set by the client for jobs whose correlations the two
servers make themselves), no pair is made at all: the same offset makes the top bit of
x + 2^62 known, so the wrap of its two shares is the OR of their top bits, and one
random OT per value turns it into arithmetic shares (:func:`.ot_compare.truncate`, on
the job's silent OT link; the same one-unit error).
"""

from __future__ import annotations

import numpy as np

from .. import ring
from ..errors import ProgramError
from ..program.ops import register
from . import ot_compare
from .beaver import open_values
from .preprocessing import Correlation

OFFSET_BITS = 62
METHODS = ("pair", "ot")


def _method(attrs) -> str:
    method = attrs.get("method", "pair")
    if method not in METHODS:
        raise ProgramError(f"trunc_pair: method must be one of {METHODS}, got {method!r}")
    return method


def _ot_link(ctx):
    link = ot_compare.job_link(ctx) if ctx.parties == 2 else None
    if not isinstance(link, ot_compare.OtLink):
        raise ProgramError("trunc_pair method 'ot' runs on two servers without a dealer")
    return link


@register("trunc_pair", 1, interactive=True)
class TruncPair:
    @staticmethod
    def infer(shapes, attrs):
        bits = attrs.get("bits")
        if not isinstance(bits, int) or not 1 <= bits <= OFFSET_BITS:
            raise ProgramError(f"trunc_pair: bits must be an integer in 1..{OFFSET_BITS}")
        _method(attrs)
        return shapes[0]

    @staticmethod
    def correlation(step, shapes, attrs):
        if _method(attrs) == "ot":
            return []
        shape = shapes[0]
        return Correlation(step, "trunc", {"r": shape}, {"r_hi": shape, "r_msb": shape}, {"bits": attrs["bits"]})

    @staticmethod
    def offline(ctx, step, shapes, attrs):
        if _method(attrs) == "ot":
            _ot_link(ctx)  # the link's setup is input-independent

    @staticmethod
    def run(ctx, xs, attrs):
        bits = int(attrs["bits"])
        if _method(attrs) == "ot":
            out = ot_compare.truncate(_ot_link(ctx), xs[0], bits)
            ctx.add_rounds(ot_compare.TRUNCATE_ROUNDS)
            return out
        pre = ctx.correlation()
        masked = ring.add(xs[0], pre["r"])
        if ctx.party == 0:
            masked += np.uint64(1 << OFFSET_BITS)
        (c,) = open_values(ctx, masked)
        no_top = np.uint64(1) - (c >> np.uint64(63))
        # -(r >> f) + msb(r) * (1 - msb(c)) * 2^(64-f)
        y = ring.neg(pre["r_hi"])
        wrap = ring.mul(pre["r_msb"], no_top)
        ring.add(y, ring.mul_scalar(wrap, 1 << (64 - bits), out=wrap), out=y)
        if ctx.party == 0:
            public = (c >> np.uint64(bits)) - np.uint64(1 << (OFFSET_BITS - bits))
            ring.add(y, np.ascontiguousarray(public), out=y)
        return y
