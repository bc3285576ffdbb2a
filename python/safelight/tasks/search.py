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

import os
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
from ..program.program import Program
from ..runtime.client import JobResult, StoredTensor
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


def embedding_network(batch: int):
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


def weight_inputs(model) -> dict[str, StoredTensor]:
    return {
        name: StoredTensor(MODEL_ID, name, w.shape, 3, model.program.frac_bits, "rss3")
        for name, w in model.weights.items()
    }


def upload(cluster: Cluster) -> None:
    """Model owner: share EfficientNet-Lite0's weights to the three servers (once)."""
    _check_cluster(cluster)
    model, _ = embedding_network(1)
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


def preprocessed(image: Any) -> np.ndarray:
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
        pixels = np.concatenate([preprocessed(f) for f in chunk])
        segment = catalog.next_segment(features)
        if features == "local":
            feats = embedder.embed_preprocessed(pixels)
            cluster.upload_model(segment.model, {"features": encode(feats.astype(np.float64), 3, scheme="rss3")})
        else:
            feats = None
            _ensure_weights(cluster, catalog)
            reports.append(_extract(cluster, pixels, segment))
        catalog.add(segment, [str(f) for f in chunk], feats)
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, len(files))
    return reports


def _extract(cluster: Cluster, pixels: np.ndarray, segment: Segment) -> JobReport:
    """Features of a batch computed on the servers and kept there as the segment."""
    model, unit = embedding_network(len(pixels))
    model.program.output(unit, "features")
    inputs: dict[str, Any] = {**model.encode_inputs({"image": pixels}), **weight_inputs(model)}
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


def gallery_inputs(p: Program, segments: Sequence[Segment]) -> tuple[list, dict[str, StoredTensor]]:
    """The segments' features as inputs ``gallery<i>`` of ``p``: (tensors, stored inputs)."""
    tensors, stored = [], {}
    for i, seg in enumerate(segments):
        name = f"gallery{i}"
        stored[name] = StoredTensor(seg.model, seg.tensor, (seg.rows, EMBEDDING_DIM), 3, p.frac_bits, "rss3")
        tensors.append(p.input(name, (seg.rows, EMBEDDING_DIM)))
    return tensors, stored


def query_program(segments: Sequence[Segment], k: int):
    """The one-job query: unit embedding of the image, distances to every gallery row,
    the k smallest with their positions. Returns (model, program inputs from the servers)."""
    model, q = embedding_network(1)
    p = model.program
    galleries, stored = gallery_inputs(p, segments)
    p.output(nearest(p, q, galleries, k), "nearest")
    return model, {**weight_inputs(model), **stored}


# ---- the index tree -------------------------------------------------------------------------------
# A one-level k-means tree (an inverted file): about sqrt(n) leaves, each a segment of the
# photos nearest its centroid; a query compares itself with the centroids, the servers
# learn which ``probe`` leaves it visits (the path), and only those leaves (plus segments
# added since the tree was built) are searched.
DEFAULT_PROBES = 8
KMEANS_ITERATIONS = 25
TRAIN_PER_LEAF = 64
# Rebuild rule: the tree is rebuilt when the photos added since it was built, or those
# forgotten from it, exceed this share of the photos it was built on.
DRIFT = 0.10


def spherical_kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = KMEANS_ITERATIONS):
    """Unit centroids (k, d) and each row's leaf, by cosine k-means (k-means++ seeding),
    trained on at most TRAIN_PER_LEAF rows per leaf (as FAISS samples), then every row
    assigned to its nearest centroid."""
    rng = np.random.default_rng(seed)
    everything, x = x, x[rng.permutation(len(x))[: TRAIN_PER_LEAF * k]] if len(x) > TRAIN_PER_LEAF * k else x
    n = len(x)
    centres = [x[rng.integers(n)]]
    closest = 1.0 - x @ centres[0]
    for _ in range(1, k):
        weights = np.maximum(closest, 0) ** 2
        pick = rng.choice(n, p=weights / weights.sum()) if weights.sum() > 0 else rng.integers(n)
        centres.append(x[pick])
        closest = np.minimum(closest, 1.0 - x @ x[pick])
    c = np.stack(centres).astype(np.float32)
    for _ in range(iterations):
        leaf = np.argmax(x @ c.T, axis=1)
        for j in range(k):
            members = x[leaf == j]
            if len(members):
                c[j] = members.sum(axis=0)
        c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return c, np.argmax(everything @ c.T, axis=1)


