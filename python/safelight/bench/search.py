"""Private image search on three servers (issue 15): the exact k-nearest search over
galleries of 1k, 10k and 100k unit feature vectors, and the private EfficientNet-Lite0
embedding of one 224x224 query, each next to its plaintext reference of the same run
(FAISS ``IndexFlatL2`` where faiss-cpu is installed, numpy otherwise; onnxruntime)."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
from skimage import data

from ..models.embedding import EMBEDDING_DIM, Embedder
from ..program.program import Program
from ..runtime.cluster import Cluster
from ..sharing import decode, encode
from ..tasks import search
from .registry import register, result

TOP = 10


CLUSTERS_PER_1K = 20  # the synthetic gallery's groups of similar photos
SPREAD = 0.6  # noise around a group's centre, relative to its unit length


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def synthetic_gallery(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic unit features with the structure of a photo collection (groups of similar
    photos around random centres), and a query: a perturbed copy of one of them."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(max(2, rows * CLUSTERS_PER_1K // 1000), EMBEDDING_DIM)))
    noise = rng.normal(size=(rows, EMBEDDING_DIM)) * SPREAD / np.sqrt(EMBEDDING_DIM)
    gallery = _unit(centres[rng.integers(len(centres), size=rows)] + noise)
    jitter = rng.normal(size=(1, EMBEDDING_DIM)) * 0.3 / np.sqrt(EMBEDDING_DIM)
    return gallery, _unit(gallery[rows // 2 : rows // 2 + 1] + jitter)


def _plaintext(gallery: np.ndarray, q: np.ndarray, runs: int) -> tuple[float, np.ndarray, str]:
    try:
        import faiss
    except ImportError:
        faiss = None
    times, rows = [], np.empty(0)
    for _ in range(runs):
        t0 = time.perf_counter()
        if faiss is not None:
            flat = faiss.IndexFlatL2(EMBEDDING_DIM)
            flat.add(gallery)
            _, found = flat.search(q, TOP)
            rows = found[0]
        else:
            d = ((gallery - q) ** 2).sum(axis=1)
            rows = np.argsort(d, kind="stable")[:TOP]
        times.append(time.perf_counter() - t0)
    return statistics.median(times), rows, "FAISS IndexFlatL2" if faiss is not None else "numpy"


def shared(v: np.ndarray):
    return encode(v.astype(np.float64), 3, scheme="rss3")


def _upload_tree(cluster: Cluster, gallery: np.ndarray) -> dict[str, Any]:
    """The owner's tree over the gallery (as search.build_tree makes it), uploaded."""
    leaves = max(1, round(np.sqrt(len(gallery))))
    t0 = time.perf_counter()
    centroids, leaf = search.spherical_kmeans(gallery, leaves)
    kmeans_s = time.perf_counter() - t0
    stored = cluster.upload_model("bench.tree", {"c": shared(centroids)})
    segments, members = [], []
    for j in range(leaves):
        rows = np.flatnonzero(leaf == j)
        model = f"bench.tree.l{j}"
        if len(rows):
            cluster.upload_model(model, {"features": shared(gallery[rows])})
        segments.append(search.Segment(j, model, len(rows), "local", j))
        members.append(rows)
    return {"centroids": stored["c"], "segments": segments, "members": members, "kmeans_s": kmeans_s}


def _tree_query(cluster: Cluster, q: np.ndarray, tree: dict[str, Any], probes: int) -> tuple[list, list[int], int]:
    """The two jobs of a tree query (as search.query runs them, the query already embedded):
    the nearest centroids, then the visited leaves. Returns (jobs, gallery rows found, rows searched)."""
    leaves = len(tree["segments"])
    p = Program(3, scheme="rss3")
    qt = p.input("q", (1, EMBEDDING_DIM))
    p.output(search.nearest(p, qt, [p.input("c", (leaves, EMBEDDING_DIM))], min(probes, leaves)), "probe")
    p.output(qt, "query")
    probe = cluster.run(p, {"q": shared(q), "c": tree["centroids"]}, keep={"query": "bench.query"})
    visited = sorted(set(np.rint(decode(probe.outputs["probe"])[1]).astype(int).tolist()))
    segments = [tree["segments"][j] for j in visited if tree["segments"][j].rows]
    searched = sum(seg.rows for seg in segments)
    program, inputs = search.leaf_program(segments, min(TOP, searched), probe.kept["query"])
    found = cluster.run(program, inputs)
    positions = np.rint(decode(found.outputs["nearest"])[1]).astype(int)
    rows = np.concatenate([tree["members"][seg.leaf] for seg in segments])
    return [probe, found], [int(r) for r in rows[positions]], searched


