"""Encrypted-store benchmarks (issue 7): ``store_put`` (upload throughput against AES-GCM) and
``store_query_100k`` (near-duplicate query latency on a 100,000-entry index).

Both run on the SQLite index (the figures) and again with the index in PostgreSQL (issue 19:
the ``postgres_*`` extras), on a scratch server started from the distribution's binaries (or
``SAFELIGHT_TEST_POSTGRES_URL``), durable like SQLite here (fsync on); without one, the
extras are replaced by ``postgres_skipped`` saying why.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import io
import os
import secrets
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from PIL import Image
from skimage import data

from ..net.certs import create_cluster_certs
from ..store import convergent
from ..store.backends.base import DEFAULT_SCHEMA
from ..store.backends.scratch import PostgresUnavailable, scratch_postgres
from ..store.client import StoreClient, create_owner_key
from ..store.index import POSTING, Index, band_key, pack_keys
from ..store.service import KeyServer, StoreConfig, StoreServer
from ..store.sketch import Sketcher
from .registry import best_time, register, result

PUT_IMAGES = 24  # 1-megapixel JPEGs per timed batch
QUERY_ENTRIES = 100_000
QUERIES = 1000
PACE_S = 0.001
META_BYTES = 5300  # an image entry's metadata: name, content key, float16 embedding (hex), AES-GCM


def _megapixel_jpegs(n: int) -> list[bytes]:
    base = np.asarray(Image.fromarray(data.astronaut()).resize((1000, 1000), Image.BICUBIC), dtype=np.int16)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):  # distinct files: a little noise each
        img = np.clip(base + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _local_store(tmp: Path, index: dict[str, str]):
    certs = create_cluster_certs(tmp / "certs", 1, clients=("owner",), extra_names=("store", "keyserver"))
    config = StoreConfig(
        certs, "127.0.0.1", 0, tmp / "data", "127.0.0.1", 0, tmp / "ks.key", rate=1e6, burst=10**6, **index
    )
    store, keys = StoreServer(config), KeyServer(config)
    config = dataclasses.replace(config, store_port=store.port, key_port=keys.port)
    for server in (store, keys):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return config, create_owner_key(tmp / "owner.key"), (store, keys)


def _on_postgres(measure: Callable[[dict[str, str]], dict[str, Any]]) -> dict[str, Any]:
    """``measure(index)`` with the index in a schema of a scratch PostgreSQL server, its
    figures prefixed ``postgres_``; ``postgres_skipped`` instead when there is no server."""
    try:
        from ..store.backends.postgres import drop_schema  # psycopg: an optional dependency
    except ImportError as exc:
        return {"postgres_skipped": f"psycopg is not installed (pip install 'safelight[postgres]'): {exc}"}
    try:
        with scratch_postgres(durable=True) as url:
            schema = f"bench_{secrets.token_hex(4)}"
            try:
                figures = measure({"index": url, "index_schema": schema})
            finally:
                drop_schema(url, schema)
    except PostgresUnavailable as exc:
        return {"postgres_skipped": str(exc)}
    return {f"postgres_{name}": value for name, value in figures.items()}


def _time_uploads(tmp: Path, index: dict[str, str], files: list[bytes], plain: list[bytes]) -> dict[str, float]:
    """Seconds per batch: images with tags, the same files again (dedup), new files without tags."""
    config, owner_key, servers = _local_store(tmp, index)
    try:
        with StoreClient(config, "owner", owner_key) as client:
            client.put_images([("warm-up.jpg", files[0])])  # loads the embedding model
            t0 = time.perf_counter()
            client.put_images([(f"{i}.jpg", f) for i, f in enumerate(files)])
            with_tags = time.perf_counter() - t0
            t0 = time.perf_counter()
            client.put([(f"again-{i}.jpg", f) for i, f in enumerate(files)])  # dedup: keys + has + meta
            dedup = time.perf_counter() - t0
            t0 = time.perf_counter()
            client.put([(f"p{i}.jpg", f) for i, f in enumerate(plain)])  # keys, sealing, upload, no tags
            no_tags = time.perf_counter() - t0
    finally:
        for s in servers:
            s.stop()
        servers[0].index.close()
    return {"with_tags": with_tags, "dedup": dedup, "no_tags": no_tags}


@register(
    "store_put", "encrypted-store upload of 1-megapixel JPEGs (OPRF keys, AES-SIV, near-duplicate tags), images/s"
)
def bench_put() -> list[dict[str, Any]]:
    files = _megapixel_jpegs(PUT_IMAGES)
    plain = _megapixel_jpegs(PUT_IMAGES + 1)[1:]  # new files for the batch without tags
    total = sum(len(f) for f in files)
    with tempfile.TemporaryDirectory(prefix="safelight-store-") as tmp:
        sqlite = _time_uploads(Path(tmp) / "sqlite", {}, files, plain)

        def on_postgres(index: dict[str, str]) -> dict[str, float]:
            seconds = _time_uploads(Path(tmp) / "postgres", index, files, plain)
            return {
                "images_s": PUT_IMAGES / seconds["with_tags"],
                "without_tags_images_s": PUT_IMAGES / seconds["no_tags"],
                "dedup_reupload_images_s": PUT_IMAGES / seconds["dedup"],
            }

        postgres = _on_postgres(on_postgres)
    key = convergent.content_key(b"k" * 32)
    siv = best_time(lambda: [convergent.seal(f, key) for f in files], repeats=3)
    gcm = AESGCM(b"k" * 32)
    nonce = b"n" * 12
    ref = best_time(lambda: [gcm.encrypt(nonce, f, convergent.AD) for f in files], repeats=3)
    mb = total / 1e6
    return [
        result(
            "store_put",
            PUT_IMAGES / sqlite["with_tags"],
            "images/s",
            "higher",
            stat="one batch",
            mb_per_s=mb / sqlite["with_tags"],
            without_tags_images_s=PUT_IMAGES / sqlite["no_tags"],
            dedup_reupload_images_s=PUT_IMAGES / sqlite["dedup"],
            **postgres,
            image_mb=mb / PUT_IMAGES,
            encryption_mb_s=mb / siv,
            aes_gcm_mb_s=mb / ref,
            encryption_vs_aes_gcm=ref / siv,
            note="1-megapixel JPEGs; tags = EfficientNet-Lite0 embedding + keyed LSH on the client; "
            "OPRF keys and the store over loopback TLS; encryption is AES-SIV (two passes) vs "
            "one-pass AES-GCM; the index in SQLite, postgres_*: the same uploads with the index in a "
            "PostgreSQL server on this machine (Unix socket, fsync on)",
        )
    ]


# after a bulk load, what a store in use would have: SQLite's WAL folded into the file;
# PostgreSQL's entry numbers continuing after the loaded ones, planner statistics
SETTLE = {
    "sqlite": ["PRAGMA wal_checkpoint(TRUNCATE)"],
    "postgresql": [
        "SELECT setval(pg_get_serial_sequence('entries', 'no'), (SELECT MAX(no) FROM entries))",
        "VACUUM ANALYZE",
    ],
}


def _fill_index(idx: Index, owner: str, sketcher: Sketcher, bits: np.ndarray, meta_bytes: int) -> list[str]:
    """Bulk-load entries with their tags (``bits``: the sketcher's bits of their embeddings),
    in the index's own format (one transaction; the per-entry path of :meth:`Index.put`
    would commit 100,000 times)."""
    n = len(bits)
    ids = [hashlib.sha256(b"entry %d" % i).hexdigest() for i in range(n)]
    postings: dict[bytes, list[int]] = defaultdict(list)
    with idx.db.transaction() as db:
        for lo in range(0, n, 5000):
            rows = []
            for i in range(lo, min(n, lo + 5000)):
                keys = [band_key(band, sketcher.band_tag(band, bits[i, band])) for band in range(sketcher.bands)]
                rows.append((i + 1, owner, ids[i], ids[i], secrets.token_bytes(meta_bytes), float(i), pack_keys(keys)))
                for key in keys:
                    postings[key].append(i + 1)
            db.executemany(
                "INSERT INTO entries (no, owner, entry_id, blob_id, meta, created, bands) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany("INSERT INTO blobs VALUES (?, ?, 1000, 1)", [(owner, r[3]) for r in rows])
        db.executemany(
            "INSERT INTO bands VALUES (?, ?, ?)",
            ((owner, k, np.array(v, dtype=POSTING).tobytes()) for k, v in postings.items()),
        )
    for statement in SETTLE[idx.db.kind]:
        idx.db.execute(statement)
    return ids


def _time_queries(idx: Index, picks: np.ndarray, queries: list, blob_ids: list[str]) -> dict[str, float]:
    """Latency of the near-duplicate queries back to back and paced, and of the dedup check."""
    load = os.getloadavg()[0]
    for q in queries[:20]:  # warm-up
        idx.near("o", q)
    near_ms, near_cpu_ms, has_ms, found = [], [], [], 0
    for i, q in zip(picks, queries):  # back to back: the query loop is a CPU-bound process
        t0, c0 = time.perf_counter(), time.thread_time()
        hits = idx.near("o", q)
        near_ms.append((time.perf_counter() - t0) * 1e3)
        near_cpu_ms.append((time.thread_time() - c0) * 1e3)
        found += bool(hits) and hits[0][0] == blob_ids[i]
        t0 = time.perf_counter()
        idx.has_blob("o", blob_ids[i])
        has_ms.append((time.perf_counter() - t0) * 1e3)
    paced_ms = []
    for q in queries:  # as requests arrive at a server: idle (1 ms) before each query
        time.sleep(PACE_S)
        t0 = time.perf_counter()
        idx.near("o", q)
        paced_ms.append((time.perf_counter() - t0) * 1e3)
    return {
        "median_ms": statistics.median(near_ms),
        "p99_ms": float(np.percentile(near_ms, 99)),
        "max_ms": max(near_ms),
        "cpu_median_ms": statistics.median(near_cpu_ms),
        "cpu_p99_ms": float(np.percentile(near_cpu_ms, 99)),
        "cpu_max_ms": max(near_cpu_ms),
        "paced_median_ms": statistics.median(paced_ms),
        "paced_p99_ms": float(np.percentile(paced_ms, 99)),
        "dedup_check_ms": statistics.median(has_ms),
        "first_hit_is_the_original": found / len(queries),
        "load_average": load,
    }


def _query_run(root: Path, index: dict[str, str], sketcher: Sketcher, bits: np.ndarray, picks, queries):
    idx = Index(root, index.get("index"), index.get("index_schema", DEFAULT_SCHEMA))
    try:
        blob_ids = _fill_index(idx, "o", sketcher, bits, META_BYTES)
        gc.collect()  # the build's garbage is not the query's to collect
        return _time_queries(idx, picks, queries, blob_ids)
    finally:
        idx.close()


@register("store_query_100k", "near-duplicate candidate query on a 100,000-entry store index, ms")
def bench_query() -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    sketcher = Sketcher(b"o" * 32, 1280)
    emb = rng.standard_normal((QUERY_ENTRIES, 1280)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    bits = sketcher.bits(emb)
    picks = rng.choice(QUERY_ENTRIES, QUERIES, replace=False)
    # near copies: noise of norm 0.5 on a unit embedding (cosine ~0.9, about 7 of 32 bands kept)
    noise = 0.5 / np.sqrt(1280)
    queries = [sketcher.tags(emb[i] + noise * rng.standard_normal(1280).astype(np.float32)) for i in picks]
    del emb
    with tempfile.TemporaryDirectory(prefix="safelight-store-") as tmp:
        sqlite = _query_run(Path(tmp) / "sqlite", {}, sketcher, bits, picks, queries)
    with tempfile.TemporaryDirectory(prefix="safelight-store-") as tmp:
        # the client's CPU time says little when the work is in the server's process
        postgres = _on_postgres(
            lambda index: {
                k: v
                for k, v in _query_run(Path(tmp), index, sketcher, bits, picks, queries).items()
                if not k.startswith("cpu_")
            }
        )
    return [
        result(
            "store_query_100k",
            sqlite.pop("median_ms"),
            "ms",
            "lower",
            stat=f"median of {QUERIES} queries",
            **sqlite,
            **postgres,
            entries=QUERY_ENTRIES,
            bands=sketcher.bands,
            meta_bytes=META_BYTES,
            target_ms=5.0,
            note=f"near-duplicate candidate query ({sketcher.bands} band tags, 64 candidates with their "
            "metadata) and dedup check on the SQLite index, no network; cpu_* is the query thread's own "
            "CPU time (wall minus time the scheduler gave to other processes); paced_*: the same queries "
            f"with {PACE_S * 1e3:g} ms idle before each, as requests reaching a server; postgres_*: the same "
            "with the index in a PostgreSQL server on this machine (Unix socket, no cpu_* figures: the "
            "work is in the server's process)",
        )
    ]
