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


def _unit(rows: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(rows, EMBEDDING_DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


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


def _search_bench(n: int, runs: int) -> dict[str, Any]:
    gallery, q = _unit(n, 1), _unit(1, 2)
    p = Program(3, scheme="rss3")
    near = search.nearest(p, p.input("q", (1, EMBEDDING_DIM)), [p.input("g", (n, EMBEDDING_DIM))], TOP)
    p.output(near, "near")
    with Cluster.local(3, scheme="rss3") as cluster:
        t0 = time.perf_counter()
        stored = cluster.upload_model("bench.gallery", {"g": encode(gallery.astype(np.float64), 3, scheme="rss3")})
        upload_s = time.perf_counter() - t0
        jobs = [
            cluster.run(p, {"q": encode(q.astype(np.float64), 3, scheme="rss3"), "g": stored["g"]})
            for _ in range(runs + 1)
        ]
    jobs = jobs[1:]  # the first warms the servers' heaps
    job = sorted(jobs, key=lambda j: j.online_seconds)[len(jobs) // 2]
    got = np.rint(decode(job.outputs["near"])[1]).astype(int)
    plain_s, plain_rows, reference = _plaintext(gallery, q, 3)
    d = ((gallery - q) ** 2).sum(axis=1)
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
        setup_s=job.setup_seconds,
        bytes_per_server=[p.peer_bytes_sent for p in job.parties],
        rounds=job.rounds,
        ops={name: round(row["seconds"], 3) for name, row in job.ops().items()},
        same_top10_as_plaintext=bool(np.array_equal(got, plain_rows)),
        worst_distance_gap=float(np.abs(d[got] - d[plain_rows]).max()),
        gallery_upload_s=upload_s,
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
    pixels = search._preprocessed(photo)
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
            model, unit = search._network(1)
            model.program.output(unit, "unit")
            inputs = {**model.encode_inputs({"image": pixels}), **search._weights(model)}
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
