"""The generic evaluator: one server process of a cluster (a party, or the dealer).

It accepts mutually authenticated TLS connections. A client connection
carries one job: a SUBMIT frame (the Program, its inputs' descriptors and
where the preprocessing comes from), the input tensors, then the server runs
the offline phase (expanding its correlated randomness), streams PROGRESS
frames while it runs the ops, and returns the output shares and a RESULT frame
with its statistics. A party or dealer connection opens a per-job link (see
:mod:`peers`). A malformed, unexpected or unauthenticated message ends only
its own connection; the server keeps serving, and its logs carry no seeds,
shares or key material.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import JobAbortedError, JobFailedError, ProgramError, ProtocolError, ResourceLimitError, SafelightError
from ..net.certs import CLIENT_NAME, DEALER_NAME, Identity, party_name
from ..net.config import ClusterConfig, PartyAddress
from ..net.listener import Connection, serve_connections
from ..net.peers import DEALER, JobLinks, Mailbox
from ..net.pipe import ChannelPipe
from ..net.transport import Channel, MsgType, accept_tls, receive_tensors, server_context
from ..processes import exit_when_orphaned
from ..program.ops import check_shape, sharing_scheme
from ..program.program import Program, Step
from ..protocols.nonlinear import ot_path_demand
from ..protocols.preprocessing import Material, Plan, expand
from ..protocols.sources import RandomnessSource, seed_from, source_of
from ..sharing import ReplicatedPayload, SharePayload
from .admission import JobAdmission, job_memory
from .dealer import Dealer
from .model_store import ModelStore, check_model_id
from .steps import StepRecord, run_steps

log = logging.getLogger("safelight.server")
PRE_PREFIX = "pre:"
FIRST_MESSAGES = (MsgType.SUBMIT, MsgType.STORE, MsgType.ABORT, MsgType.PEER_HELLO)


@dataclass
class JobContext:
    """What ops see of the server: party id, the job's links and preprocessing."""

    party: int
    parties: int
    links: JobLinks
    tensor_budget: int  # bytes an undeclared tensor may take (the server's memory budget)
    pre: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    opened: dict[str, np.ndarray] = field(default_factory=dict)
    step: int = -1
    per_op: bool = False
    offline_in_op: float = 0.0
    state: dict = field(default_factory=dict)  # per-job protocol state (e.g. OT endpoints)

    def add_rounds(self, n: int) -> None:
        self.links.rounds += n

    def exchange_all(self, array: np.ndarray) -> list[np.ndarray]:
        return self.links.exchange_all(array)

    def exchange(
        self,
        sends: dict[int, list[np.ndarray]],
        receive: dict[int, int],
        into: dict[int, list[np.ndarray]] | None = None,
    ) -> dict[int, list[np.ndarray]]:
        return self.links.exchange(sends, receive, into)

    def send(self, peer: int, array: np.ndarray) -> None:
        """One tensor to one peer (one-way protocols such as garbling)."""
        self.links.sender(peer).send_tensor(self.links.job_id, "x", array)

    def recv(self, peer: int) -> np.ndarray:
        frame = self.links.receiver(peer).expect(MsgType.TENSOR)
        assert frame.array is not None
        return frame.array

    def receive_tensors(self, channel: Channel, expected: dict[str, tuple[int, ...] | None]) -> dict[str, np.ndarray]:
        """Exactly the named uint64 tensors from ``channel`` (a randomness source's link),
        each checked before its buffer is allocated."""
        return receive_tensors(channel, expected, self.tensor_budget)

    def pipe(self, peer: int):
        """A named-tensor pipe to ``peer`` over this job's links (used by OT and garbling)."""
        return ChannelPipe.from_links(self.links, peer)

    def correlation(self) -> dict[str, np.ndarray]:
        try:
            return self.pre[self.step]
        except KeyError:
            raise ProtocolError(f"no preprocessing material for step {self.step}") from None


