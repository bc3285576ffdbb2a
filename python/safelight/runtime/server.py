"""The generic evaluator: one server process of a cluster.

It accepts mutually authenticated TLS connections. A client connection
carries one job: a SUBMIT frame (the Program and its inputs' descriptors), the
input tensors, then the server streams PROGRESS frames while it runs the ops
and returns the output shares and a RESULT frame with its statistics. A party
connection opens a per-job link (see :mod:`peers`). A malformed, unexpected or
unauthenticated message ends only its own connection; the server keeps
serving, and its logs carry no seeds, shares or key material.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..errors import JobFailedError, ProgramError, ProtocolError, SafelightError
from ..sharing import SEED_BYTES, SharePayload
from .certs import CLIENT_NAME, Identity, party_name
from .config import ClusterConfig
from .ops import OPS
from .peers import JobLinks, Mailbox
from .program import Program
from .transport import Channel, MsgType, accept_tls, server_context

log = logging.getLogger("safelight.server")


@dataclass
class JobContext:
    """What ops see of the server: the party id and the job's links."""

    party: int
    parties: int
    links: JobLinks

    def exchange_all(self, array: np.ndarray) -> list[np.ndarray]:
        return self.links.exchange_all(array)


class Server:
    """Serve one party of a cluster until stopped.

    Parameters
    ----------
    config : ClusterConfig
    party : int
        This server's index in ``config.parties``.
    """

    def __init__(self, config: ClusterConfig, party: int) -> None:
        if not 0 <= party < config.n:
            raise SafelightError(f"party {party} is not in the cluster (0..{config.n - 1})")
        self.config, self.party = config, party
        self.name = party_name(party)
        self.identity = Identity.from_dir(config.certs, self.name)
        self.context = server_context(self.identity)
        self.mailbox = Mailbox()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None

    # ---- lifecycle -----------------------------------------------------
    def bind(self) -> tuple[str, int]:
        addr = self.config.parties[self.party]
        sock = socket.create_server((addr.host, addr.port), reuse_port=False, backlog=128)
        sock.settimeout(0.5)
        self._listener = sock
        return sock.getsockname()[:2]

    def stop(self) -> None:
        self._stop.set()

    def serve_forever(self) -> None:
        if self._listener is None:
            self.bind()
        assert self._listener is not None
        log.info("%s listening on %s:%d", self.name, *self._listener.getsockname()[:2])
        last_reap = time.monotonic()
        while not self._stop.is_set():
            try:
                raw, addr = self._listener.accept()
            except socket.timeout:
                raw = None
            except OSError:
                if self._stop.is_set():
                    break
                raise
            if raw is not None:
                threading.Thread(target=self._handle, args=(raw, addr), daemon=True).start()
            if time.monotonic() - last_reap > 5:
                self.mailbox.reap(self.config.timeout * 2)
                last_reap = time.monotonic()
        self._listener.close()
        log.info("%s stopped", self.name)

    # ---- connections ---------------------------------------------------
    def _handle(self, raw: socket.socket, addr: tuple) -> None:
        where = f"{addr[0]}:{addr[1]}"
        try:
            channel = accept_tls(raw, self.context, self.config.timeout)
        except (ssl.SSLError, OSError, ProtocolError) as exc:
            log.warning("rejected connection from %s: TLS authentication failed (%s)", where,
                        getattr(exc, "reason", None) or type(exc).__name__)
            raw.close()
            return
        keep_open = False
        try:
            frame = channel.recv()
            if frame.type == MsgType.SUBMIT and channel.peer == CLIENT_NAME:
                self._run_job(channel, frame.job_id, frame.json)
            elif frame.type == MsgType.PEER_HELLO:
                keep_open = self._accept_link(channel, frame.job_id, frame.json)
            else:
                raise ProtocolError(f"{channel.peer} may not send {frame.type.name} as a first message")
        except SafelightError as exc:
            log.warning("connection from %s (%s) ended: %s: %s", where, channel.peer, type(exc).__name__, exc)
            try:
                channel.send_error(b"\0" * 16, exc)
            except SafelightError:
                pass
        except Exception as exc:  # never let one connection take the server down
            log.error("connection from %s (%s) failed: internal error %s", where, channel.peer, type(exc).__name__)
            try:
                channel.send_error(b"\0" * 16, JobFailedError(f"internal error in {self.name}: {type(exc).__name__}"))
            except SafelightError:
                pass
        finally:
            if not keep_open:
                channel.close()

    def _accept_link(self, channel: Channel, job_id: bytes, hello: object) -> bool:
        try:
            peer = int(hello["party"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            raise ProtocolError("malformed PEER_HELLO") from None
        # The certificate must match the claimed party.
        if channel.peer != party_name(peer) or peer == self.party or not 0 <= peer < self.config.n:
            raise ProtocolError(f"{channel.peer} may not open a link as party {peer}")
        self.mailbox.deliver(job_id, peer, channel)
        return True

    # ---- jobs ----------------------------------------------------------
    def _receive_inputs(self, channel: Channel, job_id: bytes, program: Program,
                        descriptors: object) -> dict[str, np.ndarray]:
        if not isinstance(descriptors, list):
            raise ProtocolError("inputs must be a list")
        env: dict[str, np.ndarray] = {}
        expected_tensors = {}
        for d in descriptors:
            try:
                name, kind = str(d["name"]), str(d["kind"])
            except (TypeError, KeyError):
                raise ProtocolError("malformed input descriptor") from None
            if name not in program.inputs or name in env or name in expected_tensors:
                raise ProgramError(f"input {name!r} is not declared by the program or is repeated")
            shape = program.inputs[name]
            if kind == "seed":
                seed = bytes.fromhex(str(d.get("seed", "")))
                if len(seed) != SEED_BYTES:
                    raise ProtocolError(f"input {name!r}: a seed must be {SEED_BYTES} bytes")
                env[name] = SharePayload(self.party, shape, seed=seed).materialize()
            elif kind == "share":
                expected_tensors[name] = shape
            else:
                raise ProtocolError(f"input {name!r}: unknown kind {kind!r}")
        for _ in range(len(expected_tensors)):
            frame = channel.expect(MsgType.TENSOR)
            shape = expected_tensors.pop(frame.name, None)
            if shape is None or frame.array is None or frame.array.dtype != np.uint64 or frame.array.shape != shape:
                raise ProtocolError(f"unexpected tensor {frame.name!r} (wrong name, dtype or shape)")
            env[frame.name] = frame.array
        missing = set(program.inputs) - set(env)
        if missing:
            raise ProgramError(f"inputs {sorted(missing)} were declared but not sent")
        return env

    def _run_job(self, channel: Channel, job_id: bytes, submit: object) -> None:
        started = time.perf_counter()
        if not isinstance(submit, dict):
            raise ProtocolError("SUBMIT must be a JSON object")
        program = Program.from_json(submit.get("program"))
        if program.parties != self.config.n:
            raise ProgramError(f"the program is for {program.parties} parties, this cluster has {self.config.n}")
        env = self._receive_inputs(channel, job_id, program, submit.get("inputs"))
        links = JobLinks(self.config, self.identity, self.party, job_id, self.mailbox)
        ctx = JobContext(self.party, self.config.n, links)
        op_seconds: dict[str, float] = {}
        try:
            for i, step in enumerate(program.steps):
                t0 = time.perf_counter()
                env[step.output] = OPS[step.op].run(ctx, [env[x] for x in step.inputs], step.attrs)
                op_seconds[step.op] = op_seconds.get(step.op, 0.0) + time.perf_counter() - t0
                channel.send_json(MsgType.PROGRESS, job_id, {"step": i + 1, "of": len(program.steps), "op": step.op})
            for name, (tensor, _) in program.outputs.items():
                channel.send_tensor(job_id, name, env[tensor])
        finally:
            links.close()
        stats = {
            "party": self.party,
            "seconds": time.perf_counter() - started,
            "bytes_sent": channel.bytes_sent + links.bytes_sent,
            "bytes_received": channel.bytes_received + links.bytes_received,
            "peer_bytes_sent": links.bytes_sent,
            "rounds": links.rounds,
            "op_seconds": op_seconds,
        }
        channel.send_json(MsgType.RESULT, job_id, stats)
        log.info("job %s done in %.3f s (%d ops, %d rounds)", job_id.hex()[:8], stats["seconds"],
                 len(program.steps), links.rounds)


def _exit_with_parent(parent: int) -> None:
    """Stop when the process that started us is gone (no orphans from Cluster.local)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def serve(config: ClusterConfig, party: int, exit_with_parent: bool = False) -> None:
    """Run one server in this process until SIGTERM/SIGINT."""
    server = Server(config, party)
    host, port = server.bind()
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    if exit_with_parent:
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    print(f"READY {server.name} {host}:{port}", flush=True)
    server.serve_forever()
