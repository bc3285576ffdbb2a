"""What every task returns: its decoded outputs and one report of the job that made them.

Every task follows Encode -> Evaluate -> Decode and has the same entry point,
``run(inputs, *, cluster=None, **options) -> TaskResult``:

* ``outputs``: the results, decoded on this machine (the filtered image; the denoised
  image, or a list for a list of images);
* ``report``: a :class:`JobReport`, the same accounting for every task: wall, online and
  offline seconds, the bytes each server sent and received, the rounds, one row per step
  of the Program, and where the correlated randomness came from;
* ``extras``: the few figures only one task has (the filters' float ``values``, the HE
  filters' client timings and ciphertext sizes), under the names their 0.1 results used;
  they read as attributes too (``result.values``).

``JobReport.summary()`` is the record ``--json`` prints (the fields of
:meth:`safelight.runtime.client.JobResult.summary`), so a command's JSON does not depend on
which task produced it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..protocols.sources import SOURCES
from ..runtime.client import JobResult, PartyStats, job_summary

#: Where a job's correlated randomness (Beaver triples, truncation pairs, garbled-circuit
#: OTs) came from, as :attr:`JobReport.randomness` names it.
RANDOMNESS = {
    "dealer": "the cluster's dealer process (trusted not to collude with a server)",
    "client": "this client dealt it (right only when it owns every secret of the job)",
    "he": "the two servers made it themselves (lattice HE and oblivious transfer), no third party",
    "client key": "none needed: one server computed on ciphertexts under a key only this client holds",
    "replicated": "none needed: three servers with replicated shares (honest majority); the offline phase "
    "is only their key agreement (one round, 16 bytes per server)",
    None: "none needed: the job had no interactive op",
}


def human_bytes(n: float) -> str:
    """A byte count as people read it: 512 B, 3.4 MB, 1.2 GB (decimal units)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


@dataclass(frozen=True)
class PartyReport:
    """One server's (or the dealer's) share of a job: its seconds (total, online, offline),
    the bytes it sent and received on all its links (client, peers, dealer) and its rounds
    with the other servers."""

    party: int  # -1: the dealer
    seconds: float
    online_seconds: float
    offline_seconds: float
    bytes_sent: int
    bytes_received: int
    rounds: int

    @classmethod
    def from_stats(cls, stats: PartyStats) -> PartyReport:
        return cls(
            stats.party,
            stats.seconds,
            stats.online_seconds,
            stats.offline_seconds,
            stats.bytes_sent,
            stats.bytes_received,
            stats.rounds,
        )