class OpStats:
    """Per-op totals and per-step rows of one job: time, bytes on peer links, rounds."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, float]] = {}
        self.steps: list[dict[str, float | str]] = []

    def add(self, record: StepRecord) -> None:
        t = self.totals.setdefault(
            record.op, {"calls": 0, "seconds": 0.0, "bytes_sent": 0, "bytes_received": 0, "rounds": 0}
        )
        t["calls"] += 1
        t["seconds"] += record.seconds
        t["bytes_sent"] += record.bytes_sent
        t["bytes_received"] += record.bytes_received
        t["rounds"] += record.rounds
        self.steps.append(dataclasses.asdict(record))


class Server:
    """Serve one role of a cluster until stopped.

    Parameters
    ----------
    config : ClusterConfig
    party : int or None
        This server's index in ``config.parties``; None for the dealer.
    """

    def __init__(self, config: ClusterConfig, party: int | None) -> None:
        if party is None:
            if config.dealer is None:
                raise SafelightError("the cluster config has no [dealer] section")
            self.name, self.address = DEALER_NAME, config.dealer
        else:
            if not 0 <= party < config.n:
                raise SafelightError(f"party {party} is not in the cluster (0..{config.n - 1})")
            self.name, self.address = party_name(party), config.parties[party]
        self.config, self.party = config, party
        self.identity = Identity.from_dir(config.certs, self.name)
        self.context = server_context(self.identity)
        self.mailbox = Mailbox()
        self.admission = JobAdmission(config.limits, self.name)
        self.store = ModelStore(self.name, config.store)
        # (dealer mask id, model, tensor, upload version) -> opened w - b (public to the servers)
        self.opened_cache: dict[tuple, np.ndarray] = {}
        self.dealer = Dealer(config, self.identity, self.mailbox, self.admission) if party is None else None
        self._stop = threading.Event()
        self._listener: socket.socket | None = None

    # ---- lifecycle -----------------------------------------------------
    def bind(self) -> tuple[str, int]:
        sock = socket.create_server((self.address.host, self.address.port), backlog=128)
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
        serve_connections(
            self._listener,
            self._handle,
            self.config.limits,
            self._stop,
            log,
            every_few_seconds=lambda: self.mailbox.reap(self.config.timeout * 2),
        )
        self._listener.close()
        log.info("%s stopped", self.name)

    def set_peers(self, parties: tuple[PartyAddress, ...], dealer: PartyAddress | None) -> None:
        """Where the other servers listen, when the spawner learns it only after start-up
        (``Cluster.local``: every server binds port 0)."""
        if len(parties) != self.config.n or (dealer is None) != (self.config.dealer is None):
            raise SafelightError("the peer list does not match the cluster config")
        self.config = dataclasses.replace(self.config, parties=parties, dealer=dealer)
        if self.dealer is not None:
            self.dealer.config = self.config

    # ---- connections ---------------------------------------------------
    def _handle(self, raw: socket.socket, addr: tuple, connection: Connection) -> None:
        where = f"{addr[0]}:{addr[1]}"
        limits = self.config.limits
        try:
            # The handshake and the first message get their own short timeout: a client that
            # is not authenticated yet must not hold a connection slot for a job's timeout.
            channel = accept_tls(raw, self.context, limits.handshake_timeout, self.config.records)
        except (ssl.SSLError, OSError, ProtocolError) as exc:
            log.warning(
                "rejected connection from %s: TLS authentication failed (%s)",
                where,
                getattr(exc, "reason", None) or type(exc).__name__,
            )
            return
        channel.max_json = limits.max_control_bytes
        keep_open = False
        try:
            # Any other first message (a tensor, a result) is refused from its header.
            frame = channel.recv(allow=FIRST_MESSAGES)
            connection.authenticated()
            channel.set_timeout(self.config.timeout)
            if frame.type == MsgType.ABORT and channel.peer == CLIENT_NAME:
                self._abort(frame.job_id, frame.json)
            elif frame.type == MsgType.STORE and channel.peer == CLIENT_NAME and self.party is not None:
                self._store_model(channel, frame.json)
            elif frame.type == MsgType.SUBMIT and channel.peer == CLIENT_NAME:
                if self.dealer is not None:
                    self.dealer.deal(channel, frame.job_id, *self._program_of(frame.json), frame.json)
                else:
                    self._run_job(channel, frame.job_id, frame.json)
            elif frame.type == MsgType.PEER_HELLO and self.party is not None:
                keep_open = self._accept_link(channel, frame.job_id, frame.json)
            else:
                raise ProtocolError(f"{channel.peer} may not send {frame.type.name} to {self.name} as a first message")
        except SafelightError as exc:
            log.warning("connection from %s (%s) ended: %s: %s", where, channel.peer, type(exc).__name__, exc)
            self._try_send_error(channel, exc)
        except MemoryError:
            log.error("connection from %s (%s) ended: out of memory", where, channel.peer)
            self._try_send_error(
                channel,
                ResourceLimitError(
                    f"{self.name} ran out of memory for this request; lower limits.memory_budget_mib or send less"
                ),
            )
        except Exception as exc:  # never let one connection take the server down
            log.error("connection from %s (%s) failed: internal error %s", where, channel.peer, type(exc).__name__)
            self._try_send_error(channel, JobFailedError(f"internal error in {self.name}: {type(exc).__name__}"))
        finally:
            if not keep_open:
                channel.close()

    def _abort(self, job_id: bytes, reason: object) -> None:
        """The client stopped a job (another participant failed): end this server's part now."""
        message = str(reason.get("message", "")) if isinstance(reason, dict) else ""
        self.mailbox.abort(job_id, JobAbortedError(f"the client stopped the job: {message[:500]}"))

    @staticmethod
    def _try_send_error(channel: Channel, exc: SafelightError) -> None:
        """Tell the peer why its connection ends; let the frame reach it (see Channel.linger)."""
        try:
            channel.send_error(b"\0" * 16, exc)
        except SafelightError:
            return
        channel.linger()

    def _accept_link(self, channel: Channel, job_id: bytes, hello: object) -> bool:
        claimed = hello.get("party") if isinstance(hello, dict) else None
        if claimed == DEALER_NAME and channel.peer == DEALER_NAME:
            self.mailbox.deliver(job_id, DEALER, channel)
            return True
        # A party link: the certificate must match the claimed party.
        if (
            not isinstance(claimed, int)
            or channel.peer != party_name(claimed)
            or claimed == self.party
            or not 0 <= claimed < self.config.n
        ):
            raise ProtocolError(f"{channel.peer} may not open a link as {claimed!r}")
        self.mailbox.deliver(job_id, claimed, channel)
        return True

    # ---- jobs -------------------------------------------------------------
    def _program_of(self, submit: object) -> tuple[Program, Plan]:
        """The validated Program of a SUBMIT and the preprocessing it needs."""
        if not isinstance(submit, dict):
            raise ProtocolError("SUBMIT must be a JSON object")
        program = Program.from_json(submit.get("program"))
        if program.parties != self.config.n:
            raise ProgramError(f"the program is for {program.parties} parties, this cluster has {self.config.n}")
        return program, Plan(program.correlations())

    def _receive_inputs(
        self,
        channel: Channel,
        program: Program,
        descriptors: object,
        extra_tensors: dict[str, tuple[int, ...]],
        stored: dict[str, tuple[str, str, int]],
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The job's input shares (and, from a dealing client, the correction tensors);
        ``stored`` receives input name -> (model id, tensor, upload version) of stored inputs."""
        if not isinstance(descriptors, list):
            raise ProtocolError("inputs must be a list")
        env: dict[str, np.ndarray] = {}
        expected: dict[str, tuple[int, ...] | None] = dict(extra_tensors)
        replicated: dict[str, list[bytes | None]] = {}  # input -> its two shares' seeds (None: sent)
        want = "replicated" if program.scheme == "rss3" else None
        for d in descriptors:
            try:
                name, kind = str(d["name"]), str(d["kind"])
            except (TypeError, KeyError):
                raise ProtocolError("malformed input descriptor") from None
            if name not in program.inputs or name in env or name in expected or name in replicated:
                raise ProgramError(f"input {name!r} is not declared by the program or is repeated")
            shape = program.inputs[name]
            if (kind == "replicated") != (want == "replicated") and kind != "stored":
                raise ProtocolError(f"input {name!r}: a {kind!r} share does not fit a {program.scheme} program")
            if kind == "replicated":
                replicated[name] = self._replicated_seeds(d, f"input {name!r}")
                if None in replicated[name]:
                    expected[name] = shape
            elif kind == "seed":
                env[name] = self._seeded_share(d, shape, f"input {name!r}")
            elif kind == "share":
                expected[name] = shape
            elif kind == "stored":
                model, tensor = str(d.get("model")), str(d.get("tensor"))
                held = (sharing_scheme(program.scheme).copies, *shape) if want else shape
                env[name] = self.store.get(model, tensor, held)
                stored[name] = (model, tensor, self.store.version(model))
            else:
                raise ProtocolError(f"input {name!r}: unknown kind {kind!r}")
        missing = set(program.inputs) - set(env) - set(expected) - set(replicated)
        if missing:
            raise ProgramError(f"inputs {sorted(missing)} were declared but not sent")
        extras = receive_tensors(channel, expected, self.admission.budget)
        for name, seeds in replicated.items():
            extras[name] = self._replicated_share(seeds, program.inputs[name], extras.get(name))
        env.update({k: v for k, v in extras.items() if not k.startswith(PRE_PREFIX)})
        return env, {k: v for k, v in extras.items() if k.startswith(PRE_PREFIX)}

    def _seeded_share(self, descriptor: dict, shape: tuple[int, ...], what: str) -> np.ndarray:
        """This server's share of a tensor sent as a 16-byte seed (see sharing.SharePayload)."""
        seed = seed_from(descriptor.get("seed", ""), what)
        return SharePayload(self.party or 0, shape, seed=seed).materialize()

    @staticmethod
    def _replicated_seeds(descriptor: dict, what: str) -> list[bytes | None]:
        """The seeds of a server's two replicated shares (one may be None: sent as a tensor)."""
        seeds = descriptor.get("seeds")
        if not isinstance(seeds, list) or len(seeds) != 2 or seeds.count(None) > 1:
            raise ProtocolError(f"{what}: a replicated share needs two seeds, at most one of them null")
        return [None if seed is None else seed_from(seed, what) for seed in seeds]

    def _replicated_share(
        self, seeds: list[bytes | None], shape: tuple[int, ...], sent: np.ndarray | None
    ) -> np.ndarray:
        """This server's two shares, stacked (2, *shape), from their seeds and the sent one."""
        return ReplicatedPayload(self.party or 0, shape, (seeds[0], seeds[1]), sent).materialize()

    @staticmethod
    def _keep_of(keep: object, program: Program) -> dict[str, str]:
        """A SUBMIT's outputs to keep here: output name -> model id, checked."""
        if not isinstance(keep, dict):
            raise ProtocolError("keep must map output names to model ids")
        for name, model_id in keep.items():
            if name not in program.outputs:
                raise ProgramError(f"cannot keep {name!r}: it is not an output of the program")
            check_model_id(model_id)
        return dict(keep)

    def _store_model(self, channel: Channel, request: object) -> None:
        """Keep this server's shares of an uploaded model under its id (see model_store), or
        forget a model (``{"model": id, "drop": true}``)."""
        if isinstance(request, dict) and request.get("drop") is True:
            model_id = check_model_id(request.get("model"))
            existed = self.store.drop(model_id)
            channel.send_json(MsgType.RESULT, b"\0" * 16, {"model": model_id, "dropped": existed})
            log.info("dropped model %s", model_id)
            return
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
            raise ProtocolError("STORE must be a JSON object with a model id and an inputs list")
        model_id = check_model_id(request.get("model"))
        shares: dict[str, np.ndarray] = {}
        expected: dict[str, tuple[int, ...] | None] = {}
        replicated: dict[str, tuple[list[bytes | None], tuple[int, ...]]] = {}
        declared = 0
        for d in request["inputs"]:
            try:
                name, kind, shape = str(d["name"]), str(d["kind"]), check_shape(d["shape"], "stored tensor")
            except (TypeError, KeyError):
                raise ProtocolError("malformed stored-tensor descriptor") from None
            if name in shares or name in expected:
                raise ProtocolError(f"stored tensor {name!r} is repeated")
            declared += 8 * int(np.prod(shape, dtype=np.int64)) * (2 if kind == "replicated" else 1)
            if declared > self.admission.budget:
                raise ResourceLimitError(
                    f"the model's tensors exceed {self.name}'s memory budget of {self.admission.budget / 2**30:.2f} GiB"
                )
            if kind == "seed":
                shares[name] = self._seeded_share(d, shape, f"stored tensor {name!r}")
            elif kind == "share":
                expected[name] = shape
            elif kind == "replicated":
                seeds = self._replicated_seeds(d, f"stored tensor {name!r}")
                replicated[name] = (seeds, shape)
                if None in seeds:
                    expected[name] = shape
            else:
                raise ProtocolError(f"stored tensor {name!r}: unknown kind {kind!r}")
        shares.update(receive_tensors(channel, expected, self.admission.budget))
        for name, (seeds, shape) in replicated.items():
            shares[name] = self._replicated_share(seeds, shape, shares.get(name))
        self.store.put(model_id, shares)
        channel.send_json(MsgType.RESULT, b"\0" * 16, {"model": model_id, "tensors": len(shares)})
        log.info("stored model %s (%d tensors)", model_id, len(shares))

    def _run_job(self, channel: Channel, job_id: bytes, submit: object) -> None:
        """Admit the job (its memory need from the Program's shapes, before any tensor is
        received), run it, and report an abort by the client as such."""
        assert self.party is not None
        started = time.perf_counter()
        program, plan = self._program_of(submit)
        assert isinstance(submit, dict)
        # with no correlations, a job still has a source when a dealer deals its OT-path
        # comparisons (protocols.ot_dealt)
        demand = ot_path_demand(program)
        source = source_of(submit.get("preprocessing")) if plan or (demand and submit.get("preprocessing")) else None
        per_op = submit.get("preprocess") == "per_op"
        need = job_memory(
            program,
            plan,
            per_op,
            source is not None and source.made_by_servers,
            program.ot_demand_per_step(per_op) if plan else None,
            corrections=source is not None and source.dealt and self.party == self.config.n - 1,
            dealt_comparisons=demand.dealt_bytes(self.party) if source is not None and source.uses_dealer else 0,
        )
        with self.mailbox.job(job_id), self.admission.admit(need, wait=self.config.timeout / 2):
            self._run_admitted(channel, job_id, submit, program, plan, source, started)

    def _run_admitted(
        self,
        channel: Channel,
        job_id: bytes,
        submit: dict,
        program: Program,
        plan: Plan,
        source: RandomnessSource | None,
        started: float,
    ) -> None:
        assert self.party is not None
        stored: dict[str, tuple[str, str, int]] = {}
        keep = self._keep_of(submit.get("keep", {}), program)
        from_client = source.expected_from_client(plan, self.party, self.config.n) if source else {}
        env, pre_tensors = self._receive_inputs(channel, program, submit.get("inputs"), from_client, stored)
        links = JobLinks(self.config, self.identity, self.party, job_id, self.mailbox)
        ctx = JobContext(self.party, self.config.n, links, self.admission.budget)
        stats = OpStats()
        heartbeat = self._heartbeat(channel, job_id, ctx, stats, len(program.steps))
        try:
            t0 = time.perf_counter()
            if source is not None:
                material = source.material(ctx, plan, program, submit["preprocessing"], pre_tensors)
                ctx.pre = expand(plan, self.party, self.config.n, material)
                cache_keys = self._use_cached_openings(ctx, material, stored, links)
            ctx.per_op = submit.get("preprocess") == "per_op"
            n_steps = len(program.steps)

            def offline_done(i: int, step: Step) -> None:
                if plan:  # dealer-free material takes long: the client shows each step
                    channel.send_json(
                        MsgType.PROGRESS, job_id, {"phase": "offline", "step": i + 1, "of": n_steps, "op": step.op}
                    )

            def step_done(i: int, record: StepRecord) -> None:
                stats.add(record)
                channel.send_json(MsgType.PROGRESS, job_id, {"step": i + 1, "of": n_steps, "op": record.op})

            material_seconds = time.perf_counter() - t0 if source is not None else 0.0
            run = run_steps(ctx, program, env, barrier=links.barrier, on_offline_step=offline_done, on_step=step_done)
            offline, online = material_seconds + run.offline_seconds, run.online_seconds
            for key, cache_key in (cache_keys if plan else {}).items():
                if cache_key is not None and key in ctx.opened:
                    self._keep_opening(cache_key, ctx.opened[key])
            scheme = sharing_scheme(program.scheme)
            kept: dict[str, dict[str, np.ndarray]] = {}
            for name, model_id in keep.items():
                kept.setdefault(model_id, {})[name] = run.outputs.pop(name)
            for model_id, shares in kept.items():  # this server's shares stay here, whole
                self.store.put(model_id, shares)
            for name, share in run.outputs.items():
                channel.send_tensor(job_id, name, scheme.result(share))
        finally:
            heartbeat.set()
            links.close()
        result = {
            "party": self.party,
            "seconds": time.perf_counter() - started,
            "offline_seconds": offline,
            "online_seconds": online,
            "setup_seconds": run.setup_seconds,
            "bytes_sent": channel.bytes_sent + links.bytes_sent,
            "bytes_received": channel.bytes_received + links.bytes_received,
            "peer_bytes_sent": links.bytes_sent,
            "peer_bytes_received": links.bytes_received,
            "rounds": links.rounds,
            "ops": stats.totals,
            "steps": stats.steps,
        }
        channel.send_json(MsgType.RESULT, job_id, result)
        log.info(
            "job %s done in %.3f s (%d ops, %d rounds, offline %.3f s)",
            job_id.hex()[:8],
            result["seconds"],
            len(program.steps),
            links.rounds,
            offline,
        )

    def _use_cached_openings(
        self, ctx: JobContext, material: Material, stored: dict[str, tuple[str, str, int]], links: JobLinks
    ) -> dict[str, tuple | None]:
        """Weights of stored models under a persistent mask: reuse w - b opened in an earlier
        job when *every* server still has it (one small exchange, so all take the same path).
        Returns reuse key -> cache key (None when the weight is not a stored tensor)."""
        keys = sorted(material.mask_ids)
        if not keys:
            return {}
        cache_keys = {key: (material.mask_ids[key], *stored[key[2:]]) if key[2:] in stored else None for key in keys}
        have = np.array(
            [int(cache_keys[k] is not None and cache_keys[k] in self.opened_cache) for k in keys], dtype=np.uint64
        )
        everyone = links.exchange_all(have)
        for i, key in enumerate(keys):
            if all(int(h[i]) for h in everyone):
                ctx.opened[key] = self.opened_cache[cache_keys[key]]
        return cache_keys

    def _keep_opening(self, cache_key: tuple, value: np.ndarray) -> None:
        mask, model, tensor, version = cache_key
        for old in [k for k in self.opened_cache if k[1:3] == (model, tensor) and k != cache_key]:
            del self.opened_cache[old]  # an older upload or another dealer's mask
        self.opened_cache[cache_key] = value

    def _heartbeat(
        self, channel: Channel, job_id: bytes, ctx: JobContext, stats: OpStats, n_steps: int
    ) -> threading.Event:
        """Tell the client the job is alive while a long phase (preprocessing a large layer)
        sends nothing, so that its timeout keeps meaning "this server is gone". Set the
        returned event to stop."""
        done = threading.Event()
        interval = max(0.5, self.config.timeout / 4)

        def beat() -> None:
            while not done.wait(interval):
                try:
                    channel.send_json(
                        MsgType.PROGRESS,
                        job_id,
                        {"step": len(stats.steps), "of": n_steps, "op": "working", "heartbeat": True},
                    )
                except SafelightError:
                    return

        threading.Thread(target=beat, name="job-heartbeat", daemon=True).start()
        return done


def keep_freed_memory() -> None:
    """Keep freed large buffers in the heap instead of returning them to the OS.

    Every protocol round allocates tensors of many megabytes; by default glibc
    maps each one fresh and unmaps it on free, so every round pays first-touch
    page faults again (a large share of a round's time on small VMs). A server
    process reuses its memory while it runs jobs, and gives it back when it goes idle
    (:func:`safelight.runtime.admission.give_back_memory`). Best effort: other C
    libraries ignore it.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 31)
    except (OSError, AttributeError):
        pass


def _peers_from(line: str) -> tuple[tuple[PartyAddress, ...], PartyAddress | None]:
    """The spawner's ``PEERS {"parties": [[host, port], ...], "dealer": [host, port] | null}`` line."""
    try:
        tag, _, body = line.partition(" ")
        data = json.loads(body)
        if tag != "PEERS":
            raise ValueError(tag)
        parties = tuple(PartyAddress(str(h), int(p)) for h, p in data["parties"])
        dealer = PartyAddress(str(data["dealer"][0]), int(data["dealer"][1])) if data["dealer"] else None
    except (ValueError, KeyError, TypeError, IndexError):
        raise SafelightError(
            f"expected a PEERS line from the process that started this server, got {line[:80]!r}"
        ) from None
    return parties, dealer


def _stop_at_eof(server: Server) -> None:
    """The spawner keeps our stdin open while it lives: its end (even a crash) stops us."""
    while sys.stdin.buffer.read(4096):
        pass
    server.stop()


def serve(
    config: ClusterConfig, party: int | None, exit_with_parent: bool = False, peers_from_stdin: bool = False
) -> None:
    """Run one server (a party, or the dealer when ``party`` is None) until SIGTERM/SIGINT.

    ``peers_from_stdin`` (``Cluster.local``): the config's ports may be 0; this server binds
    any free port, prints it on its READY line, then reads where the other servers listen
    from one PEERS line on stdin, and stops when stdin closes (its spawner is gone).
    """
    keep_freed_memory()
    server = Server(config, party)
    try:
        host, port = server.bind()
    except OSError as exc:
        where = f"{server.address.host}:{server.address.port}"
        raise SafelightError(
            f"{server.name} cannot listen on {where}: {exc.strerror or exc}; "
            "is another server using that port? Pick another port in the config"
        ) from None
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    if exit_with_parent:
        threading.Thread(target=exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    print(f"READY {server.name} {host}:{port}", flush=True)
    if peers_from_stdin:
        server.set_peers(*_peers_from(sys.stdin.readline()))
        threading.Thread(target=_stop_at_eof, args=(server,), daemon=True).start()
    server.serve_forever()
