"""The step loop: one party runs a Program's ops in order.

Shared by the party server (``runtime.server``) and the tests' in-process simulator
(``tests/protocol_sim.py``), so that what the tests exercise is what the servers run.

Each op's input-independent work (expanding its correlated randomness, garbling) runs
either for every step before the online phase (``ctx.per_op`` false) or just before the
op (``per_op``: a large network then holds one layer's material at a time). A sliced op
may also prepare slices inside its run and report those seconds in ``ctx.offline_in_op``.
A tensor is freed after the last step that reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..program.ops import OPS, Context, sharing_scheme
from ..program.program import Program, Step
from .admission import last_uses


@dataclass
class StepRecord:
    """One step's cost on this party (bytes and rounds on the peer links)."""

    op: str
    seconds: float  # online
    offline_seconds: float
    bytes_sent: int
    bytes_received: int
    rounds: int


@dataclass
class Run:
    outputs: dict[str, np.ndarray]  # output name -> this party's share
    offline_seconds: float = 0.0
    online_seconds: float = 0.0
    # key agreement and waiting at the barrier for the other parties (their inputs, their
    # preprocessing): neither preprocessing work of this party nor online work
    setup_seconds: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)


def run_steps(
    ctx: Context,
    program: Program,
    env: dict[str, np.ndarray],
    *,
    barrier: Callable[[], None] | None = None,
    on_offline_step: Callable[[int, Step], None] | None = None,
    on_step: Callable[[int, StepRecord], None] | None = None,
) -> Run:
    """Run ``program`` on this party's input shares ``env`` (consumed: tensors are freed as
    they die). ``barrier`` synchronises the parties before the online phase and, with
    per-op preprocessing, before each op that did offline work (so that online times do
    not include a peer still preparing). The callbacks report progress."""
    last = last_uses(program)
    scheme = sharing_scheme(program.scheme)
    pre = getattr(ctx, "pre", {})
    links = ctx.links

    def prepare(i: int, step: Step) -> float:
        started = time.perf_counter()
        if i in pre:
            pre[i]  # expands this step's arrays (or makes them, dealer-free)
        if OPS[step.op].offline is not None and scheme.offline_phase:
            ctx.step = i
            OPS[step.op].offline(ctx, i, [program.shape_of(x) for x in step.inputs], step.attrs)
            if ctx.per_op and barrier is not None:
                barrier()  # both sides start the op together
        if on_offline_step is not None:
            on_offline_step(i, step)
        return time.perf_counter() - started

    started = time.perf_counter()
    interactive = any(OPS[step.op].interactive for step in program.steps)
    if interactive:
        scheme.start(ctx)  # e.g. the replicated scheme's key agreement
    setup = time.perf_counter() - started
    nothing_to_prepare = not pre and not scheme.offline_phase  # e.g. replicated sharing
    step_offline = [
        0.0 if ctx.per_op or nothing_to_prepare else prepare(i, step) for i, step in enumerate(program.steps)
    ]
    waited = time.perf_counter()
    if barrier is not None and interactive:
        barrier()  # the parties start the online phase together
    run = Run({}, offline_seconds=sum(step_offline), setup_seconds=setup + time.perf_counter() - waited)
    for i, step in enumerate(program.steps):
        if ctx.per_op and not nothing_to_prepare:
            step_offline[i] = prepare(i, step)
            run.offline_seconds += step_offline[i]
        ctx.step = i
        ctx.offline_in_op = 0.0
        t0, s0, r0, n0 = time.perf_counter(), _sent(links), _received(links), links.rounds
        env[step.output] = scheme.run(ctx, OPS[step.op], [env[x] for x in step.inputs], step.attrs)
        for name in set(step.inputs):  # free what no later step reads
            if last.get(name) == i:
                del env[name]
        inline = ctx.offline_in_op  # preprocessing of sliced ops, counted as offline
        seconds = time.perf_counter() - t0 - inline
        record = StepRecord(
            step.op, seconds, step_offline[i] + inline, _sent(links) - s0, _received(links) - r0, links.rounds - n0
        )
        run.offline_seconds += inline
        run.online_seconds += seconds
        run.steps.append(record)
        if hasattr(pre, "pop"):
            pre.pop(i, None)  # each correlation is used exactly once
        if on_step is not None:
            on_step(i, record)
    run.outputs = {name: env[tensor] for name, (tensor, _) in program.outputs.items()}
    return run


def _sent(links: Any) -> int:
    return int(getattr(links, "bytes_sent", 0))


def _received(links: Any) -> int:
    return int(getattr(links, "bytes_received", 0))
