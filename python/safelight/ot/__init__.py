"""Oblivious transfer: base OTs, IKNP correlated-OT extension, random OT, dealer mode.

Two parties, one pipe between them (:class:`safelight.net.pipe.ChannelPipe` over the
network's channels, or :func:`pipe_pair` in memory)::

    from safelight import ot

    # party A (holds delta, e.g. the garbler)        # party B (chooses, e.g. the evaluator)
    s = ot.COTSender(chunk=1 << 18).setup(pipe_a)      r = ot.COTReceiver().setup(pipe_b)
    q = s.extend(n)                                    t = r.extend(choices)      # (n, 2) uint64
    # t[j] == q[j] ^ choices[j] * s.delta

Security: semi-honest (passive) adversaries. Base OTs: Chou-Orlandi over the
prime-order subgroup of edwards25519 (libsodium via PyNaCl); extension: IKNP
with AES-128-CTR seed expansion; random OT: the tweakable correlation-robust
hash pi(pi(x) ^ w) ^ pi(x) with fixed-key AES; silent OT (:mod:`.silent`): Ferret-style
extension from LPN, bootstrapped from IKNP, at 0.43 bit per OT. The dealer mode trusts
the dealer with every party's material.
"""

from .base import Pipe, base_ot_receive, base_ot_send, pipe_pair
from .iknp import (
    DEFAULT_CHUNK,
    KAPPA,
    COTReceiver,
    COTSender,
    cot_from_dealer_seed,
    dealer_cot,
    empty_labels,
    rot_receiver,
    rot_sender,
)
from .silent import BOOTSTRAP, MAIN, LpnParams, SilentReceiver, SilentSender

__all__ = [
    "BOOTSTRAP",
    "MAIN",
    "LpnParams",
    "SilentReceiver",
    "SilentSender",
    "COTReceiver",
    "COTSender",
    "DEFAULT_CHUNK",
    "KAPPA",
    "Pipe",
    "base_ot_receive",
    "base_ot_send",
    "cot_from_dealer_seed",
    "dealer_cot",
    "empty_labels",
    "pipe_pair",
    "rot_receiver",
    "rot_sender",
]
