"""Private image denoising with the shipped colour FFDNet (two servers, no party sees the image).

The model owner shares FFDNet's weights to the servers once (:func:`upload`, stored under a
model id); the image owner encodes the noisy image(s) and the noise map and runs the
network's Program (:mod:`safelight.nn`): convolutions on shares with Beaver triples (each
weight opened masked once per model), ReLUs by garbled circuits. Several images of one size
go in one job (one batch).

Grey images run as three identical colour channels (FFDNet colour is trained on RGB), with
the noise level given to the network multiplied by sqrt(3): the network was trained on noise
independent across channels, and identical noise in three channels looks sqrt(3) times
weaker to it (on the 10 test photos this lifts grey results by 3-16 dB, to above a Gaussian
filter everywhere); the three output channels are averaged back to one. Odd sizes are padded
by edge replication and cropped back, as the original network does.

Truncation after each convolution uses dealt truncation pairs (exact within one unit): the
two-party local kind fails with probability ~|x|/2^63 per value, about once per 10^8 values
at this network's scale, and a 256x256 image has 1.7 * 10^7 of them per job.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import InputError
from ..models import ffdnet_color_path
from ..models.ffdnet_reference import ffdnet_reference
from ..nn import load_onnx
from ..runtime.client import JobResult, ProgressCallback, StoredTensor
from ..runtime.cluster import Cluster
from ..sharing import decode
from .deprecation import accepts_old_call, renamed_results
from .report import JobReport, TaskResult

MODEL_ID = "ffdnet_color"
SIGMA_MAX = 75.0  # FFDNet was trained for noise levels 0..75 (on the 0..255 scale)
# Width of the ReLU sign circuits: |x| < 2^(RELU_BITS - 1 - 16). The largest pre-activation
# seen on photographs at sigma 15..50 is 39 (first layer; the others stay below 10): 2^8
# leaves a margin of 6x.
RELU_BITS = 25
GREY_SIGMA_FACTOR = 3**0.5  # see the module docstring


def check_sigma(sigma: float) -> float:
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise InputError(f"sigma must be a number, got {sigma!r}") from None
    if not 0 < sigma <= SIGMA_MAX:
        raise InputError(f"sigma must be in (0, {SIGMA_MAX:g}] (noise std on the 0..255 scale), got {sigma:g}")
    return sigma


def as_float_image(image: Any) -> tuple[np.ndarray, bool]:
    """(H, W, 3) float64 in [0, 1] and whether the input was grey. uint8 is scaled by 1/255,
    uint16 by 1/65535, floats must already lie in [0, 1] (noisy values slightly outside are kept)."""
    a = np.asarray(image)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise InputError(f"not an image: dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    grey = a.ndim == 2
    if grey:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]  # alpha is not denoised
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {a.shape}")
    if min(a.shape[:2]) < 2:
        raise InputError(f"image is too small to denoise: {a.shape[:2]}")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(a.dtype, 1.0)
    x = a.astype(np.float64) / scale
    if not np.all(np.isfinite(x)):
        raise InputError("the image holds NaN or infinite values")
    return x, grey


def _even(n: int) -> int:
    return n + n % 2


@lru_cache(maxsize=8)
def denoiser(batch: int, height: int, width: int, parties: int = 2, scheme: str = "additive"):
    """The FFDNet Program for ``batch`` images of an even ``height`` x ``width``."""
    return load_onnx(
        ffdnet_color_path(),
        {"image": (batch, 3, height, width), "noise_map": (batch, 1, height // 2, width // 2)},
        parties=parties,
        relu_bits=RELU_BITS,
        truncation="pair",
        scheme=scheme,
    )


def upload(cluster, model_id: str = MODEL_ID) -> dict[str, StoredTensor]:
    """Model owner: share FFDNet's weights to the cluster's servers under ``model_id``."""
    model = denoiser(1, 2, 2, cluster.parties, cluster.scheme)
    return cluster.upload_model(model_id, model.encode_weights())


def _batch(images: Sequence[Any]) -> tuple[np.ndarray, list[bool], tuple[int, int]]:
    if len(images) == 0:
        raise InputError("no images to denoise")
    floats, greys = zip(*(as_float_image(im) for im in images))
    size = floats[0].shape[:2]
    if any(f.shape[:2] != size for f in floats):
        raise InputError("all images of one job must have the same size; run different sizes separately")
    h, w = size
    x = np.stack([f.transpose(2, 0, 1) for f in floats])  # (N, 3, H, W)
    x = np.pad(x, ((0, 0), (0, 0), (0, _even(h) - h), (0, _even(w) - w)), mode="edge")
    return x, list(greys), size


def _noise_levels(sigma: float, greys: list[bool]) -> np.ndarray:
    """The network's noise-level input per image (0..1 scale)."""
    return np.array([sigma / 255.0 * (GREY_SIGMA_FACTOR if grey else 1.0) for grey in greys])


