"""The batch's manifest: one JSON line per finished image in ``OUT_DIR/.safelight-batch.jsonl``.

Lines are appended and flushed as images finish, so an interrupted batch keeps what it
did; a rerun skips every image whose last line says ``ok`` and whose output still exists,
and retries the failed ones. A torn last line (a crash mid-write) is ignored. Lines are not
fsynced one by one (a few ms each, against jobs of tens of ms): what a power cut loses is
only redone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = ".safelight-batch.jsonl"


class Manifest:
    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / MANIFEST
        self.last: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                    self.last[str(record["input"])] = record
                except (ValueError, KeyError, TypeError):
                    continue  # a torn line from an interrupted write

    def done(self, name: str, out_dir: Path) -> bool:
        """Whether ``name`` (the input's path relative to IN_DIR) finished and its output is there."""
        record = self.last.get(name)
        return bool(record and record.get("status") == "ok" and (Path(out_dir) / record["output"]).exists())

    def record(self, record: dict[str, Any]) -> None:
        self.last[str(record["input"])] = record
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
