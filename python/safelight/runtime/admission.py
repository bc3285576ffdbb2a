"""Admission control: a server decides from a Program's shapes, before it receives a
single tensor, how much memory a job needs, and runs only the jobs that fit its budget.

The estimate is deliberately conservative (it is a bound used to refuse, not a
forecast): every tensor is a uint64 array; a tensor stays alive from the step
that makes it to the last step that reads it (the server frees it then); an
interactive step holds a few more arrays of its operands' size while it runs
(masked operands, openings, products); correlated randomness and garbled material
are held for every step at once when preprocessing runs ahead, for one step at a
time with ``per_op``; the step being prepared also holds its OT extension matrices
and, without a dealer, its HE and OT working set. The last party receives every
correction tensor of a dealt job (the derived components) before the first step. The constants are calibrated on
FFDNet denoising (peak resident memory of the larger party, 32x32 to 512x512, with
and without a dealer: the estimate is 15-80 % above every measured peak; see
benchmarks/README.md).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from ..errors import ResourceLimitError
from ..net.config import MIB, ServerLimits
from ..ot.silent import MAIN
from ..program.ops import OPS, sharing_scheme
from ..program.program import Program
from ..protocols import ot_compare
from ..protocols.preprocessing import Plan

WORD = 8
INTERACTIVE_WORK = 4  # arrays of an interactive step's operand size held while it runs
GC_BYTES_PER_OT = 64  # garbled material kept per random OT (a label pair per input bit, ~one AND table)
OT_WORK_PER_OT = 48  # OT extension matrices while one step's OTs are made
# dealer-free generation of one step: chunked OT products and truncation pairs
# (ot_correlations.CHUNK_OTS, TRUNC_CHUNK), plus HE or OT results of a few times its
# material, and the silent OT buffers: the products' endpoint and the comparisons' link
DEALER_FREE_WORKING_SET = 256 * MIB + 16 * (MAIN.n + 2 * MAIN.base) + ot_compare.LINK_BYTES
DEALER_FREE_RESULTS = 4
JOB_OVERHEAD = 32 * MIB  # per job: links, Python objects, the step loop
MARGIN = 1.1


def _elements(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def last_uses(program: Program) -> dict[str, int]:
    """Tensor name -> index of the last step that reads it (outputs: past the end)."""
    last: dict[str, int] = {}
    for i, step in enumerate(program.steps):
        for name in step.inputs:
            last[name] = i
    for tensor, _ in program.outputs.values():
        last[tensor] = len(program.steps)
    return last


def correlation_bytes(plan: Plan, derived_only: bool = False) -> dict[int, int]:
    """Bytes of correlated randomness per step (random and derived components, or only the
    derived ones: what a dealer sends the last party as corrections)."""
    per_step: dict[int, int] = {}
    for corr in plan.correlations:
        shapes = [*([] if derived_only else corr.random.values()), *corr.derived.values()]
        per_step[corr.step] = per_step.get(corr.step, 0) + WORD * sum(_elements(tuple(s)) for s in shapes)
    return per_step


def job_memory(
    program: Program,
    plan: Plan,
    per_op: bool,
    dealer_free: bool = False,
    ots_per_step: dict[int, int] | None = None,
    corrections: bool = False,
    dealt_comparisons: int = 0,
) -> int:
    """Bytes a party needs for ``program`` at its peak (see the module docstring);
    ``corrections``: this party receives the dealt corrections (the last party);
    ``dealt_comparisons``: bytes of the OT path's correlations a dealer deals it."""
    last = last_uses(program)
    word = WORD * sharing_scheme(program.scheme).copies
    size = {name: word * _elements(shape) for name, shape in program.inputs.items()}
    live = sum(size.values())
    peak = live
    for i, step in enumerate(program.steps):
        out = word * _elements(program.shape_of(step.output))
        operands = sum(size[x] for x in step.inputs)
        work = INTERACTIVE_WORK * (operands + out) if OPS[step.op].interactive else out
        peak = max(peak, live + work)
        size[step.output] = out
        live += out
        for name in set(step.inputs):
            if last.get(name) == i:
                live -= size[name]
        if last.get(step.output, -1) < i:  # never read again: dropped at once
            live -= out
    pre = correlation_bytes(plan)
    ots = ots_per_step or {}
    held = [pre.get(i, 0) + GC_BYTES_PER_OT * ots.get(i, 0) for i in range(len(program.steps))]
    material = max(held, default=0) if per_op else sum(held)
    if corrections:
        material += sum(correlation_bytes(plan, derived_only=True).values())
    material += dealt_comparisons
    transient = OT_WORK_PER_OT * max(ots.values(), default=0)
    ot_signs = [step for step in program.steps if step.attrs.get("sign") == "ot"]
    if ot_signs:  # the silent OT link's buffers, and the largest comparison's working set
        largest = max(_elements(program.shape_of(step.inputs[0])) for step in ot_signs)
        transient += ot_compare.LINK_BYTES + ot_compare.WORK_BYTES_PER_VALUE * largest
    if dealer_free:
        transient += DEALER_FREE_WORKING_SET + DEALER_FREE_RESULTS * max(pre.values(), default=0)
    return int(MARGIN * (JOB_OVERHEAD + peak + material + transient))


class JobAdmission:
    """Runs jobs within a memory budget and a job count; the others wait, then are refused."""

    def __init__(self, limits: ServerLimits, name: str) -> None:
        self.budget = limits.memory_bytes
        self.max_jobs = limits.max_jobs
        self.name = name
        self._cond = threading.Condition()
        self.running = 0
        self.reserved = 0

    @contextmanager
    def admit(self, need: int, wait: float) -> Iterator[None]:
        """Hold ``need`` bytes of the budget for the duration of a job, waiting up to
        ``wait`` seconds for room; a clear ResourceLimitError when there is none."""
        if need > self.budget:
            raise ResourceLimitError(
                f"{self.name}: this job needs about {need / 2**30:.2f} GiB, more than this server's memory "
                f"budget of {self.budget / 2**30:.2f} GiB; split it (smaller images or batches) or raise "
                "limits.memory_budget_mib in the server's cluster.toml"
            )
        deadline = time.monotonic() + wait
        with self._cond:
            while self.running >= self.max_jobs or self.reserved + need > self.budget:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ResourceLimitError(
                        f"{self.name} is busy: {self.running} job(s) hold {self.reserved / 2**30:.2f} of its "
                        f"{self.budget / 2**30:.2f} GiB (at most {self.max_jobs} jobs at once) and this job needs "
                        f"{need / 2**30:.2f} GiB; retry later"
                    )
                self._cond.wait(left)
            self.running += 1
            self.reserved += need
        try:
            yield
        finally:
            with self._cond:
                self.running -= 1
                self.reserved -= need
                idle = self.running == 0
                self._cond.notify_all()
            if idle:
                give_back_memory()


def give_back_memory() -> None:
    """Return the heap's free pages to the OS (glibc ``malloc_trim``): a server keeps freed
    buffers while jobs run (see ``keep_freed_memory``) and gives them back when idle."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
