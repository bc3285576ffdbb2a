"""Protocols on secret shares: correlated randomness, Beaver products, truncation.

Importing this package registers its interactive ops in the runtime's op table.
"""

from . import beaver, he_ops, he_slots, nonlinear, replicated, truncation  # noqa: F401  (registration side effects)
