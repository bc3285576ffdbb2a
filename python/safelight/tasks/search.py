"""Private content-based image search on three servers (replicated sharing, ``rss3``).

Roles. The *model owner* shares the shipped EfficientNet-Lite0 once (:func:`upload`); the
*data owner* shares its photos' features to the three servers (:func:`index`), keeping
the names in its encrypted catalog (:mod:`.search_catalog`); a *query user* shares one
image and gets the ranked result, decoded only on its machine (:func:`query`).

Features are the network's 1280-d global-average-pooled head, L2-normalised. Either the
servers extract them (``features="private"``: the photo goes up as shares, the network
runs on shares, the normalisation uses the secure inverse square root, and the features
stay on the servers as shares, so that neither the network nor the features reach the
data owner) or the data owner computes them with onnxruntime (``features="local"``, for an
owner who may hold the model) and uploads them as shares.

A query runs in one job: the query image through the shared network, normalised; then
for unit vectors ||q - g||^2 = 2 - 2 q.g, so every distance of the gallery comes from one
matrix product (one ring element per gallery photo sent by each server, not one per
feature), and the k nearest from the secure ``smallest_k`` (bitonic-sorted blocks merged
pairwise). The user receives shares of the k distances and positions only; the servers
learn the gallery's size and k, nothing else (the search is exact: no index tree yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..images import read_image
from ..models import efficientnet_lite0_path
from ..models.embedding import EMBEDDING_DIM, IMAGE_SIZE, Embedder, preprocess
from ..nn import load_onnx
from ..runtime.client import StoredTensor
from ..runtime.cluster import Cluster
from ..sharing import decode, encode
from .report import JobReport, TaskResult
from .search_catalog import Catalog, Segment

MODEL_ID = "search.efficientnet-lite0"
# ReLU6 inputs of EfficientNet-Lite0 stay far below 2^15 at 16 fractional bits
RELU_BITS = 32
# distances lie in [0, 4]: below 2^18 ring units, under smallest_k's bound 2^(bits-2)
DISTANCE_BITS = 24
BATCH = 4  # photos per private feature-extraction job
DEFAULT_INDEX_DIR = Path("~/.safelight/search")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Match:
    rank: int
    name: str
    distance: float  # squared Euclidean distance of the unit features, in [0, 4]


@lru_cache(maxsize=1)
def _embedding_onnx() -> bytes:
    """The shipped network cut after its embedding (the classifier is not needed)."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(efficientnet_lite0_path()))
    return Extractor(model).extract_model(["image"], ["embedding"]).SerializeToString()


def _network(batch: int):
    """A fresh Program computing the unit embeddings of ``batch`` images, and its tensor."""
    model = load_onnx(
        _embedding_onnx(),
        {"image": (batch, 3, IMAGE_SIZE, IMAGE_SIZE)},
        parties=3,
        relu_bits=RELU_BITS,
        truncation="pair",
        scheme="rss3",
    )
    p = model.program
    e = p.take_output(model.outputs[0])  # (batch, 1280), ReLU6 features averaged: >= 0
    inv_norm = p.rsqrt(p.sum(p.square(e), axes=(1,), keepdims=True))  # (batch, 1)
    unit = p.mul(e, p.concat([inv_norm] * EMBEDDING_DIM, axis=1))
    return model, unit


def _weights(model) -> dict[str, StoredTensor]:
    return {
        name: StoredTensor(MODEL_ID, name, w.shape, 3, model.program.frac_bits, "rss3")
        for name, w in model.weights.items()
    }


def upload(cluster: Cluster) -> None:
    """Model owner: share EfficientNet-Lite0's weights to the three servers (once)."""
    _check_cluster(cluster)
    model, _ = _network(1)
    cluster.upload_model(MODEL_ID, model.encode_weights())


def _check_cluster(cluster: Cluster) -> None:
    if cluster.parties != 3 or cluster.scheme != "rss3":
        raise InputError("search runs on three servers with replicated sharing: Cluster.local(3, scheme='rss3')")


def _images(paths: Sequence[str | Path]) -> list[Path]:
    """Files and folders (recursively) of images, in a stable order."""
    out: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            out.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return out


def _load(path: str | Path) -> np.ndarray:
    pixels = read_image(path).pixels
    return pixels.astype(np.float32) / 65535.0 if pixels.dtype == np.uint16 else pixels


def _preprocessed(image: Any) -> np.ndarray:
    """The network input (1, 3, 224, 224) of an image, a path or an array."""
    if isinstance(image, (str, Path)):
        image = _load(image)
    try:
        return preprocess(image)
    except (TypeError, ValueError) as exc:
        raise InputError(f"not an image: {exc}") from None


def index(
    paths: Sequence[str | Path],
    *,
    cluster: Cluster,
    catalog: Catalog,
    features: str = "local",
    on_progress: Callable[[int, int], None] | None = None,
) -> list[JobReport]:
    """Data owner: add photos (files or folders) to the gallery. Photos already indexed
    (by name) are skipped. Returns the reports of the jobs that ran (private features)."""
    _check_cluster(cluster)
    if features not in ("local", "private"):
        raise InputError(f"features must be 'local' or 'private', got {features!r}")
    files = [f for f in _images(paths) if not catalog.contains(str(f))]
    reports: list[JobReport] = []
    done = 0
    if features == "local":
        embedder = Embedder()
    for start in range(0, len(files), BATCH if features == "private" else 64):
        chunk = files[start : start + (BATCH if features == "private" else 64)]
        pixels = np.concatenate([_preprocessed(f) for f in chunk])
        segment = catalog.next_segment(features)
        if features == "local":
            feats = embedder.embed_preprocessed(pixels).astype(np.float64)
            cluster.upload_model(segment.model, {"features": encode(feats, 3, scheme="rss3")})
        else:
            _ensure_weights(cluster, catalog)
            reports.append(_extract(cluster, pixels, segment))
        catalog.add(segment, [str(f) for f in chunk])
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, len(files))
    return reports


