"""Where a store's index lives: ``index.sqlite3`` in the store directory (the embedded
default), or a schema in a PostgreSQL database when store.toml names one (``[store] index``).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError
from .base import DEFAULT_SCHEMA, POSTGRES_MARK, SQLITE_NAME, IndexDatabase
from .sqlite import SqliteDatabase


def open_database(root: Path, blob_dir: Path, url: str | None = None, schema: str = DEFAULT_SCHEMA) -> IndexDatabase:
    """The database of the store directory ``root``: SQLite without ``url``, else PostgreSQL.
    A directory keeps the backend it was made with (no index is moved between them)."""
    sqlite_file, mark = root / SQLITE_NAME, root / POSTGRES_MARK
    if url is None:
        if mark.exists() and not sqlite_file.exists():
            raise ConfigError(
                f"{root} is a store whose index is in PostgreSQL ({mark}): give its URL as index in store.toml"
            )
        return SqliteDatabase(sqlite_file)
    if sqlite_file.exists():
        raise ConfigError(
            f"{root} holds an SQLite index ({sqlite_file}), but store.toml names a PostgreSQL one: an index is "
            "not moved between backends (remove index from store.toml, or start a new store directory)"
        )
    try:
        from .postgres import PostgresDatabase  # psycopg is an optional dependency
    except ImportError as exc:
        raise ConfigError(
            f"a PostgreSQL store index needs psycopg 3 and psycopg-pool: pip install 'safelight[postgres]' ({exc})"
        ) from None
    return PostgresDatabase(url, schema, root, blob_dir)
