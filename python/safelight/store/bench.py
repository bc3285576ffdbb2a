"""Store benchmarks: ``store_put`` (upload throughput) and ``store_query_100k`` (index latency).

Registered in :mod:`safelight.bench` (``safelight bench store_put store_query_100k``).
"""

from __future__ import annotations

import hashlib
import io
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

PUT_IMAGES = 24  # 1-megapixel JPEGs per timed batch
QUERY_ENTRIES = 100_000


def _megapixel_jpegs(n: int) -> list[bytes]:
    from PIL import Image
    from skimage import data

    base = np.asarray(Image.fromarray(data.astronaut()).resize((1000, 1000), Image.BICUBIC), dtype=np.int16)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):  # distinct files: a little noise each
        img = np.clip(base + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _local_store(tmp: Path):
    from ..runtime.certs import create_cluster_certs
    from .client import create_owner_key
    from .service import KeyServer, StoreConfig, StoreServer

    certs = create_cluster_certs(tmp / "certs", 1, clients=("owner",), extra_names=("store", "keyserver"))
    config = StoreConfig(certs, "127.0.0.1", 0, tmp / "data", "127.0.0.1", 0, tmp / "ks.key", rate=1e6, burst=10**6)
    store, keys = StoreServer(config), KeyServer(config)
    config = StoreConfig(certs, "127.0.0.1", store.port, tmp / "data", "127.0.0.1", keys.port, tmp / "ks.key",
                         rate=1e6, burst=10**6)
    for server in (store, keys):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return config, create_owner_key(tmp / "owner.key"), (store, keys)


def bench_put() -> list[dict[str, Any]]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ..bench import best_time, result
    from . import convergent
    from .client import StoreClient

    files = _megapixel_jpegs(PUT_IMAGES)
    total = sum(len(f) for f in files)
    with tempfile.TemporaryDirectory(prefix="safelight-store-") as tmp:
        config, owner_key, servers = _local_store(Path(tmp))
        try:
            with StoreClient(config, "owner", owner_key) as client:
                client.put_images([("warm-up.jpg", files[0])])  # loads the embedding model
                t0 = time.perf_counter()
                client.put_images([(f"{i}.jpg", f) for i, f in enumerate(files)])
                with_tags = time.perf_counter() - t0
                t0 = time.perf_counter()
                client.put([(f"again-{i}.jpg", f) for i, f in enumerate(files)])  # dedup: keys + has + meta
                dedup_s = time.perf_counter() - t0
                plain = _megapixel_jpegs(PUT_IMAGES + 1)[1:]  # new files: keys, sealing, upload, no tags
                t0 = time.perf_counter()
                client.put([(f"p{i}.jpg", f) for i, f in enumerate(plain)])
                no_tags = time.perf_counter() - t0
        finally:
            for s in servers:
                s.stop()
    key = convergent.content_key(b"k" * 32)
    siv = best_time(lambda: [convergent.seal(f, key) for f in files], repeats=3)
    gcm = AESGCM(b"k" * 32)
    nonce = b"n" * 12
    ref = best_time(lambda: [gcm.encrypt(nonce, f, convergent.AD) for f in files], repeats=3)
    mb = total / 1e6
    return [result("store_put", PUT_IMAGES / with_tags, "images/s", "higher", stat="one batch",
                   mb_per_s=mb / with_tags, without_tags_images_s=PUT_IMAGES / no_tags,
                   dedup_reupload_images_s=PUT_IMAGES / dedup_s, image_mb=mb / PUT_IMAGES,
                   encryption_mb_s=mb / siv, aes_gcm_mb_s=mb / ref, encryption_vs_aes_gcm=ref / siv,
                   note="1-megapixel JPEGs; tags = EfficientNet-Lite0 embedding + keyed LSH on the client; "
                        "OPRF keys and the store over loopback TLS; encryption is AES-SIV (two passes) vs "
                        "one-pass AES-GCM")]


def bench_query() -> list[dict[str, Any]]:
    from ..bench import result
    from .index import Index
    from .sketch import Sketcher

    rng = np.random.default_rng(1)
    sketcher = Sketcher(b"o" * 32, 1280)
    with tempfile.TemporaryDirectory(prefix="safelight-store-") as tmp:
        idx = Index(tmp)
        emb = rng.standard_normal((QUERY_ENTRIES, 1280)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        bits = sketcher.bits(emb)
        blob_ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(QUERY_ENTRIES)]
        idx.db.execute("BEGIN")
        idx.db.executemany("INSERT INTO blobs VALUES ('o', ?, 1000, 1)", [(b,) for b in blob_ids])
        idx.db.executemany("INSERT INTO entries VALUES ('o', ?, ?, ?, 0)",
                           [(b, b, secrets.token_bytes(64)) for b in blob_ids])
        idx.db.executemany("INSERT INTO tags VALUES ('o', ?, ?, ?)",
                           ((band, sketcher.band_tag(band, bits[i, band]), blob_ids[i])
                            for i in range(QUERY_ENTRIES) for band in range(sketcher.bands)))
        idx.db.execute("COMMIT")
        queries = [sketcher.tags(emb[i] + 0.05 * rng.standard_normal(1280).astype(np.float32)) for i in range(200)]
        near_ms, has_ms = [], []
        for q, b in zip(queries, blob_ids):
            t0 = time.perf_counter()
            idx.near("o", q)
            near_ms.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            idx.has_blob("o", b)
            has_ms.append((time.perf_counter() - t0) * 1e3)
        idx.close()
    return [result("store_query_100k", statistics.median(near_ms), "ms", "lower", stat="median of 200 queries",
                   p99_ms=float(np.percentile(near_ms, 99)), dedup_check_ms=statistics.median(has_ms),
                   entries=QUERY_ENTRIES, bands=sketcher.bands, target_ms=5.0,
                   note=f"near-duplicate candidate query ({sketcher.bands} band lookups) and dedup check on the SQLite index, "
                        "no network")]
