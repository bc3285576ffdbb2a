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
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import JobAbortedError, JobFailedError, ProgramError, ProtocolError, ResourceLimitError, SafelightError
from ..ot import dealer_cot
from ..protocols import dealer_free, gc_sign, nonlinear
from ..protocols.preprocessing import OT_SOURCES, Material, Plan, deal_streaming, expand
from ..sharing import SEED_BYTES, SharePayload
from .admission import JOB_OVERHEAD, JobAdmission, correlation_bytes, job_memory, last_uses
from .certs import CLIENT_NAME, DEALER_NAME, Identity, party_name
from .config import ClusterConfig, PartyAddress
from .listener import Connection, serve_connections
from .model_store import ModelStore, check_model_id
from .ops import OPS, check_shape
from .peers import DEALER, JobLinks, Mailbox
from .program import Program
from .transport import Channel, MsgType, accept_tls, connect, server_context

log = logging.getLogger("safelight.server")
PRE_PREFIX = "pre:"
FIRST_MESSAGES = (MsgType.SUBMIT, MsgType.STORE, MsgType.ABORT, MsgType.PEER_HELLO)
OT_LABELS = "ot:t"  # the evaluator's dealt OT labels (ots="dealer")


@dataclass
class JobContext:
    """What ops see of the server: party id, the job's links and preprocessing."""

    party: int
    parties: int
    links: JobLinks
    pre: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    opened: dict[str, np.ndarray] = field(default_factory=dict)
    step: int = -1
    state: dict = field(default_factory=dict)  # per-job protocol state (e.g. OT endpoints)

    def exchange_all(self, array: np.ndarray) -> list[np.ndarray]:
        return self.links.exchange_all(array)

    def send(self, peer: int, array: np.ndarray) -> None:
        """One tensor to one peer (one-way protocols such as garbling)."""
        self.links.sender(peer).send_tensor(self.links.job_id, "x", array)

    def recv(self, peer: int) -> np.ndarray:
        frame = self.links.receiver(peer).expect(MsgType.TENSOR)
        assert frame.array is not None
        return frame.array

    def pipe(self, peer: int):
        """A named-tensor pipe to ``peer`` over this job's links (used by OT and garbling)."""
        from ..ot import ChannelPipe

        return ChannelPipe.from_links(self.links, peer)

    def correlation(self) -> dict[str, np.ndarray]:
        try:
            return self.pre[self.step]
        except KeyError:
            raise ProtocolError(f"no preprocessing material for step {self.step}") from None


