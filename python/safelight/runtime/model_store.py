"""A server's store of uploaded model shares, by model id.

A model owner uploads its weights once (``safelight model upload``); each server keeps only
its own *share* of every tensor (uniformly random on its own, so nothing in the clear ever
reaches a server's memory or disk). Jobs then name stored tensors instead of sending them.
With a ``store`` directory in the cluster config, shares persist as ``.npy`` files
(``<store>/<server>/<model id>/<tensor>.npy``) across restarts; otherwise they live in memory.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np

from ..errors import InputError, ProgramError

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_TENSOR = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")


def check_model_id(model_id: object) -> str:
    if not isinstance(model_id, str) or not _ID.match(model_id):
        raise InputError(
            f"model id must be 1-64 letters, digits, '_', '.' or '-' (not starting with '.' or '-'), got {model_id!r}"
        )
    return model_id


class ModelStore:
    def __init__(self, server_name: str, directory: Path | None = None) -> None:
        self.name = server_name
        self.directory = None if directory is None else Path(directory) / server_name
        self._models: dict[str, dict[str, np.ndarray]] = {}
        self._versions: dict[str, int] = {}  # bumped by every upload (invalidates opened masks)
        self._lock = threading.Lock()

    def put(self, model_id: str, shares: dict[str, np.ndarray]) -> None:
        """Store (or replace, whole) a model's shares; on disk first when persistent."""
        check_model_id(model_id)
        for name, share in shares.items():
            if not _TENSOR.match(name) or share.dtype != np.uint64:
                raise InputError(f"model tensor {name!r} has an invalid name or is not a uint64 share")
        if self.directory is not None:
            folder = self.directory / model_id
            staging = self.directory / f".{model_id}.upload"
            staging.mkdir(parents=True, exist_ok=True)
            for name, share in shares.items():
                np.save(staging / f"{name}.npy", share, allow_pickle=False)
            old = self.directory / f".{model_id}.old"
            if folder.exists():
                folder.rename(old)
            staging.rename(folder)  # the new version appears whole or not at all
            if old.exists():
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
        with self._lock:
            self._models[model_id] = dict(shares)
            self._versions[model_id] = self._versions.get(model_id, 0) + 1

    def version(self, model_id: str) -> int:
        with self._lock:
            return self._versions.get(model_id, 0)

    def get(self, model_id: str, tensor: str, shape: tuple[int, ...]) -> np.ndarray:
        """This server's share of a stored tensor, checked against the shape a program declares."""
        check_model_id(model_id)
        with self._lock:
            model = self._models.get(model_id)
            if model is None and self.directory is not None and (self.directory / model_id).is_dir():
                model = {f.stem: np.load(f, allow_pickle=False) for f in (self.directory / model_id).glob("*.npy")}
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
            return {m: {k: v.shape for k, v in t.items()} for m, t in self._models.items()}