def tree_drift(catalog: Catalog) -> float:
    """Share of photos added since the tree was built plus those forgotten from it (inf: no tree)."""
    tree = catalog.tree()
    if tree is None:
        return float("inf")
    segments = catalog.segments()
    added = sum(seg.rows for seg in segments if seg.leaf is None)
    in_leaves = sum(seg.rows for seg in segments if seg.leaf is not None)
    live_in_leaves = sum(len(catalog.live_rows(seg.id)) for seg in segments if seg.leaf is not None)
    return (added + in_leaves - live_in_leaves) / max(1, tree[2])


def build_tree(
    cluster: Cluster,
    catalog: Catalog,
    leaves: int | None = None,
    on: str = "auto",
    seed: int = 0,
    reports: list[JobReport] | None = None,
) -> int:
    """Data owner: (re)build the index tree and regroup the gallery by leaf, with the unit
    centroids, as shares. ``on="owner"``: spherical k-means over the owner's own features
    (``--features local``), re-uploaded by leaf; ``on="shares"``: the same k-means run by the
    servers on the shares (secure similarities, row maxima, sums and the secure inverse
    square root), the owner learning only each photo's leaf; ``"auto"``: the owner's when it
    holds every feature. Returns the number of leaves; the jobs' reports are appended to
    ``reports`` when given."""
    _check_cluster(cluster)
    if on not in ("auto", "owner", "shares"):
        raise InputError(f"on must be 'auto', 'owner' or 'shares', got {on!r}")
    segments = catalog.segments()
    owned = {seg.id: catalog.owner_features(seg.id) for seg in segments}
    owner_has_all = all(feats is not None for feats in owned.values())
    if on == "owner" and not owner_has_all:
        raise InputError("the owner's tree needs every feature on this machine (index with --features local)")
    if catalog.live_photos() == 0:
        raise InputError("the gallery is empty: index photos first (safelight search index)")
    k = min(leaves or max(1, round(np.sqrt(catalog.live_photos()))), catalog.live_photos())
    if on == "shares" or not owner_has_all:
        return _tree_on_shares(cluster, catalog, k, seed, reports if reports is not None else [])
    rows, lookups = [], []
    for seg in segments:
        feats = owned[seg.id]
        for row, key in catalog.live_rows(seg.id):
            rows.append(feats[row])
            lookups.append(key)
    x = np.stack(rows)
    centroids, leaf = spherical_kmeans(x, k, seed)
    tree_model = _tree_model(catalog)
    cluster.upload_model(tree_model, {"centroids": encode(centroids.astype(np.float64), 3, scheme="rss3")})
    built = []
    for j in range(k):
        members = np.flatnonzero(leaf == j)
        if not len(members):
            continue
        seg = catalog.next_segment("local")
        seg = Segment(seg.id, f"{tree_model}.l{j}", len(members), "local", j)
        cluster.upload_model(seg.model, {"features": encode(x[members].astype(np.float64), 3, scheme="rss3")})
        built.append((seg, [lookups[i] for i in members], x[members]))
    _switch_to_tree(cluster, catalog, tree_model, built, len(x))
    return k


def _switch_to_tree(cluster: Cluster, catalog: Catalog, tree_model: str, built: list, rows: int) -> None:
    """Commit the new tree to the catalog, then have the servers forget what it replaced
    (the old segments and tree): a crash in between leaves unused models, never a catalog
    that names a missing one."""
    tree = catalog.tree()
    old = {seg.model for seg in catalog.segments()} | ({tree[0]} if tree else set())
    catalog.replace_with_tree(tree_model, built, rows)
    for model_id in sorted(old - {seg.model for seg, _, _ in built} - {tree_model}):
        cluster.drop_model(model_id)


def _tree_model(catalog: Catalog) -> str:
    version = catalog.next_segment("local").id  # a fresh number for this tree's model ids
    return f"search.{catalog.collection}.t{version}"


SHARES_ITERATIONS = 8
SIMILARITY_BITS = 24  # similarities of unit vectors lie in [-1, 1]
EMPTY_LEAF = 2.0**-10  # keeps the inverse square root of an empty leaf's zero sum defined