class OpStats:
    """Per-op totals of one job: time, bytes on peer links, rounds, calls."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, float]] = {}
        self.steps: list[dict[str, float | str]] = []

    def add(self, op: str, seconds: float, sent: int, received: int, rounds: int) -> None:
        t = self.totals.setdefault(op, {"calls": 0, "seconds": 0.0, "bytes_sent": 0, "bytes_received": 0, "rounds": 0})
        t["calls"] += 1
        t["seconds"] += seconds
        t["bytes_sent"] += sent
        t["bytes_received"] += received
        t["rounds"] += rounds


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
        self.mask_secret = secrets.token_bytes(32)  # dealer: derives the persistent weight masks
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
        serve_connections(self._listener, self._handle, self.config.limits, self._stop, log,
                          every_few_seconds=lambda: self.mailbox.reap(self.config.timeout * 2))
        self._listener.close()
        log.info("%s stopped", self.name)

    def set_peers(self, parties: tuple[PartyAddress, ...], dealer: PartyAddress | None) -> None:
        """Where the other servers listen, when the spawner learns it only after start-up
        (``Cluster.local``: every server binds port 0)."""
        if len(parties) != self.config.n or (dealer is None) != (self.config.dealer is None):
            raise SafelightError("the peer list does not match the cluster config")
        self.config = dataclasses.replace(self.config, parties=parties, dealer=dealer)

    # ---- connections ---------------------------------------------------
    def _handle(self, raw: socket.socket, addr: tuple, connection: Connection) -> None:
        where = f"{addr[0]}:{addr[1]}"
        limits = self.config.limits
        try:
            # The handshake and the first message get their own short timeout: a client that
            # is not authenticated yet must not hold a connection slot for a job's timeout.
            channel = accept_tls(raw, self.context, limits.handshake_timeout, self.config.records)
        except (ssl.SSLError, OSError, ProtocolError) as exc:
            log.warning("rejected connection from %s: TLS authentication failed (%s)", where,
                        getattr(exc, "reason", None) or type(exc).__name__)
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
                if self.party is None:
                    self._deal_job(channel, frame.job_id, frame.json)
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
            self._try_send_error(channel, ResourceLimitError(
                f"{self.name} ran out of memory for this request; lower limits.memory_budget_mib or send less"))
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
        if not isinstance(claimed, int) or channel.peer != party_name(claimed) or claimed == self.party \
                or not 0 <= claimed < self.config.n:
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

    def _receive_inputs(self, channel: Channel, program: Program, descriptors: object,
                        extra_tensors: dict[str, tuple[int, ...]], stored: dict[str, tuple[str, str, int]]
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The job's input shares (and, from a dealing client, the correction tensors);
        ``stored`` receives input name -> (model id, tensor, upload version) of stored inputs."""
        if not isinstance(descriptors, list):
            raise ProtocolError("inputs must be a list")
        env: dict[str, np.ndarray] = {}
        expected: dict[str, tuple[int, ...] | None] = dict(extra_tensors)
        for d in descriptors:
            try:
                name, kind = str(d["name"]), str(d["kind"])
            except (TypeError, KeyError):
                raise ProtocolError("malformed input descriptor") from None
            if name not in program.inputs or name in env or name in expected:
                raise ProgramError(f"input {name!r} is not declared by the program or is repeated")
            shape = program.inputs[name]
            if kind == "seed":
                env[name] = self._seeded_share(d, shape, f"input {name!r}")
            elif kind == "share":
                expected[name] = shape
            elif kind == "stored":
                model, tensor = str(d.get("model")), str(d.get("tensor"))
                env[name] = self.store.get(model, tensor, shape)
                stored[name] = (model, tensor, self.store.version(model))
            else:
                raise ProtocolError(f"input {name!r}: unknown kind {kind!r}")
        missing = set(program.inputs) - set(env) - set(expected)
        if missing:
            raise ProgramError(f"inputs {sorted(missing)} were declared but not sent")
        extras = self._receive_tensors(channel, expected)
        env.update({k: v for k, v in extras.items() if not k.startswith(PRE_PREFIX)})
        return env, {k: v for k, v in extras.items() if k.startswith(PRE_PREFIX)}

    def _seeded_share(self, descriptor: dict, shape: tuple[int, ...], what: str) -> np.ndarray:
        """This server's share of a tensor sent as a 16-byte seed (see sharing.SharePayload)."""
        try:
            seed = bytes.fromhex(str(descriptor.get("seed", "")))
        except ValueError:
            seed = b""
        if len(seed) != SEED_BYTES:
            raise ProtocolError(f"{what}: a seed must be {SEED_BYTES} bytes")
        return SharePayload(self.party or 0, shape, seed=seed).materialize()

    def _store_model(self, channel: Channel, request: object) -> None:
        """Keep this server's shares of an uploaded model under its id (see model_store)."""
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
            raise ProtocolError("STORE must be a JSON object with a model id and an inputs list")
        model_id = check_model_id(request.get("model"))
        shares: dict[str, np.ndarray] = {}
        expected: dict[str, tuple[int, ...] | None] = {}
        declared = 0
        for d in request["inputs"]:
            try:
                name, kind, shape = str(d["name"]), str(d["kind"]), check_shape(d["shape"], "stored tensor")
            except (TypeError, KeyError):
                raise ProtocolError("malformed stored-tensor descriptor") from None
            if name in shares or name in expected:
                raise ProtocolError(f"stored tensor {name!r} is repeated")
            declared += 8 * int(np.prod(shape, dtype=np.int64))
            if declared > self.admission.budget:
                raise ResourceLimitError(f"the model's tensors exceed {self.name}'s memory budget of "
                                         f"{self.admission.budget / 2**30:.2f} GiB")
            if kind == "seed":
                shares[name] = self._seeded_share(d, shape, f"stored tensor {name!r}")
            elif kind == "share":
                expected[name] = shape
            else:
                raise ProtocolError(f"stored tensor {name!r}: unknown kind {kind!r}")
        shares.update(self._receive_tensors(channel, expected))
        self.store.put(model_id, shares)
        channel.send_json(MsgType.RESULT, b"\0" * 16, {"model": model_id, "tensors": len(shares)})
        log.info("stored model %s (%d tensors)", model_id, len(shares))

    def _receive_tensors(self, channel: Channel, expected: dict[str, tuple[int, ...] | None]
                         ) -> dict[str, np.ndarray]:
        """Receive exactly the named uint64 tensors, in any order. Each is checked from its
        metadata before its buffer is allocated: a declared shape must match, an undeclared
        one must fit this server's memory budget."""
        out: dict[str, np.ndarray] = {}
        pending = dict(expected)

        def accept(name: str, dtype: str, shape: tuple[int, ...]) -> None:
            if name not in pending or dtype != "uint64":
                raise ProtocolError(f"unexpected tensor {name!r} ({dtype}) from {channel.peer}")
            want = pending[name]
            if want is not None and shape != tuple(want):
                raise ProtocolError(f"tensor {name!r} has shape {shape}, expected {tuple(want)}")
            if want is None and 8 * int(np.prod(shape, dtype=object)) > self.admission.budget:
                raise ResourceLimitError(f"tensor {name!r} of shape {shape} exceeds {self.name}'s memory budget")

        while pending:
            frame = channel.expect(MsgType.TENSOR, accept_tensor=accept)
            assert frame.name is not None and frame.array is not None
            pending.pop(frame.name)
            out[frame.name] = frame.array
        return out

    def _material(self, program: Program, plan: Plan, spec: object, client_tensors: dict[str, np.ndarray],
                  ctx: JobContext) -> Material:
        if not isinstance(spec, dict) or spec.get("source") not in ("client", "dealer", "he"):
            raise ProtocolError("this program needs preprocessing: say where it comes from (client, dealer or he)")
        links = ctx.links
        last = self.party == self.config.n - 1
        if spec["source"] == "he":
            if self.config.n != 2:
                raise ProtocolError("dealer-free preprocessing (triples='he') runs between exactly two servers")
            return dealer_free.generate(plan, ctx)
        if spec["source"] == "client":
            try:
                seed = bytes.fromhex(str(spec.get("seed", "")))
            except ValueError:
                seed = b""
            return Material(seed, client_tensors)
        if self.config.dealer is None:
            raise ProtocolError("the client asked for a dealer, but this cluster has none configured")
        link = links.dealer()
        frame = link.expect(MsgType.PREPROCESS)
        dealt_ots = spec.get("ots") == "dealer" and self.party in (0, 1) and nonlinear.ot_demand(program) > 0
        try:
            seed = bytes.fromhex(str(frame.json["seed"]))
            ot_seed = bytes.fromhex(str(frame.json["ot_seed"])) if dealt_ots else None
        except (TypeError, KeyError, ValueError):
            raise ProtocolError("malformed PREPROCESS message from the dealer") from None
        names: dict[str, tuple[int, ...] | None] = dict(plan.correction_shapes()) if last else {}
        if dealt_ots and self.party == 1:
            names[OT_LABELS] = None
        persistent, mask_ids = {}, {}
        spec_masks = frame.json.get("persistent", {})
        try:
            for key, entry in spec_masks.items():
                if key not in plan.reuse_keys:
                    raise ValueError(key)
                persistent[str(key)] = bytes.fromhex(str(entry["seed"]))
                mask_ids[str(key)] = str(entry["mask"])[:64]
                if len(persistent[key]) != SEED_BYTES:
                    raise ValueError(key)
        except (AttributeError, TypeError, KeyError, ValueError):
            raise ProtocolError("malformed persistent-mask entry from the dealer") from None
        tensors = self._receive_tensors(link, names)
        return Material(seed, {k: v for k, v in tensors.items() if k != OT_LABELS}, ot_seed=ot_seed,
                        ot_labels=tensors.get(OT_LABELS), persistent=persistent, mask_ids=mask_ids)

    def _run_job(self, channel: Channel, job_id: bytes, submit: object) -> None:
        """Admit the job (its memory need from the Program's shapes, before any tensor is
        received), run it, and report an abort by the client as such."""
        assert self.party is not None
        started = time.perf_counter()
        program, plan = self._program_of(submit)
        assert isinstance(submit, dict)
        pre_spec = submit.get("preprocessing")
        dealer_free = isinstance(pre_spec, dict) and pre_spec.get("source") == "he"
        per_op = submit.get("preprocess") == "per_op"
        dealt = isinstance(pre_spec, dict) and pre_spec.get("source") in ("dealer", "client")
        need = job_memory(program, plan, per_op, dealer_free, nonlinear.ot_demand_per_step(program, per_op)
                          if plan else None, corrections=dealt and self.party == self.config.n - 1)
        with self.mailbox.job(job_id), self.admission.admit(need, wait=self.config.timeout / 2):
            self._run_admitted(channel, job_id, submit, program, plan, started)

    def _run_admitted(self, channel: Channel, job_id: bytes, submit: dict, program: Program, plan: Plan,
                      started: float) -> None:
        assert self.party is not None
        pre_spec = submit.get("preprocessing")
        client_pre = (isinstance(pre_spec, dict) and pre_spec.get("source") == "client"
                      and self.party == self.config.n - 1)
        stored: dict[str, tuple[str, str, int]] = {}
        env, pre_tensors = self._receive_inputs(channel, program, submit.get("inputs"),
                                                plan.correction_shapes() if plan and client_pre else {}, stored)
        last = last_uses(program)
        links = JobLinks(self.config, self.identity, self.party, job_id, self.mailbox)
        ctx = JobContext(self.party, self.config.n, links)
        stats = OpStats()
        heartbeat = self._heartbeat(channel, job_id, ctx, stats, len(program.steps))
        try:
            t0 = time.perf_counter()
            if plan:
                material = self._material(program, plan, pre_spec, pre_tensors, ctx)
                ctx.pre = expand(plan, self.party, self.config.n, material)
                if material.ot_seed is not None:
                    gc_sign.install_dealer_ots(ctx, material.ot_seed, material.ot_labels)
                cache_keys = self._use_cached_openings(ctx, material, stored, links)
            per_op = isinstance(submit, dict) and submit.get("preprocess") == "per_op"
            ctx.state["per_op"] = per_op

            def preprocess(i: int, step) -> float:
                """Input-independent work of one op (expanding its dealt material, garbling);
                its seconds. A job with preprocessing tells the client each step done (a
                PROGRESS frame of phase "offline": dealer-free material takes long)."""
                started_at = time.perf_counter()
                if i in ctx.pre:
                    ctx.pre[i]  # expands this step's arrays (or makes them, dealer-free)
                if OPS[step.op].offline is not None:
                    ctx.step = i
                    OPS[step.op].offline(ctx, i, [program.shape_of(x) for x in step.inputs], step.attrs)
                    if per_op:
                        links.barrier()  # both sides start the op together
                seconds = time.perf_counter() - started_at
                if plan:
                    channel.send_json(MsgType.PROGRESS, job_id, {"phase": "offline", "step": i + 1,
                                                                 "of": len(program.steps), "op": step.op})
                return seconds

            step_offline = [0.0 if per_op else preprocess(i, step) for i, step in enumerate(program.steps)]
            if any(OPS[step.op].interactive for step in program.steps):
                links.barrier()  # peers start the online phase together
            offline = time.perf_counter() - t0
            online = 0.0
            for i, step in enumerate(program.steps):
                if per_op:
                    step_offline[i] = preprocess(i, step)
                    offline += step_offline[i]
                ctx.step = i
                t0, s0, r0, n0 = time.perf_counter(), links.bytes_sent, links.bytes_received, links.rounds
                ctx.state["offline_in_op"] = 0.0
                env[step.output] = OPS[step.op].run(ctx, [env[x] for x in step.inputs], step.attrs)
                for name in set(step.inputs):  # free what no later step reads
                    if last.get(name) == i:
                        del env[name]
                inline_offline = ctx.state["offline_in_op"]  # preprocessing of sliced ops
                step_offline[i] += inline_offline
                offline += inline_offline
                seconds = time.perf_counter() - t0 - inline_offline
                online += seconds
                stats.add(step.op, seconds, links.bytes_sent - s0, links.bytes_received - r0, links.rounds - n0)
                stats.steps.append({"op": step.op, "seconds": seconds, "offline_seconds": step_offline[i],
                                    "bytes_sent": links.bytes_sent - s0, "bytes_received": links.bytes_received - r0,
                                    "rounds": links.rounds - n0})
                ctx.pre.pop(i, None)  # each correlation is used exactly once
                channel.send_json(MsgType.PROGRESS, job_id, {"step": i + 1, "of": len(program.steps), "op": step.op})
            for key, cache_key in (cache_keys if plan else {}).items():
                if cache_key is not None and key in ctx.opened:
                    self._keep_opening(cache_key, ctx.opened[key])
            for name, (tensor, _) in program.outputs.items():
                channel.send_tensor(job_id, name, env[tensor])
        finally:
            heartbeat.set()
            links.close()
        result = {
            "party": self.party,
            "seconds": time.perf_counter() - started,
            "offline_seconds": offline,
            "online_seconds": online,
            "bytes_sent": channel.bytes_sent + links.bytes_sent,
            "bytes_received": channel.bytes_received + links.bytes_received,
            "peer_bytes_sent": links.bytes_sent,
            "peer_bytes_received": links.bytes_received,
            "rounds": links.rounds,
            "ops": stats.totals,
            "steps": stats.steps,
        }
        channel.send_json(MsgType.RESULT, job_id, result)
        log.info("job %s done in %.3f s (%d ops, %d rounds, offline %.3f s)", job_id.hex()[:8], result["seconds"],
                 len(program.steps), links.rounds, offline)

    def _use_cached_openings(self, ctx: JobContext, material: Material, stored: dict[str, tuple[str, str, int]],
                             links: JobLinks) -> dict[str, tuple | None]:
        """Weights of stored models under a persistent mask: reuse w - b opened in an earlier
        job when *every* server still has it (one small exchange, so all take the same path).
        Returns reuse key -> cache key (None when the weight is not a stored tensor)."""
        keys = sorted(material.mask_ids)
        if not keys:
            return {}
        cache_keys = {key: (material.mask_ids[key], *stored[key[2:]]) if key[2:] in stored else None
                      for key in keys}
        have = np.array([int(cache_keys[k] is not None and cache_keys[k] in self.opened_cache) for k in keys],
                        dtype=np.uint64)
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

    def _heartbeat(self, channel: Channel, job_id: bytes, ctx: JobContext, stats: OpStats,
                   n_steps: int) -> threading.Event:
        """Tell the client the job is alive while a long phase (preprocessing a large layer)
        sends nothing, so that its timeout keeps meaning "this server is gone". Set the
        returned event to stop."""
        done = threading.Event()
        interval = max(0.5, self.config.timeout / 4)

        def beat() -> None:
            while not done.wait(interval):
                try:
                    channel.send_json(MsgType.PROGRESS, job_id, {"step": len(stats.steps), "of": n_steps,
                                                                 "op": "working", "heartbeat": True})
                except SafelightError:
                    return

        threading.Thread(target=beat, name="job-heartbeat", daemon=True).start()
        return done

    # ---- dealer: jobs ---------------------------------------------------
    def _persistent_masks(self, plan: Plan, stored: object) -> tuple[dict[str, list[bytes]], dict[str, str]]:
        """Masks of stored model weights that stay the same in every job of this dealer:
        per-party seeds derived from the dealer's secret, the model id, tensor and shape."""
        import hashlib
        import hmac

        persistent, mask_ids = {}, {}
        if not isinstance(stored, dict):
            return persistent, mask_ids
        for name, ref in stored.items():
            key = f"w:{name}"
            if key not in plan.reuse_keys or not isinstance(ref, list) or len(ref) != 2:
                continue
            label = json.dumps([str(ref[0]), str(ref[1]), list(plan.reuse_keys[key].shape)]).encode()
            derive = lambda suffix: hmac.new(self.mask_secret, label + suffix, hashlib.sha256).digest()  # noqa: E731
            persistent[key] = [derive(bytes([i]))[:SEED_BYTES] for i in range(self.config.n)]
            mask_ids[key] = derive(b"id")[:12].hex()
        return persistent, mask_ids

    def _deal_job(self, channel: Channel, job_id: bytes, submit: object) -> None:
        """Admit a dealing job (it holds one correction at a time, made from the largest
        correlation's components) and deal it; a client's abort ends it at once."""
        started = time.perf_counter()
        program, plan = self._program_of(submit)
        assert isinstance(submit, dict)
        need = JOB_OVERHEAD + 2 * max(correlation_bytes(plan).values(), default=0)
        links = DealerLinks()
        with self.mailbox.job(job_id, links), self.admission.admit(need, wait=self.config.timeout / 2):
            self._deal_admitted(channel, job_id, submit, program, plan, started, links)

    def _deal_admitted(self, channel: Channel, job_id: bytes, submit: dict, program: Program, plan: Plan,
                       started: float, links: "DealerLinks") -> None:
        ots = submit.get("ots", "iknp")
        if ots not in OT_SOURCES:
            raise ProtocolError(f"ots must be one of {OT_SOURCES}, got {ots!r}")
        persistent, mask_ids = self._persistent_masks(plan, submit.get("stored"))
        materials, corrections = deal_streaming(plan, self.config.n, persistent)
        n_ots = nonlinear.ot_demand(program) if ots == "dealer" else 0
        if n_ots:
            materials[0].ot_seed, materials[1].ot_seed = secrets.token_bytes(16), secrets.token_bytes(16)
            materials[1].ot_labels = dealer_cot(materials[0].ot_seed, materials[1].ot_seed, n_ots)
        generated = time.perf_counter() - started  # seeds and OT material; corrections below
        try:
            for party, material in enumerate(materials):
                addr = self.config.parties[party]
                link = connect(addr.host, addr.port, self.identity, party_name(party), self.config.timeout,
                               records=self.config.records)
                links.append(link)
                if self.mailbox.abort_reason(job_id) is not None:
                    link.interrupt()
                link.send_json(MsgType.PEER_HELLO, job_id, {"party": DEALER_NAME})
                header: dict[str, object] = {"seed": material.seed.hex()}
                if material.persistent:
                    header["persistent"] = {k: {"seed": v.hex(), "mask": mask_ids[k]}
                                            for k, v in material.persistent.items()}
                if material.ot_seed is not None:
                    header["ot_seed"] = material.ot_seed.hex()
                link.send_json(MsgType.PREPROCESS, job_id, header)
                if material.ot_labels is not None:
                    link.send_tensor(job_id, OT_LABELS, material.ot_labels)
            pending = iter(corrections)
            while True:  # each correction is made, then sent, one at a time (bounded memory)
                t0 = time.perf_counter()
                item = next(pending, None)
                generated += time.perf_counter() - t0
                if item is None:
                    break
                links[-1].send_tensor(job_id, *item)
            sent = sum(link.bytes_sent for link in links)
        finally:
            for link in links:
                link.close()
        result = {"party": -1, "seconds": time.perf_counter() - started, "offline_seconds": generated,
                  "online_seconds": 0.0, "bytes_sent": sent + channel.bytes_sent,
                  "bytes_received": channel.bytes_received, "peer_bytes_sent": sent, "peer_bytes_received": 0,
                  "rounds": 0, "ops": {}, "steps": []}
        channel.send_json(MsgType.RESULT, job_id, result)
        log.info("dealt job %s in %.3f s (%d correlations)", job_id.hex()[:8], result["seconds"],
                 len(plan.correlations))


