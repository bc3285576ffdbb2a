"""The index tree built by the servers on shares (issue 15), next to the owner's tree.

A synthetic clustered gallery of unit 1280-d features (the structure the search
benchmarks use: ``safelight.bench.search``) is stored on three servers as private
features; ``search.build_tree(on="shares")`` runs spherical k-means on the shares (two
jobs: training plus assignment, then the regrouping by leaf). The same gallery's tree
built by the owner (plaintext k-means, same leaves) is the reference. Then tree queries
(queries already embedded, ``--probe`` leaves) are compared with exact plaintext search.

    python benchmarks/search_tree_shares.py [--rows 10000] [--queries 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from safelight.bench.search import shared, synthetic_gallery
from safelight.models.embedding import EMBEDDING_DIM
from safelight.program.program import Program
from safelight.runtime.cluster import Cluster
from safelight.sharing import decode
from safelight.tasks import search
from safelight.tasks.search_catalog import Catalog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=5)
    ap.add_argument("--probe", type=int, default=search.DEFAULT_PROBES)
    args = ap.parse_args()
    gallery, _ = synthetic_gallery(args.rows, 1)
    rng = np.random.default_rng(5)
    picks = rng.integers(args.rows, size=args.queries)
    queries = gallery[picks] + rng.normal(size=(args.queries, EMBEDDING_DIM)) * 0.3 / np.sqrt(EMBEDDING_DIM)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        with Cluster.local(3, scheme="rss3", store=Path(tmp) / "servers") as cluster, Catalog(tmp) as cat:
            seg = cat.next_segment("private")
            cluster.upload_model(seg.model, {"features": shared(gallery)})
            cat.add(seg, [f"r{i}" for i in range(args.rows)])
            t0 = time.perf_counter()
            reports: list = []
            leaves = search.build_tree(cluster, cat, on="shares", reports=reports)
            build_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            centroids, owner_leaf = search.spherical_kmeans(gallery, leaves)
            owner_s = time.perf_counter() - t0
            model_id, _, _ = cat.tree()
            sizes = sorted(seg.rows for seg in cat.segments())
            recalls, seconds = [], []
            for q in queries:
                p = Program(3, scheme="rss3")
                qt = p.input("q", (1, EMBEDDING_DIM))
                c = p.input("c", (leaves, EMBEDDING_DIM))
                p.output(search.nearest(p, qt, [c], min(args.probe, leaves)), "probe")
                p.output(qt, "query")
                stored = search.StoredTensor(model_id, "centroids", (leaves, EMBEDDING_DIM), 3, 16, "rss3")
                probe = cluster.run(p, {"q": shared(q[None]), "c": stored}, keep={"query": "bench.query"})
                visited = set(np.rint(decode(probe.outputs["probe"])[1]).astype(int).tolist())
                segments = [s for s in cat.segments() if s.leaf in visited]
                searched = sum(s.rows for s in segments)
                program, inputs = search.leaf_program(segments, min(10, searched), probe.kept["query"])
                found = cluster.run(program, inputs)
                names = cat.names_by_position(segments)
                rows = [int(names[int(i)][1:]) for i in np.rint(decode(found.outputs["nearest"])[1])]
                exact = np.argsort(((gallery - q) ** 2).sum(axis=1), kind="stable")[:10]
                recalls.append(len(set(rows) & set(exact.tolist())) / 10)
                seconds.append(probe.online_seconds + found.online_seconds)
    out = {
        "rows": args.rows,
        "leaves": leaves,
        "build_on_shares_s": build_s,
        "owner_kmeans_s": owner_s,
        "build_bytes_per_server": [sum(r.parties[i].bytes_sent for r in reports) for i in range(3)],
        "build_rounds": sum(r.rounds for r in reports),
        "train_job_online_s": reports[0].online_seconds,
        "leaf_sizes_min_median_max": [sizes[0], sizes[len(sizes) // 2], sizes[-1]],
        "owner_leaf_sizes_min_median_max": [
            int(np.min(np.bincount(owner_leaf, minlength=leaves))),
            int(np.median(np.bincount(owner_leaf, minlength=leaves))),
            int(np.max(np.bincount(owner_leaf, minlength=leaves))),
        ],
        "probes": args.probe,
        "tree_recall_at_10": float(np.mean(recalls)),
        "tree_query_s_median": float(np.median(seconds)),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
