"""Lanes: independent server sets that each run one job at a time.

The embedded default starts ``count`` lanes on loopback (``Cluster.local`` each, with a
dealer where the task needs one); ``cluster.toml`` names the lanes of server pools that
already run (a ``[[party]]`` with ``hosts`` / ``lanes``, :mod:`safelight.net.config`). A
:class:`Lane` is a plain, picklable description: a Dask worker makes its own connection
from it, with the client's certificate from the cluster's certificate folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..net.certs import CLIENT_NAME, Identity
from ..net.config import ClusterConfig
from ..runtime.cluster import Cluster


@dataclass(frozen=True)
class Lane:
    index: int
    config: ClusterConfig  # one lane: one address per party (and the dealer's)
    scheme: str  # "additive" or "rss3"

    def cluster(self) -> Cluster:
        return Cluster(self.config, Identity.from_dir(self.config.certs, CLIENT_NAME), scheme=self.scheme)

    def describe(self) -> str:
        return f"lane {self.index} (" + ", ".join(f"{a.host}:{a.port}" for a in self.config.parties) + ")"


def lanes_from_config(path: str | Path, parties: int, scheme: str, dealer: bool) -> list[Lane]:
    config = ClusterConfig.load(path)
    if config.n != parties:
        raise ConfigError(f"{path} has {config.n} servers per lane; this task needs {parties}")
    if dealer and config.dealer is None:
        raise ConfigError(f"{path} has no [dealer]; this task needs one (or run it with --no-dealer)")
    return [Lane(i, config.lane(i), scheme) for i in range(config.lanes)]


@contextlib.contextmanager
def local_lanes(count: int, parties: int, scheme: str, dealer: bool) -> Iterator[tuple[list[Lane], list[Cluster]]]:
    """``count`` lanes of servers on loopback, stopped on exit."""
    if count < 1:
        raise ConfigError(f"--lanes must be at least 1, got {count}")
    with contextlib.ExitStack() as stack:
        clusters = [stack.enter_context(Cluster.local(parties, dealer=dealer, scheme=scheme)) for _ in range(count)]
        yield [Lane(i, c.config, scheme) for i, c in enumerate(clusters)], clusters
