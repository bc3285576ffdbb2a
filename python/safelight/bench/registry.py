"""The benchmark registry, the timing helpers, and ``safelight bench`` (running and printing).

A benchmark is a function registered under a name; it returns one or more
result dicts built with :func:`result`::

    @register("gc_garble", "garbling throughput vs ...")
    def bench_gc_garble() -> list[dict]:
        ours = best_time(lambda: ...)
        ref = best_time(lambda: ...)
        return [result("gc_garble", gates / ours, "Mgates/s", "higher",
                       ref="...", ref_value=gates / ref)]

Result keys: ``name``, ``value``, ``unit``, ``better`` (``"higher"`` or
``"lower"``) and, where a reference ran, ``ref`` (what it is), ``ref_value`` and
``ratio`` (> 1 means safelight did better), followed by benchmark-specific
figures (``isa``, ``bytes_per_party``, ``rounds``, ...).

No benchmark lives here: they are in the area modules of :mod:`safelight.bench`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from .. import _core
from ..errors import UnsupportedError
from ..runtime.cluster import Cluster
from .link import ShapedLink, shaped_link
from .link import unavailable as link_unavailable

EXIT_USAGE = 2
EXIT_FAILED = 1

GB = 1e9  # throughput figures are decimal GB/s

BenchFunc = Callable[[], "dict[str, Any] | list[dict[str, Any]]"]


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Benchmark:
    name: str
    func: BenchFunc
    description: str
    emits: tuple[str, ...] = field(default=())  # result names besides ``name`` (selectable too)


REGISTRY: dict[str, Benchmark] = {}


def register(name: str, description: str = "", emits: Sequence[str] = ()) -> Callable[[BenchFunc], BenchFunc]:
    """Decorator: register ``func`` as benchmark ``name`` (emitting results ``name`` and ``emits``)."""

    def wrap(func: BenchFunc) -> BenchFunc:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is already registered")
        REGISTRY[name] = Benchmark(name, func, description or (func.__doc__ or "").strip().split("\n")[0], tuple(emits))
        return func

    return wrap


def set_order(names: Sequence[str]) -> None:
    """Put the benchmarks ``names`` first, in that order (the order of the table and of a full run);
    any other registered benchmark follows them in registration order.

    Raises ValueError for a name that is not registered.
    """
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"cannot order benchmarks that are not registered: {', '.join(unknown)}")
    ordered = {n: REGISTRY[n] for n in names}
    ordered.update((n, b) for n, b in REGISTRY.items() if n not in ordered)
    REGISTRY.clear()
    REGISTRY.update(ordered)


def known_names() -> list[str]:
    """Every name ``safelight bench`` accepts: benchmarks and the extra results they emit."""
    names: list[str] = []
    for bench in REGISTRY.values():
        names.append(bench.name)
        names.extend(e for e in bench.emits if e not in names)
    return names


def resolve(names: Iterable[str]) -> list[Benchmark]:
    """Benchmarks to run for ``names`` (all when empty), in registry order, each once.

    Raises KeyError listing the unknown names.
    """
    names = list(names)
    if not names:
        return list(REGISTRY.values())
    by_result = {}
    for bench in REGISTRY.values():
        for n in (bench.name, *bench.emits):
            by_result.setdefault(n, bench)
    unknown = [n for n in names if n not in by_result]
    if unknown:
        raise KeyError(", ".join(unknown))
    wanted = {by_result[n].name for n in names}
    return [b for b in REGISTRY.values() if b.name in wanted]


# ---------------------------------------------------------------------------
# helpers for benchmark functions
# ---------------------------------------------------------------------------
def result(
    name: str,
    value: float,
    unit: str,
    better: str,
    ref: str | None = None,
    ref_value: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One result dict; ``ratio`` is derived so that > 1 always means safelight did better."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    out: dict[str, Any] = {"name": name, "value": float(value), "unit": unit, "better": better}
    if ref is not None and ref_value is not None:
        out["ref"] = ref
        out["ref_value"] = float(ref_value)
        if value and ref_value:  # no ratio (rather than an infinite one, which is not JSON) for a zero
            out["ratio"] = float(value) / float(ref_value) if better == "higher" else float(ref_value) / float(value)
    out.update(extra)
    return out


def job_figures(report: Any, prefix: str = "") -> dict[str, Any]:
    """A secure job's figures from its JobReport, keys prefixed (``two_servers_``, say):
    online, offline and total seconds, bytes each server sent, the dealer's, rounds."""
    return {
        f"{prefix}online_s": report.online_seconds,
        f"{prefix}offline_s": report.offline_seconds,
        f"{prefix}total_s": report.online_seconds + report.offline_seconds,
        f"{prefix}bytes_per_server": [p.bytes_sent for p in report.parties],
        f"{prefix}dealer_bytes": report.dealer.bytes_sent if report.dealer else None,
        f"{prefix}rounds": report.rounds,
    }


