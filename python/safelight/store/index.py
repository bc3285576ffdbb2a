"""The storage server's state: ciphertext blobs on disk, their index in a database:
``index.sqlite3`` in the store directory (the embedded default), or a schema in PostgreSQL
when store.toml names one (:mod:`.backends`; the same schema, migrations and queries).

Every operation is scoped by owner (the name on the client's TLS certificate): no query
can read, list or probe another owner's rows. A blob is deduplicated within one owner by
its id (the SHA-256 of its ciphertext) and reference counted by the entries that use it.

Near-duplicate tags are kept as posting lists: one row per (owner, band, tag) holding the
numbers of the owner's entries that carry that tag, packed as little-endian int64. A query
of 32 bands is one statement reading at most 32 rows (a primary-key seek each), and the
matches are counted with numpy, not row by row (``store_query_100k`` in benchmarks/README.md).

Crash safety: a blob file is written to a temporary name, flushed to disk and renamed into
place *before* the transaction that makes it visible commits; a commit is durable (SQLite:
WAL with synchronous=FULL; PostgreSQL: its write-ahead log), so an acknowledged upload
survives a crash and a crash mid-upload leaves at most an orphan file, which opening the
index again moves aside.

Start-up never deletes a blob. Opening the index first checks the database (on SQLite
``PRAGMA quick_check``; on both, that every entry's blob is listed in ``blobs``) and refuses
a damaged one with :class:`~safelight.errors.ConfigError`: a flipped byte in the file could
otherwise hide a live blob from the ``blobs`` table. (quick_check misses a damaged *index*
of a table; the entries-to-blobs check catches the case that matters here, a blob row that a
lookup no longer finds.) Blob files the index does not list (orphans of crashed uploads, or
live data of an index restored from an older backup) are moved to ``quarantine/<time>/``
under the store directory and reported in the log, never removed.

Writes (put, remove) run one at a time; reads run on their own connections (PostgreSQL's
pool; SQLite's one connection takes them in turn).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError
from .backends import open_database
from .backends.base import DEFAULT_SCHEMA, Statements

log = logging.getLogger("safelight.store")
POSTING = np.dtype("<i8")  # an entry number in a posting list
MAX_TAG = 255


def band_key(band: int, tag: bytes) -> bytes:
    """The posting-list key of one band tag: the band index byte, then the tag."""
    band, tag = int(band), bytes(tag)
    if not 0 <= band < 256 or not 0 < len(tag) <= MAX_TAG:
        raise InputError(f"a band tag needs a band 0..255 and 1..{MAX_TAG} bytes of tag")
    return bytes((band,)) + tag


def pack_keys(keys: Iterable[bytes]) -> bytes:
    """An entry's band keys in one column (each prefixed by its length), for removal."""
    return b"".join(bytes((len(k),)) + k for k in keys)


def unpack_keys(packed: bytes) -> Iterator[bytes]:
    i = 0
    while i < len(packed):
        yield packed[i + 1 : i + 1 + packed[i]]
        i += 1 + packed[i]


def _postings_schema(db: Statements) -> None:
    """Migration 3: entry numbers and posting lists instead of one tag row per entry and band
    (a 32-band query at 100,000 entries read ~3,200 index rows of text ids; now <= 32 rows)."""
    db.execute("""CREATE TABLE entries_v3 (no INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL,
                  entry_id TEXT NOT NULL, blob_id TEXT NOT NULL, meta BLOB NOT NULL, created REAL NOT NULL,
                  bands BLOB NOT NULL, UNIQUE (owner, entry_id))""")
    db.execute("""CREATE TABLE bands (owner TEXT NOT NULL, key BLOB NOT NULL, postings BLOB NOT NULL,
                  PRIMARY KEY (owner, key)) WITHOUT ROWID""")
    db.execute(
        "INSERT INTO entries_v3 (owner, entry_id, blob_id, meta, created, bands) "
        "SELECT owner, entry_id, blob_id, meta, created, ? FROM entries ORDER BY created, rowid",
        (b"",),
    )
    # streamed in key order (reads tags, writes bands): memory stays bounded for large stores
    rows = db.execute(
        "SELECT t.owner, t.band, t.tag, e.no FROM tags t JOIN entries_v3 e "
        "ON e.owner = t.owner AND e.entry_id = t.entry_id ORDER BY t.owner, t.band, t.tag, e.no"
    )
    db.executemany(
        "INSERT INTO bands VALUES (?, ?, ?)",
        (
            (owner, band_key(band, tag), np.array([r[3] for r in group], dtype=POSTING).tobytes())
            for (owner, band, tag), group in itertools.groupby(rows, key=lambda r: r[:3])
        ),
    )
    for no, owner, entry_id in db.execute("SELECT no, owner, entry_id FROM entries_v3").fetchall():
        keys = dict.fromkeys(
            band_key(b, t)
            for b, t in db.execute(
                "SELECT band, tag FROM tags WHERE owner = ? AND entry_id = ? ORDER BY rowid", (owner, entry_id)
            )
        )
        db.execute("UPDATE entries_v3 SET bands = ? WHERE no = ?", (pack_keys(keys), no))
    db.execute("DROP TABLE tags")
    db.execute("DROP TABLE entries")
    db.execute("ALTER TABLE entries_v3 RENAME TO entries")


