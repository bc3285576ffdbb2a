"""Retrieval quality of the private search (issue 15) next to plaintext exact search.

Gallery: the real photographs installed packages ship (benchmarks/near_duplicates.py's
originals) and their edited copies (JPEG, resizing, crops, rotations, brightness,
contrast, noise, a caption). Queries: for each original, one edited copy held out of the
gallery (the edit types rotate over the originals). Relevant items: the original and its
other copies. Distractors: everything else.

Both searches use the same EfficientNet-Lite0 unit embeddings of the gallery (the data
owner's, ``--features local``); the private side embeds each query on shares on three
servers and ranks the whole gallery on shares (``safelight.tasks.search.query``), the
plaintext side embeds with onnxruntime and ranks with FAISS ``IndexFlatL2``.

    python benchmarks/search_retrieval.py [--queries N] [--json OUT]

Reports mAP@10, hit rate at 1 and 10 (a relevant photo in the top 1 / 10) and recall@10
(the share of a query's relevant photos in its top 10), for each side, how many queries
got the identical top-10, and the private query time and bytes; then the same queries in
tree mode (the owner's k-means tree, ``--probe`` leaves visited) with the share of the
exact top 10 they find.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from near_duplicates import EDIT_NAMES, load_originals, make_dataset  # noqa: E402
from safelight.models.embedding import Embedder  # noqa: E402
from safelight.runtime.cluster import Cluster  # noqa: E402
from safelight.tasks import search  # noqa: E402
from safelight.tasks.search_catalog import Catalog  # noqa: E402

TOP = 10


def metrics(rankings: list[list[int]], relevant: list[set[int]]) -> dict[str, float]:
    aps, hit1, hit10, recall = [], [], [], []
    for ranked, rel in zip(rankings, relevant):
        hits, precisions = 0, []
        for i, r in enumerate(ranked[:TOP]):
            if r in rel:
                hits += 1
                precisions.append(hits / (i + 1))
        aps.append(sum(precisions) / min(len(rel), TOP))
        hit1.append(float(ranked[0] in rel))
        hit10.append(float(hits > 0))
        recall.append(hits / min(len(rel), TOP))
    return {
        "map_at_10": float(np.mean(aps)),
        "hit_at_1": float(np.mean(hit1)),
        "hit_at_10": float(np.mean(hit10)),
        "recall_at_10": float(np.mean(recall)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=0, help="at most this many queries (default: one per original)")
    ap.add_argument("--json", help="write the figures to this file too")
    ap.add_argument("--probe", type=int, default=search.DEFAULT_PROBES, help="tree mode: leaves visited")
    args = ap.parse_args()

    originals = load_originals()
    images, source, etype = make_dataset(originals, seed=7)
    edits = [e for e in EDIT_NAMES if e != "original"]
    query_ids = [
        int(np.flatnonzero((source == i) & (etype == edits[(3 * i) % len(edits)]))[0]) for i in range(len(originals))
    ]
    if args.queries:
        query_ids = query_ids[: args.queries]
    gallery_ids = [i for i in range(len(images)) if i not in set(query_ids)]
    print(f"{len(originals)} originals, gallery {len(gallery_ids)} photos, {len(query_ids)} queries", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gallery"
        folder.mkdir()
        names = []
        for n, i in enumerate(gallery_ids):
            path = folder / f"{n:05d}.png"
            images[i].save(path)
            names.append(str(path))
        qfolder = Path(tmp) / "queries"
        qfolder.mkdir()
        qpaths = []
        for i in query_ids:
            path = qfolder / f"q{i:05d}.png"
            images[i].save(path)
            qpaths.append(path)

        embedder = Embedder()
        gallery = embedder.embed_preprocessed(np.concatenate([search.preprocessed(p) for p in names]))
        position = {name: k for k, name in enumerate(names)}
        relevant = [{k for k, g in enumerate(gallery_ids) if source[g] == source[q]} for q in query_ids]

        plain_rankings, t0 = [], time.perf_counter()
        for q in qpaths:
            _, rows = search.plaintext_ranking(q, gallery, TOP)
            plain_rankings.append([int(r) for r in rows])
        plain_s = (time.perf_counter() - t0) / len(qpaths)

        private_rankings, seconds, sent, tree_rankings, tree_seconds, tree_rows = [], [], [], [], [], []
        with Cluster.local(3, scheme="rss3", store=Path(tmp) / "servers") as cluster, Catalog(Path(tmp) / "idx") as cat:
            search.index([folder], cluster=cluster, catalog=cat, features="local")
            for k, q in enumerate(qpaths):
                result = search.query(q, cluster=cluster, catalog=cat, top=TOP)
                private_rankings.append([position[m.name] for m in result.outputs])
                seconds.append(result.report.online_seconds + result.report.offline_seconds)
                sent.append(max(p.bytes_sent for p in result.report.parties))
                print(f"query {k + 1}/{len(qpaths)}: {seconds[-1]:.2f} s", flush=True)
            leaves = search.build_tree(cluster, cat)
            for k, q in enumerate(qpaths):
                result = search.query(q, cluster=cluster, catalog=cat, top=TOP, probes=args.probe)
                tree_rankings.append([position[m.name] for m in result.outputs])
                jobs = [result.extras["probe_report"], result.report]
                tree_seconds.append(sum(r.online_seconds + r.offline_seconds for r in jobs))
                tree_rows.append(result.extras["rows_searched"])
                print(f"tree query {k + 1}/{len(qpaths)}: {tree_seconds[-1]:.2f} s", flush=True)

    same = sum(a == b for a, b in zip(private_rankings, plain_rankings))
    out = {
        "gallery": len(gallery_ids),
        "queries": len(query_ids),
        "private_exact": metrics(private_rankings, relevant),
        "plaintext_faiss_flat_l2": metrics(plain_rankings, relevant),
        "identical_top10": same,
        "private_query_s_median": float(np.median(seconds)),
        "private_query_bytes_per_server_median": float(np.median(sent)),
        "plaintext_query_s": plain_s,
        "tree": {
            "leaves": leaves,
            "probes": args.probe,
            "rows_searched_median": float(np.median(tree_rows)),
            **metrics(tree_rankings, relevant),
            "share_of_exact_top10_found": float(
                np.mean([len(set(t) & set(e)) / len(e) for t, e in zip(tree_rankings, private_rankings)])
            ),
            "query_s_median": float(np.median(tree_seconds)),
        },
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
