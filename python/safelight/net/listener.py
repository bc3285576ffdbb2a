"""The accept loop every safelight server shares, hardened against hostile clients.

A client that is not authenticated yet can do three things to a server: open
many connections, start many TLS handshakes and never finish them, and exhaust
the process's file descriptors. The loop below bounds the first two (a
connection over either cap is closed at once, so the kernel's backlog keeps
moving and legitimate clients get a prompt refusal instead of a hang), gives
handshakes their own short timeout (enforced by the handler), and survives the
third: ``accept`` failing with EMFILE/ENFILE/ENOBUFS/ENOMEM backs off and keeps
serving instead of ending the process.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable

from .config import ServerLimits

# accept() errors that mean "out of a resource for now": wait and try again
EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# errors about one connection that died in the backlog: skip it
TRANSIENT = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR, errno.EAGAIN}
MAX_BACKOFF = 1.0
LOG_EVERY = 5.0  # seconds between repeated warnings of one kind


class Admission:
    """Counts open connections and unfinished handshakes against the limits."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self.connections = 0
        self.handshakes = 0

    def try_open(self) -> bool:
        with self._lock:
            if self.connections >= self.limits.max_connections or self.handshakes >= self.limits.max_handshakes:
                return False
            self.connections += 1
            self.handshakes += 1
            return True

    def authenticated(self) -> None:
        """The connection finished its handshake and first message: no longer pending."""
        with self._lock:
            self.handshakes -= 1

    def closed(self, pending: bool) -> None:
        with self._lock:
            self.connections -= 1
            if pending:
                self.handshakes -= 1


class Connection:
    """What a handler gets besides the socket: a way to say the handshake is over."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.pending = True

    def authenticated(self) -> None:
        if self.pending:
            self.pending = False
            self._admission.authenticated()


class _RateLimitedLog:
    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.last: dict[str, float] = {}
        self.skipped: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last.get(kind, -LOG_EVERY) < LOG_EVERY:
            self.skipped[kind] = self.skipped.get(kind, 0) + 1
            return
        more = self.skipped.pop(kind, 0)
        self.last[kind] = now
        self.log.warning(message + (f" ({more} more since the last report)" if more else ""), *args)


def serve_connections(
    listener: socket.socket,
    handle: Callable[[socket.socket, tuple, Connection], None],
    limits: ServerLimits,
    stop: threading.Event,
    log: logging.Logger,
    every_few_seconds: Callable[[], None] | None = None,
) -> None:
    """Accept connections until ``stop`` is set, each handled on its own thread.

    ``listener`` must have a timeout (so that ``stop`` is noticed). ``handle(raw, addr,
    connection)`` owns the socket; it calls ``connection.authenticated()`` once the peer
    proved who it is, and must close the socket before returning.
    """
    admission = Admission(limits)
    warn = _RateLimitedLog(log)
    backoff = 0.05
    last_tick = time.monotonic()
    while not stop.is_set():
        raw = None
        try:
            raw, addr = listener.accept()
            backoff = 0.05
        except TimeoutError:
            pass
        except OSError as exc:
            if stop.is_set():
                break
            if exc.errno in EXHAUSTED:
                warn.warning(
                    "exhausted", "cannot accept connections: %s; retrying in %.2f s", exc.strerror or exc, backoff
                )
                stop.wait(backoff)
                backoff = min(2 * backoff, MAX_BACKOFF)
            elif exc.errno not in TRANSIENT:
                raise
        if raw is not None:
            if not admission.try_open():
                warn.warning(
                    "full",
                    "refused a connection from %s: %d connections open, %d handshakes pending (limits %d and %d)",
                    addr[0],
                    admission.connections,
                    admission.handshakes,
                    limits.max_connections,
                    limits.max_handshakes,
                )
                raw.close()
            else:
                _start(handle, raw, addr, admission, warn)
        if every_few_seconds is not None and time.monotonic() - last_tick > 5:
            every_few_seconds()
            last_tick = time.monotonic()


def _start(
    handle: Callable[[socket.socket, tuple, Connection], None],
    raw: socket.socket,
    addr: tuple,
    admission: Admission,
    warn: _RateLimitedLog,
) -> None:
    connection = Connection(admission)

    def run() -> None:
        try:
            handle(raw, addr, connection)
        finally:
            raw.close()
            admission.closed(connection.pending)

    try:
        threading.Thread(target=run, name="connection", daemon=True).start()
    except RuntimeError as exc:  # no thread could be started (memory or thread limits)
        warn.warning("threads", "refused a connection from %s: cannot start a thread (%s)", addr[0], exc)
        raw.close()
        admission.closed(True)
