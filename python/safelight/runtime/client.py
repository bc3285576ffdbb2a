"""Client side of a job: upload payloads to every server, collect result shares and statistics."""

from __future__ import annotations

import inspect
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import errors
from ..errors import InputError, JobAbortedError, JobFailedError, PeerUnavailableError, ProtocolError, TrustModelError
from ..net.certs import DEALER_NAME, Identity, party_name
from ..net.config import ClusterConfig
from ..net.transport import Channel, MsgType, client_context, connect
from ..program.program import Program
from ..protocols.nonlinear import SIGN_OPS, ot_path_demand, sign_values
from ..protocols.preprocessing import OT_SOURCES, Plan
from ..protocols.sources import RandomnessSource, randomness_source
from ..sharing import Encoded, ReplicatedPayload, Shared
from .model_store import check_model_id

# Garbled material an evaluator holds per random OT (a label pair per input bit plus the
# tables of ~one AND gate): above the budget, preprocessing runs op by op.
GC_BYTES_PER_OT = 64
PREPROCESS_BUDGET = 2 << 30

# party, step, of, op: each step done online. A callback with a ``phase`` parameter also
# gets the offline phase's steps (preprocessing, before the online phase) with phase="offline".
ProgressCallback = Callable[[int, int, int, str], None]


def _abort_job(
    config: ClusterConfig, identity: Identity, context: Any, job_id: bytes, cause: BaseException, with_dealer: bool
) -> None:
    """Tell every server of the job to stop it (best effort, in parallel, briefly)."""
    targets = [(party_name(p), a) for p, a in enumerate(config.parties)]
    if with_dealer and config.dealer is not None:
        targets.append((DEALER_NAME, config.dealer))
    message = {"error": type(cause).__name__, "message": str(cause)[:500]}

    def tell(name: str, addr: Any) -> None:
        try:
            channel = connect(addr.host, addr.port, identity, name, min(2.0, config.timeout), context, config.records)
        except errors.SafelightError:
            return
        try:
            channel.send_json(MsgType.ABORT, job_id, message)
        except errors.SafelightError:
            pass
        finally:
            channel.close()

    tellers = [threading.Thread(target=tell, args=t, daemon=True) for t in targets]
    for t in tellers:
        t.start()
    for t in tellers:
        t.join(timeout=3.0)


def job_summary(job: Any, ops: dict[str, Any]) -> dict[str, Any]:
    """A job as one JSON-ready record (what ``--json`` prints): ``job`` has the fields of
    :class:`JobResult` (a task's ``JobReport`` has the same)."""
    return {
        "wall_seconds": job.wall_seconds,
        "online_seconds": job.online_seconds,
        "offline_seconds": job.offline_seconds,
        "setup_seconds": job.setup_seconds,
        "rounds": job.rounds,
        "triples": job.triples,
        "upload_bytes": job.upload_bytes,
        "download_bytes": job.download_bytes,
        "parties": [
            {
                "party": p.party,
                "seconds": p.seconds,
                "offline_seconds": p.offline_seconds,
                "online_seconds": p.online_seconds,
                "bytes_sent": p.bytes_sent,
                "bytes_received": p.bytes_received,
                "rounds": p.rounds,
            }
            for p in job.parties
        ],
        "dealer": None if job.dealer is None else {"seconds": job.dealer.seconds, "bytes_sent": job.dealer.bytes_sent},
        "ops": ops,
    }