def _unbatch(y: np.ndarray, greys: list[bool], size: tuple[int, int]) -> list[np.ndarray]:
    h, w = size
    out = []
    for img, grey in zip(y[:, :, :h, :w], greys):
        img = np.clip(img.transpose(1, 2, 0), 0.0, 1.0)
        out.append(img.mean(axis=2) if grey else img)
    return out


@accepts_old_call(
    "safelight.tasks.denoise", ("sigma", "model_id", "on_progress"), inputs_name="images", cluster_first=True
)
def run(
    inputs: np.ndarray | Sequence[np.ndarray],
    *,
    cluster: Cluster | None = None,
    sigma: float,
    model_id: str = MODEL_ID,
    no_dealer: bool = False,
    triples: str | None = None,
    ots: str = "iknp",
    preprocess: str = "auto",
    on_progress: ProgressCallback | None = None,
    servers: int = 2,
    comparisons: str = "auto",
) -> TaskResult:
    """Denoise an image, or several of one size in one job, privately on two or three servers.

    Parameters
    ----------
    inputs : array or sequence of arrays
        One image, or a sequence of images of one size (a batch: one job); each uint8,
        uint16 or float in [0, 1], (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (alpha is not
        denoised).
    cluster : Cluster, optional
        Two servers holding the model under ``model_id`` (:func:`upload`). By default one
        is started on loopback for this call, with a dealer (none with ``no_dealer``), and
        the shipped model is uploaded to it (this user is the model owner too).
    sigma : float
        The noise level, 0 < sigma <= 75 on the 0..255 scale.
    model_id : str
        The id the model was uploaded under.
    no_dealer : bool
        No third party: the servers make their own correlated randomness (``triples="he"``).
    triples, ots, preprocess, comparisons
        Where the job's correlated randomness comes from, when it is made, and how two
        servers compute the ReLUs' signs; see :meth:`safelight.Cluster.run`.
    on_progress : callable(party, step, of, op[, phase]), optional
    servers : {2, 3}
        For the loopback cluster started when ``cluster`` is None: 3 starts three servers
        with replicated sharing (``scheme="rss3"``: honest majority, no dealer, no
        randomness source). A given cluster brings its own scheme.

    Returns
    -------
    TaskResult
        ``outputs``: the denoised image (float64 in [0, 1], shaped like the input), or a list
        of them for a sequence; ``result.images`` is always a list. ``report``: the job's
        :class:`JobReport`.
    """
    sigma = check_sigma(sigma)
    if no_dealer:
        if triples not in (None, "he"):
            raise InputError(
                f"no_dealer makes the servers deal their own randomness (triples='he'); "
                f"it contradicts triples={triples!r}"
            )
        triples = "he"
    one = isinstance(inputs, np.ndarray) and inputs.ndim in (2, 3)
    if not one and not isinstance(inputs, (Sequence, np.ndarray)):
        raise InputError(
            f"denoise takes an image (a numpy array) or a sequence of images, not a {type(inputs).__name__}"
        )
    images = [inputs] if one else list(inputs)
    x, greys, size = _batch(images)
    options = {"triples": triples, "ots": ots, "preprocess": preprocess}
    if (cluster.scheme if cluster is not None else "rss3" if servers == 3 else "additive") == "additive":
        options["comparisons"] = comparisons
    scheme = cluster.scheme if cluster is not None else "rss3" if servers == 3 else "additive"
    if servers not in (2, 3):
        raise InputError(f"servers must be 2 or 3, got {servers!r}")
    if scheme == "rss3" and (no_dealer or triples is not None):
        raise InputError("three servers with replicated sharing need no randomness source: drop triples/no_dealer")
    if cluster is None and scheme == "rss3":
        with Cluster.local(3, scheme="rss3") as local:
            upload(local, model_id)
            y, job = _evaluate(local, x, _noise_levels(sigma, greys), model_id, on_progress, options)
    elif cluster is None:
        with Cluster.local(2, dealer=triples in (None, "dealer")) as local:
            upload(local, model_id)
            y, job = _evaluate(local, x, _noise_levels(sigma, greys), model_id, on_progress, options)
    else:
        y, job = _evaluate(cluster, x, _noise_levels(sigma, greys), model_id, on_progress, options)
    out = _unbatch(y, greys, size)
    return TaskResult(out[0] if one else out, JobReport.from_job(job))


