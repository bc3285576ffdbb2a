"""What the store's index needs from a database, whichever one holds it.

The index's SQL is written once, in SQLite's dialect with ``?`` placeholders (the schema,
the migrations, the queries); a backend translates it for its server
(:meth:`IndexDatabase.translate`), owns the connections and the transactions, and records
the schema version its own way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from ...errors import ConfigError

SQLITE_NAME = "index.sqlite3"  # in the store directory
POSTGRES_MARK = "postgresql-index.id"  # in the store directory: the id its PostgreSQL schema holds too
DEFAULT_SCHEMA = "safelight_store"
URL_SCHEMES = ("postgresql://", "postgres://")


class Statements:
    """One connection, taking the index's SQL (translated on the way to the driver)."""

    def __init__(self, raw: Any, translate: Callable[[str], str], returning: bool) -> None:
        self.raw = raw
        self._translate = translate
        self._returning = returning

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The driver's cursor: ``fetchone``, ``fetchall``, iteration."""
        return self.raw.execute(self._translate(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.raw.cursor().executemany(self._translate(sql), rows)

    def insert(self, sql: str, params: Sequence[Any], key: str) -> int:
        """Run an INSERT and return the generated ``key`` of the new row."""
        if self._returning:
            return int(self.execute(f"{sql} RETURNING {key}", params).fetchone()[0])
        return int(self.execute(sql, params).lastrowid)


class IndexDatabase(ABC):
    """The database of one store's index."""

    kind = ""  # "sqlite" or "postgresql"
    where = ""  # the file, or the server (password hidden) and schema: for messages
    errors: tuple[type[Exception], ...] = ()  # the driver's errors: a storage fault when a request meets one

    def translate(self, sql: str) -> str:
        return sql

    def unindexed(self, column: str) -> str:
        """``column`` in a WHERE clause, marked so the planner does not pick its index
        (SQLite's unary ``+``; PostgreSQL's planner does not need the hint)."""
        return column

    @abstractmethod
    def connection(self) -> AbstractContextManager[Statements]:
        """A connection in autocommit: each statement is its own transaction."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Statements]:
        """One write transaction: committed when the block ends, rolled back if it raises."""

    @abstractmethod
    def schema_version(self, db: Statements) -> int:
        """The number of migrations applied (0: an empty database)."""

    @abstractmethod
    def set_schema_version(self, db: Statements, version: int) -> None: ...

    @abstractmethod
    def check(self) -> None:
        """The database's own check of its storage at start (SQLite: ``quick_check``)."""

    @abstractmethod
    def corrupt(self, detail: str) -> ConfigError:
        """The refusal to start on a damaged index, with what the operator should do."""

    @abstractmethod
    def refusal(self, exc: Exception) -> ConfigError:
        """One of :attr:`errors` met while opening, as a refusal to start."""

    @abstractmethod
    def close(self) -> None: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """One statement on its own, its rows fetched (tests, tools, benchmarks)."""
        with self.connection() as db:
            cursor = db.execute(sql, params)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