@dataclass
class PartyStats:
    """One server's view of a job (party -1 is the dealer)."""

    party: int
    seconds: float
    offline_seconds: float
    online_seconds: float
    bytes_sent: int
    bytes_received: int
    peer_bytes_sent: int
    peer_bytes_received: int
    rounds: int
    # key agreement and waiting for the other parties before the online phase
    setup_seconds: float = 0.0
    ops: dict[str, dict[str, float]] = field(default_factory=dict)
    # per step of the program: op, seconds (online), offline_seconds (per-op preprocessing),
    # bytes_sent, bytes_received, rounds
    steps: list[dict[str, Any]] = field(default_factory=list)


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
        Per-server time (offline and online), bytes sent/received (client,
        peer and dealer links) and rounds.
    upload_bytes, download_bytes : int
        Bytes the client sent and received over all connections (TLS payload level).
    triples : str or None
        Where the preprocessing came from ("client", "dealer"), None if none was needed.
    dealer : PartyStats or None
    client_offline_seconds : float
        Time the client spent dealing (``triples="client"``).
    """

    outputs: dict[str, Shared]
    wall_seconds: float
    parties: list[PartyStats]
    upload_bytes: int
    download_bytes: int
    triples: str | None = None
    dealer: PartyStats | None = None
    client_offline_seconds: float = 0.0
    scheme: str = "additive"  # how the servers held the secrets ("rss3": replicated, three servers)
    kept: dict[str, StoredTensor] = field(default_factory=dict)  # outputs left on the servers (run_job's keep)

    @property
    def rounds(self) -> int:
        return max((p.rounds for p in self.parties), default=0)

    @property
    def online_seconds(self) -> float:
        """Slowest party's online phase (all ops, after preprocessing)."""
        return max((p.online_seconds for p in self.parties), default=0.0)

    @property
    def offline_seconds(self) -> float:
        """Dealing (dealer or client) plus the slowest party's expansion of its material."""
        dealing = self.dealer.offline_seconds if self.dealer else self.client_offline_seconds
        return dealing + max((p.offline_seconds for p in self.parties), default=0.0)

    @property
    def setup_seconds(self) -> float:
        """Slowest party's setup: key agreement with its peers (the replicated scheme) and
        waiting for the other parties (their inputs, their preprocessing) before the
        online phase. Neither preprocessing nor online work."""
        return max((p.setup_seconds for p in self.parties), default=0.0)

    def ops(self) -> dict[str, dict[str, Any]]:
        """Per op: calls, slowest party's seconds, rounds, bytes each party sent/received on peer links."""
        names = sorted({name for p in self.parties for name in p.ops})
        out = {}
        for name in names:
            rows = [p.ops.get(name, {}) for p in self.parties]
            out[name] = {
                "calls": max(int(r.get("calls", 0)) for r in rows),
                "seconds": max(float(r.get("seconds", 0.0)) for r in rows),
                "rounds": max(int(r.get("rounds", 0)) for r in rows),
                "bytes_sent": [int(r.get("bytes_sent", 0)) for r in rows],
                "bytes_received": [int(r.get("bytes_received", 0)) for r in rows],
            }
        return out

    def steps(self) -> list[dict[str, Any]]:
        """Per step (layer): op, slowest party's online and preprocessing seconds, rounds,
        bytes each party sent on peer links."""
        rows = [p.steps for p in self.parties]
        out = []
        for i in range(min((len(r) for r in rows), default=0)):
            mine = [r[i] for r in rows]
            out.append(
                {
                    "step": i,
                    "op": mine[0]["op"],
                    "seconds": max(m["seconds"] for m in mine),
                    "offline_seconds": max(m.get("offline_seconds", 0.0) for m in mine),
                    "rounds": max(m["rounds"] for m in mine),
                    "bytes_sent": [m["bytes_sent"] for m in mine],
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        return job_summary(self, self.ops())


@dataclass(frozen=True)
class StoredTensor:
    """A job input that the servers already hold: a tensor of a model uploaded under ``model``
    (see :func:`upload_model`). Pass it in ``inputs`` like an :class:`Encoded` tensor."""

    model: str
    tensor: str
    shape: tuple[int, ...]
    parties: int
    frac_bits: int
    scheme: str = "additive"


def _describe(name: str, payload) -> tuple[dict[str, Any], np.ndarray | None]:
    """How one server's part of a tensor travels: a seed inside the JSON, or a share tensor
    sent after it (returned for the caller to send). A replicated payload carries two seeds,
    one of them null for the correction share that follows."""
    if isinstance(payload, ReplicatedPayload):
        seeds = [None if s is None else s.hex() for s in payload.seeds]
        return {"name": name, "kind": "replicated", "seeds": seeds}, payload.correction
    if payload.seed is not None:
        return {"name": name, "kind": "seed", "seed": payload.seed.hex()}, None
    return {"name": name, "kind": "share"}, payload.share


def upload_model(
    config: ClusterConfig, identity: Identity, model_id: str, tensors: Mapping[str, Encoded]
) -> dict[str, StoredTensor]:
    """Share a model's tensors to every server, stored there under ``model_id`` (replacing an
    older upload of that id). Each server receives only its share (a seed for all but one).
    Returns the handles that jobs use as inputs."""
    model_id = check_model_id(model_id)
    for name, enc in tensors.items():
        if enc.parties != config.n:
            raise InputError(f"tensor {name!r} is encoded for {enc.parties} servers, the cluster has {config.n}")

    def send(party: int, channel: Channel) -> None:
        descriptors, shares = [], []
        for name, enc in tensors.items():
            d, share = _describe(name, enc.payloads[party])
            descriptors.append({**d, "shape": list(enc.shape)})
            if share is not None:
                shares.append((name, share))
        channel.send_json(MsgType.STORE, b"\0" * 16, {"model": model_id, "inputs": descriptors})
        for name, share in shares:
            channel.send_tensor(b"\0" * 16, name, share)
        channel.expect(MsgType.RESULT)

    _with_each_server(config, identity, send)
    return {
        name: StoredTensor(model_id, name, tuple(enc.shape), enc.parties, enc.frac_bits, enc.scheme)
        for name, enc in tensors.items()
    }


def drop_model(config: ClusterConfig, identity: Identity, model_id: str) -> bool:
    """Make every server forget a stored model (its shares, in memory and on disk). Returns
    whether any server held it; an unknown id is not an error."""
    model_id = check_model_id(model_id)
    held: list[bool] = []

    def send(party: int, channel: Channel) -> None:
        channel.send_json(MsgType.STORE, b"\0" * 16, {"model": model_id, "drop": True})
        held.append(bool(channel.expect(MsgType.RESULT).json.get("dropped")))

    _with_each_server(config, identity, send)
    return any(held)


def _with_each_server(config: ClusterConfig, identity: Identity, talk: Callable[[int, Channel], None]) -> None:
    """``talk(party, channel)`` with every server at once, each on a connection of its own;
    the lowest party's failure is raised (a SafelightError as it is)."""
    failures: list[tuple[int, BaseException]] = []

    def run(party: int) -> None:
        addr = config.parties[party]
        channel: Channel | None = None
        try:
            channel = connect(addr.host, addr.port, identity, party_name(party), config.timeout, records=config.records)
            talk(party, channel)
        except BaseException as exc:  # re-raised below
            failures.append((party, exc))
        finally:
            if channel is not None:
                channel.close()

    threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in range(config.n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        party, exc = min(failures, key=lambda f: f[0])
        if isinstance(exc, errors.SafelightError):
            raise exc
        raise JobFailedError(f"{party_name(party)}: {type(exc).__name__}: {exc}") from exc


def _choose_source(asked: str | None, config: ClusterConfig, inputs: Mapping[str, Any]) -> RandomnessSource:
    """The randomness source of a job that needs one, never weaker than the user chose.

    Client-dealt randomness lets the client unmask whatever is opened under it, so it is
    right only when the client owns every secret of the job: it must be asked for by name,
    and never covers a stored tensor (a model owner's weights held by the servers).
    """
    if asked is None:
        if config.dealer is None:
            raise TrustModelError(
                "this job needs correlated randomness and the cluster has no dealer; choose where it comes "
                "from: a [dealer] in cluster.toml (Cluster.local(..., dealer=True)), triples='he' "
                "(--no-dealer: the servers make it themselves, no third party), or triples='client' when "
                "you own every secret of the job"
            )
        asked = "dealer"
    source = randomness_source(asked)
    source.check(config.n, config.dealer is not None)
    stored = sorted(name for name, given in inputs.items() if isinstance(given, StoredTensor))
    if source.client_deals and stored:
        raise TrustModelError(
            f"triples='client' would let this client unmask stored tensors it does not own ({', '.join(stored[:3])}"
            f"{', ...' if len(stored) > 3 else ''}); use a dealer ([dealer] in cluster.toml) or triples='he' "
            "(--no-dealer)"
        )
    return source


def _dealer_deals(triples: str | None, config: ClusterConfig) -> bool:
    """Whether the job's correlations come from the cluster's dealer process."""
    return triples == "dealer" or (triples is None and config.dealer is not None)


COMPARISONS = ("auto", "gc", "ot")


# declared bytes between the two servers per sign of a ``bits``-wide value: garbled tables
# and input OTs (measured 2,605 at 40 bits and 1,579 at 24, benchmarks/README.md), and the
# OT path's tables, openings and silent COTs (76 at 40), plus the OT link's fixed cost
# (IKNP bootstrap, bootstrap iterations, one main iteration each way)
GC_BYTES_PER_SIGN_BIT = 65
OT_BYTES_PER_SIGN_BIT = 2
OT_LINK_BYTES = 3_200_000


def with_comparisons(program: Program, comparisons: str, triples: str | None, config: ClusterConfig) -> Program:
    """``program`` with the sign method of its sign-based ops set (a copy when it changes).

    "auto" decides by declared bytes between the servers, bytes first: the OT path costs
    about 2 bytes per bit of every sign, the garbled one about 65. Without a dealer the OT
    path adds a fixed 3.2 MB per job (its silent OT link), so it wins from about 1,300
    signs on, and always on time (the garbled path then needs its triples made by HE and
    OT). With a dealer, the dealer deals the OT path's correlations (no link): it wins from
    the first sign. "gc" and "ot" force a path."""
    if comparisons not in COMPARISONS:
        raise InputError(f"comparisons must be one of {list(COMPARISONS)}, got {comparisons!r}")
    if comparisons == "auto":
        signs = sign_values(program)
        dealer_free = triples == "he" or (triples is None and config.dealer is None)
        link = 0 if _dealer_deals(triples, config) else OT_LINK_BYTES  # a dealer deals, no silent OT link
        ot_bytes = link + OT_BYTES_PER_SIGN_BIT * sum(n * b for n, b in signs)
        gc_bytes = GC_BYTES_PER_SIGN_BIT * sum(n * b for n, b in signs)
        comparisons = "ot" if config.n == 2 and signs and (dealer_free or ot_bytes < gc_bytes) else "gc"
    if comparisons == "ot" and config.n != 2:
        raise InputError("comparisons='ot' runs between two servers; this cluster has " + str(config.n))
    return program if comparisons == "gc" else program.with_default_attr(SIGN_OPS, "sign", "ot")


def with_truncation(program: Program, triples: str | None, config: ClusterConfig) -> Program:
    """``program`` with its truncations on the OT path when the two servers make their own
    correlations (``triples="he"``): one random OT per value on the job's silent OT link
    instead of a truncation pair, whose dealer-free making costs a 64-bit comparison per
    value (protocols.truncation). A copy when it changes."""
    if triples != "he" or config.n != 2:
        return program
    return program.with_default_attr(("trunc_pair",), "method", "ot")


def run_job(
    config: ClusterConfig,
    identity: Identity,
    program: Program,
    inputs: Mapping[str, Encoded | StoredTensor],
    on_progress: ProgressCallback | None = None,
    triples: str | None = None,
    ots: str = "iknp",
    preprocess: str = "auto",
    keep: Mapping[str, str] | None = None,
    comparisons: str = "auto",
) -> JobResult:
    """Run ``program`` on the cluster with the encoded ``inputs``.

    ``keep`` maps output names to model ids: each server stores its share of such an
    output as tensor ``<output name>`` of that model (replacing the model whole, as an
    upload does) instead of returning it, so that a result can stay on the servers (a
    gallery's private features) and feed later jobs; :attr:`JobResult.kept` names them.

    ``triples`` names the source of correlated randomness for interactive ops:
    ``"dealer"`` (the cluster's dealer process; the default when the cluster
    has one), ``"client"`` (this process deals: right only when the client
    owns every secret of the job, since the dealer can unmask what is opened)
    or ``"he"`` (no third party: the two servers make it themselves with lattice
    HE and oblivious transfer, see :mod:`safelight.protocols.dealer_free`).
    ``ots`` says where the garbled circuits' random OTs come from: ``"iknp"``
    (OT extension between the two servers, the default) or ``"dealer"`` (the
    dealer deals them too: no OT work on the servers, the same trust in the
    dealer as for its triples; needs ``triples="dealer"``).
    ``preprocess``: ``"ahead"`` runs every op's input-independent preprocessing
    (garbling, OTs) before the first op; ``"per_op"`` runs it just before each op,
    so that only one layer's garbled material is held at a time (still timed as
    offline); ``"auto"`` picks per_op when the whole material would exceed
    :data:`PREPROCESS_BUDGET` bytes.
    ``comparisons``: how two servers compute the signs of ReLU, less, max-pool, sort and
    top-k: ``"gc"`` (garbled circuits and Beaver products), ``"ot"`` (silent OT,
    millionaires: about 56 bytes per value instead of 1.6-2.6 KB, no correlated randomness
    from any source) or ``"auto"``: by declared bytes (see :func:`with_comparisons`).

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
        if getattr(enc, "scheme", "additive") != program.scheme:
            raise InputError(
                f"input {name!r} is shared for scheme {getattr(enc, 'scheme', 'additive')!r}, the program runs "
                f"on {program.scheme!r}: encode it with scheme={program.scheme!r}"
            )
    extra = set(inputs) - set(program.inputs)
    if extra:
        raise InputError(f"inputs {sorted(extra)} are not declared by the program")
    keep = dict(keep or {})
    for name, model_id in keep.items():
        if name not in program.outputs:
            raise InputError(f"cannot keep {name!r} on the servers: it is not an output of the program")
        check_model_id(model_id)
    returned = set(program.outputs) - set(keep)

    program = with_truncation(with_comparisons(program, comparisons, triples, config), triples, config)
    plan = Plan(program.correlations())
    # with a dealer, the OT path's comparisons take their correlations from it too
    dealt_comparisons = bool(ot_path_demand(program)) and _dealer_deals(triples, config)
    source = _choose_source(triples, config, inputs) if plan or dealt_comparisons else None
    uses_dealer = source is not None and source.uses_dealer

    if preprocess == "auto":
        preprocess = "per_op" if GC_BYTES_PER_OT * program.ot_demand() > PREPROCESS_BUDGET else "ahead"
    if preprocess not in ("ahead", "per_op"):
        raise InputError(f"preprocess must be 'auto', 'ahead' or 'per_op', got {preprocess!r}")
    if ots not in OT_SOURCES:
        raise InputError(f"ots must be one of {list(OT_SOURCES)}, got {ots!r}")
    if ots == "dealer" and plan and not uses_dealer:
        raise InputError("ots='dealer' needs the cluster's dealer for the preprocessing (triples='dealer')")

    job_id = os.urandom(16)
    wire_program = program.to_json()
    context = client_context(identity)
    started = time.perf_counter()
    materials = source.deal(plan, config.n) if source is not None else None
    client_offline = time.perf_counter() - started
    results: list[Any] = [None] * config.n
    dealer_result: list[Any] = [None]
    failures: list[tuple[int, BaseException]] = []
    channels: list[Channel] = []  # every open job channel, to interrupt them on a failure
    failed = threading.Event()

    def record(who: int, exc: BaseException) -> None:
        failures.append((who, exc))
        failed.set()

    def opened(channel: Channel) -> Channel:
        channels.append(channel)
        if failed.is_set():
            channel.interrupt()
        return channel

    def talk_to_dealer() -> None:
        assert config.dealer is not None
        channel: Channel | None = None
        try:
            channel = opened(
                connect(
                    config.dealer.host,
                    config.dealer.port,
                    identity,
                    DEALER_NAME,
                    config.timeout,
                    context,
                    config.records,
                )
            )
            stored = {name: [t.model, t.tensor] for name, t in inputs.items() if isinstance(t, StoredTensor)}
            channel.send_json(MsgType.SUBMIT, job_id, {"program": wire_program, "ots": ots, "stored": stored})
            frame = channel.expect(MsgType.RESULT)
            dealer_result[0] = PartyStats(**{k: frame.json[k] for k in PartyStats.__dataclass_fields__})
        except BaseException as exc:
            record(-1, exc)
        finally:
            if channel is not None:
                channel.close()

    def talk(party: int) -> None:
        addr = config.parties[party]
        channel: Channel | None = None
        try:
            channel = opened(
                connect(addr.host, addr.port, identity, party_name(party), config.timeout, context, config.records)
            )
            descriptors, tensors = [], []
            for name in program.inputs:
                given = inputs[name]
                if isinstance(given, StoredTensor):
                    descriptors.append({"name": name, "kind": "stored", "model": given.model, "tensor": given.tensor})
                    continue
                d, share = _describe(name, given.payloads[party])
                descriptors.append(d)
                if share is not None:
                    tensors.append((name, share))
            submit: dict[str, Any] = {"program": wire_program, "inputs": descriptors, "preprocess": preprocess}
            if keep:
                submit["keep"] = keep
            if source is not None:
                submit["preprocessing"], extra = source.submit(party, materials, {"ots": ots})
                tensors += extra
            channel.send_json(MsgType.SUBMIT, job_id, submit)
            for name, share in tensors:
                channel.send_tensor(job_id, name, share)
            shares: dict[str, np.ndarray] = {}
            while True:
                frame = channel.expect(MsgType.PROGRESS, MsgType.TENSOR, MsgType.RESULT)
                if frame.type == MsgType.PROGRESS:
                    info = frame.json
                    if on_progress is not None and not info.get("heartbeat"):
                        step, of, op = int(info["step"]), int(info["of"]), str(info["op"])
                        if info.get("phase", "online") == "online":
                            on_progress(party, step, of, op)
                        elif "phase" in inspect.signature(on_progress).parameters:
                            on_progress(party, step, of, op, phase=str(info["phase"]))
                elif frame.type == MsgType.TENSOR:
                    if frame.name not in returned or frame.array is None or frame.array.dtype != np.uint64:
                        raise ProtocolError(f"{party_name(party)} returned an unexpected tensor {frame.name!r}")
                    shares[frame.name] = frame.array
                else:
                    if set(shares) != returned:
                        raise ProtocolError(f"{party_name(party)} finished without returning every output")
                    stats = PartyStats(**{k: frame.json[k] for k in PartyStats.__dataclass_fields__})
                    results[party] = (shares, stats, channel.bytes_sent, channel.bytes_received)
                    return
        except BaseException as exc:
            record(party, exc)
        finally:
            if channel is not None:
                channel.close()

    threads = [threading.Thread(target=talk, args=(p,), daemon=True) for p in range(config.n)]
    if uses_dealer:
        threads.append(threading.Thread(target=talk_to_dealer, daemon=True))
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads) and not failed.wait(0.05):
        pass
    if failed.is_set():
        # A known failure ends the job everywhere at once, not at the servers' timeout:
        # every server is told to stop, and this side's channels are cut.
        _abort_job(config, identity, context, job_id, failures[0][1], with_dealer=uses_dealer)
        for channel in list(channels):
            channel.interrupt()
    for t in threads:
        t.join()
    if failures:
        # A failing party makes the others fail too (lost links, aborts): report the root
        # cause, the first failure that is not a consequence of another.
        consequence = (PeerUnavailableError, JobAbortedError)
        causes = [f for f in failures if not isinstance(f[1], consequence)] or failures
        party, exc = causes[0]
        if isinstance(exc, errors.SafelightError):
            raise exc
        who = DEALER_NAME if party < 0 else party_name(party)
        raise JobFailedError(f"{who}: {type(exc).__name__}: {exc}") from exc
    wall = time.perf_counter() - started
    outputs = {
        name: Shared([results[p][0][name] for p in range(config.n)], frac_bits)
        for name, (_, frac_bits) in program.outputs.items()
        if name in returned
    }
    kept = {
        name: StoredTensor(
            model_id, name, program.shape_of(program.outputs[name][0]), config.n, program.frac_bits, program.scheme
        )
        for name, model_id in keep.items()
    }
    return JobResult(
        outputs,
        wall,
        [r[1] for r in results],
        sum(r[2] for r in results),
        sum(r[3] for r in results),
        None if source is None else source.name,
        dealer_result[0],
        client_offline if materials is not None else 0.0,
        program.scheme,
        kept,
    )
