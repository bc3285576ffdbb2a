"""``safelight batch TASK IN_DIR OUT_DIR`` (the batch's part of the command line).

Every image under IN_DIR (recursively) becomes its own private job; the output goes to the
same relative path under OUT_DIR (features: that path plus ``.json``). Progress (images
done, rate, ETA) and one line per failed image go to stderr; the summary (images, failures,
total and per-image time, bytes per server) to stdout, or as one JSON object with
``--json``. Exit codes: 0 every image done; 1 some failed (recorded in the manifest, a
rerun retries them); 2 bad input or configuration (one ``safelight: error:`` line).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .jobs import TASKS, TaskSpec


def add_parser(sub) -> None:
    p = sub.add_parser(
        "batch",
        help="run a task on every image of a folder, each image its own private job (scheduled on Dask)",
    )
    p.add_argument("task", choices=TASKS, help="the task each image gets")
    p.add_argument("input", help="IN_DIR: the images (searched recursively)")
    p.add_argument("output", help="OUT_DIR: outputs at the same relative paths, and the manifest")
    p.add_argument("--sigma", type=float, help="denoise: noise level, 0 < sigma <= 75")
    p.add_argument(
        "--model-id",
        help="denoise: the model's id (--cluster: uploaded there before; else the shipped model goes under it)",
    )
    p.add_argument("--kernel", help="filter: gaussian:SIGMA | box:K | sharpen | sobel-x | sobel-y")
    p.add_argument(
        "--padding", default="reflect", choices=["zero", "reflect", "mirror", "nearest"], help="filter: past the border"
    )
    p.add_argument("--private-kernel", action="store_true", help="filter: keep the kernel secret too")
    p.add_argument("--feature", default="harris", choices=["harris", "hog", "sift"], help="features: which")
    p.add_argument("--key", help="watermark: key file (safelight watermark keygen)")
    p.add_argument("--message", help="watermark: the payload, 16 hex digits")
    p.add_argument("--no-dealer", action="store_true", help="two servers with no third party")
    p.add_argument("--servers", type=int, choices=[2, 3], help="2 (additive shares) or 3 (rss3); sift: 3")
    p.add_argument("--cluster", help="cluster.toml whose lanes (server pools) run the jobs (default: loopback)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a Dask scheduler (default: a local one)")
    p.add_argument(
        "--lanes", type=int, default=1, help="without --cluster: server sets started on loopback (default 1)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.set_defaults(func=cmd_batch)


def _spec(args: argparse.Namespace) -> TaskSpec:
    names = ["sigma", "model_id", "kernel", "padding", "private_kernel", "feature", "key", "message", "no_dealer"]
    options: dict[str, Any] = {n: getattr(args, n) for n in names if getattr(args, n) not in (None, False)}
    if args.servers:
        options["servers"] = args.servers
    return TaskSpec(args.task, options)


def cmd_batch(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..tasks.report import human_bytes
    from .runner import run_batch

    err = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
    )
    bar = None

    def on_record(record: dict[str, Any], finished: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = progress.add_task(f"batch {args.task}", total=total, rate="")
        if record["status"] != "ok":
            progress.console.print(f"[red]failed[/red] {record['input']}: {record['error']}", markup=True)
        elapsed = progress.tasks[bar].elapsed or 0.0
        rate = f"{60 * finished / elapsed:.1f} images/min" if elapsed > 0 else ""
        progress.update(bar, completed=finished, rate=rate)

    with progress:
        summary = run_batch(
            _spec(args),
            args.input,
            args.output,
            lanes=args.lanes,
            cluster=args.cluster,
            scheduler=args.scheduler,
            on_record=on_record,
        )
    if args.json:
        print(json.dumps(summary.to_json()), flush=True)
    else:
        print(
            f"{summary.images} images: {summary.done} done, {len(summary.failures)} failed, "
            f"{summary.skipped} skipped (done before); {summary.seconds:.1f} s on {summary.lanes} lane(s), "
            f"{summary.per_image_seconds:.2f} s per image, {summary.images_per_minute:.1f} images/min",
            flush=True,
        )
        if summary.bytes_sent:
            print("bytes sent: " + ", ".join(f"{k} {human_bytes(v)}" for k, v in sorted(summary.bytes_sent.items())))
        for failure in summary.failures:
            print(f"failed: {failure['input']}: {failure['error']}", file=sys.stderr)
    return 1 if summary.failures else 0