def _search_bench(n: int, runs: int) -> dict[str, Any]:
    gallery, q = synthetic_gallery(n, 1)
    p = Program(3, scheme="rss3")
    near = search.nearest(p, p.input("q", (1, EMBEDDING_DIM)), [p.input("g", (n, EMBEDDING_DIM))], TOP)
    p.output(near, "near")
    with Cluster.local(3, scheme="rss3") as cluster:
        t0 = time.perf_counter()
        stored = cluster.upload_model("bench.gallery", {"g": shared(gallery)})
        upload_s = time.perf_counter() - t0
        jobs = [cluster.run(p, {"q": shared(q), "g": stored["g"]}) for _ in range(runs + 1)][1:]  # 1st: warm-up
        tree = _upload_tree(cluster, gallery)
        tree_runs = [_tree_query(cluster, q, tree, search.DEFAULT_PROBES) for _ in range(runs + 1)][1:]
    job = sorted(jobs, key=lambda j: j.online_seconds)[len(jobs) // 2]
    got = np.rint(decode(job.outputs["near"])[1]).astype(int)
    plain_s, plain_rows, reference = _plaintext(gallery, q, 3)
    d = ((gallery - q) ** 2).sum(axis=1)
    tree_jobs, tree_rows, searched = sorted(tree_runs, key=lambda r: sum(j.online_seconds for j in r[0]))[
        len(tree_runs) // 2
    ]
    return result(
        f"search_{n // 1000}k",
        job.online_seconds + job.offline_seconds,
        "s",
        "lower",
        ref=f"plaintext exact top-{TOP} ({reference}, same run), s",
        ref_value=plain_s,
        stat=f"median of {runs} queries",
        gallery=n,
        dim=EMBEDDING_DIM,
        top=TOP,
        data=f"synthetic unit features: {max(2, n * CLUSTERS_PER_1K // 1000)} groups, spread {SPREAD}",
        setup_s=job.setup_seconds,
        bytes_per_server=[p.peer_bytes_sent for p in job.parties],
        rounds=job.rounds,
        ops={name: round(row["seconds"], 3) for name, row in job.ops().items()},
        same_top10_as_plaintext=bool(np.array_equal(got, plain_rows)),
        worst_distance_gap=float(np.abs(d[got] - d[plain_rows]).max()),
        gallery_upload_s=upload_s,
        tree_s=sum(j.online_seconds + j.offline_seconds for j in tree_jobs),
        tree_probe_s=tree_jobs[0].online_seconds,
        tree_leaves=len(tree["segments"]),
        tree_probes=search.DEFAULT_PROBES,
        tree_rows_searched=searched,
        tree_recall_at_10=len(set(tree_rows) & set(plain_rows.tolist())) / TOP,
        tree_bytes_per_server=[sum(j.parties[i].peer_bytes_sent for j in tree_jobs) for i in range(3)],
        tree_rounds=sum(j.rounds for j in tree_jobs),
        tree_kmeans_s=tree["kmeans_s"],
    )


@register("search_1k", "private exact top-10 over 1,000 1280-d features on 3 servers (rss3), s")
def bench_search_1k() -> dict[str, Any]:
    return _search_bench(1_000, 3)


@register("search_10k", "private exact top-10 over 10,000 1280-d features on 3 servers (rss3), s")
def bench_search_10k() -> dict[str, Any]:
    return _search_bench(10_000, 3)


@register("search_100k", "private exact top-10 over 100,000 1280-d features on 3 servers (rss3), s")
def bench_search_100k() -> dict[str, Any]:
    return _search_bench(100_000, 1)


@register("embed_224_rss3", "private EfficientNet-Lite0 embedding of a 224x224 photo on 3 servers (rss3), s")
def bench_embed_224_rss3() -> dict[str, Any]:
    photo = data.chelsea()
    pixels = search.preprocessed(photo)
    embedder = Embedder()
    plain = embedder.embed_preprocessed(pixels)
    t0 = time.perf_counter()
    for _ in range(3):
        embedder.embed_preprocessed(pixels)
    plain_s = (time.perf_counter() - t0) / 3
    with Cluster.local(3, scheme="rss3") as cluster:
        search.upload(cluster)
        jobs = []
        for _ in range(2):
            model, unit = search.embedding_network(1)
            model.program.output(unit, "unit")
            inputs = {**model.encode_inputs({"image": pixels}), **search.weight_inputs(model)}
            jobs.append(cluster.run(model.program, inputs))
    job = jobs[-1]
    private = decode(job.outputs["unit"])
    return result(
        "embed_224_rss3",
        job.online_seconds + job.offline_seconds,
        "s",
        "lower",
        ref="onnxruntime on this machine (same run), s",
        ref_value=plain_s,
        stat="second job on warm servers",
        setup_s=job.setup_seconds,
        bytes_per_server=[p.peer_bytes_sent for p in job.parties],
        rounds=job.rounds,
        max_abs_error_vs_onnxruntime=float(np.abs(private - plain).max()),
        cosine_to_onnxruntime=float((private * plain).sum() / np.linalg.norm(private) / np.linalg.norm(plain)),
        relu_s=job.ops().get("relu", {}).get("seconds"),
        conv2d_s=job.ops().get("conv2d", {}).get("seconds"),
    )
