"""safelight: privacy-preserving image processing in the cloud.

Encode an image on your machine, let non-colluding servers evaluate a Program
on secret shares, decode the result locally::

    import safelight
    from safelight.tasks import filter as private_filter

    with safelight.Cluster.local(2) as cluster:
        out, report = private_filter.run(image, "gaussian:2", cluster)

Threat model: semi-honest, non-colluding servers (see the README).
"""

from __future__ import annotations

from . import _core, nn, protocols  # noqa: F401  (protocols registers the interactive ops)
from .errors import SafelightError
from .runtime.cluster import Cluster
from .runtime.program import Program
from .sharing import Encoded, Shared, decode, encode

__version__ = "0.1.0"


def isa() -> str:
    """The active instruction-set path of the C++ engines: 'scalar', 'avx2' or 'avx512'.

    Chosen at import from CPUID; the environment variable SAFELIGHT_ISA forces one.
    """
    return _core.isa()


def available_isas() -> list[str]:
    """Instruction-set paths this CPU can run."""
    return list(_core.available_isas())


__all__ = [
    "Cluster",
    "Encoded",
    "Program",
    "SafelightError",
    "Shared",
    "available_isas",
    "decode",
    "encode",
    "isa",
]
