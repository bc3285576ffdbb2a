"""Base oblivious transfers and the message pipes the OT protocols run over.

Base OT: the Chou-Orlandi "simplest OT" (semi-honest), batched: one sender
message ``A = a*G`` serves every transfer. For transfer ``i`` with choice bit
``c_i`` the receiver picks a scalar ``x_i`` and sends ``B_i = x_i*G + c_i*A``;
the sender derives ``k0_i = H(i, a*B_i)`` and ``k1_i = H(i, a*(B_i - A))``
and the receiver ``k_{c_i} = H(i, x_i*A)``. The outputs are random 16-byte
strings (the seeds of the IKNP extension), not chosen messages.

The group is the prime-order subgroup of edwards25519 through libsodium
(PyNaCl's ``crypto_scalarmult_ed25519_noclamp`` / ``crypto_core_ed25519_*``).
PyNaCl does not bind libsodium's ristretto255 functions; every received point
is checked with ``crypto_core_ed25519_is_valid_point`` (canonical encoding, on
the curve, in the main subgroup, not of small order), so all arithmetic stays
in the prime-order group and each element has one encoding, as ristretto255
would guarantee. Key derivation: BLAKE2b with a 16-byte digest, personalised
for this protocol, over the session id (itself a hash of the caller's session
bytes and the sender's point A), the index, the receiver's point B_i and the
shared point.

Pipes: the protocols only need ``send(name, array)`` and ``recv(name) ->
array`` (:class:`Pipe`). :func:`pipe_pair` gives two in-memory ends for tests and
single-process use; :class:`safelight.net.pipe.ChannelPipe` adapts the network's
channels.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
from typing import Protocol

import numpy as np

from ..errors import InputError, PeerUnavailableError, ProtocolError

POINT_BYTES = 32
SEED_BYTES = 16
_PERSON = b"safelight-ot-v1"  # BLAKE2b personalisation (<= 16 bytes)


class Pipe(Protocol):
    """What the OT protocols need from a connection to the other party."""

    def send(self, name: str, array: np.ndarray) -> None: ...

    def recv(self, name: str) -> np.ndarray: ...


class _QueueEnd:
    """One end of an in-memory pipe (see :func:`pipe_pair`)."""

    _CLOSED = object()

    def __init__(self, inbox: queue.Queue, outbox: queue.Queue, timeout: float, name: str) -> None:
        self._in, self._out, self.timeout, self.peer = inbox, outbox, timeout, name
        self.closed = False

    def send(self, name: str, array: np.ndarray) -> None:
        if self.closed:
            raise PeerUnavailableError("this end of the pipe is closed")
        self._out.put((name, np.array(array, copy=True)))

    def recv(self, name: str) -> np.ndarray:
        try:
            item = self._in.get(timeout=self.timeout)
        except queue.Empty:
            raise PeerUnavailableError(
                f"{self.peer} did not answer within {self.timeout:g} s; it may have died"
            ) from None
        if item is self._CLOSED:
            raise PeerUnavailableError(f"{self.peer} closed the connection")
        got, array = item
        if got != name:
            raise ProtocolError(f"{self.peer} sent tensor {got!r} where {name!r} was expected")
        return array

    def close(self) -> None:
        """Tell the other end that this party is gone (its pending recv fails)."""
        if not self.closed:
            self.closed = True
            self._out.put(self._CLOSED)


def pipe_pair(timeout: float = 30.0) -> tuple[_QueueEnd, _QueueEnd]:
    """Two connected in-memory pipe ends (for tests and for both roles in one process)."""
    a_to_b: queue.Queue = queue.Queue()
    b_to_a: queue.Queue = queue.Queue()
    return _QueueEnd(b_to_a, a_to_b, timeout, "peer B"), _QueueEnd(a_to_b, b_to_a, timeout, "peer A")


# ---- group helpers -------------------------------------------------------


def _sodium():
    try:
        from nacl import bindings
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise ImportError("base OTs need PyNaCl (libsodium): pip install pynacl") from exc
    return bindings


def _random_scalar(nacl) -> bytes:
    while True:
        s = nacl.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        if any(s):
            return s


def _check_point(nacl, p: bytes, what: str) -> None:
    if len(p) != POINT_BYTES or not nacl.crypto_core_ed25519_is_valid_point(p):
        raise ProtocolError(f"the peer sent an invalid group element as {what}")


def _mul(nacl, scalar: bytes, point: bytes) -> bytes:
    try:
        return nacl.crypto_scalarmult_ed25519_noclamp(scalar, point)
    except Exception:  # libsodium refuses an identity result
        raise ProtocolError("base OT produced the identity element (malformed peer message)") from None


def _session_id(session: bytes, a_point: bytes, count: int) -> bytes:
    h = hashlib.blake2b(digest_size=16, person=_PERSON)
    h.update(b"sid")
    h.update(struct.pack("<QQ", len(session), count))
    h.update(session)
    h.update(a_point)
    return h.digest()


def _key(sid: bytes, index: int, b_point: bytes, shared: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=SEED_BYTES, person=_PERSON)
    h.update(sid)
    h.update(struct.pack("<Q", index))
    h.update(b_point)
    h.update(shared)
    return h.digest()


# ---- protocol ------------------------------------------------------------


def base_ot_send(pipe: Pipe, count: int = 128, session: bytes = b"") -> tuple[np.ndarray, np.ndarray, bytes]:
    """Sender of ``count`` random 1-out-of-2 OTs.

    Returns ``(k0, k1, sid)``: two ``(count, 16)`` uint8 arrays of random keys and
    the 16-byte session id both ends agree on (a hash of ``session`` and the
    transcript). Messages: sends ``ot.base.A`` (32 bytes), receives ``ot.base.B``.
    """
    if count <= 0:
        raise InputError(f"count must be positive, got {count}")
    nacl = _sodium()
    a = _random_scalar(nacl)
    a_point = nacl.crypto_scalarmult_ed25519_base_noclamp(a)
    pipe.send("ot.base.A", np.frombuffer(a_point, dtype=np.uint8))
    b_all = np.asarray(pipe.recv("ot.base.B"))
    if b_all.dtype != np.uint8 or b_all.shape != (count, POINT_BYTES):
        raise ProtocolError(f"base OT: expected {count} points of 32 bytes, got {b_all.dtype} {b_all.shape}")
    sid = _session_id(session, a_point, count)
    k0 = np.empty((count, SEED_BYTES), dtype=np.uint8)
    k1 = np.empty((count, SEED_BYTES), dtype=np.uint8)
    for i in range(count):
        b_point = b_all[i].tobytes()
        _check_point(nacl, b_point, f"B[{i}]")
        k0[i] = np.frombuffer(_key(sid, i, b_point, _mul(nacl, a, b_point)), np.uint8)
        diff = nacl.crypto_core_ed25519_sub(b_point, a_point)
        k1[i] = np.frombuffer(_key(sid, i, b_point, _mul(nacl, a, diff)), np.uint8)
    return k0, k1, sid


def base_ot_receive(pipe: Pipe, choices: np.ndarray, session: bytes = b"") -> tuple[np.ndarray, bytes]:
    """Receiver of ``len(choices)`` random 1-out-of-2 OTs with choice bits ``choices``.

    Returns ``(k, sid)``: ``k[i] = k_{choices[i]}[i]`` of the sender, a
    ``(count, 16)`` uint8 array, and the session id. Messages: receives
    ``ot.base.A``, sends ``ot.base.B`` (count x 32 bytes).
    """
    bits = np.asarray(choices).reshape(-1)
    if bits.size == 0 or not np.isin(bits, (0, 1)).all():
        raise InputError("choices must be a non-empty array of 0/1 bits")
    count = bits.size
    nacl = _sodium()
    a_arr = np.asarray(pipe.recv("ot.base.A"))
    if a_arr.dtype != np.uint8 or a_arr.shape != (POINT_BYTES,):
        raise ProtocolError(f"base OT: expected a 32-byte point, got {a_arr.dtype} {a_arr.shape}")
    a_point = a_arr.tobytes()
    _check_point(nacl, a_point, "A")
    b_all = np.empty((count, POINT_BYTES), dtype=np.uint8)
    shared = []
    for i in range(count):
        x = _random_scalar(nacl)
        x_point = nacl.crypto_scalarmult_ed25519_base_noclamp(x)
        # Both candidates are always computed, so the work does not depend on the bit.
        candidates = (x_point, nacl.crypto_core_ed25519_add(x_point, a_point))
        b_all[i] = np.frombuffer(candidates[int(bits[i])], np.uint8)
        shared.append(_mul(nacl, x, a_point))
    pipe.send("ot.base.B", b_all)
    sid = _session_id(session, a_point, count)
    k = np.empty((count, SEED_BYTES), dtype=np.uint8)
    for i in range(count):
        k[i] = np.frombuffer(_key(sid, i, b_all[i].tobytes(), shared[i]), np.uint8)
    return k, sid
