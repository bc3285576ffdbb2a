"""Framed messages over TCP with mutually authenticated TLS 1.3.

Every message is one frame::

    magic "SLF1" | version u8 | type u8 | flags u16 | job id (16 bytes) | length u64 | body

A tensor body is ``meta length u32 | meta JSON (name, dtype, shape) | raw
C-order bytes``; the raw bytes go straight from and into numpy buffers
(``sendall`` of a memoryview, ``recv_into`` a fresh array), without copies.
"""

from __future__ import annotations

import enum
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import errors
from ..errors import JobFailedError, PeerUnavailableError, ProtocolError
from .certs import Identity
from .sealed import RECORD_MODES, SealedStream, upgrade_acceptor, upgrade_dialer

MAGIC = b"SLF1"
VERSION = 1
HEADER = struct.Struct("!4sBBH16sQ")
META_LEN = struct.Struct("!I")
MAX_JSON_BYTES = 64 << 20  # what a client accepts from a server (a store listing can be large)
MAX_TENSOR_BYTES = 16 << 30

ALLOWED_DTYPES = {"uint64", "int64", "float64", "float32", "uint8"}


class MsgType(enum.IntEnum):
    SUBMIT = 1  # client -> server: program and input descriptors (JSON)
    TENSOR = 2  # any direction: one named array
    RESULT = 3  # server -> client: job statistics (JSON); ends a job
    ERROR = 4  # any direction: {"error": class name, "message": text}
    PEER_HELLO = 5  # party -> party: opens a per-job link (JSON {"party": i})
    PROGRESS = 6  # server -> client: {"step": i, "of": n, "op": name}
    PREPROCESS = 7  # dealer -> party: {"seed": hex} (then correction tensors for the last party)
    STORE = 8  # client -> party: {"model": id, "inputs": [...]} then share tensors; answered by RESULT
    STORE_REQ = 9  # owner -> storage server: {"op": ...} (then a blob tensor); answered by RESULT
    KEY_REQ = 10  # owner -> key server: {"points": [hex, ...]}; answered by RESULT
    ABORT = 11  # client -> server: {"error": ..., "message": ...}: stop this job now (another participant failed)


@dataclass
class Frame:
    type: MsgType
    job_id: bytes
    json: Any = None
    name: str | None = None
    array: np.ndarray | None = None


