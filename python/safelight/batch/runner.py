"""The batch: walk IN_DIR, skip what the manifest says is done, run the rest on Dask with at
most one job per lane at a time, record each image as it finishes, and sum up.

Scheduling happens here, in the client: each lane is bound to one Dask worker thread and
holds at most PREFETCH images (one running, the next queued on its worker, so no scheduler
round trip sits between two of its jobs); a lane takes the next image as soon as one ends,
so a slow image never holds up another lane. A lane whose servers cannot be reached gets no
more images; its images are recorded as failed with the reason, and a rerun, once its
servers are back, completes them.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from .jobs import TASKS, TaskSpec, run_image
from .lanes import Lane, lanes_from_config, local_lanes
from .manifest import Manifest

PREFETCH = 2  # images a lane holds at once: the one running and the next
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm", ".pgm", ".pnm"}


@dataclass
class BatchSummary:
    images: int  # found in IN_DIR
    skipped: int  # done by an earlier run
    done: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    lanes: int = 0
    bytes_sent: dict[str, int] = field(default_factory=dict)  # per server, over this run's jobs
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def per_image_seconds(self) -> float:
        ran = self.done + len(self.failures)
        return self.seconds / ran if ran else 0.0

    @property
    def images_per_minute(self) -> float:
        return 60.0 * self.done / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "skipped": self.skipped,
            "done": self.done,
            "failed": len(self.failures),
            "failures": [{"input": f["input"], "error": f["error"]} for f in self.failures],
            "seconds": round(self.seconds, 3),
            "per_image_seconds": round(self.per_image_seconds, 3),
            "images_per_minute": round(self.images_per_minute, 2),
            "lanes": self.lanes,
            "bytes_sent_per_server": self.bytes_sent,
        }


def find_images(in_dir: Path, out_dir: Path) -> list[str]:
    """Image files under ``in_dir`` (recursively, by suffix), as sorted relative paths;
    never anything under ``out_dir`` or hidden."""
    in_dir, out_dir = Path(in_dir).resolve(), Path(out_dir).resolve()
    names = []
    for path in in_dir.rglob("*"):
        rel = path.relative_to(in_dir)
        if any(part.startswith(".") for part in rel.parts) or out_dir in path.resolve().parents:
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            names.append(rel.as_posix())
    return sorted(names)


def check_spec(spec: TaskSpec) -> None:
    """The options' errors before any server starts (the single-image commands' checks)."""
    if spec.task not in TASKS:
        raise InputError(f"unknown batch task {spec.task!r}: one of {', '.join(TASKS)}")
    o = spec.options
    if spec.servers not in (2, 3):
        raise InputError(f"--servers must be 2 or 3, got {spec.servers}")
    if spec.servers == 3 and o.get("no_dealer"):
        raise InputError("--servers 3 needs no dealer at all (replicated sharing): drop --no-dealer")
    if spec.task == "denoise":
        from ..tasks import denoise

        denoise.check_sigma(o.get("sigma"))
    elif spec.task == "filter":
        from ..tasks import filter as filter_task

        filter_task.parse_kernel(o.get("kernel"))
    elif spec.task == "watermark":
        from ..tasks import watermark, watermark_scheme

        watermark.load_key(o.get("key"))
        watermark_scheme.parse_message(o.get("message"))
    elif spec.task == "features" and o.get("feature", "harris") not in ("harris", "hog", "sift"):
        raise InputError(f"unknown feature {o.get('feature')!r}: harris, hog or sift")


@contextlib.contextmanager
def task_lanes(spec: TaskSpec, count: int, cluster_toml: str | None = None) -> Iterator[list[Lane]]:
    """The lanes ``spec`` runs on: those of ``cluster_toml``, or ``count`` started on loopback
    (stopped on exit). Denoising shares the shipped model to each lane first, unless the
    user names a model already uploaded to the cluster's lanes (``model_id``)."""
    if cluster_toml:
        lanes = lanes_from_config(cluster_toml, spec.servers, spec.scheme, spec.needs_dealer)
        if spec.task == "denoise" and not spec.options.get("model_id"):
            _upload_model([lane.cluster() for lane in lanes], spec)
        yield lanes
        return
    with local_lanes(count, spec.servers, spec.scheme, spec.needs_dealer) as (lanes, clusters):
        if spec.task == "denoise":  # the embedded default: this user is the model owner too
            _upload_model(clusters, spec)
        yield lanes


