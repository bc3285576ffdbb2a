"""The data owner's catalog of a private image gallery: which photo is which row.

The servers hold the gallery's features as replicated shares, one stored model per
*segment* (a batch of photos indexed together); they never see a name. This catalog,
on the data owner's machine under the index directory, maps each photo to its segment
and row and keeps its name encrypted (AES-256-GCM under the owner's key, ``owner.key``,
created on first use with mode 0600). SQLite in WAL mode; a change commits after the
servers stored the segment, so a crash between the two leaves an unreferenced segment
on the servers, never a photo that points at missing features.

Schema version 1 (``PRAGMA user_version``); :func:`_migrate` brings older files up.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigError, InputError

SCHEMA_VERSION = 1
KEY_FILE = "owner.key"
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
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, name.encode(), b"safelight search name v1")

    def _open(self, sealed: bytes) -> str:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], b"safelight search name v1").decode()
        except InvalidTag:
            raise ConfigError(f"a name in {self.directory / CATALOG_FILE} does not open under {KEY_FILE}") from None

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

    def add(self, segment: Segment, names: list[str]) -> None:
        """Record a segment the servers now hold, with its photos' names in row order."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT INTO segments (id, model, rows, features) VALUES (?, ?, ?, ?)",
                (segment.id, segment.model, len(names), segment.features),
            )
            self.db.executemany(
                "INSERT INTO photos (lookup, name, segment, row) VALUES (?, ?, ?, ?)",
                [(self._lookup(n), self._seal(n), segment.id, r) for r, n in enumerate(names)],
            )

    def contains(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM photos WHERE lookup = ?", (self._lookup(name),)).fetchone() is not None

    def remove(self, name: str) -> None:
        """Forget a photo: its row stays in its segment's shares but is never returned."""
        cur = self.db.execute("DELETE FROM photos WHERE lookup = ?", (self._lookup(name),))
        if cur.rowcount == 0:
            raise InputError(f"no photo named {name!r} in the index")

    def segments(self) -> list[Segment]:
        rows = self.db.execute("SELECT id, model, rows, features FROM segments ORDER BY id").fetchall()
        return [Segment(int(i), str(m), int(r), str(f)) for i, m, r, f in rows]

    def photos(self) -> list[Photo]:
        rows = self.db.execute("SELECT name, segment, row FROM photos ORDER BY segment, row").fetchall()
        return [Photo(self._open(n), int(s), int(r)) for n, s, r in rows]

    def gallery_rows(self) -> int:
        (n,) = self.db.execute("SELECT COALESCE(SUM(rows), 0) FROM segments").fetchone()
        return int(n)

    def live_photos(self) -> int:
        (n,) = self.db.execute("SELECT COUNT(*) FROM photos").fetchone()
        return int(n)

    def names_by_position(self) -> dict[int, str]:
        """Gallery position (rows of the segments in id order, concatenated) -> photo name."""
        offsets, offset = {}, 0
        for seg in self.segments():
            offsets[seg.id] = offset
            offset += seg.rows
        return {offsets[p.segment] + p.row: p.name for p in self.photos()}

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
