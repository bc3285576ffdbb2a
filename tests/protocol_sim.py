"""An in-process stand-in for the network, to test protocols fast and to record each party's view.

Each party runs the real ops and preprocessing on its own thread, through the servers'
step loop (``safelight.runtime.steps.run_steps``); exchange_all goes through queues
instead of TLS. Test-only code.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import numpy as np

from safelight.program.ops import sharing_scheme
from safelight.program.program import Program
from safelight.protocols.preprocessing import Material, Plan, deal, expand
from safelight.runtime.steps import run_steps


@dataclass
class SimContext:
    party: int
    parties: int
    inboxes: list
    pre: dict = field(default_factory=dict)
    opened: dict = field(default_factory=dict)
    step: int = -1
    view: list = field(default_factory=list)  # everything this party received
    rounds: int = 0
    per_op: bool = False
    offline_in_op: float = 0.0
    state: dict = field(default_factory=dict)
    pipes: dict = field(default_factory=dict)

    @property
    def links(self):
        return self  # the links' round count is this context's (Context.links.rounds)

    def add_rounds(self, n):
        self.rounds += n

    def send(self, peer, array):
        self.inboxes[peer][self.party].put(np.array(array, copy=True))

    def recv(self, peer):
        got = self.inboxes[self.party][peer].get(timeout=30)
        if got is None:
            raise ConnectionError("a peer failed")
        self.view.append(got)
        return got

    def pipe(self, peer):
        return self.pipes[peer]

    def exchange_all(self, array):
        for p in range(self.parties):
            if p != self.party:
                self.inboxes[p][self.party].put(array.copy())
        got = {p: self.inboxes[self.party][p].get(timeout=30) for p in range(self.parties) if p != self.party}
        if any(v is None for v in got.values()):
            raise ConnectionError("a peer failed")
        self.view.extend(got.values())
        self.rounds += 1
        got[self.party] = array
        return [got[p] for p in range(self.parties)]

    def exchange(self, sends, receive, into=None):
        from safelight.errors import ProtocolError

        for peer, arrays in sends.items():
            for array in arrays:
                self.inboxes[peer][self.party].put(np.array(array, copy=True))
        got = {}
        for peer, count in receive.items():
            got[peer] = []
            buffers = (into or {}).get(peer, [])
            for k in range(count):
                item = self.inboxes[self.party][peer].get(timeout=30)
                if item is None:
                    raise ConnectionError("a peer failed")
                if k < len(buffers):
                    if buffers[k].shape != item.shape or buffers[k].dtype != item.dtype:
                        raise ProtocolError("a peer sent a tensor of another shape or dtype than was due")
                    buffers[k][...] = item
                    item = buffers[k]
                got[peer].append(item)
                self.view.append(item)
        self.rounds += 1
        return got

    def correlation(self):
        from safelight.errors import ProtocolError

        if self.step not in self.pre:
            raise ProtocolError(f"no preprocessing material for step {self.step}")
        return self.pre[self.step]


def wake_peers(inboxes, p):
    """Party ``p`` is gone: every queue it would have filled gets None (a peer failed)."""
    for q in inboxes:
        q[p].put(None)


class _Recording:
    """A pipe end that also records what its party receives (its view)."""

    def __init__(self, end, view):
        self.end, self.view = end, view

    def send(self, name, array):
        self.end.send(name, array)

    def recv(self, name):
        got = self.end.recv(name)
        self.view.append(got)
        return got


def run_parties(parties, body, on_error):
    """Run ``body(p)`` for every party in ``parties`` on its own thread; a party that fails
    calls ``on_error(p)`` (to wake its peers) and the first error is raised after all end."""
    errors: list = []

    def run(p):
        try:
            body(p)
        except BaseException as exc:
            errors.append(exc)
            on_error(p)

    threads = [threading.Thread(target=run, args=(p,)) for p in parties]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def simulate(
    program: Program,
    inputs: dict,
    materials: list[Material] | None = None,
    dealer_free: bool = False,
    dealt_comparisons: bool = False,
):
    """Run ``program`` on encoded ``inputs``; return (outputs as Shared-like share lists, contexts).
    ``dealer_free``: the parties make their material themselves (triples="he");
    ``dealt_comparisons``: a dealer deals the OT path's correlations (protocols.ot_dealt)."""
    n = program.parties
    wire = Program.from_json(program.to_json())
    plan = Plan(wire.correlations())
    demand = None
    if dealt_comparisons:
        from safelight.protocols import ot_dealt
        from safelight.protocols.nonlinear import ot_path_demand

        demand = ot_path_demand(wire)
        otp_seeds, otp_tensors = ot_dealt.deal(demand)
    if dealer_free:
        materials = [None] * n
    materials = materials if materials is not None else deal(plan, n)
    inboxes = [[queue.Queue() for _ in range(n)] for _ in range(n)]
    ctxs = [SimContext(p, n, inboxes) for p in range(n)]
    from safelight.ot import pipe_pair

    end0, end1 = pipe_pair(timeout=30)
    ctxs[0].pipes[1], ctxs[1].pipes[0] = _Recording(end0, ctxs[0].view), _Recording(end1, ctxs[1].view)
    results: list = [None] * n

    def run(p):
        ctx = ctxs[p]
        if plan and dealer_free:
            from safelight.protocols import dealer_free as source

            materials[p] = source.generate(plan, ctx)
        if plan:
            ctx.pre = expand(plan, p, n, materials[p])
        if demand and p < 2:
            ot_dealt.install(ctx, otp_seeds[p], otp_tensors[p], demand)
        env = {name: enc.payloads[p].materialize() for name, enc in inputs.items()}
        outputs = run_steps(ctx, wire, env).outputs  # the servers' own step loop
        results[p] = {k: sharing_scheme(wire.scheme).result(v) for k, v in outputs.items()}

    def failed(p):
        wake_peers(inboxes, p)
        for end in ctxs[p].pipes.values():
            end.end.close()

    run_parties(range(n), run, failed)
    from safelight.sharing import Shared

    outputs = {name: Shared([results[p][name] for p in range(n)], f) for name, (_, f) in wire.outputs.items()}
    return outputs, ctxs


def view_bytes(ctxs) -> list:
    """Everything each simulated party received, as one byte array per party."""
    return [np.concatenate([v.reshape(-1).view(np.uint8) for v in c.view]) for c in ctxs]


def assert_views_alike(first: list, second: list) -> None:
    """Each party received as many bytes under both secrets, with the same byte frequencies
    (chi-square over 255 degrees of freedom, below ~6 sigma above its mean)."""
    for i, (a, b) in enumerate(zip(first, second)):
        assert a.size == b.size
        observed = np.stack([np.bincount(a, minlength=256), np.bincount(b, minlength=256)])
        expected = observed.sum(axis=0) * observed.sum(axis=1, keepdims=True) / observed.sum()
        chi2 = float(((observed - expected) ** 2 / expected).sum())
        assert chi2 < 255 + 6 * np.sqrt(2 * 255), (i, chi2)
