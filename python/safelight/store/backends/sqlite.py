"""The embedded default: the index in ``index.sqlite3`` in the store directory.

One connection, shared by the server's threads under a lock; WAL with synchronous=FULL, so
a committed transaction survives a crash. Reads come from a memory map of the file and a
64 MiB page cache: no read() system call per page on the query path (writes still go
through the WAL).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...errors import ConfigError
from .base import IndexDatabase, Statements

MMAP_BYTES = 1 << 30
CACHE_KIB = 64 * 1024


def is_corruption(exc: Exception) -> bool:
    """A damaged file (SQLITE_CORRUPT, SQLITE_NOTADB), not a locked or unwritable one."""
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return type(exc) is sqlite3.DatabaseError


class SqliteDatabase(IndexDatabase):
    kind = "sqlite"
    errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._lock = threading.Lock()
        try:
            self._raw = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise self.refusal(exc) from None
        try:
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
                self._raw.execute(f"PRAGMA {pragma}")
            self._raw.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            self._raw.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        except sqlite3.Error as exc:
            self._raw.close()
            raise self.refusal(exc) from None
        self._db = Statements(self._raw, self.translate, returning=False)

    def unindexed(self, column: str) -> str:
        return "+" + column

    @contextmanager
    def connection(self) -> Iterator[Statements]:
        with self._lock:
            yield self._db

    @contextmanager
    def transaction(self) -> Iterator[Statements]:
        with self._lock:
            self._raw.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._raw.execute("COMMIT")
            except BaseException:
                if self._raw.in_transaction:
                    self._raw.execute("ROLLBACK")
                raise

    def schema_version(self, db: Statements) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, db: Statements, version: int) -> None:
        db.execute(f"PRAGMA user_version={int(version)}")

    def check(self) -> None:
        """``PRAGMA quick_check``: b-tree structure, page accounting, NOT NULL columns (not
        every index entry against its table: that is integrity_check, much slower)."""
        rows = [str(r[0]) for r in self.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            raise self.corrupt("; ".join(rows))

    def corrupt(self, detail: str) -> ConfigError:
        detail = " ".join(detail.replace("*** in database main ***", "").split())
        detail = detail if len(detail) <= 300 else detail[:300] + "..."
        root = self.path.parent
        return ConfigError(
            f"the store index {self.path} is corrupt ({detail}); the storage server does not start on it, and "
            f"nothing was changed. Keep a copy of {root} as it is, then restore index.sqlite3 from a backup "
            f"(with its -wal file, if the backup has one), or recover it: sqlite3 {self.path} .recover | sqlite3 "
            f"{self.path}.recovered, check that file with PRAGMA integrity_check and put it in place of "
            f"index.sqlite3 (no blob file needs to change)"
        )

    def refusal(self, exc: Exception) -> ConfigError:
        if is_corruption(exc):
            return self.corrupt(str(exc))
        return ConfigError(f"cannot open the store index {self.path}: {exc}")

    def close(self) -> None:
        with self._lock:
            self._raw.close()
