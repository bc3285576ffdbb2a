"""Where a task's Program runs: the caller's cluster, or servers started on loopback for
the job (two with a dealer, two making their own randomness, or three with rss3)."""

from __future__ import annotations

from ..program.program import Program
from ..runtime.cluster import Cluster


def parties_and_scheme(cluster: Cluster | None, servers: int) -> tuple[int, str]:
    """(parties, sharing scheme) of a job: the cluster's, or ``servers`` local ones (3: rss3)."""
    if cluster is not None:
        return cluster.parties, cluster.scheme
    return (3, "rss3") if servers == 3 else (2, "additive")


def run_program(
    program: Program, inputs: dict, cluster: Cluster | None, scheme: str, no_dealer: bool, comparisons: str = "auto"
):
    """The job's result on ``cluster``, or on local servers (``no_dealer``: two servers
    make the correlated randomness themselves with HE). ``comparisons``: how two servers
    compute signs (see :meth:`Cluster.run`); three servers have one way only."""
    two = {} if scheme == "rss3" else {"comparisons": comparisons}
    if cluster is not None:
        return cluster.run(program, inputs, **two)
    if scheme == "rss3":
        with Cluster.local(3, scheme="rss3") as local:
            return local.run(program, inputs)
    with Cluster.local(2, dealer=not no_dealer) as local:
        return local.run(program, inputs, triples="he" if no_dealer else None, **two)