def _evaluate(
    cluster: Cluster,
    x: np.ndarray,
    levels: np.ndarray,
    model_id: str,
    on_progress: ProgressCallback | None,
    options: dict[str, Any],
) -> tuple[np.ndarray, JobResult]:
    """Encode the batch ``x`` (N, 3, H, W) and its noise levels, run FFDNet on the stored
    weights, decode: (N, 3, H, W) float64 and the job."""
    n, _, h, w = x.shape
    model = denoiser(n, h, w, cluster.parties, cluster.scheme)
    noise_map = np.broadcast_to(levels[:, None, None, None], (n, 1, h // 2, w // 2))
    inputs: dict[str, Any] = model.encode_inputs({"image": x, "noise_map": noise_map})
    for name, weight in model.weights.items():
        inputs[name] = StoredTensor(
            model_id, name, weight.shape, cluster.parties, model.program.frac_bits, cluster.scheme
        )
    job = cluster.run(model.program, inputs, on_progress=on_progress, **options)
    return decode(job.outputs[model.outputs[0]], np.float64), job


__getattr__ = renamed_results("safelight.tasks.denoise", {"Result": TaskResult})


@lru_cache(maxsize=1)
def onnx_weights() -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(ffdnet_color_path())).graph
    return {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}


def plaintext(images: Sequence[Any], sigma: float) -> list[np.ndarray]:
    """The same network in float64 on the clear images (the reference the private result is
    compared with)."""
    sigma = check_sigma(sigma)
    x, greys, size = _batch(images)
    y = ffdnet_reference(onnx_weights(), x, _noise_levels(sigma, greys), onnx_layout=True)
    return _unbatch(np.asarray(y, dtype=np.float64), greys, size)


def add_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """A clean image (uint8 or float in [0, 1]) plus Gaussian noise of std sigma/255 (not clipped)."""
    x, grey = as_float_image(image)
    noisy = x + np.random.default_rng(seed).normal(0.0, check_sigma(sigma) / 255.0, x.shape)
    return noisy[:, :, 0] if grey else noisy


def psnr(result: np.ndarray, clean: np.ndarray) -> float:
    """PSNR in dB against the clean image, both on the [0, 1] scale."""
    ref, _ = as_float_image(clean)
    got, _ = as_float_image(result)
    mse = float(np.mean((np.clip(got, 0, 1) - ref) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def ssim(result: np.ndarray, clean: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    ref, _ = as_float_image(clean)
    got, _ = as_float_image(result)
    return float(structural_similarity(np.clip(got, 0, 1), ref, channel_axis=2, data_range=1.0))
