"""The data owner's catalog of a private image gallery: which photo is which row.

The servers hold the gallery's features as replicated shares, one stored model per
*segment* (a batch of photos indexed together); they never see a name. This catalog,
on the data owner's machine under the index directory, maps each photo to its segment
and row and keeps its name encrypted (AES-256-GCM under the owner's key, ``owner.key``,
created on first use with mode 0600). SQLite in WAL mode; a change commits after the
servers stored the segment, so a crash between the two leaves an unreferenced segment
on the servers, never a photo that points at missing features.

With features computed on this machine (``--features local``) the catalog also keeps
them, sealed under the same key, so that the owner can build the index tree (k-means over
its features) without asking the servers for anything.

Schema version 3 (``PRAGMA user_version``); :func:`_migrate` brings older files up
(1 -> 2: the segments' ``leaf`` column and the owner's sealed features; 2 -> 3: the
segments' ``tensor``, the name of their features in the stored model).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigError, InputError

SCHEMA_VERSION = 3
KEY_FILE = "owner.key"
FEATURES_LABEL = b"safelight search features v1"
CATALOG_FILE = "catalog.sqlite"


@dataclass(frozen=True)
class Photo:
    name: str
    segment: int
    row: int


@dataclass(frozen=True)
class Segment:
    id: int
    model: str  # the stored model id on the servers
    rows: int
    features: str  # "local" (the owner's embedder) or "private" (extracted on the servers)
    leaf: int | None = None  # its leaf of the index tree; None: not in the tree (scanned always)
    tensor: str = "features"  # the features' tensor in the stored model


class Catalog:
    """Photos, segments and the owner's key under ``directory``."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        key = self._owner_key()
        self._aead = AESGCM(key)
        self._lookup_key = hashlib.sha256(b"safelight search lookup v1" + key).digest()
        self.db = sqlite3.connect(self.directory / CATALOG_FILE, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        _migrate(self.db)
        self.collection = self._collection_id()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the owner's key and the names -----------------------------------------------------
    def _owner_key(self) -> bytes:
        path = self.directory / KEY_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(AESGCM.generate_key(256))
        key = path.read_bytes()
        if len(key) != 32:
            raise ConfigError(f"{path} is not a 32-byte key")
        return key

    def _seal(self, name: str) -> bytes:
        return self._seal_bytes(name.encode(), b"safelight search name v1")

    def _open(self, sealed: bytes) -> str:
        return self._open_bytes(sealed, b"safelight search name v1").decode()

    def _seal_bytes(self, data: bytes, label: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, label)

    def _open_bytes(self, sealed: bytes, label: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], label)
        except InvalidTag:
            raise ConfigError(f"an entry of {self.directory / CATALOG_FILE} does not open under {KEY_FILE}") from None

    def _lookup(self, name: str) -> bytes:
        # an equality index on names without storing them: a keyed hash under the owner's key
        return hashlib.blake2b(name.encode(), key=self._lookup_key, digest_size=16).digest()

    def _collection_id(self) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'collection'").fetchone()
        if row is None:
            value = os.urandom(6).hex()
            self.db.execute("INSERT INTO meta (key, value) VALUES ('collection', ?)", (value,))
            return value
        return str(row[0])

    # ---- segments and photos -----------------------------------------------------------------
    def next_segment(self, features: str) -> Segment:
        """A fresh segment id and its model id on the servers (not recorded until :meth:`add`)."""
        (last,) = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM segments").fetchone()
        row = self.db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        counter = 0 if row is None else int(row[0])  # ids are never reused, even after a crash
        seg = max(int(last), int(counter)) + 1
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('seq', ?)", (str(seg),))
        return Segment(seg, f"search.{self.collection}.s{seg}", 0, features)

    def add(self, segment: Segment, names: list[str], features: np.ndarray | None = None) -> None:
        """Record a segment the servers now hold, with its photos' names in row order (and,
        for local features, the features themselves, sealed)."""
        with self.db:
            self.db.execute("BEGIN")
            self._insert_segment(segment, len(names), features)
            self.db.executemany(
                "INSERT INTO photos (lookup, name, segment, row) VALUES (?, ?, ?, ?)",
                [(self._lookup(n), self._seal(n), segment.id, r) for r, n in enumerate(names)],
            )

    def _insert_segment(self, segment: Segment, rows: int, features: np.ndarray | None) -> None:
        self.db.execute(
            "INSERT INTO segments (id, model, rows, features, leaf, tensor) VALUES (?, ?, ?, ?, ?, ?)",
            (segment.id, segment.model, rows, segment.features, segment.leaf, segment.tensor),
        )
        if features is not None:
            data = np.ascontiguousarray(features, dtype=np.float32)
            self.db.execute(
                "INSERT INTO owner_features (segment, dim, sealed) VALUES (?, ?, ?)",
                (segment.id, data.shape[1], self._seal_bytes(data.tobytes(), FEATURES_LABEL)),
            )

    def owner_features(self, segment: int) -> np.ndarray | None:
        """The features of a segment as the owner computed them, or None (private features)."""
        row = self.db.execute("SELECT dim, sealed FROM owner_features WHERE segment = ?", (segment,)).fetchone()
        if row is None:
            return None
        return np.frombuffer(self._open_bytes(row[1], FEATURES_LABEL), dtype=np.float32).reshape(-1, int(row[0]))

    def live_rows(self, segment: int) -> list[tuple[int, bytes]]:
        """(row, lookup) of the photos still in a segment."""
        rows = self.db.execute("SELECT row, lookup FROM photos WHERE segment = ? ORDER BY row", (segment,)).fetchall()
        return [(int(r), bytes(k)) for r, k in rows]

    def replace_with_tree(
        self, tree_model: str, leaves: list[tuple[Segment, list[bytes], np.ndarray | None]], source_rows: int
    ) -> None:
        """Swap the gallery for its tree in one transaction: the leaf segments (their photos'
        lookups in row order, their features) replace every segment; forgotten rows are
        gone from the leaves."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM owner_features")
            self.db.execute("UPDATE photos SET segment = -1")
            self.db.execute("DELETE FROM segments")
            for seg, lookups, features in leaves:
                self._insert_segment(seg, len(lookups), features)
                self.db.executemany(
                    "UPDATE photos SET segment = ?, row = ? WHERE lookup = ?",
                    [(seg.id, r, k) for r, k in enumerate(lookups)],
                )
            for key, value in (
                ("tree.model", tree_model),
                ("tree.leaves", str(len(leaves))),
                ("tree.rows", str(source_rows)),
            ):
                self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def tree(self) -> tuple[str, int, int] | None:
        """(centroids' model id, leaves, rows when built) of the index tree, or None."""
        got = dict(self.db.execute("SELECT key, value FROM meta WHERE key LIKE 'tree.%'").fetchall())
        if "tree.model" not in got:
            return None
        return str(got["tree.model"]), int(got["tree.leaves"]), int(got["tree.rows"])

    def contains(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM photos WHERE lookup = ?", (self._lookup(name),)).fetchone() is not None

    def remove(self, name: str) -> None:
        """Forget a photo: its row stays in its segment's shares but is never returned."""
        cur = self.db.execute("DELETE FROM photos WHERE lookup = ?", (self._lookup(name),))
        if cur.rowcount == 0:
            raise InputError(f"no photo named {name!r} in the index")

    def segments(self) -> list[Segment]:
        rows = self.db.execute("SELECT id, model, rows, features, leaf, tensor FROM segments ORDER BY id").fetchall()
        return [
            Segment(int(i), str(m), int(r), str(f), None if lf is None else int(lf), str(t))
            for i, m, r, f, lf, t in rows
        ]

    def photos(self) -> list[Photo]:
        rows = self.db.execute("SELECT name, segment, row FROM photos ORDER BY segment, row").fetchall()
        return [Photo(self._open(n), int(s), int(r)) for n, s, r in rows]

    def gallery_rows(self) -> int:
        (n,) = self.db.execute("SELECT COALESCE(SUM(rows), 0) FROM segments").fetchone()
        return int(n)

    def live_photos(self) -> int:
        (n,) = self.db.execute("SELECT COUNT(*) FROM photos").fetchone()
        return int(n)

    def names_by_position(self, segments: list[Segment] | None = None) -> dict[int, str]:
        """Position in ``segments`` (default: all, in id order) concatenated -> photo name."""
        offsets, offset = {}, 0
        for seg in self.segments() if segments is None else segments:
            offsets[seg.id] = offset
            offset += seg.rows
        return {offsets[p.segment] + p.row: p.name for p in self.photos() if p.segment in offsets}

    def get_flag(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (f"flag.{key}",)).fetchone()
        return None if row is None else str(row[0])

    def set_flag(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"flag.{key}", value))


def _migrate(db: sqlite3.Connection) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise ConfigError(f"the search catalog has schema {version}; this safelight reads up to {SCHEMA_VERSION}")
    if version < 1:
        with db:
            db.execute("BEGIN")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS segments (id INTEGER PRIMARY KEY, model TEXT NOT NULL UNIQUE, "
                "rows INTEGER NOT NULL, features TEXT NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS photos (lookup BLOB PRIMARY KEY, name BLOB NOT NULL, "
                "segment INTEGER NOT NULL REFERENCES segments(id), row INTEGER NOT NULL)"
            )
            db.execute("PRAGMA user_version = 1")
        version = 1
    if version < 2:
        with db:
            db.execute("BEGIN")
            db.execute("ALTER TABLE segments ADD COLUMN leaf INTEGER")
            db.execute(
                "CREATE TABLE owner_features (segment INTEGER PRIMARY KEY REFERENCES segments(id), "
                "dim INTEGER NOT NULL, sealed BLOB NOT NULL)"
            )
            db.execute("PRAGMA user_version = 2")
        version = 2
    if version < 3:
        with db:
            db.execute("BEGIN")
            # several leaves share one stored model (one tensor each): unique per (model, tensor)
            db.execute(
                "CREATE TABLE segments_v3 (id INTEGER PRIMARY KEY, model TEXT NOT NULL, rows INTEGER NOT NULL, "
                "features TEXT NOT NULL, leaf INTEGER, tensor TEXT NOT NULL DEFAULT 'features', UNIQUE (model, tensor))"
            )
            db.execute(
                "INSERT INTO segments_v3 (id, model, rows, features, leaf) SELECT id, model, rows, features, leaf "
                "FROM segments"
            )
            db.execute("DROP TABLE segments")
            db.execute("ALTER TABLE segments_v3 RENAME TO segments")
            db.execute("PRAGMA user_version = 3")
