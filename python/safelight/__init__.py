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

from collections.abc import Sequence

import numpy as np

from . import _core, nn, protocols  # noqa: F401  (protocols registers the interactive ops)
from .errors import SafelightError
from .program.program import Program
from .runtime.client import ProgressCallback
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


def filter(
    image: np.ndarray,
    *,
    cluster: Cluster | None = None,
    kernel: str | np.ndarray,
    padding: str = "reflect",
    private_kernel: bool = False,
    no_dealer: bool = False,
    on_progress: ProgressCallback | None = None,
) -> TaskResult:
    """Filter an image privately on two servers that hold only secret shares of it.

    ``outputs`` is the filtered image (uint16 for uint16, else uint8), ``result.values`` the
    float64 result in [0, 1] before rendering. The options are those of
    :func:`safelight.tasks.filter.run`: ``kernel`` a spec (``gaussian:SIGMA | box:K | sharpen
    | sobel-x | sobel-y``) or a 2-D array, ``padding``, ``private_kernel`` (the kernel secret
    too; needs a dealer unless ``no_dealer``). Without ``cluster`` two servers are started on
    loopback for this call.
    """
    return _filter_task.run(
        image,
        cluster=cluster,
        kernel=kernel,
        padding=padding,
        private_kernel=private_kernel,
        no_dealer=no_dealer,
        on_progress=on_progress,
    )


def denoise(
    images: np.ndarray | Sequence[np.ndarray],
    *,
    cluster: Cluster | None = None,
    sigma: float,
    model_id: str = _denoise_task.MODEL_ID,
    no_dealer: bool = False,
    triples: str | None = None,
    ots: str = "iknp",
    preprocess: str = "auto",
    on_progress: ProgressCallback | None = None,
) -> TaskResult:
    """Denoise an image (or a list of images of one size, in one job) privately with FFDNet on
    two servers; ``sigma`` is the noise level on the 0..255 scale (0 < sigma <= 75).

    ``outputs`` is the denoised image (float64 in [0, 1], shaped like the input), or a list for
    a list. The options are those of :func:`safelight.tasks.denoise.run`. Without ``cluster``
    two servers and a dealer (none with ``no_dealer``) are started on loopback for this call
    and the shipped model is shared to them; a given cluster must hold the model under
    ``model_id`` (``safelight model upload``).
    """
    return _denoise_task.run(
        images,
        cluster=cluster,
        sigma=sigma,
        model_id=model_id,
        no_dealer=no_dealer,
        triples=triples,
        ots=ots,
        preprocess=preprocess,
        on_progress=on_progress,
    )


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
