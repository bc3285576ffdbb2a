"""One image's private job, for each task the batch runs: what a Dask worker executes.

A job reads its image, runs the task on its lane's servers, writes the output under a
temporary name and renames it into place (an interrupted job leaves no half-written
output), and returns one record for the manifest. It never raises: a bad image or a
failed job is a ``failed`` record with one line of error; ``lane_failed`` says the servers
could not be reached (the runner then gives that lane no more images).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PeerUnavailableError
from .lanes import Lane

TASKS = ("denoise", "filter", "features", "watermark")


@dataclass(frozen=True)
class TaskSpec:
    """A batch's task and its options (the single-image command's, by name)."""

    task: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def servers(self) -> int:
        return int(self.options.get("servers") or (3 if self.options.get("feature") == "sift" else 2))

    @property
    def scheme(self) -> str:
        return "rss3" if self.servers == 3 else "additive"

    @property
    def needs_dealer(self) -> bool:
        """Whether a lane of two servers needs a dealer: every task with products of shares,
        unless the servers make their own randomness (``no_dealer``)."""
        if self.servers == 3 or self.options.get("no_dealer"):
            return False
        return self.task != "filter" or bool(self.options.get("private_kernel"))

    def output_name(self, name: str) -> str:
        return name + ".json" if self.task == "features" else name


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _replace_into(path: Path, write) -> None:
    """``write(tmp)`` then rename onto ``path`` (same folder, same suffix for the format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def _denoise(spec: TaskSpec, cluster, image, out: Path):
    from ..images import write_image
    from ..tasks import denoise

    o = spec.options
    result = denoise.run(
        image.pixels,
        cluster=cluster,
        sigma=o["sigma"],
        model_id=o.get("model_id", denoise.MODEL_ID),
        no_dealer=bool(o.get("no_dealer")),
    )
    _replace_into(out, lambda p: write_image(p, result.outputs, like=image))
    return result


def _filter(spec: TaskSpec, cluster, image, out: Path):
    from ..images import write_image
    from ..tasks import filter as filter_task

    o = spec.options
    result = filter_task.run(
        image.pixels,
        cluster=cluster,
        kernel=o["kernel"],
        padding=o.get("padding", "reflect"),
        private_kernel=bool(o.get("private_kernel")),
        no_dealer=bool(o.get("no_dealer")),
    )
    rendered = filter_task.to_image(result.values, o["kernel"], image.pixels.dtype)
    _replace_into(out, lambda p: write_image(p, rendered, like=image))
    return result


def _features(spec: TaskSpec, cluster, image, out: Path):
    from ..tasks import features

    feature, dealerless = spec.options.get("feature", "harris"), bool(spec.options.get("no_dealer"))
    run = {"hog": features.hog, "sift": features.sift, "harris": features.harris}[feature]
    result = run(image.pixels, cluster=cluster, no_dealer=dealerless)
    record = features.to_record(feature, result)
    _replace_into(out, lambda p: p.write_text(json.dumps(record) + "\n"))
    return result


def _watermark(spec: TaskSpec, cluster, image, out: Path):
    from PIL import Image

    from ..tasks import watermark

    o = spec.options
    key = watermark.load_key(o["key"])
    result = watermark.embed(
        image.pixels, key=key, message=o["message"], cluster=cluster, no_dealer=bool(o.get("no_dealer"))
    )
    _replace_into(out, lambda p: Image.fromarray(result.outputs).save(p))
    return result


RUNNERS = {"denoise": _denoise, "filter": _filter, "features": _features, "watermark": _watermark}


def run_image(spec: TaskSpec, lane: Lane, in_dir: str, out_dir: str, name: str) -> dict[str, Any]:
    """Run ``spec`` on IN_DIR/name with ``lane``'s servers; the manifest record."""
    from ..images import read_image

    started = time.perf_counter()
    record: dict[str, Any] = {"input": name, "lane": lane.index}
    try:
        image = read_image(Path(in_dir) / name)
    except Exception as exc:  # an unreadable file fails alone
        return {**record, "status": "failed", "error": _one_line(exc), "seconds": time.perf_counter() - started}
    output = spec.output_name(name)
    try:
        result = RUNNERS[spec.task](spec, lane.cluster(), image, Path(out_dir) / output)
    except Exception as exc:
        unreachable = isinstance(exc, (PeerUnavailableError, ConnectionError, TimeoutError))
        error = _one_line(exc) + (f" [{lane.describe()}]" if unreachable else "")
        return {
            **record,
            "status": "failed",
            "error": error,
            "lane_failed": unreachable,
            "seconds": time.perf_counter() - started,
        }
    report = result.report
    return {
        **record,
        "status": "ok",
        "output": output,
        "seconds": time.perf_counter() - started,
        "online_seconds": report.online_seconds,
        "bytes_sent": {("dealer" if p.party < 0 else f"party-{p.party}"): p.bytes_sent for p in report.parties},
    }
