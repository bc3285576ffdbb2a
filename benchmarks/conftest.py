"""Shared set-up for the pytest-benchmark suite (``python -m pytest benchmarks --benchmark-only``).

Every file times safelight and its reference side by side: one test each, in the
same ``group``, so pytest-benchmark prints them next to each other. The workloads
and helpers come from :mod:`safelight.bench`, the same code ``safelight bench`` runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:
    import safelight  # noqa: F401
except ImportError:  # in-tree run without PYTHONPATH=python
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

GB = 1e9


def _record_throughput(benchmark, nbytes: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable
        return
    benchmark.extra_info["bytes"] = nbytes
    benchmark.extra_info["GB/s (best)"] = round(nbytes / stats.stats.min / GB, 3)


@pytest.fixture
def record_throughput():
    """``record_throughput(benchmark, nbytes)``: add GB/s of the best round to the extra info."""
    return _record_throughput
