"""The storage server's state: ciphertext blobs on disk, their index in SQLite.

Every operation is scoped by owner (the name on the client's TLS certificate): no query
can read, list or probe another owner's rows. A blob is deduplicated within one owner by
its id (the SHA-256 of its ciphertext) and reference counted by the entries that use it.

Crash safety: a blob file is written to a temporary name, flushed to disk and renamed into
place *before* the transaction that makes it visible commits; the database runs in WAL mode
with synchronous=FULL, so an acknowledged upload survives a crash and a crash mid-upload
leaves at most an orphan file, which :meth:`Index.open` removes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

from ..errors import InputError

# Schema migrations, applied in order; the database records the last one applied.
MIGRATIONS = [
    """
    CREATE TABLE blobs (owner TEXT NOT NULL, blob_id TEXT NOT NULL, size INTEGER NOT NULL,
                        refs INTEGER NOT NULL, PRIMARY KEY (owner, blob_id));
    CREATE TABLE entries (owner TEXT NOT NULL, entry_id TEXT NOT NULL, blob_id TEXT NOT NULL,
                          meta BLOB NOT NULL, created REAL NOT NULL, PRIMARY KEY (owner, entry_id));
    CREATE TABLE tags (owner TEXT NOT NULL, band INTEGER NOT NULL, tag BLOB NOT NULL, entry_id TEXT NOT NULL);
    CREATE INDEX tags_lookup ON tags (owner, band, tag);
    CREATE INDEX tags_entry ON tags (owner, entry_id);
    """,
    # a covering index: a band lookup reads the entry ids from the index alone
    """
    DROP INDEX tags_lookup;
    CREATE INDEX tags_lookup ON tags (owner, band, tag, entry_id);
    """,
]
MAX_BLOB = 1 << 30


def _hex_id(value: str, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InputError(f"{what} must be 64 lowercase hex digits")
    return value


class Index:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(self.root / "index.sqlite3", check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._remove_orphans()

    # ---- setup ---------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for i in range(version, len(MIGRATIONS)):
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in MIGRATIONS[i].split(";"):
                        if statement.strip():
                            self.db.execute(statement)
                    self.db.execute(f"PRAGMA user_version={i + 1}")
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise

    def _path(self, owner: str, blob_id: str) -> Path:
        folder = hashlib.sha256(owner.encode()).hexdigest()[:16]
        return self.blob_dir / folder / blob_id[:2] / blob_id

    def _remove_orphans(self) -> None:
        """Files from uploads that crashed before their transaction committed."""
        known = {self._path(o, b) for o, b in self.db.execute("SELECT owner, blob_id FROM blobs")}
        for path in self.blob_dir.glob("*/*/*"):
            if path not in known:
                path.unlink(missing_ok=True)

    # ---- operations -------------------------------------------------------------
    def put(self, owner: str, entry_id: str, blob_id: str, ciphertext: bytes | None, meta: bytes,
            tags: list[tuple[int, bytes]]) -> bool:
        """Add an entry. ``ciphertext`` may be None when the owner already stores the blob
        (see :meth:`has_blob`). Returns True when the blob was new (not deduplicated)."""
        _hex_id(entry_id, "entry id")
        _hex_id(blob_id, "blob id")
        if ciphertext is not None:
            if len(ciphertext) > MAX_BLOB:
                raise InputError(f"blob larger than {MAX_BLOB} bytes")
            if hashlib.sha256(ciphertext).hexdigest() != blob_id:
                raise InputError("blob id does not match the ciphertext (corrupt or truncated upload)")
        with self._lock:
            exists = self._blob_refs(owner, blob_id) is not None
            if not exists:
                if ciphertext is None:
                    raise InputError(f"blob {blob_id[:12]}... is not stored for this owner; send its ciphertext")
                self._write_file(self._path(owner, blob_id), ciphertext)
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if self.db.execute("SELECT 1 FROM entries WHERE owner=? AND entry_id=?",
                                   (owner, entry_id)).fetchone():
                    raise InputError(f"entry {entry_id[:12]}... already exists")
                if exists:
                    self.db.execute("UPDATE blobs SET refs = refs + 1 WHERE owner=? AND blob_id=?", (owner, blob_id))
                else:
                    self.db.execute("INSERT INTO blobs VALUES (?, ?, ?, 1)", (owner, blob_id, len(ciphertext)))
                self.db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?)",
                                (owner, entry_id, blob_id, meta, time.time()))
                self.db.executemany("INSERT INTO tags VALUES (?, ?, ?, ?)",
                                    [(owner, int(band), bytes(tag), entry_id) for band, tag in tags])
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                if not exists:
                    self._path(owner, blob_id).unlink(missing_ok=True)
                raise
        return not exists

    @staticmethod
    def _write_file(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _blob_refs(self, owner: str, blob_id: str) -> int | None:
        row = self.db.execute("SELECT refs FROM blobs WHERE owner=? AND blob_id=?", (owner, blob_id)).fetchone()
        return None if row is None else int(row[0])

    def has_blob(self, owner: str, blob_id: str) -> bool:
        with self._lock:
            return self._blob_refs(owner, _hex_id(blob_id, "blob id")) is not None

    def get(self, owner: str, entry_id: str) -> tuple[bytes, bytes]:
        """(ciphertext, meta) of one of the owner's entries."""
        with self._lock:
            row = self.db.execute("SELECT blob_id, meta FROM entries WHERE owner=? AND entry_id=?",
                                  (owner, _hex_id(entry_id, "entry id"))).fetchone()
        if row is None:
            raise InputError(f"no entry {entry_id[:12]}... for this owner")
        return self._path(owner, row[0]).read_bytes(), bytes(row[1])

    def list(self, owner: str) -> list[tuple[str, str, bytes]]:
        with self._lock:
            rows = self.db.execute("SELECT entry_id, blob_id, meta FROM entries WHERE owner=? ORDER BY created",
                                   (owner,)).fetchall()
        return [(e, b, bytes(m)) for e, b, m in rows]

    def near(self, owner: str, tags: list[tuple[int, bytes]], min_bands: int = 1,
             limit: int = 64) -> list[tuple[str, int, bytes]]:
        """The owner's entries sharing at least ``min_bands`` band tags with the query:
        (entry id, matching bands, meta), most matches first, at most ``limit`` of them
        (counted from one index lookup per band; metadata fetched for the returned ones only)."""
        if not tags:
            return []
        counts: Counter[str] = Counter()
        with self._lock:
            for band, tag in tags:  # one covering-index lookup per band (faster than a GROUP BY)
                counts.update(row[0] for row in self.db.execute(
                    "SELECT entry_id FROM tags WHERE owner=? AND band=? AND tag=?", (owner, int(band), bytes(tag))))
            hits = [(e, c) for e, c in counts.most_common(int(limit)) if c >= min_bands]
            metas = dict(self.db.execute(
                f"SELECT entry_id, meta FROM entries WHERE owner=? AND entry_id IN ({','.join('?' * len(hits))})",
                (owner, *[e for e, _ in hits])).fetchall()) if hits else {}
        return [(e, int(c), bytes(metas[e])) for e, c in hits]

    def remove(self, owner: str, entry_id: str) -> bool:
        """Delete an entry; its blob goes when no entry refers to it. True if the blob went."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                row = self.db.execute("SELECT blob_id FROM entries WHERE owner=? AND entry_id=?",
                                      (owner, _hex_id(entry_id, "entry id"))).fetchone()
                if row is None:
                    raise InputError(f"no entry {entry_id[:12]}... for this owner")
                blob_id = row[0]
                self.db.execute("DELETE FROM entries WHERE owner=? AND entry_id=?", (owner, entry_id))
                self.db.execute("DELETE FROM tags WHERE owner=? AND entry_id=?", (owner, entry_id))
                self.db.execute("UPDATE blobs SET refs = refs - 1 WHERE owner=? AND blob_id=?", (owner, blob_id))
                gone = self._blob_refs(owner, blob_id) == 0
                if gone:
                    self.db.execute("DELETE FROM blobs WHERE owner=? AND blob_id=?", (owner, blob_id))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        if gone:
            self._path(owner, blob_id).unlink(missing_ok=True)  # after the commit: a crash leaves an orphan
        return gone

    def stats(self, owner: str) -> dict[str, int]:
        with self._lock:
            entries = self.db.execute("SELECT COUNT(*) FROM entries WHERE owner=?", (owner,)).fetchone()[0]
            blobs, stored = self.db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs WHERE owner=?",
                                            (owner,)).fetchone()
            logical = self.db.execute(
                "SELECT COALESCE(SUM(b.size), 0) FROM entries e JOIN blobs b ON e.owner=b.owner AND e.blob_id=b.blob_id "
                "WHERE e.owner=?", (owner,)).fetchone()[0]
        return {"entries": int(entries), "blobs": int(blobs), "stored_bytes": int(stored),
                "logical_bytes": int(logical), "saved_bytes": int(logical) - int(stored)}

    def close(self) -> None:
        with self._lock:
            self.db.close()