# Schema migrations, applied in order (SQL, or a function of the connection, inside one
# transaction each); the database records the last one applied. Written in SQLite's SQL,
# which the PostgreSQL backend translates (types, placeholders): keep to what both run.
MIGRATIONS: list[str | Callable[[Statements], None]] = [
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
    _postings_schema,
]
MAX_BLOB = 1 << 30
MAX_QUERY_BANDS = 256


def _hex_id(value: str, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InputError(f"{what} must be 64 lowercase hex digits")
    return value


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


class Index:
    """The index of one store directory ``root``: ``root/blobs/`` and ``root/index.sqlite3``,
    or, given ``url`` (``postgresql://...``), the PostgreSQL schema ``schema`` there.

    Opening it checks the database and refuses a corrupt one (:class:`ConfigError` naming
    it and what to do); blob files it does not list are moved to ``root/quarantine/``
    (``self.quarantined`` lists where they went).
    """

    def __init__(self, root: str | os.PathLike, url: str | None = None, schema: str = DEFAULT_SCHEMA) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.quarantine_dir = self.root / "quarantine"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one writer: a put's blob check, its file and its transaction
        self.db = open_database(self.root, self.blob_dir, url, schema)
        try:
            self.db.check()
            self._migrate()
            self._check_entries()
            self.quarantined = self._quarantine_unlisted()
        except self.db.errors as exc:
            self.db.close()
            raise self.db.refusal(exc) from None
        except BaseException:
            self.db.close()
            raise

    # ---- setup ---------------------------------------------------------------
    def _check_entries(self) -> None:
        """Every entry's blob has its row in ``blobs`` (looked up through the table's index,
        the way uploads and deletions find it). A miss means a damaged index: serving it
        would count that blob's references from zero again and delete its file while
        entries still use it."""
        missing = self.db.execute(
            "SELECT COUNT(*), MIN(e.blob_id) FROM entries e WHERE NOT EXISTS "
            "(SELECT 1 FROM blobs b WHERE b.owner = e.owner AND b.blob_id = e.blob_id)"
        )[0]
        if missing[0]:
            raise self.db.corrupt(
                f"{missing[0]} entries use a blob that the blobs table does not list, e.g. {missing[1][:12]}..."
            )

    def _migrate(self) -> None:
        with self._lock:
            with self.db.connection() as db:
                version = self.db.schema_version(db)
            for i in range(version, len(MIGRATIONS)):
                with self.db.transaction() as db:
                    step = MIGRATIONS[i]
                    if callable(step):
                        step(db)
                    else:
                        for statement in step.split(";"):
                            if statement.strip():
                                db.execute(statement)
                    self.db.set_schema_version(db, i + 1)

    def _path(self, owner: str, blob_id: str) -> Path:
        folder = hashlib.sha256(owner.encode()).hexdigest()[:16]
        return self.blob_dir / folder / blob_id[:2] / blob_id

    def _quarantine_unlisted(self) -> list[Path]:
        """Move the blob files the index does not list to ``quarantine/<UTC time>/`` (same
        relative paths) and report them; return their new paths. Such files are usually
        uploads that crashed before their transaction committed, but they are never deleted
        here: after an index is restored from a backup they are live data."""
        known = {self._path(o, b) for o, b in self.db.execute("SELECT owner, blob_id FROM blobs")}
        found = set(self.blob_dir.glob("*/*/*"))
        unlisted, missing = sorted(found - known), len(known - found)
        if missing:
            log.warning(
                "store index %s lists %d blobs whose files are missing from %s: their entries cannot be fetched",
                self.db.where,
                missing,
                self.blob_dir,
            )
        if not unlisted:
            return []
        folder = self.quarantine_dir / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        moved = []
        for path in unlisted:
            target = folder / path.relative_to(self.blob_dir)
            n = 0
            while target.exists():  # a second start within the same second
                n += 1
                target = target.with_name(f"{path.name}.{n}")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            moved.append(target)
        # one line (the folder lists the files): a spawner reads the log's start for READY
        log.warning(
            "moved %d blob files that the store index does not list to %s (not deleted: orphans of "
            "interrupted uploads, or live data if the index came from an older backup)",
            len(moved),
            folder,
        )
        return moved

    # ---- operations -------------------------------------------------------------
    def put(
        self,
        owner: str,
        entry_id: str,
        blob_id: str,
        ciphertext: bytes | None,
        meta: bytes,
        tags: list[tuple[int, bytes]],
    ) -> bool:
        """Add an entry. ``ciphertext`` may be None when the owner already stores the blob
        (see :meth:`has_blob`). Returns True when the blob was new (not deduplicated)."""
        _hex_id(entry_id, "entry id")
        _hex_id(blob_id, "blob id")
        keys = list(dict.fromkeys(band_key(band, tag) for band, tag in tags))
        if ciphertext is not None:
            if len(ciphertext) > MAX_BLOB:
                raise InputError(f"blob larger than {MAX_BLOB} bytes")
            if hashlib.sha256(ciphertext).hexdigest() != blob_id:
                raise InputError("blob id does not match the ciphertext (corrupt or truncated upload)")
        with self._lock:
            with self.db.connection() as db:
                exists = self._blob_refs(db, owner, blob_id) is not None
            if not exists:
                if ciphertext is None:
                    raise InputError(f"blob {blob_id[:12]}... is not stored for this owner; send its ciphertext")
                self._write_file(self._path(owner, blob_id), ciphertext)
            written = False
            try:
                with self.db.transaction() as db:
                    if db.execute("SELECT 1 FROM entries WHERE owner=? AND entry_id=?", (owner, entry_id)).fetchone():
                        raise InputError(f"entry {entry_id[:12]}... already exists")
                    if exists:
                        db.execute("UPDATE blobs SET refs = refs + 1 WHERE owner=? AND blob_id=?", (owner, blob_id))
                    else:
                        db.execute("INSERT INTO blobs VALUES (?, ?, ?, 1)", (owner, blob_id, len(ciphertext)))
                    no = db.insert(
                        "INSERT INTO entries (owner, entry_id, blob_id, meta, created, bands) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (owner, entry_id, blob_id, meta, time.time(), pack_keys(keys)),
                        key="no",
                    )
                    self._add_postings(db, owner, keys, no)
                    written = True
            except BaseException:
                # a failed commit may still have committed (a server connection lost on the
                # way): keep that file; if its row is not there, the next start sets it aside
                if not exists and not written:
                    self._path(owner, blob_id).unlink(missing_ok=True)
                raise
        return not exists

    @staticmethod
    def _add_postings(db: Statements, owner: str, keys: list[bytes], no: int) -> None:
        number = np.array([no], dtype=POSTING).tobytes()
        for key in keys:
            row = db.execute("SELECT postings FROM bands WHERE owner=? AND key=?", (owner, key)).fetchone()
            if row is None:
                db.execute("INSERT INTO bands VALUES (?, ?, ?)", (owner, key, number))
            else:
                db.execute("UPDATE bands SET postings=? WHERE owner=? AND key=?", (row[0] + number, owner, key))

    @staticmethod
    def _drop_postings(db: Statements, owner: str, keys: Iterable[bytes], no: int) -> None:
        for key in keys:
            row = db.execute("SELECT postings FROM bands WHERE owner=? AND key=?", (owner, key)).fetchone()
            if row is None:
                continue
            numbers = np.frombuffer(row[0], dtype=POSTING)
            numbers = numbers[numbers != no]
            if numbers.size:
                db.execute("UPDATE bands SET postings=? WHERE owner=? AND key=?", (numbers.tobytes(), owner, key))
            else:
                db.execute("DELETE FROM bands WHERE owner=? AND key=?", (owner, key))

    @staticmethod
    def _write_file(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @staticmethod
    def _blob_refs(db: Statements, owner: str, blob_id: str) -> int | None:
        row = db.execute("SELECT refs FROM blobs WHERE owner=? AND blob_id=?", (owner, blob_id)).fetchone()
        return None if row is None else int(row[0])

    def has_blob(self, owner: str, blob_id: str) -> bool:
        with self.db.connection() as db:
            return self._blob_refs(db, owner, _hex_id(blob_id, "blob id")) is not None

    def get(self, owner: str, entry_id: str) -> tuple[bytes, bytes]:
        """(ciphertext, meta) of one of the owner's entries."""
        with self.db.connection() as db:
            row = db.execute(
                "SELECT blob_id, meta FROM entries WHERE owner=? AND entry_id=?", (owner, _hex_id(entry_id, "entry id"))
            ).fetchone()
        if row is None:
            raise InputError(f"no entry {entry_id[:12]}... for this owner")
        return self._path(owner, row[0]).read_bytes(), bytes(row[1])

    def list(self, owner: str) -> list[tuple[str, str, bytes]]:
        with self.db.connection() as db:
            rows = db.execute(
                "SELECT entry_id, blob_id, meta FROM entries WHERE owner=? ORDER BY no", (owner,)
            ).fetchall()
        return [(e, b, bytes(m)) for e, b, m in rows]

    def near(
        self, owner: str, tags: list[tuple[int, bytes]], min_bands: int = 1, limit: int = 64
    ) -> list[tuple[str, int, bytes]]:
        """The owner's entries sharing at least ``min_bands`` band tags with the query:
        (entry id, matching bands, meta), most matches first (then oldest first), at most
        ``limit`` of them. Two statements whatever the number of matches: the query's posting
        lists (one primary-key seek per band), then the metadata of the returned entries."""
        keys = list(dict.fromkeys(band_key(band, tag) for band, tag in tags))
        if not keys or limit < 1:
            return []
        if len(keys) > MAX_QUERY_BANDS:
            raise InputError(f"a query holds at most {MAX_QUERY_BANDS} band tags")
        with self.db.connection() as db:
            lists = [
                row[0]
                for row in db.execute(
                    f"SELECT postings FROM bands WHERE owner=? AND key IN ({_placeholders(len(keys))})", (owner, *keys)
                )
            ]
            if not lists:
                return []
            numbers, counts = np.unique(np.frombuffer(b"".join(lists), dtype=POSTING), return_counts=True)
            keep = counts >= min_bands
            numbers, counts = numbers[keep], counts[keep]
            top = np.argsort(-counts, kind="stable")[: int(limit)]  # numbers ascend: ties go oldest first
            numbers, counts = numbers[top].tolist(), counts[top].tolist()
            rows = (
                {
                    no: (e, m)
                    for no, e, m in db.execute(
                        # by entry number; on SQLite "+owner" keeps the planner from scanning the owner's entries
                        f"SELECT no, entry_id, meta FROM entries "
                        f"WHERE no IN ({_placeholders(len(numbers))}) AND {self.db.unindexed('owner')}=?",
                        (*numbers, owner),
                    )
                }
                if numbers
                else {}
            )
        # an entry removed between the two statements is left out
        return [(rows[no][0], c, bytes(rows[no][1])) for no, c in zip(numbers, counts) if no in rows]

    def remove(self, owner: str, entry_id: str) -> bool:
        """Delete an entry; its blob goes when no entry refers to it. True if the blob went."""
        with self._lock:
            with self.db.transaction() as db:
                row = db.execute(
                    "SELECT no, blob_id, bands FROM entries WHERE owner=? AND entry_id=?",
                    (owner, _hex_id(entry_id, "entry id")),
                ).fetchone()
                if row is None:
                    raise InputError(f"no entry {entry_id[:12]}... for this owner")
                no, blob_id, bands = row
                db.execute("DELETE FROM entries WHERE no=?", (no,))
                self._drop_postings(db, owner, unpack_keys(bands), no)
                db.execute("UPDATE blobs SET refs = refs - 1 WHERE owner=? AND blob_id=?", (owner, blob_id))
                gone = self._blob_refs(db, owner, blob_id) == 0
                if gone:
                    db.execute("DELETE FROM blobs WHERE owner=? AND blob_id=?", (owner, blob_id))
            if gone:
                self._path(owner, blob_id).unlink(missing_ok=True)  # after the commit: a crash leaves an orphan
        return gone

    def stats(self, owner: str) -> dict[str, int]:
        with self.db.connection() as db:
            entries = db.execute("SELECT COUNT(*) FROM entries WHERE owner=?", (owner,)).fetchone()[0]
            blobs, stored = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs WHERE owner=?", (owner,)
            ).fetchone()
            logical = db.execute(
                "SELECT COALESCE(SUM(b.size), 0) FROM entries e "
                "JOIN blobs b ON e.owner=b.owner AND e.blob_id=b.blob_id "
                "WHERE e.owner=?",
                (owner,),
            ).fetchone()[0]
        return {
            "entries": int(entries),
            "blobs": int(blobs),
            "stored_bytes": int(stored),
            "logical_bytes": int(logical),
            "saved_bytes": int(logical) - int(stored),
        }

    def close(self) -> None:
        """Close the database, after a write in progress (a read in progress on SQLite)."""
        with self._lock:
            self.db.close()
