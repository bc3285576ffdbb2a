"""safelight: privacy-preserving image processing in the cloud.

Encode an image on your machine, let non-colluding servers evaluate a Program
on secret shares, decode the result locally. Every task is
``run(inputs, *, cluster=None, **options) -> TaskResult`` (:mod:`safelight.tasks`); the two
main ones are here::

    import safelight

    result = safelight.filter(image, kernel="gaussian:2")  # two servers spawned on loopback
    result.outputs                   # the filtered image, decoded here
    result.report.summary()          # seconds, bytes and rounds per server, randomness source

    with safelight.Cluster.from_config("cluster.toml") as cluster:  # servers holding the model
        clean = safelight.denoise([noisy_a, noisy_b], cluster=cluster, sigma=25).outputs

Threat model: semi-honest, non-colluding servers (see the README).
"""

from __future__ import annotations

from . import _core, nn, protocols  # noqa: F401  (protocols registers the interactive ops)
from .errors import SafelightError
from .program.program import Program
from .runtime.cluster import Cluster
from .sharing import Encoded, Shared, decode, encode
from .tasks import denoise as _denoise_task
from .tasks import filter as _filter_task
from .tasks.report import JobReport, TaskResult
from .version import __version__ as __version__


def isa() -> str:
    """The active instruction-set path of the C++ engines: 'scalar', 'avx2' or 'avx512'.

    Chosen at import from CPUID; the environment variable SAFELIGHT_ISA forces one.
    """
    return _core.isa()


def available_isas() -> list[str]:
    """Instruction-set paths this CPU can run."""
    return list(_core.available_isas())


# The tasks at the top: safelight.filter(image, kernel=...) and safelight.denoise(images,
# sigma=...) are the task modules' run functions (same signature and docstring).
filter = _filter_task.run
denoise = _denoise_task.run


__all__ = [
    "Cluster",
    "Encoded",
    "JobReport",
    "Program",
    "SafelightError",
    "Shared",
    "TaskResult",
    "available_isas",
    "decode",
    "denoise",
    "encode",
    "filter",
    "isa",
]