@dataclass(frozen=True)
class JobReport:
    """The accounting of one task's job, the same for every task.

    Attributes
    ----------
    wall_seconds : float
        Client-measured time of the job, from the first connection to the last result (for
        the in-process OpenFHE filter: the server step).
    online_seconds, offline_seconds : float
        The slowest server's online phase; dealing (dealer or client) plus the slowest
        server's preprocessing.
    parties : tuple of PartyReport
        Per server: seconds, bytes sent and received, rounds.
    upload_bytes, download_bytes : int
        Everything the client sent to and received from the servers.
    rounds : int
        Communication rounds between the servers (the most any one took; 0 for one server).
    randomness : str or None
        Where the correlated randomness came from, a key of :data:`RANDOMNESS`.
    steps : tuple of dict
        One row per step (layer) of the Program: ``step``, ``op``, ``seconds``,
        ``offline_seconds``, ``rounds``, ``bytes_sent`` (per server, on peer links).
    ops : dict
        Per op: ``calls``, ``seconds``, ``rounds``, ``bytes_sent`` / ``bytes_received`` per server.
    dealer : PartyReport or None
        The dealer's share, when the cluster's dealer dealt.
    client_seconds : dict of str -> float
        Client work outside the job (the HE filters: ``keygen``, ``encrypt``, ``decrypt``).
    setup_seconds : float
        Before the online phase, the slowest server's key agreement with its peers (three
        servers) and waiting for the others' inputs or preprocessing: neither online nor
        offline work.
    job : JobResult or None
        The runtime's own result (result shares and raw statistics); None for the OpenFHE filter.
    """

    wall_seconds: float
    online_seconds: float
    offline_seconds: float
    parties: tuple[PartyReport, ...]
    upload_bytes: int
    download_bytes: int
    rounds: int
    randomness: str | None
    steps: tuple[dict[str, Any], ...] = ()
    ops: dict[str, dict[str, Any]] = field(default_factory=dict)
    dealer: PartyReport | None = None
    client_seconds: dict[str, float] = field(default_factory=dict)
    setup_seconds: float = 0.0
    job: JobResult | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_job(
        cls, job: JobResult, randomness: str | None = None, client_seconds: Mapping[str, float] | None = None
    ) -> JobReport:
        """The report of a job run by :meth:`safelight.Cluster.run`; ``randomness`` defaults to
        the job's triple source (``"client key"`` for the one-server HE filter)."""
        return cls(
            wall_seconds=job.wall_seconds,
            online_seconds=job.online_seconds,
            offline_seconds=job.offline_seconds,
            setup_seconds=job.setup_seconds,
            parties=tuple(PartyReport.from_stats(p) for p in job.parties),
            upload_bytes=job.upload_bytes,
            download_bytes=job.download_bytes,
            rounds=job.rounds,
            randomness=randomness or job.triples or ("replicated" if job.scheme == "rss3" else None),
            steps=tuple(job.steps()),
            ops=job.ops(),
            dealer=None if job.dealer is None else PartyReport.from_stats(job.dealer),
            client_seconds=dict(client_seconds or {}),
            job=job,
        )

    @property
    def triples(self) -> str | None:
        """The triple source of a job on shares ("dealer", "client", "he"), else None."""
        return self.randomness if self.randomness in SOURCES else None

    def summary(self) -> dict[str, Any]:
        """The job as one JSON-ready record: the fields of ``JobResult.summary()`` (what
        ``--json`` prints, with ``output`` and ``details`` added by the command)."""
        return job_summary(self, {name: dict(row) for name, row in self.ops.items()})


@dataclass(frozen=True, eq=False)
class TaskResult:
    """A task's decoded outputs, its :class:`JobReport` and its own extra figures.

    Attributes
    ----------
    outputs : ndarray or list of ndarray
        The filters: the filtered image (uint16 for a uint16 image, else uint8; edge kernels
        as ``|response|``). Denoising: the denoised image (float64 in [0, 1], shaped like the
        input), or a list of them for a list of images.
    report : JobReport
    extras : dict
        Figures of one task only, also readable as attributes: the filters' ``values``
        (float64, the image's shape, image scaled to [0, 1], not clipped), the HE filters'
        ``seconds``, ciphertext bytes and parameters.
    """

    outputs: Any
    report: JobReport
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def images(self) -> list[np.ndarray]:
        """The output image(s) as a list."""
        return [self.outputs] if isinstance(self.outputs, np.ndarray) else list(self.outputs)

    @property
    def image(self) -> np.ndarray:
        """The output image of a one-image task."""
        images = self.images
        if len(images) != 1:
            raise UnsupportedError(f"this result holds {len(images)} images; read result.images")
        return images[0]

    @property
    def job(self) -> JobResult | None:
        """The runtime's result (as 0.1 returned it); prefer :attr:`report`."""
        return self.report.job

    def __getattr__(self, name: str) -> Any:  # only called when normal lookup fails: the extras
        if name.startswith("__") or name == "extras":
            raise AttributeError(name)
        try:
            return self.extras[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r} (outputs, report, images, "
                f"image, job, or one of its extras: {sorted(self.extras)})"
            ) from None


__all__ = ["RANDOMNESS", "JobReport", "PartyReport", "TaskResult"]