def _upload_model(clusters: list, spec: TaskSpec) -> None:
    """The shipped model, under the id the jobs will ask for."""
    from ..tasks import denoise

    for cluster in clusters:
        denoise.upload(cluster, spec.options.get("model_id", denoise.MODEL_ID))


@contextlib.contextmanager
def _dask(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A Dask client: of ``scheduler``, or of a local cluster of one thread per lane (the
    jobs' heavy work happens on the servers; the client's part releases the GIL in numpy,
    the C++ core and the TLS sockets)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("batch mode needs Dask: pip install 'safelight[batch]'") from None
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler:
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_batch(
    spec: TaskSpec,
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    lanes: int = 1,
    cluster: str | None = None,
    scheduler: str | None = None,
    on_record: Callable[[dict[str, Any], int, int], None] | None = None,
) -> BatchSummary:
    """Run ``spec`` on every image under ``in_dir``, writing to the same relative paths under
    ``out_dir``. ``lanes``: server sets started on loopback (without ``cluster``);
    ``cluster``: cluster.toml whose lanes to use; ``scheduler``: a Dask scheduler's address
    (default: a local Dask cluster). ``on_record(record, finished, to_do)`` follows progress."""
    check_spec(spec)
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise InputError(f"{in_dir} is not a folder")
    names = find_images(in_dir, out_dir)
    if not names:
        raise InputError(f"no images under {in_dir} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out_dir)
    todo = deque(n for n in names if not manifest.done(n, out_dir))
    summary = BatchSummary(images=len(names), skipped=len(names) - len(todo), done=0)
    if not todo:
        return summary
    started = time.perf_counter()
    with task_lanes(spec, lanes, cluster) as lane_list, _dask(scheduler, len(lane_list)) as client:
        from dask.distributed import as_completed

        summary.lanes = len(lane_list)
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise ConfigError(f"the Dask scheduler {scheduler} has no workers")
        home = {lane.index: workers[i % len(workers)] for i, lane in enumerate(lane_list)}
        free = deque(lane for _ in range(PREFETCH) for lane in lane_list)  # a slot per image a lane may hold
        flying, total, dead = {}, len(todo), set()
        finished = as_completed()
        run_id = uuid.uuid4().hex[:8]

        def submit() -> None:
            while free and todo:
                lane, name = free.popleft(), todo.popleft()
                future = client.submit(
                    run_image,
                    spec,
                    lane,
                    str(in_dir),
                    str(out_dir),
                    name,
                    key=f"safelight-{run_id}-{name}",
                    pure=False,
                    workers=[home[lane.index]],
                    allow_other_workers=False,
                )
                flying[future] = lane
                finished.add(future)

        def record(entry: dict[str, Any]) -> None:
            manifest.record(entry)
            summary.records.append(entry)
            if entry["status"] == "ok":
                summary.done += 1
                for server, sent in entry.get("bytes_sent", {}).items():
                    summary.bytes_sent[server] = summary.bytes_sent.get(server, 0) + int(sent)
            else:
                summary.failures.append(entry)
            if on_record is not None:
                on_record(entry, len(summary.records), total)

        submit()
        for future in finished:
            lane = flying.pop(future)
            try:
                entry = future.result()
            except Exception as exc:  # the worker itself failed (not the job): the image fails alone
                entry = {"input": "?", "status": "failed", "error": f"{type(exc).__name__}: {exc}", "lane": lane.index}
            record(entry)
            if entry.get("lane_failed"):
                dead.add(lane.index)
                free = deque(other for other in free if other.index != lane.index)
            elif lane.index not in dead:
                free.append(lane)
            if not free and not flying:  # every lane is down: what is left fails with the reason
                while todo:
                    record({"input": todo.popleft(), "status": "failed", "error": "no lane left: " + entry["error"]})
            submit()
    summary.seconds = time.perf_counter() - started
    return summary