def time_once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_time(fn: Callable[[], Any], repeats: int = 7, warmup: int = 1) -> float:
    """Best wall time of ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    return min(time_once(fn) for _ in range(repeats))


def paired_times(
    ours: Callable[[], Any], ref: Callable[[], Any], repeats: int = 7, warmup: int = 1
) -> tuple[list[float], list[float]]:
    """Time ``ours`` and ``ref`` alternately, so that drift on a shared machine hits both alike."""
    for _ in range(warmup):
        ours()
        ref()
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        a.append(time_once(ours))
        b.append(time_once(ref))
    return a, b


def kernel_isa() -> str:
    """The instruction-set path the C++ kernels run on (the ``isa`` figure of a result)."""
    return str(_core.isa())


# ---------------------------------------------------------------------------
# running and printing
# ---------------------------------------------------------------------------
def run(
    names: Iterable[str] = (),
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_error: Callable[[str, BaseException], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the named benchmarks (all when empty) and return their results.

    A benchmark named in ``names`` keeps all its results; one selected only through an
    extra result name it emits (``ring_mul``) keeps just the results asked for.
    A benchmark that raises is reported to ``on_error`` (re-raised without one).
    """
    names = list(names)
    out = []
    for bench in resolve(names):
        # asking for a benchmark by name gives everything it emits; asking for one of
        # its extra results gives just that one
        wanted = None if not names or bench.name in names else set(names) & set(bench.emits)
        try:
            produced = bench.func()
        except Exception as exc:  # one broken benchmark should not hide the others
            if on_error is None:
                raise
            on_error(bench.name, exc)
            continue
        for res in [produced] if isinstance(produced, dict) else list(produced):
            if wanted is None or res["name"] in wanted:
                out.append(res)
                if on_result is not None:
                    on_result(res)
    return out


def _fmt_number(x: float) -> str:
    if x == 0 or 0.01 <= abs(x) < 1e5:
        return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"
    return f"{x:.3g}"


def _fmt_extra(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt_extra(v) for v in value) + "]"
    return str(value)


MAIN_KEYS = ("name", "value", "unit", "better", "ref", "ref_value", "ratio")


def render_table(results: list[dict[str, Any]], title: str = "safelight bench") -> Table:
    table = Table(title=title, show_header=True)
    table.add_column("benchmark")
    table.add_column("safelight", justify="right")
    table.add_column("reference", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("reference is", overflow="fold")
    table.add_column("details", overflow="fold")
    for r in results:
        unit = r["unit"]
        ratio = r.get("ratio")
        ratio_s = "" if ratio is None else f"{ratio:.2f}x"
        if ratio is not None:
            ratio_s = f"[{'green' if ratio >= 1 else 'yellow'}]{ratio_s}[/]"
        details = ", ".join(f"{k}={_fmt_extra(v)}" for k, v in r.items() if k not in MAIN_KEYS)
        table.add_row(
            r["name"],
            f"{_fmt_number(r['value'])} {unit}",
            f"{_fmt_number(r['ref_value'])} {unit}" if "ref_value" in r else "",
            ratio_s,
            r.get("ref", ""),
            details,
        )
    return table


# the shaped link of ``safelight bench --link`` while its benchmarks run (None: loopback)
_active_link: ShapedLink | None = None


def local_cluster(parties: int, **options: Any) -> Cluster:
    """``Cluster.local`` for a benchmark: its two servers on the shaped link of ``safelight
    bench --link`` when one is active, else on loopback."""
    link = _active_link
    if link is None:
        return Cluster.local(parties, **options)
    if parties != 2:
        raise UnsupportedError(f"--link shapes the link between TWO servers; this benchmark runs on {parties}")
    processes = 3 if options.get("dealer") else 2
    return Cluster.local(parties, hosts=link.hosts[:processes], launch=link.launch[:processes], **options)


def link_figures(rounds: int, measured_s: float) -> dict[str, Any]:
    """The active link's figures for a result (nothing on loopback): its rate and RTT, and
    the total with rounds x RTT added where netem could not put the delay on the link."""
    link = _active_link
    if link is None:
        return {"link": "loopback"}
    return {
        "link": link.profile.name,
        "link_rate_gbit_s": link.profile.rate_bits / 1e9,
        "link_rtt_ms": link.profile.rtt_s * 1e3,
        "rtt_in_measurement": link.netem,
        "rtt_added_s": link.added_seconds(rounds),
        "total_with_rtt_s": measured_s + link.added_seconds(rounds),
    }


def main(names: Sequence[str] = (), as_json: bool = False, link: str | None = None) -> int:
    """``safelight bench``: 0 when every benchmark ran (or a ``link`` cannot be made here:
    skipped, with a message), 1 when one failed, 2 for an unknown name."""
    global _active_link
    names = list(names or ())
    try:
        resolve(names)
    except KeyError as exc:
        print(f"safelight: error: unknown benchmark {exc.args[0]}; known: {', '.join(known_names())}", file=sys.stderr)
        return EXIT_USAGE
    if link is not None:
        reason = link_unavailable()
        if reason:
            print(f"safelight: skipped: {reason}", file=sys.stderr)
            return 0
        with shaped_link(link) as made:
            _active_link = made
            try:
                return main(names, as_json)
            finally:
                _active_link = None
    failed: list[str] = []

    def on_error(name: str, exc: BaseException) -> None:
        failed.append(name)
        print(f"safelight: benchmark {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)

    if as_json:

        def emit(res: dict[str, Any]) -> None:
            print(json.dumps(res), flush=True)

        run(names, on_result=emit, on_error=on_error)
    else:
        err = Console(stderr=True)
        results: list[dict[str, Any]] = []
        with err.status("running benchmarks") as status:
            for bench in resolve(names):
                status.update(f"running {bench.name}: {bench.description}")
                sub = [n for n in names if n in (bench.name, *bench.emits)] or [bench.name, *bench.emits]
                results.extend(run(sub, on_error=on_error))
        Console().print(render_table(results))
    return EXIT_FAILED if failed else 0
