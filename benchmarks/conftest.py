"""Shared set-up for the pytest-benchmark suite (``python -m pytest benchmarks --benchmark-only``).

Every file times safelight and its reference side by side: one test each, in the
same ``group``, so pytest-benchmark prints them next to each other. The workloads
and helpers come from :mod:`safelight.bench`, the same code ``safelight bench`` runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import safelight  # noqa: F401
except ImportError:  # in-tree run without PYTHONPATH=python
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

GB = 1e9


def record_throughput(benchmark, nbytes: int) -> None:
    """Add GB/s (from the best round) to the benchmark's extra info, when it has stats."""
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable
        return
    benchmark.extra_info["bytes"] = nbytes
    benchmark.extra_info["GB/s (best)"] = round(nbytes / stats.stats.min / GB, 3)
