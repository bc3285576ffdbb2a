"""Sealed records: AES-256-GCM over TCP, keyed through a mutually authenticated TLS 1.3 handshake.

Python's ``ssl`` module moves TLS data one 16 KB record per call, with two
syscalls per record and the system OpenSSL's AES-GCM; on a 2-core machine that
caps a connection near 1 GB/s, well below what the protocols need. So every
safelight connection authenticates with TLS 1.3 (mutual certificates, as
before), and then, by default, carries its bytes in larger records sealed with
AES-256-GCM from the ``cryptography`` package:

1. after the handshake the dialer sends a fresh 32-byte secret *inside* TLS;
2. both ends close TLS cleanly (close_notify both ways) and keep the TCP socket;
3. HKDF-SHA256 turns the secret into one key per direction; record i of a
   direction is sealed under nonce i (a 96-bit counter), with the record's
   length as associated data.

The peer that sent a record is the authenticated TLS peer (only it knows the
secret), records cannot be altered, reordered, replayed or spliced between
connections (fresh keys, counter nonces), and forward secrecy is that of the
TLS 1.3 ECDHE handshake that carried the secret. A stream cut mid-record is an
error, never short data. ``records = "tls"`` in cluster.toml keeps TLS records
end to end instead.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ProtocolError

UPGRADE_MAGIC = b"SLS1"
SECRET_BYTES = 32
MAX_RECORD = 1 << 20  # plaintext bytes per record: small enough that encrypting one overlaps sending the last
TAG = 16
LENGTH = struct.Struct("!I")
RECORD_MODES = ("sealed", "tls")


def _keys(secret: bytes) -> tuple[bytes, bytes]:
    """(dialer -> acceptor key, acceptor -> dialer key)."""

    def derive(info: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(secret)

    return derive(b"safelight sealed records v1: dialer to acceptor"), derive(
        b"safelight sealed records v1: acceptor to dialer"
    )


class SealedStream:
    """A byte stream of AES-256-GCM records over a connected TCP socket.

    Offers the subset of the socket API that :class:`~.transport.Channel` uses
    (``sendall``, ``recv_into``, ``settimeout``, ``close``). Large receives are
    decrypted straight into the caller's buffer.
    """

    def __init__(self, sock: socket.socket, send_key: bytes, recv_key: bytes) -> None:
        self.sock = sock
        self._send = AESGCM(send_key)
        self._recv = AESGCM(recv_key)
        self._send_counter = 0
        self._recv_counter = 0
        # Record buffers grow with the largest record seen (at most MAX_RECORD) and are
        # dropped on close: an idle connection that carried only control messages holds
        # kilobytes, not three 4 MiB buffers.
        self._out = bytearray()
        self._cipher = bytearray()
        self._plain = bytearray()
        self._pending = memoryview(b"")

    # socket-like API -------------------------------------------------------
    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def close(self) -> None:
        self.sock.close()
        self._pending = memoryview(b"")
        self._out = self._cipher = self._plain = bytearray()

    def sendall(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._out = _at_least(self._out, LENGTH.size + min(len(view), MAX_RECORD) + TAG)
        out = memoryview(self._out)
        for pos in range(0, len(view), MAX_RECORD):
            chunk = view[pos : pos + MAX_RECORD]
            size = len(chunk) + TAG
            LENGTH.pack_into(out, 0, size)
            self._send.encrypt_into(
                self._nonce(self._send_counter), chunk, bytes(out[: LENGTH.size]), out[LENGTH.size : LENGTH.size + size]
            )
            self._send_counter += 1
            self.sock.sendall(out[: LENGTH.size + size])

    def recv_into(self, buffer: memoryview, nbytes: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        want = nbytes or len(view)
        if not self._pending:
            size = self._read_length()
            if size == 0:
                return 0
            plain = size - TAG
            self._cipher = _at_least(self._cipher, size)
            cipher = memoryview(self._cipher)[:size]
            if not self._read_exact(cipher):
                raise ProtocolError("the connection closed in the middle of a record")
            # Decrypt straight into the caller's buffer when the record fits.
            if plain > want:
                self._plain = _at_least(self._plain, plain)
            target = view[:plain] if plain <= want else memoryview(self._plain)[:plain]
            try:
                self._recv.decrypt_into(self._nonce(self._recv_counter), cipher, LENGTH.pack(size), target)
            except InvalidTag:
                raise ProtocolError("a record failed authentication (tampered or out of order)") from None
            self._recv_counter += 1
            if plain <= want:
                return plain
            self._pending = target
        n = min(want, len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    # internals -------------------------------------------------------------
    @staticmethod
    def _nonce(counter: int) -> bytes:
        return counter.to_bytes(12, "big")

    def _read_exact(self, view: memoryview) -> bool:
        pos = 0
        while pos < len(view):
            got = self.sock.recv_into(view[pos:], len(view) - pos)
            if got == 0:
                return False
            pos += got
        return True

    def _read_length(self) -> int:
        head = bytearray(LENGTH.size)
        got = self.sock.recv_into(head, LENGTH.size)
        if got == 0:
            return 0  # clean end of stream between records
        if got < LENGTH.size and not self._read_exact(memoryview(head)[got:]):
            raise ProtocolError("the connection closed in the middle of a record header")
        (size,) = LENGTH.unpack(head)
        if not TAG < size <= MAX_RECORD + TAG:
            raise ProtocolError(f"invalid sealed record length {size}")
        return size


def _at_least(buffer: bytearray, size: int) -> bytearray:
    """``buffer`` if it holds ``size`` bytes, else a new one of that size (records never
    exceed MAX_RECORD + TAG, so this is bounded)."""
    return buffer if len(buffer) >= size else bytearray(size)


def upgrade_dialer(tls: ssl.SSLSocket) -> SealedStream:
    """Dialer side: send a fresh secret inside TLS, close TLS, keep TCP with sealed records."""
    secret = os.urandom(SECRET_BYTES)
    tls.sendall(UPGRADE_MAGIC + secret)
    raw = tls.unwrap()
    send_key, recv_key = _keys(secret)
    return SealedStream(raw, send_key, recv_key)


def upgrade_acceptor(tls: ssl.SSLSocket) -> SealedStream:
    """Acceptor side: read the dialer's secret inside TLS, close TLS, keep TCP with sealed records."""
    hello = bytearray(len(UPGRADE_MAGIC) + SECRET_BYTES)
    view, pos = memoryview(hello), 0
    while pos < len(hello):
        try:
            got = tls.recv_into(view[pos:], len(hello) - pos)
        except TimeoutError:
            raise ProtocolError(
                "the peer did not start the sealed-record upgrade in time (is it configured with records = 'tls'?)"
            ) from None
        if got == 0:
            raise ProtocolError("the peer closed the connection before the record upgrade")
        pos += got
    if bytes(hello[: len(UPGRADE_MAGIC)]) != UPGRADE_MAGIC:
        raise ProtocolError("the peer did not start the sealed-record upgrade (is it using records = 'tls'?)")
    raw = tls.unwrap()
    to_acceptor, to_dialer = _keys(bytes(hello[len(UPGRADE_MAGIC) :]))
    return SealedStream(raw, to_dialer, to_acceptor)
