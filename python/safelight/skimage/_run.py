"""Running one Program for the drop-in functions: on the caller's cluster or on three
local servers started for the call."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..program.program import Program
from ..runtime.cluster import Cluster
from ..sharing import decode, encode


def run(program: Program, image: np.ndarray, cluster: Cluster | None, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Share ``image`` times ``scale``, run ``program`` and decode every output."""
    inputs: dict[str, Any] = {"image": encode(image * scale, program.parties, scheme=program.scheme)}
    if cluster is None:
        with Cluster.local(3, scheme="rss3") as local:
            job = local.run(program, inputs)
    else:
        job = cluster.run(program, inputs)
    return {name: decode(share) for name, share in job.outputs.items()}


def scheme_of(cluster: Cluster | None) -> tuple[int, str]:
    if cluster is None:
        return 3, "rss3"
    return cluster.parties, cluster.scheme