def _tree_on_shares(cluster: Cluster, catalog: Catalog, k: int, seed: int, reports: list[JobReport]) -> int:
    """Spherical k-means on the servers: job 1 trains on a random sample of the gallery
    (rows the owner picks at random: the servers learn their positions, not their content)
    and returns each photo's leaf to the owner, keeping the centroids; job 2 regroups the
    gallery's shares by leaf (the servers learn which rows share a leaf, as with the
    owner's tree)."""
    segments = catalog.segments()
    offsets, offset = {}, 0
    for seg in segments:
        offsets[seg.id] = offset
        offset += seg.rows
    live = [(offsets[seg.id] + row, key) for seg in segments for row, key in catalog.live_rows(seg.id)]
    positions = np.array([pos for pos, _ in live])
    rng = np.random.default_rng(seed)
    sample = positions[rng.permutation(len(positions))[: TRAIN_PER_LEAF * k]]
    scale = 1.0 / np.sqrt(max(1.0, len(sample) / k))  # keeps every sum's squared norm in rsqrt's range

    p = Program(3, scheme="rss3")
    parts, inputs = gallery_inputs(p, segments)
    x = p.concat(parts, axis=0) if len(parts) > 1 else parts[0]
    train = p.take(x, sample.tolist())
    c = p.take(x, sample[:k].tolist())  # k distinct random rows to start from
    m = len(sample)
    for _ in range(SHARES_ITERATIONS):
        sim = p.matmul(train, p.transpose(c, (1, 0)))  # (m, k)
        best = p.reshape(p.max(sim, axis=1, bits=SIMILARITY_BITS), (m, 1))
        onehot = p.add_public(p.neg(p.less(sim, p.concat([best] * k, axis=1), bits=SIMILARITY_BITS)), 1.0)
        sums = p.rescale(p.mul_public(p.matmul(p.transpose(onehot, (1, 0)), train), scale))  # (k, d)
        norms = p.add_public(p.sum(p.square(sums), axes=(1,), keepdims=True), EMPTY_LEAF)
        c = p.mul(sums, p.concat([p.rsqrt(norms, bits=46)] * EMBEDDING_DIM, axis=1))
    everyone = p.take(x, positions.tolist())
    p.output(p.argmax(p.matmul(everyone, p.transpose(c, (1, 0))), axis=1, bits=SIMILARITY_BITS), "leaf")
    p.output(c, "centroids")
    tree_model = _tree_model(catalog)
    trained = cluster.run(p, inputs, keep={"centroids": tree_model})
    leaf = np.rint(decode(trained.outputs["leaf"], np.float64)).astype(int).reshape(-1)

    regroup = Program(3, scheme="rss3")
    parts, _ = gallery_inputs(regroup, segments)  # the same stored inputs as the first job
    x = regroup.concat(parts, axis=0) if len(parts) > 1 else parts[0]
    leaves_model = f"{tree_model}.leaves"
    built = []
    for j in range(k):
        members = np.flatnonzero(leaf == j)
        if not len(members):
            continue
        regroup.output(regroup.take(x, positions[members].tolist()), f"leaf{j}")
        seg = catalog.next_segment("private")
        seg = Segment(seg.id, leaves_model, len(members), "private", j, f"leaf{j}")
        built.append((seg, [live[i][1] for i in members], None))
    regrouped = cluster.run(regroup, inputs, keep={seg.tensor: leaves_model for seg, _, _ in built})
    reports += [JobReport.from_job(trained), JobReport.from_job(regrouped)]
    _switch_to_tree(cluster, catalog, tree_model, built, len(live))
    return k


def _probe_leaves(
    cluster: Cluster, catalog: Catalog, pixels: np.ndarray, tree: tuple[str, int, int], probes: int
) -> tuple[list[int], StoredTensor, JobResult]:
    """Job 1 of a tree query: the query's unit embedding (kept on the servers) and its
    ``probes`` nearest centroids (returned to the user, who then names those leaves)."""
    model_id, leaves, _ = tree
    model, q = embedding_network(1)
    p = model.program
    centroids = StoredTensor(model_id, "centroids", (leaves, EMBEDDING_DIM), 3, p.frac_bits, "rss3")
    p.output(nearest(p, q, [p.input("centroids", (leaves, EMBEDDING_DIM))], min(probes, leaves)), "probe")
    p.output(q, "query")
    inputs = {**model.encode_inputs({"image": pixels}), **weight_inputs(model), "centroids": centroids}
    # a fresh id per query (concurrent queries do not meet), dropped once the leaves are searched
    kept_id = f"search.{catalog.collection}.q{os.urandom(6).hex()}"
    job = cluster.run(model.program, inputs, keep={"query": kept_id})
    chosen = np.rint(decode(job.outputs["probe"], np.float64)[1]).astype(int)
    return sorted(set(int(c) for c in chosen)), job.kept["query"], job