def _extract(cluster: Cluster, pixels: np.ndarray, segment: Segment) -> JobReport:
    """Features of a batch computed on the servers and kept there as the segment."""
    model, unit = _network(len(pixels))
    model.program.output(unit, "features")
    inputs: dict[str, Any] = {**model.encode_inputs({"image": pixels}), **_weights(model)}
    job = cluster.run(model.program, inputs, keep={"features": segment.model})
    return JobReport.from_job(job)


def _ensure_weights(cluster: Cluster, catalog: Catalog) -> None:
    """Upload the network's shares unless this catalog's servers hold them already."""
    if catalog.get_flag("weights") == MODEL_ID:
        return
    upload(cluster)
    catalog.set_flag("weights", MODEL_ID)


def nearest(p, q, galleries: Sequence[Any], k: int):
    """Steps of ``p`` giving the k nearest gallery rows of the unit vector ``q`` (1, d):
    (2, k), row 0 the squared distances ascending, row 1 the positions in the galleries
    (each (rows, d), unit rows) concatenated in order. One matrix product per gallery, so
    each server sends one element per gallery row, whatever d."""
    qt = p.transpose(q, (1, 0))  # (d, 1)
    sims = [p.matmul(g, qt) for g in galleries]  # (rows, 1): q.g
    n = sum(g.shape[0] for g in galleries)
    sim = p.reshape(p.concat(sims, axis=0) if len(sims) > 1 else sims[0], (n,))
    distance = p.add_public(p.mul_public(sim, -2, integer=True), 2.0)  # ||q - g||^2 = 2 - 2 q.g
    return p.smallest_k(distance, k, bits=DISTANCE_BITS)


def query_program(segments: Sequence[Segment], k: int):
    """The one-job query: unit embedding of the image, distances to every gallery row,
    the k smallest with their positions. Returns (model, program inputs from the servers)."""
    model, q = _network(1)
    p = model.program
    stored: dict[str, StoredTensor] = {}
    galleries = []
    for i, seg in enumerate(segments):
        name = f"gallery{i}"
        stored[name] = StoredTensor(seg.model, "features", (seg.rows, EMBEDDING_DIM), 3, p.frac_bits, "rss3")
        galleries.append(p.input(name, (seg.rows, EMBEDDING_DIM)))
    p.output(nearest(p, q, galleries, k), "nearest")
    return model, {**_weights(model), **stored}


def query(
    image: Any,
    *,
    cluster: Cluster,
    catalog: Catalog,
    top: int = 10,
) -> TaskResult:
    """Query user: the ``top`` nearest photos of ``image`` (exact search). Returns a
    TaskResult whose outputs are :class:`Match` es, nearest first."""
    _check_cluster(cluster)
    pixels = _preprocessed(image)  # a bad image fails first, before anything else is checked
    live = catalog.live_photos()
    if live == 0:
        raise InputError("the gallery is empty: index photos first (safelight search index)")
    if not isinstance(top, int) or top < 1:
        raise InputError(f"--top must be a positive integer, got {top!r}")
    if top > live:
        raise InputError(f"--top {top} is larger than the gallery ({live} photos)")
    segments = catalog.segments()
    removed = catalog.gallery_rows() - live  # rows of forgotten photos still in the shares
    k = min(top + removed, catalog.gallery_rows())
    _ensure_weights(cluster, catalog)
    t0 = time.perf_counter()
    model, stored = query_program(segments, k)
    built = time.perf_counter() - t0
    inputs = {**model.encode_inputs({"image": pixels}), **stored}
    job = cluster.run(model.program, inputs)
    nearest = decode(job.outputs["nearest"], np.float64)  # (2, k)
    names = catalog.names_by_position()
    matches: list[Match] = []
    for distance, position in zip(nearest[0], np.rint(nearest[1]).astype(int)):
        if int(position) in names and len(matches) < top:
            matches.append(Match(len(matches) + 1, names[int(position)], max(0.0, float(distance))))
    report = JobReport.from_job(job, client_seconds={"build_program": built})
    return TaskResult(matches, report, {"k_asked": k, "gallery_rows": catalog.gallery_rows()})


def plaintext_ranking(image: Any, gallery: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: the exact k nearest unit embeddings (FAISS IndexFlatL2 when
    installed, numpy otherwise) of ``image`` in ``gallery`` (n, 1280). (distances, rows)."""
    q = Embedder().embed_preprocessed(_preprocessed(image)).astype(np.float32)
    g = np.ascontiguousarray(gallery, dtype=np.float32)
    try:
        import faiss
    except ImportError:
        d = ((g - q) ** 2).sum(axis=1)
        rows = np.argsort(d, kind="stable")[:top]
        return d[rows], rows
    flat = faiss.IndexFlatL2(g.shape[1])
    flat.add(g)
    d, rows = flat.search(q, top)
    return d[0], rows[0]
