"""The store's two servers, over the foundation's TLS transport (mutual certificates).

* The **storage server** (``safelight serve --role store``) answers STORE requests from
  owners; the owner is the name on the client certificate, and every request is scoped to
  it (:class:`~safelight.store.index.Index`).
* The **key server** (``safelight serve --role keyserver``) evaluates the OPRF on blinded
  points (it never sees a file, a digest or a key) and rate-limits each client with a token
  bucket, so guessing predictable files costs one request per guess.

Configuration: ``store.toml`` written by ``safelight store init``::

    owners = ["alice"]       # the owners init made (the command line's default owner)
    [store]
    certs = "certs"
    host = "127.0.0.1"
    port = 7500
    root = "store-data"      # blobs (and the SQLite index, index.sqlite3, when there is no index URL)
    # index = "postgresql://safelight@db.example/photos"   # optional: the index in PostgreSQL
    # index_schema = "safelight_store"                      # its schema there: one per store
    [keyserver]
    host = "127.0.0.1"
    port = 7501
    key = "keyserver.key"    # the OPRF key (created on first start)
    rate = 200.0             # evaluations per second per client, and the burst below
    burst = 2000

With ``index`` (a ``postgresql://`` URL, psycopg 3: ``pip install 'safelight[postgres]'``)
the index lives in that database instead of ``root/index.sqlite3``, in the schema
``index_schema`` (one per store; the blobs stay under ``root``). Keep the password out of the
URL: libpq reads ``~/.pgpass`` and ``PGPASSWORD``.

Port 0 (``safelight store init --port 0``): each server binds a free port and prints it on
its ``READY <role> <port>`` line; whoever starts the servers gives the clients those ports
(:func:`safelight.store.local.start_servers` reads them).

The storage server refuses to start on a corrupt index (:class:`~safelight.store.index.Index`)
and never deletes a blob file at start (unlisted ones go to ``quarantine/``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError, JobFailedError, ProtocolError, ResourceLimitError, SafelightError
from ..net.certs import Identity
from ..net.config import ServerLimits
from ..net.listener import Connection, serve_connections
from ..net.transport import Channel, MsgType, accept_tls, server_context
from ..processes import exit_when_orphaned
from . import oprf
from .backends.base import DEFAULT_SCHEMA, URL_SCHEMES
from .index import Index

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("safelight.store")
STORE_NAME, KEYSERVER_NAME = "store", "keyserver"
MAX_POINTS = 4096  # per key-server request
NO_JOB = b"\0" * 16


@dataclass(frozen=True)
class StoreConfig:
    certs: Path
    store_host: str
    store_port: int
    root: Path
    key_host: str
    key_port: int
    key_file: Path
    rate: float = 200.0
    burst: int = 2000
    timeout: float = 30.0
    owners: tuple[str, ...] = ()  # the owners made by ``safelight store init`` (the CLI's default owner)
    limits: ServerLimits = ServerLimits()  # [limits], as in cluster.toml
    index: str | None = None  # a PostgreSQL URL for the index; None: root/index.sqlite3
    index_schema: str = DEFAULT_SCHEMA

    @classmethod
    def load(cls, path: str | os.PathLike) -> StoreConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
            s, k = data["store"], data["keyserver"]
            rel = lambda v: Path(v) if Path(v).is_absolute() else path.parent / v  # noqa: E731
            index = None if s.get("index") is None else str(s["index"])
            if index is not None and not index.startswith(URL_SCHEMES):
                raise ValueError(f"[store] index must be a postgresql:// URL, not {index.split(':')[0]!r}...")
            return cls(
                rel(s.get("certs", "certs")),
                str(s["host"]),
                int(s["port"]),
                rel(s.get("root", "store-data")),
                str(k["host"]),
                int(k["port"]),
                rel(k.get("key", "keyserver.key")),
                float(k.get("rate", 200.0)),
                int(k.get("burst", 2000)),
                float(s.get("timeout", 30.0)),
                tuple(str(o) for o in data.get("owners", [])),
                ServerLimits.from_toml(data.get("limits", {}), str(path)),
                index,
                str(s.get("index_schema", DEFAULT_SCHEMA)),
            )
        except FileNotFoundError:
            raise ConfigError(f"store config {path} does not exist (run: safelight store init)") from None
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"store config {path} is invalid: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        q = json.dumps  # a JSON string is a TOML basic string (same escapes)
        path.write_text(
            (f"owners = [{', '.join(q(o) for o in self.owners)}]\n\n" if self.owners else "")
            + f"[store]\ncerts = {q(self.certs.as_posix())}\nhost = {q(self.store_host)}\nport = {self.store_port}\n"
            f"root = {q(self.root.as_posix())}\ntimeout = {self.timeout}\n"
            + (f"index = {q(self.index)}\nindex_schema = {q(self.index_schema)}\n" if self.index else "")
            + "\n"
            f"[keyserver]\nhost = {q(self.key_host)}\nport = {self.key_port}\nkey = {q(self.key_file.as_posix())}\n"
            f"rate = {self.rate}\nburst = {self.burst}\n"
            + ("\n" + "\n".join(self.limits.to_toml()) if self.limits != ServerLimits() else "")
        )
        return path


class _Service:
    """Accept TLS connections (the servers' shared, bounded accept loop) and hand each
    request to ``handle``."""

    name = ""
    request_type = MsgType.STORE_REQ  # the first frame of every request

    def __init__(self, config: StoreConfig, host: str, port: int) -> None:
        self.config = config
        self.context = server_context(Identity.from_dir(config.certs, self.name))
        self.sock = socket.create_server((host, port), backlog=128)
        self.sock.settimeout(0.5)
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def stop(self) -> None:
        self._stop.set()

    def serve_forever(self) -> None:
        log.info("%s listening on port %d", self.name, self.port)
        serve_connections(self.sock, self._connection, self.config.limits, self._stop, log)
        self.sock.close()

    def _connection(self, raw: socket.socket, addr, connection: Connection) -> None:
        limits = self.config.limits
        try:
            channel = accept_tls(raw, self.context, limits.handshake_timeout)
        except (ssl.SSLError, OSError, ProtocolError) as exc:
            log.warning("%s: refused %s:%s (%s)", self.name, addr[0], addr[1], type(exc).__name__)
            return
        channel.max_json = limits.max_control_bytes

        def blob_fits(name: str, dtype: str, shape: tuple[int, ...]) -> None:
            if int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize > limits.memory_bytes:
                raise ResourceLimitError(f"a {shape} {dtype} tensor exceeds {self.name}'s memory budget")

        try:
            while True:
                try:
                    frame = channel.recv(allow=(self.request_type, MsgType.TENSOR), accept_tensor=blob_fits)
                except SafelightError:
                    return  # the client hung up or broke the protocol
                if connection.pending:
                    connection.authenticated()
                    channel.set_timeout(self.config.timeout)
                try:
                    self.handle(channel, frame)
                except SafelightError as exc:
                    log.warning("%s: request from %s failed: %s", self.name, channel.peer, exc)
                    channel.send_error(NO_JOB, exc)
        finally:
            channel.close()

    def handle(self, channel: Channel, frame) -> None:
        raise NotImplementedError


class StoreServer(_Service):
    """Ciphertext blobs and their index; owners see only their own entries.

    The index is opened (and checked: a corrupt one stops the start with a
    :class:`~safelight.errors.ConfigError`) before the port is bound. A request that fails
    is answered with an ERROR frame and the connection stays usable: a blob that follows a
    rejected ``put`` is read first, and a storage fault (a missing blob file, a database
    error) becomes an error reply instead of closing the connection.
    """

    name = STORE_NAME

    def __init__(self, config: StoreConfig) -> None:
        self.index = Index(config.root, config.index, config.index_schema)
        try:
            super().__init__(config, config.store_host, config.store_port)
        except BaseException:
            self.index.close()
            raise

    def handle(self, channel: Channel, frame) -> None:
        if frame.type != MsgType.STORE_REQ or not isinstance(frame.json, dict):
            raise ProtocolError(f"the store takes STORE requests, not {frame.type.name}")
        req = frame.json
        # the blob frame belongs to this request whatever happens next: read it before any
        # check can fail, or the next request would start with it
        blob = channel.expect(MsgType.TENSOR).array if req.get("op") == "put" and req.get("with_blob") else None
        owner = channel.peer
        if owner in (STORE_NAME, KEYSERVER_NAME):
            raise ProtocolError("servers do not own entries")
        try:
            self._answer(channel, owner, req, blob)
        except SafelightError:
            raise
        except (OSError, *self.index.db.errors) as exc:
            log.exception("store: %r request from %s failed", req.get("op"), owner)
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)  # no server paths
            raise JobFailedError(
                f"the storage server could not complete the {req.get('op')!r} request "
                f"({type(exc).__name__}: {detail}); its log has the details"
            ) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"malformed {req.get('op')!r} request: {type(exc).__name__}: {exc}") from None

    def _answer(self, channel: Channel, owner: str, req: dict, blob: np.ndarray | None) -> None:
        op = req.get("op")
        if op in ("put", "near"):
            req["tags"] = _tags(req.get("tags", []))
        if op == "has":
            reply: dict = {"has": [self.index.has_blob(owner, str(b)) for b in req.get("blobs", [])]}
        elif op == "put":
            ciphertext = None
            if req.get("with_blob"):
                if blob is None or blob.dtype != np.uint8 or blob.ndim != 1:
                    raise ProtocolError("a blob must be a 1-D uint8 tensor")
                ciphertext = blob.tobytes()
            new = self.index.put(
                owner,
                str(req.get("entry")),
                str(req.get("blob")),
                ciphertext,
                _hex(req.get("meta", ""), "meta"),
                req["tags"],
            )
            reply = {"new_blob": new}
        elif op == "get":
            ciphertext, meta = self.index.get(owner, str(req.get("entry")))
            channel.send_tensor(NO_JOB, "blob", np.frombuffer(ciphertext, dtype=np.uint8))
            reply = {"meta": meta.hex()}
        elif op == "list":
            reply = {"entries": [[e, b, m.hex()] for e, b, m in self.index.list(owner)]}
        elif op == "near":
            hits = self.index.near(owner, req["tags"], int(req.get("min_bands", 1)))
            reply = {"hits": [[e, c, m.hex()] for e, c, m in hits]}
        elif op == "rm":
            reply = {"blob_removed": self.index.remove(owner, str(req.get("entry")))}
        elif op == "stats":
            reply = self.index.stats(owner)
        else:
            raise InputError(f"unknown store operation {op!r}")
        channel.send_json(MsgType.RESULT, NO_JOB, reply)


def _hex(value: object, what: str) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError:
        raise InputError(f"{what} must be hex") from None


def _tags(raw: object) -> list[tuple[int, bytes]]:
    """Validated (band, tag) pairs: at most 256 bands, 16-byte tags."""
    from .sketch import TAG_BYTES

    if not isinstance(raw, list) or len(raw) > 256:
        raise InputError("tags must be a list of at most 256 [band, tag] pairs")
    out = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int) or not 0 <= item[0] < 256:
            raise InputError("a tag must be [band 0..255, hex tag]")
        tag = _hex(item[1], "a tag")
        if len(tag) != TAG_BYTES:
            raise InputError(f"a tag must be {TAG_BYTES} bytes, got {len(tag)}")
        out.append((item[0], tag))
    return out


class KeyServer(_Service):
    """Evaluates the OPRF on blinded points, at a bounded rate per client."""

    name = KEYSERVER_NAME
    request_type = MsgType.KEY_REQ

    def __init__(self, config: StoreConfig) -> None:
        super().__init__(config, config.key_host, config.key_port)
        self.key = self._load_key(config.key_file)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.received: list[bytes] = []  # for tests (SAFELIGHT_KEYSERVER_RECORD=1): what arrived

    @staticmethod
    def _load_key(path: Path) -> bytes:
        if path.exists():
            key = path.read_bytes()
            if len(key) != oprf.SCALAR_BYTES:
                raise ConfigError(f"{path} is not a key-server key")
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        key = oprf.random_scalar()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key

    def _spend(self, who: str, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (float(self.config.burst), now))
            tokens = min(float(self.config.burst), tokens + (now - last) * self.config.rate)
            if tokens < n:
                self._buckets[who] = (tokens, now)
                raise InputError(
                    f"key server rate limit: {self.config.rate:g} evaluations/s per client "
                    f"(burst {self.config.burst}); retry in {(n - tokens) / self.config.rate:.1f} s"
                )
            self._buckets[who] = (tokens - n, now)

    def handle(self, channel: Channel, frame) -> None:
        if frame.type != MsgType.KEY_REQ or not isinstance(frame.json, dict):
            raise ProtocolError(f"the key server takes KEY requests, not {frame.type.name}")
        points = frame.json.get("points")
        if not isinstance(points, list) or not 0 < len(points) <= MAX_POINTS:
            raise ProtocolError(f"a key request holds 1..{MAX_POINTS} points")
        self._spend(channel.peer, len(points))
        blinded = [_hex(p, "a blinded point") for p in points]
        if os.environ.get("SAFELIGHT_KEYSERVER_RECORD"):
            self.received.extend(blinded)
        channel.send_json(MsgType.RESULT, NO_JOB, {"points": [oprf.evaluate(self.key, b).hex() for b in blinded]})


class _Stopped(Exception):
    """Raised by the signal handler to leave ``accept`` at once."""


def serve(role: str, config: StoreConfig, exit_with_parent: bool = False) -> None:
    """Run the storage server (``role="store"``) or the key server (``"keyserver"``) until
    SIGTERM/SIGINT, then close it cleanly. Prints ``READY <role> <port>`` once it listens
    (port 0 in the config: the system picks one, and this line tells which)."""
    server = {STORE_NAME: StoreServer, KEYSERVER_NAME: KeyServer}[role](config)

    def stop(*_) -> None:
        server.stop()
        raise _Stopped  # in the main thread, which only accepts connections

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if exit_with_parent:
        threading.Thread(target=exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        print(f"READY {role} {server.port}", flush=True)
        server.serve_forever()
    except _Stopped:
        server.sock.close()
    if isinstance(server, StoreServer):
        server.index.close()  # waits for a request in progress
