"""Transport benchmark: a 256 MB tensor over a loopback ``Channel`` with the TLS 1.3 handshake
and sealed AES-GCM records (``transport_tls``), against plain TCP with the same framing.

:class:`Link` and :func:`transport_certs` also serve the garbling benchmarks' loopback links.
"""

from __future__ import annotations

import queue
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..net.certs import CLIENT_NAME, Identity, create_cluster_certs, party_name
from ..net.transport import Channel, accept_tls, connect, server_context
from .registry import GB, best_time, paired_times, register, result

TRANSPORT_BYTES = 256 << 20


class Link:
    """A sender Channel and a receiving thread over loopback, TLS 1.3 (mutual auth) or plain TCP.

    ``transfer(array)`` returns the seconds from just before ``send_tensor`` until the
    receiving thread has returned the whole array from ``Channel.recv``.
    """

    def __init__(self, certs: Path | None, timeout: float = 60.0, records: str = "sealed") -> None:
        self.tls = certs is not None
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        accepted: queue.Queue = queue.Queue()

        def accept() -> None:
            try:
                raw, _ = listener.accept()
                if certs is None:
                    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    accepted.put(Channel(raw, CLIENT_NAME, timeout))
                else:
                    ctx = server_context(Identity.from_dir(certs, party_name(0)))
                    accepted.put(accept_tls(raw, ctx, timeout, records))
            except BaseException as exc:  # handed to the constructing thread
                accepted.put(exc)

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        try:
            identity = Identity.from_dir(certs, CLIENT_NAME) if certs is not None else None
            self.sender = connect("127.0.0.1", port, identity, party_name(0), timeout, records=records)
            got = accepted.get(timeout=timeout)
        finally:
            acceptor.join(timeout)
            listener.close()
        if isinstance(got, BaseException):
            self.sender.close()
            raise got
        self.receiver = got
        sock = self.sender.sock
        self.cipher = (
            None
            if not self.tls
            else (sock.cipher()[0] if hasattr(sock, "cipher") else "TLS 1.3 handshake + AES-256-GCM sealed records")
        )
        self._arrived: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._receive_loop, daemon=True)
        self._thread.start()

    def _receive_loop(self) -> None:
        while True:
            try:
                frame = self.receiver.recv()
            except BaseException as exc:
                self._arrived.put((time.perf_counter(), exc))
                return
            self._arrived.put((time.perf_counter(), frame.array))

    def transfer(self, array: np.ndarray, check: bool = False) -> float:
        t0 = time.perf_counter()
        self.sender.send_tensor(b"\0" * 16, "bench", array)
        t1, got = self._arrived.get()
        if isinstance(got, BaseException):
            raise got
        if check and not np.array_equal(got, array):
            raise AssertionError("the received array differs from the one sent")
        return t1 - t0

    def close(self) -> None:
        self.sender.close()
        self._thread.join(5)
        self.receiver.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def transport_certs(directory: str | Path) -> Path:
    """A throwaway certificate set: ``party-0`` (server) and ``client``."""
    return create_cluster_certs(Path(directory) / "certs", 1)


def transport_payload(nbytes: int = TRANSPORT_BYTES) -> np.ndarray:
    return np.arange(nbytes // 8, dtype=np.uint64)


@register("transport_tls", "256 MB tensor over a loopback TLS 1.3-authenticated Channel vs plain TCP, GB/s")
def bench_transport() -> dict[str, Any]:
    """The default channel (TLS 1.3 handshake, sealed AES-GCM records) against plain TCP with the
    same framing; TLS records end to end (``records = "tls"``) are measured alongside."""
    payload = transport_payload()
    repeats = 5
    with tempfile.TemporaryDirectory(prefix="safelight-bench-") as tmp:
        certs = transport_certs(tmp)
        with Link(certs) as sealed, Link(None) as plain, Link(certs, records="tls") as tls_records:
            for link in (sealed, plain, tls_records):
                link.transfer(payload, check=True)
            ours, ref = paired_times(
                lambda: sealed.transfer(payload), lambda: plain.transfer(payload), repeats, warmup=0
            )
            tls_only = best_time(lambda: tls_records.transfer(payload), repeats=3, warmup=0)
            cipher = sealed.cipher
    value = payload.nbytes / min(ours) / GB
    return result(
        "transport_tls",
        value,
        "GB/s",
        "higher",
        ref="plain TCP Channel (same framing, no TLS)",
        ref_value=payload.nbytes / min(ref) / GB,
        bytes=payload.nbytes,
        cipher=cipher,
        tls_records_gbps=payload.nbytes / tls_only / GB,
        target_gbps=1.0,
        meets_target=bool(value >= 1.0),
        repeats=repeats,
        stat="best",
    )