def server_context(identity: Identity) -> ssl.SSLContext:
    """TLS 1.3 server context that demands a client certificate from our CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(identity.cert, identity.key)
    ctx.load_verify_locations(identity.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    # No session tickets: a ticket the client never reads would sit in its receive
    # buffer and turn its close into a reset that can cut off data still in flight.
    ctx.num_tickets = 0
    return ctx


def client_context(identity: Identity) -> ssl.SSLContext:
    """TLS 1.3 client context that presents our certificate and checks the server's name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(identity.cert, identity.key)
    ctx.load_verify_locations(identity.ca)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def certificate_name(sock: ssl.SSLSocket) -> str:
    """Common name of the authenticated peer certificate."""
    cert = sock.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    raise ProtocolError("the peer certificate has no common name")


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Channel:
    """One authenticated connection with byte counters and a timeout.

    Parameters
    ----------
    sock : SealedStream, SSLSocket or socket
        The connected stream (plain sockets are used only to measure TLS overhead).
    peer : str
        The peer's authenticated name, used in error messages.
    timeout : float
        Seconds a single send or receive may stall before the peer is declared dead.
    """

    def __init__(
        self, sock: socket.socket | SealedStream, peer: str, timeout: float, max_json: int = MAX_JSON_BYTES
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.timeout = timeout
        self.max_json = max_json  # servers lower it to their control-message limit
        self.bytes_sent = 0
        self.bytes_received = 0
        self._send_lock = threading.Lock()
        sock.settimeout(timeout)

    # ---- sending -------------------------------------------------------
    def _sendall(self, data: bytes | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise PeerUnavailableError(
                f"{self.peer} stopped receiving for {self.timeout:g} s; it may be overloaded or dead"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise PeerUnavailableError(f"lost the connection to {self.peer}: {exc}") from None
        self.bytes_sent += len(data) if isinstance(data, bytes) else data.nbytes

    def send_json(self, type_: MsgType, job_id: bytes, obj: Any) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        with self._send_lock:
            self._sendall(HEADER.pack(MAGIC, VERSION, type_, 0, job_id, len(body)) + body)

    def send_tensor(self, job_id: bytes, name: str, array: np.ndarray, type_: MsgType = MsgType.TENSOR) -> None:
        arr = np.ascontiguousarray(array)
        if arr.dtype.name not in ALLOWED_DTYPES:
            raise ProtocolError(f"cannot send dtype {arr.dtype} (allowed: {sorted(ALLOWED_DTYPES)})")
        meta = json.dumps({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape)}).encode()
        length = META_LEN.size + len(meta) + arr.nbytes
        head = HEADER.pack(MAGIC, VERSION, type_, 0, job_id, length) + META_LEN.pack(len(meta)) + meta
        with self._send_lock:
            self._sendall(head)
            if arr.nbytes:
                self._sendall(memoryview(arr.reshape(-1)).cast("B"))

    def send_error(self, job_id: bytes, exc: BaseException) -> None:
        self.send_json(MsgType.ERROR, job_id, {"error": type(exc).__name__, "message": str(exc)})

    # ---- receiving -----------------------------------------------------
    def _recv_into(self, view: memoryview) -> None:
        pos, total = 0, view.nbytes
        try:
            while pos < total:
                got = self.sock.recv_into(view[pos:], total - pos)
                if got == 0:
                    raise PeerUnavailableError(f"{self.peer} closed the connection")
                pos += got
        except TimeoutError:
            raise PeerUnavailableError(
                f"{self.peer} did not answer within {self.timeout:g} s; it may have died"
            ) from None
        except ssl.SSLError as exc:
            raise ProtocolError(f"TLS error from {self.peer}: {exc.reason or exc}") from None
        except OSError as exc:
            raise PeerUnavailableError(f"lost the connection to {self.peer}: {exc}") from None
        self.bytes_received += total

    def _recv_bytes(self, n: int) -> bytes:
        buf = bytearray(n)
        self._recv_into(memoryview(buf))
        return bytes(buf)

    def recv(
        self,
        allow: Collection[MsgType] | None = None,
        accept_tensor: Callable[[str, str, tuple[int, ...]], None] | None = None,
        into: np.ndarray | None = None,
    ) -> Frame:
        """Receive one frame; raise ProtocolError for anything malformed.

        ``allow``: the message types acceptable here (ERROR always is); any other is
        refused from its header, before its body is read. ``accept_tensor(name, dtype,
        shape)`` may raise to refuse a tensor from its metadata, before its buffer is
        allocated (a server checks sizes against the Program this way). ``into``: a
        C-contiguous array the tensor must match in dtype and shape, filled in place
        (no fresh buffer, no copy).
        """
        if into is not None and not into.flags.c_contiguous:
            raise ValueError("a tensor can only be received into a C-contiguous array")
        magic, version, type_, _flags, job_id, length = HEADER.unpack(self._recv_bytes(HEADER.size))
        if magic != MAGIC or version != VERSION:
            raise ProtocolError(f"{self.peer} sent a frame with a bad magic or version")
        try:
            mtype = MsgType(type_)
        except ValueError:
            raise ProtocolError(f"{self.peer} sent an unknown message type {type_}") from None
        if allow is not None and mtype not in allow and mtype != MsgType.ERROR:
            raise ProtocolError(f"{self.peer} sent {mtype.name} where {'/'.join(t.name for t in allow)} was expected")
        if mtype != MsgType.TENSOR:
            if length > self.max_json:
                raise ProtocolError(f"{self.peer} sent a {length}-byte control message (limit {self.max_json} bytes)")
            return Frame(mtype, job_id, json=parse_json(self._recv_bytes(length), f"{self.peer}'s control message"))
        if length < META_LEN.size or length > MAX_TENSOR_BYTES:
            raise ProtocolError(f"{self.peer} sent a tensor frame of invalid length {length}")
        (meta_len,) = META_LEN.unpack(self._recv_bytes(META_LEN.size))
        if meta_len > min(length - META_LEN.size, 1 << 16):
            raise ProtocolError(f"{self.peer} sent tensor metadata of invalid length")
        meta = parse_json(self._recv_bytes(meta_len), f"{self.peer}'s tensor metadata")
        try:
            name, dtype, shape = str(meta["name"]), str(meta["dtype"]), tuple(int(s) for s in meta["shape"])
        except (KeyError, TypeError, ValueError):
            raise ProtocolError(f"{self.peer} sent malformed tensor metadata") from None
        if dtype not in ALLOWED_DTYPES or any(s < 0 for s in shape) or len(shape) > 8:
            raise ProtocolError(f"{self.peer} sent a tensor with dtype {dtype!r} or shape {shape}")
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
        if nbytes != length - META_LEN.size - meta_len:
            raise ProtocolError(f"{self.peer} sent a tensor whose size does not match its shape")
        if accept_tensor is not None:
            accept_tensor(name, dtype, shape)
        if into is not None and (into.dtype != np.dtype(dtype) or into.shape != shape):
            raise ProtocolError(f"{self.peer} sent {dtype}{list(shape)} where {into.dtype}{list(into.shape)} was due")
        array = np.empty(shape, dtype=dtype) if into is None else into
        if array.nbytes:
            self._recv_into(memoryview(array.reshape(-1)).cast("B"))
        return Frame(mtype, job_id, name=name, array=array)

    def expect(
        self,
        *types: MsgType,
        accept_tensor: Callable[[str, str, tuple[int, ...]], None] | None = None,
        into: np.ndarray | None = None,
    ) -> Frame:
        """Receive a frame of one of ``types``; a peer's ERROR frame becomes an exception."""
        frame = self.recv(types, accept_tensor, into)
        if frame.type == MsgType.ERROR and MsgType.ERROR not in types:
            raise_remote_error(self.peer, frame.json)
        return frame

    def set_timeout(self, timeout: float) -> None:
        self.timeout = timeout
        self.sock.settimeout(timeout)

    def interrupt(self) -> None:
        """Make a send or receive blocked on this channel (in any thread) fail now."""
        raw = getattr(self.sock, "sock", self.sock)  # the TCP socket under sealed records
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def linger(self, seconds: float = 1.0, max_bytes: int = 64 << 20) -> None:
        """Stop sending and discard what the peer still sends, briefly, before closing.

        Closing a socket with unread data makes the kernel reset the connection, and a
        reset can destroy the peer's copy of what we sent last (an ERROR frame refusing a
        job while the client still uploads its inputs). Reading on until the peer is done
        (bounded in time and bytes) lets that frame arrive."""
        raw = getattr(self.sock, "sock", self.sock)
        try:
            raw.shutdown(socket.SHUT_WR)
            raw.settimeout(seconds)
            deadline, left = time.monotonic() + seconds, max_bytes
            sink = bytearray(1 << 16)
            while left > 0 and time.monotonic() < deadline:
                got = raw.recv_into(sink)
                if got == 0:
                    break
                left -= got
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def raise_remote_error(peer: str, payload: Any) -> None:
    """Turn a server's ERROR frame into the matching local exception."""
    name = str(payload.get("error", "")) if isinstance(payload, dict) else ""
    message = str(payload.get("message", "")) if isinstance(payload, dict) else str(payload)
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.SafelightError):
        raise cls(f"{peer}: {message}")
    raise JobFailedError(f"{peer} could not run the job: {name}: {message}")


def receive_tensors(
    channel: Channel, expected: dict[str, tuple[int, ...] | None], max_bytes: int
) -> dict[str, np.ndarray]:
    """Receive exactly the named uint64 tensors, in any order. Each is checked from its
    metadata before its buffer is allocated: a declared shape must match, an undeclared
    one must fit in ``max_bytes``."""
    out: dict[str, np.ndarray] = {}
    pending = dict(expected)

    def accept(name: str, dtype: str, shape: tuple[int, ...]) -> None:
        if name not in pending or dtype != "uint64":
            raise ProtocolError(f"unexpected tensor {name!r} ({dtype}) from {channel.peer}")
        want = pending[name]
        if want is not None and shape != tuple(want):
            raise ProtocolError(f"tensor {name!r} has shape {shape}, expected {tuple(want)}")
        if want is None and 8 * int(np.prod(shape, dtype=object)) > max_bytes:
            raise errors.ResourceLimitError(f"tensor {name!r} of shape {shape} exceeds the memory budget")

    while pending:
        frame = channel.expect(MsgType.TENSOR, accept_tensor=accept)
        assert frame.name is not None and frame.array is not None
        pending.pop(frame.name)
        out[frame.name] = frame.array
    return out


def parse_json(body: bytes, what: str) -> Any:
    """Decode a JSON message from a peer; anything malformed (not UTF-8 or JSON, nested
    too deeply for the parser) is a ProtocolError, never an internal error."""
    try:
        return json.loads(body.decode())
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not UTF-8 JSON") from None
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply") from None
    except ValueError:  # JSONDecodeError, and numbers too long to convert
        raise ProtocolError(f"{what} is not valid JSON") from None


def connect(
    host: str,
    port: int,
    identity: Identity | None,
    expected_name: str,
    timeout: float,
    context: ssl.SSLContext | None = None,
    records: str = "sealed",
) -> Channel:
    """Open a channel to ``host:port`` and authenticate it as ``expected_name``.

    ``records`` is ``"sealed"`` (TLS 1.3 handshake, then AES-256-GCM records, see
    :mod:`.sealed`) or ``"tls"`` (TLS records end to end). With ``identity=None``
    and no context the channel is plain TCP (only for measuring TLS overhead).
    """
    if records not in RECORD_MODES:
        raise ValueError(f"records must be one of {RECORD_MODES}, got {records!r}")
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise PeerUnavailableError(
            f"{expected_name} at {host}:{port} did not accept a connection within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise PeerUnavailableError(
            f"cannot reach {expected_name} at {host}:{port}: {exc.strerror or exc}; is the server running?"
        ) from None
    _tune(raw)
    if identity is None and context is None:
        return Channel(raw, expected_name, timeout)
    ctx = context or client_context(identity)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=expected_name)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        raise ProtocolError(
            f"{host}:{port} did not prove it is {expected_name}: {exc.verify_message}; "
            "check that every party uses certificates from the same 'safelight certs' run"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        raise PeerUnavailableError(f"TLS handshake with {expected_name} at {host}:{port} failed: {exc}") from None
    if records == "tls":
        return Channel(tls, expected_name, timeout)
    try:
        return Channel(upgrade_dialer(tls), expected_name, timeout)
    except (ssl.SSLError, OSError) as exc:
        tls.close()
        raise PeerUnavailableError(
            f"{expected_name} at {host}:{port} dropped the connection during set-up: {exc}"
        ) from None


def accept_tls(raw: socket.socket, context: ssl.SSLContext, timeout: float, records: str = "sealed") -> Channel:
    """Server side of the handshake; the channel is named after the client certificate."""
    _tune(raw)
    raw.settimeout(timeout)
    tls = context.wrap_socket(raw, server_side=True)
    name = certificate_name(tls)
    if records == "tls":
        return Channel(tls, name, timeout)
    return Channel(upgrade_acceptor(tls), name, timeout)
