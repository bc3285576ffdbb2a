"""Client side of a job: upload payloads to every server, collect result shares and statistics."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .. import errors
from ..errors import InputError, JobFailedError, PeerUnavailableError, ProtocolError
from ..sharing import Encoded, Shared
from .certs import Identity, party_name
from .config import ClusterConfig
from .program import Program
from .transport import Channel, MsgType, client_context, connect

ProgressCallback = Callable[[int, int, int, str], None]  # party, step, of, op


def raise_remote_error(peer: str, payload: Any) -> None:
    """Turn a server's ERROR frame into the matching local exception."""
    name = str(payload.get("error", "")) if isinstance(payload, dict) else ""
    message = str(payload.get("message", "")) if isinstance(payload, dict) else str(payload)
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.SafelightError):
        raise cls(f"{peer}: {message}")
    raise JobFailedError(f"{peer} could not run the job: {name}: {message}")


@dataclass
class PartyStats:
    party: int
    seconds: float
    bytes_sent: int
    bytes_received: int
    peer_bytes_sent: int
    rounds: int
    op_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class JobResult:
    """Result shares and the job's accounting.

    Attributes
    ----------
    outputs : dict of str -> Shared
        Each result in share form; pass to :func:`safelight.decode`.
    wall_seconds : float
        Client-measured time from the first connection to the last result.
    parties : list of PartyStats
        Per-server time, bytes sent/received (client and peer links) and rounds.
    upload_bytes, download_bytes : int
        Bytes the client sent and received over all connections (TLS payload level).
    """

    outputs: dict[str, Shared]
    wall_seconds: float
    parties: list[PartyStats]
    upload_bytes: int
    download_bytes: int

    @property
    def rounds(self) -> int:
        return max((p.rounds for p in self.parties), default=0)

    def summary(self) -> dict[str, Any]:
        return {
            "wall_seconds": self.wall_seconds,
            "rounds": self.rounds,
            "upload_bytes": self.upload_bytes,
            "download_bytes": self.download_bytes,
            "parties": [
                {"party": p.party, "seconds": p.seconds, "bytes_sent": p.bytes_sent,
                 "bytes_received": p.bytes_received, "rounds": p.rounds}
                for p in self.parties
            ],
        }


def run_job(
    config: ClusterConfig,
    identity: Identity,
    program: Program,
    inputs: Mapping[str, Encoded],
    on_progress: ProgressCallback | None = None,
) -> JobResult:
    """Run ``program`` on the cluster with the encoded ``inputs``.

    Raises
    ------
    InputError
        If inputs do not match the program's declarations.
    PeerUnavailableError
        If a server cannot be reached or stops answering within ``config.timeout``.
    JobFailedError, ProgramError, ...
        As reported by a server.
    """
    if program.parties != config.n:
        raise InputError(f"the program is for {program.parties} servers but the cluster has {config.n}")
    for name, shape in program.inputs.items():
        enc = inputs.get(name)
        if enc is None:
            raise InputError(f"missing input {name!r} for the program")
        if enc.parties != config.n or tuple(enc.shape) != tuple(shape):
            raise InputError(
                f"input {name!r} is encoded for {enc.parties} parties with shape {enc.shape}, "
                f"the program wants {config.n} parties and shape {tuple(shape)}"
            )
        if enc.frac_bits != program.frac_bits:
            raise InputError(f"input {name!r} has {enc.frac_bits} fractional bits, the program {program.frac_bits}")
    extra = set(inputs) - set(program.inputs)
    if extra:
        raise InputError(f"inputs {sorted(extra)} are not declared by the program")

    job_id = os.urandom(16)
    wire_program = program.to_json()
    context = client_context(identity)
    results: list[Any] = [None] * config.n
    failures: list[tuple[int, BaseException]] = []
    started = time.perf_counter()

    def talk(party: int) -> None:
        addr = config.parties[party]
        channel: Channel | None = None
        try:
            channel = connect(addr.host, addr.port, identity, party_name(party), config.timeout, context)
            descriptors, tensors = [], []
            for name in program.inputs:
                payload = inputs[name].payloads[party]
                if payload.seed is not None:
                    descriptors.append({"name": name, "kind": "seed", "seed": payload.seed.hex()})
                else:
                    descriptors.append({"name": name, "kind": "share"})
                    tensors.append((name, payload.share))
            channel.send_json(MsgType.SUBMIT, job_id, {"program": wire_program, "inputs": descriptors})
            for name, share in tensors:
                channel.send_tensor(job_id, name, share)
            shares: dict[str, np.ndarray] = {}
            while True:
                frame = channel.expect(MsgType.PROGRESS, MsgType.TENSOR, MsgType.RESULT)
                if frame.type == MsgType.PROGRESS:
                    if on_progress is not None:
                        on_progress(party, int(frame.json["step"]), int(frame.json["of"]), str(frame.json["op"]))
                elif frame.type == MsgType.TENSOR:
                    if frame.name not in program.outputs or frame.array is None or frame.array.dtype != np.uint64:
                        raise ProtocolError(f"{party_name(party)} returned an unexpected tensor {frame.name!r}")
                    shares[frame.name] = frame.array
                else:
                    if set(shares) != set(program.outputs):
                        raise ProtocolError(f"{party_name(party)} finished without returning every output")
                    stats = PartyStats(**{k: frame.json[k] for k in PartyStats.__dataclass_fields__})
                    results[party] = (shares, stats, channel.bytes_sent, channel.bytes_received)
                    return
        except BaseException as exc:
            failures.append((party, exc))
        finally:
            if channel is not None:
                channel.close()

    threads = [threading.Thread(target=talk, args=(p,), daemon=True) for p in range(config.n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        # A failing party makes its peers lose their links too: report the root cause
        # (an error other than a lost peer) first.
        failures.sort(key=lambda f: (isinstance(f[1], PeerUnavailableError), f[0]))
        party, exc = failures[0]
        if isinstance(exc, errors.SafelightError):
            raise exc
        raise JobFailedError(f"{party_name(party)}: {type(exc).__name__}: {exc}") from exc
    wall = time.perf_counter() - started
    outputs = {
        name: Shared([results[p][0][name] for p in range(config.n)], frac_bits)
        for name, (_, frac_bits) in program.outputs.items()
    }
    return JobResult(
        outputs,
        wall,
        [r[1] for r in results],
        sum(r[2] for r in results),
        sum(r[3] for r in results),
    )
