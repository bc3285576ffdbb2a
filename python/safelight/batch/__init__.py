"""Batch mode (issue 19): every image of a folder as its own private job, scheduled on Dask.

The Dask cluster lives in the client's trust domain only: its workers see what the client
sees (the images and the decoded results) and never host a server of any party. A *lane*
is one set of servers (one per party, and a dealer where the task needs one): the embedded
default starts N lanes on loopback; ``--cluster cluster.toml`` names the lanes of server
pools that already run (:mod:`safelight.net.config`). Each lane runs one job at a time.

- :mod:`.lanes`: the lanes, started here or read from cluster.toml;
- :mod:`.jobs`: one image's job for each task (what a Dask worker runs);
- :mod:`.manifest`: what is done, so a rerun skips it;
- :mod:`.runner`: the folder walk, the Dask scheduling, progress and the summary.
"""

from .runner import BatchSummary, run_batch

__all__ = ["BatchSummary", "run_batch"]