class DealerLinks:
    """The dealer's links of one job, interrupted together when the job is aborted."""

    def __init__(self) -> None:
        self.channels: list[Channel] = []

    def append(self, channel: Channel) -> None:
        self.channels.append(channel)

    def __iter__(self):
        return iter(list(self.channels))

    def __getitem__(self, index: int) -> Channel:
        return self.channels[index]

    def interrupt(self) -> None:
        for link in self:
            link.interrupt()


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


def _exit_with_parent(parent: int) -> None:
    """Stop when the process that started us is gone (no orphans from Cluster.local)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


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
        raise SafelightError(f"expected a PEERS line from the process that started this server, got {line[:80]!r}") \
            from None
    return parties, dealer


def _stop_at_eof(server: Server) -> None:
    """The spawner keeps our stdin open while it lives: its end (even a crash) stops us."""
    while sys.stdin.buffer.read(4096):
        pass
    server.stop()


def serve(config: ClusterConfig, party: int | None, exit_with_parent: bool = False,
          peers_from_stdin: bool = False) -> None:
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
        raise SafelightError(f"{server.name} cannot listen on {where}: {exc.strerror or exc}; "
                             "is another server using that port? Pick another port in the config") from None
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    if exit_with_parent:
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    print(f"READY {server.name} {host}:{port}", flush=True)
    if peers_from_stdin:
        server.set_peers(*_peers_from(sys.stdin.readline()))
        threading.Thread(target=_stop_at_eof, args=(server,), daemon=True).start()
    server.serve_forever()
