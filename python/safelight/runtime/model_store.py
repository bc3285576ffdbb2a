"""A server's store of uploaded model shares, by model id.

A model owner uploads its weights once (``safelight model upload``); each server keeps only
its own *share* of every tensor (uniformly random on its own, so nothing in the clear ever
reaches a server's memory or disk). Jobs then name stored tensors instead of sending them,
and a job may leave an output here (``Cluster.run(..., keep=...)``: a search gallery's
features). With a ``store`` directory in the cluster config, shares persist across
restarts; otherwise they live in memory.

On disk, per server (``<store>/<server>/``): one folder of ``.npy`` files per model
version, and ``index.sqlite`` naming each model's current folder (schema version 1,
``PRAGMA user_version``). Crash safety as in the encrypted store: a version's files are
written and synced in a staging folder, renamed into place, and only then committed to
the index; the old version's folder is removed after the commit. So a crash leaves either
the old model or the new one, never a mix; a folder the index does not name (a crash
between rename and commit) is moved to ``quarantine/`` when the server starts, not
deleted. A store written before the index existed (one folder per model id) is adopted
into the index on first open.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import threading
import uuid
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError, ProgramError

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_TENSOR = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
INDEX_FILE = "index.sqlite"
SCHEMA_VERSION = 1
QUARANTINE = "quarantine"


def check_model_id(model_id: object) -> str:
    if not isinstance(model_id, str) or not _ID.match(model_id):
        raise InputError(
            f"model id must be 1-64 letters, digits, '_', '.' or '-' (not starting with '.' or '-'), got {model_id!r}"
        )
    return model_id


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ModelStore:
    def __init__(self, server_name: str, directory: Path | None = None) -> None:
        self.name = server_name
        self.directory = None if directory is None else Path(directory) / server_name
        self._models: dict[str, dict[str, np.ndarray]] = {}
        self._versions: dict[str, int] = {}  # bumped by every upload (invalidates opened masks)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.directory / INDEX_FILE, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
            self._recover()

    # ---- the on-disk index ---------------------------------------------------------------------
    def _migrate(self) -> None:
        assert self._db is not None and self.directory is not None
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{self.directory / INDEX_FILE} has schema {version}; this safelight reads {SCHEMA_VERSION}"
            )
        if version < 1:
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute(
                    "CREATE TABLE models (id TEXT PRIMARY KEY, folder TEXT NOT NULL, version INTEGER NOT NULL, "
                    "tensors TEXT NOT NULL)"
                )
                for folder in sorted(self.directory.iterdir()):  # the layout before the index: <id>/
                    if folder.is_dir() and _ID.match(folder.name) and folder.name != QUARANTINE:
                        shapes = {f.stem: list(np.load(f, mmap_mode="r").shape) for f in folder.glob("*.npy")}
                        self._db.execute(
                            "INSERT INTO models (id, folder, version, tensors) VALUES (?, ?, 1, ?)",
                            (folder.name, folder.name, json.dumps(shapes)),
                        )
                self._db.execute("PRAGMA user_version = 1")

    def _recover(self) -> None:
        """Set aside what a crash left: staging folders and folders the index does not name."""
        assert self._db is not None and self.directory is not None
        named = {row[0] for row in self._db.execute("SELECT folder FROM models")}
        for entry in self.directory.iterdir():
            if not entry.is_dir() or entry.name == QUARANTINE or entry.name in named:
                continue
            target = self.directory / QUARANTINE / entry.name
            target.parent.mkdir(exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            entry.rename(target)

    # ---- models ----------------------------------------------------------------------------------
    def put(self, model_id: str, shares: dict[str, np.ndarray]) -> None:
        """Store (or replace, whole) a model's shares; on disk first when persistent."""
        check_model_id(model_id)
        for name, share in shares.items():
            if not _TENSOR.match(name) or share.dtype != np.uint64:
                raise InputError(f"model tensor {name!r} has an invalid name or is not a uint64 share")
        with self._lock:
            if self._db is not None:
                self._put_on_disk(model_id, shares)
            self._models[model_id] = dict(shares)
            self._versions[model_id] = self._versions.get(model_id, 0) + 1

    def _put_on_disk(self, model_id: str, shares: dict[str, np.ndarray]) -> None:
        assert self._db is not None and self.directory is not None
        tag = uuid.uuid4().hex[:12]
        staging = self.directory / f".staging-{tag}"
        folder_name = f"{model_id}@{tag}"
        staging.mkdir()
        for name, share in shares.items():
            path = staging / f"{name}.npy"
            np.save(path, share, allow_pickle=False)
            _fsync(path)
        staging.rename(self.directory / folder_name)
        _fsync(self.directory)
        old = self._db.execute("SELECT folder, version FROM models WHERE id = ?", (model_id,)).fetchone()
        shapes = json.dumps({name: list(share.shape) for name, share in shares.items()})
        self._db.execute(
            "INSERT OR REPLACE INTO models (id, folder, version, tensors) VALUES (?, ?, ?, ?)",
            (model_id, folder_name, (old[1] if old else 0) + 1, shapes),
        )
        if old is not None:
            shutil.rmtree(self.directory / old[0], ignore_errors=True)

    def drop(self, model_id: str) -> bool:
        """Forget a model (its index row first, then its files). True if it existed."""
        check_model_id(model_id)
        with self._lock:
            existed = self._models.pop(model_id, None) is not None
            self._versions[model_id] = self._versions.get(model_id, 0) + 1
            if self._db is not None and self.directory is not None:
                row = self._db.execute("SELECT folder FROM models WHERE id = ?", (model_id,)).fetchone()
                if row is not None:
                    self._db.execute("DELETE FROM models WHERE id = ?", (model_id,))
                    shutil.rmtree(self.directory / row[0], ignore_errors=True)
                    existed = True
            return existed

    def version(self, model_id: str) -> int:
        with self._lock:
            return self._versions.get(model_id, 0)

    def get(self, model_id: str, tensor: str, shape: tuple[int, ...]) -> np.ndarray:
        """This server's share of a stored tensor, checked against the shape a program declares."""
        check_model_id(model_id)
        with self._lock:
            model = self._models.get(model_id)
            if model is None and self._db is not None and self.directory is not None:
                row = self._db.execute("SELECT folder FROM models WHERE id = ?", (model_id,)).fetchone()
                if row is not None:
                    folder = self.directory / row[0]
                    model = {f.stem: np.load(f, allow_pickle=False) for f in folder.glob("*.npy")}
                    self._models[model_id] = model
        if model is None:
            raise ProgramError(
                f"unknown model id {model_id!r} on {self.name}: upload it again "
                "(safelight model upload; a server without a store directory forgets its models "
                "when it restarts)"
            )
        share = model.get(tensor)
        if share is None:
            raise ProgramError(f"model {model_id!r} on {self.name} has no tensor {tensor!r}")
        if share.shape != tuple(shape):
            raise ProgramError(
                f"model {model_id!r} tensor {tensor!r} has shape {share.shape}, the program declares {tuple(shape)}"
            )
        return share

    def models(self) -> dict[str, dict[str, tuple[int, ...]]]:
        with self._lock:
            held = {m: {k: v.shape for k, v in t.items()} for m, t in self._models.items()}
            if self._db is not None:
                for model_id, tensors in self._db.execute("SELECT id, tensors FROM models"):
                    held.setdefault(model_id, {k: tuple(v) for k, v in json.loads(tensors).items()})
            return held