def query(
    image: Any,
    *,
    cluster: Cluster,
    catalog: Catalog,
    top: int = 10,
    exact: bool = False,
    probes: int = DEFAULT_PROBES,
) -> TaskResult:
    """Query user: the ``top`` nearest photos of ``image``. Returns a TaskResult whose
    outputs are :class:`Match` es, nearest first. With an index tree and not ``exact``,
    two jobs: the nearest ``probes`` leaves (the servers learn which), then a search of
    those leaves only; otherwise one job over the whole gallery."""
    _check_cluster(cluster)
    pixels = preprocessed(image)  # a bad image fails first, before anything else is checked
    if not isinstance(probes, int) or probes < 1:
        raise InputError(f"--probe must be a positive integer, got {probes!r}")
    live = catalog.live_photos()
    if live == 0:
        raise InputError("the gallery is empty: index photos first (safelight search index)")
    if not isinstance(top, int) or top < 1:
        raise InputError(f"--top must be a positive integer, got {top!r}")
    if top > live:
        raise InputError(f"--top {top} is larger than the gallery ({live} photos)")
    _ensure_weights(cluster, catalog)
    tree = None if exact else catalog.tree()
    segments = catalog.segments()
    extras: dict[str, Any] = {"gallery_rows": catalog.gallery_rows(), "mode": "exact"}
    probe_job = None
    if tree is not None:
        leaves, kept_query, probe_job = _probe_leaves(cluster, catalog, pixels, tree, probes)
        segments = [seg for seg in segments if seg.leaf is None or seg.leaf in leaves]
        extras.update(mode="tree", leaves_visited=leaves, leaves=tree[1])
    searched = sum(seg.rows for seg in segments)
    live_here = sum(len(catalog.live_rows(seg.id)) for seg in segments)
    k = min(top + searched - live_here, searched)  # forgotten rows are dropped below
    extras.update(k_asked=k, rows_searched=searched)
    if k == 0:  # the visited leaves are empty
        cluster.drop_model(kept_query.model)
        report = JobReport.from_job(probe_job) if probe_job is not None else None
        return TaskResult([], report, extras)
    if tree is None:
        model, stored = query_program(segments, k)
        inputs = {**model.encode_inputs({"image": pixels}), **stored}
        program = model.program
    else:
        program, inputs = leaf_program(segments, k, kept_query)
    try:
        job = cluster.run(program, inputs)
    finally:
        if tree is not None:
            cluster.drop_model(kept_query.model)
    nearest_rows = decode(job.outputs["nearest"], np.float64)  # (2, k)
    names = catalog.names_by_position(segments)
    matches: list[Match] = []
    for distance, position in zip(nearest_rows[0], np.rint(nearest_rows[1]).astype(int)):
        if int(position) in names and len(matches) < top:
            matches.append(Match(len(matches) + 1, names[int(position)], max(0.0, float(distance))))
    if probe_job is not None:
        extras["probe_report"] = JobReport.from_job(probe_job)
    return TaskResult(matches, JobReport.from_job(job), extras)


def leaf_program(segments: Sequence[Segment], k: int, q: StoredTensor):
    """Job 2 of a tree query: the kept query embedding against the visited leaves."""
    p = Program(3, scheme="rss3")
    galleries, stored = gallery_inputs(p, segments)
    p.output(nearest(p, p.input("q", q.shape), galleries, k), "nearest")
    return p, {"q": q, **stored}


def plaintext_ranking(image: Any, gallery: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: the exact k nearest unit embeddings (FAISS IndexFlatL2 when
    installed, numpy otherwise) of ``image`` in ``gallery`` (n, 1280). (distances, rows)."""
    q = Embedder().embed_preprocessed(preprocessed(image)).astype(np.float32)
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


def run(
    image: Any,
    *,
    cluster: Cluster | None = None,
    index_dir: str | Path = DEFAULT_INDEX_DIR,
    top: int = 10,
    exact: bool = False,
    probes: int = DEFAULT_PROBES,
) -> TaskResult:
    """The common task shape: the ``top`` nearest photos of ``image`` in the gallery whose
    catalog is under ``index_dir`` (:func:`query`). Without ``cluster``, three servers are
    spawned on loopback for the query, their shares kept under ``<index_dir>/servers``."""
    with Catalog(Path(index_dir).expanduser()) as catalog:
        if cluster is not None:
            return query(image, cluster=cluster, catalog=catalog, top=top, exact=exact, probes=probes)
        with Cluster.local(3, scheme="rss3", store=catalog.directory / "servers") as local:
            return query(image, cluster=local, catalog=catalog, top=top, exact=exact, probes=probes)
