"""Randomness sources: where a job's correlated randomness comes from.

One class per source, one file each (``client.py``, ``dealer.py``, ``he.py``), registered
by name (``Cluster.run(..., triples=name)``) against the interface in ``base.py``. Every
source produces the same :class:`~safelight.protocols.preprocessing.Material` for the same
Plan, so the online phase does not depend on it. Neither the client nor the server names a
source: adding one is adding a file here and importing it below.
"""

from . import client, dealer, he  # noqa: F401  (each registers its source)
from .base import SOURCES, RandomnessSource, randomness_source, register_source, seed_from, source_of

__all__ = ["SOURCES", "RandomnessSource", "randomness_source", "register_source", "seed_from", "source_of"]
