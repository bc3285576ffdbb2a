"""Command line: ``safelight serve|certs|filter|denoise|model|store|search|demo|bench``.

Errors the user can fix (bad input, bad config, unreachable servers) print one
line and exit with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InputError, SafelightError

if TYPE_CHECKING:  # the commands import what they use when they run (a fast --help)
    from .runtime.cluster import Cluster

EXIT_USAGE = 2


def _human_bytes(n: float) -> str:
    from .tasks.report import human_bytes  # imported when a command prints (a fast --help)

    return human_bytes(n)


def _remote_cluster(args: argparse.Namespace, parties: int) -> Cluster | None:
    """The cluster of ``--cluster`` (servers already running), or None: the task then starts
    its embedded default on loopback for the job (with a dealer where the job needs one).
    ``--servers 3``: three servers with replicated sharing."""
    from .runtime.cluster import Cluster

    if getattr(args, "servers", 2) == 3:
        if getattr(args, "no_dealer", False):
            raise SafelightError("--servers 3 needs no dealer at all (replicated sharing): drop --no-dealer")
        parties = 3
    if not args.cluster:
        return None
    cluster = Cluster.from_config(args.cluster, scheme="rss3" if parties == 3 else "additive")
    if cluster.parties != parties:
        raise SafelightError(f"{args.cluster} has {cluster.parties} servers; this task needs {parties}")
    return cluster


@dataclass
class _Report:
    """Where this invocation's result goes (set by :func:`main`): a human summary on stdout,
    or with ``--json`` one JSON object on stdout and nothing else. Progress bars, warnings
    and logs go to stderr either way."""

    json: bool = False
    output: str | None = None  # the file the task writes, for the JSON summary


_REPORT = _Report()


def _progress():
    """A live progress display on stderr: description, bar, steps done, elapsed time and ETA."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def _print_result(record: dict, text: str) -> None:
    """A command's result on stdout: ``record`` as one JSON object with ``--json``, else ``text``."""
    if _REPORT.json:
        _print_json(record)
    else:
        print(text, flush=True)


def _print_json(record: dict) -> None:
    print(json.dumps(record, default=lambda v: v.item() if hasattr(v, "item") else str(v)), flush=True)


def _print_job_summary(console, report, extra: dict[str, str] | None = None) -> None:
    """A task's :class:`~safelight.tasks.report.JobReport` on stdout (``console`` is the
    caller's stderr console, for progress and notes; the summary is a result). With
    ``--json``: one JSON object instead, ``report.summary()`` (wall/online/offline seconds,
    bytes and rounds per party, ...), the output path and ``extra`` under ``details``."""
    from rich.console import Console
    from rich.table import Table

    if _REPORT.json:
        _print_json({**report.summary(), "output": _REPORT.output, "details": dict(extra or {})})
        return
    console = Console()  # stdout
    table = Table(title="job summary", show_header=True)
    table.add_column("party")
    table.add_column("server time", justify="right")
    table.add_column("sent", justify="right")
    table.add_column("received", justify="right")
    table.add_column("rounds", justify="right")
    for p in report.parties:
        table.add_row(
            f"party-{p.party}",
            f"{p.seconds:.3f} s",
            _human_bytes(p.bytes_sent),
            _human_bytes(p.bytes_received),
            str(p.rounds),
        )
    console.print(table)
    console.print(
        f"wall time {report.wall_seconds:.3f} s, client upload {_human_bytes(report.upload_bytes)}, "
        f"download {_human_bytes(report.download_bytes)}"
    )
    for key, value in (extra or {}).items():
        console.print(f"{key}: {value}")


def _run_filter(
    image, kernel: str, padding: str, cluster, private_kernel: bool = False, no_dealer: bool = False, servers: int = 2
):
    from .tasks import filter as filter_task

    with _progress() as progress:
        return filter_task.run(
            image,
            cluster=cluster,
            kernel=kernel,
            padding=padding,
            private_kernel=private_kernel,
            no_dealer=no_dealer,
            on_progress=_layer_progress(progress),
            servers=servers,
        )


def _he_filter(args: argparse.Namespace, image) -> int:
    """``safelight filter --scheme he``: one server filters the encrypted image."""
    from rich.console import Console

    from .images import write_image
    from .tasks import filter as filter_task
    from .tasks import he_filter

    console = Console(stderr=True)
    cluster = _remote_cluster(args, 1)
    with _progress() as progress:
        result = he_filter.run(
            image.pixels,
            cluster=cluster,
            kernel=args.kernel,
            padding=args.padding,
            encrypted_kernel=args.private_kernel,
            on_progress=_layer_progress(progress),
        )
    # rendered at the file's own depth (a float TIFF stays float; the task renders uint8/uint16)
    write_image(args.output, filter_task.to_image(result.values, args.kernel, image.pixels.dtype), like=image)
    client = result.report.client_seconds
    _print_job_summary(
        console,
        result.report,
        {
            "scheme": "homomorphic encryption (BFV), one server; the secret key never left this machine",
            "client encrypt / decrypt": f"{client['encrypt']:.3f} s / {client['decrypt']:.3f} s",
            "ciphertexts up / down": f"{_human_bytes(result.upload_bytes)} / {_human_bytes(result.download_bytes)}",
            "output": str(args.output),
        },
    )
    return 0


def cmd_filter(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .images import check_output_path, read_image, show_warnings_as_lines, write_image
    from .tasks import filter as filter_task

    show_warnings_as_lines()
    console = Console(stderr=True)
    filter_task.parse_kernel(args.kernel)  # fail fast on a bad spec, before starting servers
    image = read_image(args.input, frame=args.frame)
    check_output_path(args.output)  # the directory and the format, before the job
    if args.scheme == "he":
        return _he_filter(args, image)
    if args.no_dealer and not args.private_kernel:
        raise SafelightError("--no-dealer only matters with --private-kernel (a public kernel needs no dealer)")
    if args.servers == 3 and not args.private_kernel:
        raise SafelightError("--servers 3 runs the private-kernel filter: add --private-kernel")
    result = _run_filter(
        image.pixels,
        args.kernel,
        args.padding,
        _remote_cluster(args, 2),
        args.private_kernel,
        args.no_dealer,
        args.servers,
    )
    # rendered at the file's own depth (a float TIFF stays float; the task renders uint8/uint16)
    write_image(args.output, filter_task.to_image(result.values, args.kernel, image.pixels.dtype), like=image)
    _print_job_summary(console, result.report, {"output": str(args.output)})
    return 0


def _layer_progress(progress):
    """A progress callback showing each party's current step (layer) of the Program: one bar
    per party for the offline phase (preprocessing, when the job has any: long without a
    dealer), then one for the online phase."""
    bars = {}

    def on_progress(party: int, step: int, of: int, op: str, phase: str = "online") -> None:
        key = (party, phase)
        if key not in bars:
            bars[key] = progress.add_task(f"party-{party} {phase}", total=of)
        progress.update(bars[key], completed=step, description=f"party-{party} {phase} step {step}/{of} {op}")

    return on_progress


def _denoise_summary(report) -> dict[str, str]:
    ops = report.ops
    linear = {"conv2d", "matmul", "mul"}
    lin_s = sum(v["seconds"] for k, v in ops.items() if k in linear)
    nonlin_s = sum(v["seconds"] for k, v in ops.items() if k in {"relu", "max_pool2d", "less"})
    return {
        "online / offline": f"{report.online_seconds:.2f} s / {report.offline_seconds:.2f} s "
        f"(online: linear {lin_s:.2f} s, ReLU {nonlin_s:.2f} s)",
        "bytes per server": ", ".join(f"party-{p.party} {_human_bytes(p.bytes_sent)}" for p in report.parties),
        "rounds": str(report.rounds),
    }


def _denoise_job(args, image, sigma: float):
    """Denoise one image; without --cluster the task starts two servers (and a dealer unless
    --no-dealer) and shares the model to them: this user is the model owner too."""
    from .tasks import denoise

    cluster = _remote_cluster(args, 2)
    with _progress() as progress:
        return denoise.run(
            image,
            cluster=cluster,
            sigma=sigma,
            model_id=args.model_id,
            no_dealer=getattr(args, "no_dealer", False),
            on_progress=_layer_progress(progress),
            servers=args.servers,
        )


def cmd_denoise(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .images import check_output_path, read_image, show_warnings_as_lines, write_image
    from .tasks import denoise

    show_warnings_as_lines()
    console = Console(stderr=True)
    sigma = denoise.check_sigma(args.sigma)  # fail fast, before starting servers
    image = read_image(args.input, frame=args.frame)
    denoise.as_float_image(image.pixels)
    check_output_path(args.output)  # the directory and the format, before the job
    result = _denoise_job(args, image.pixels, sigma)
    write_image(args.output, result.outputs, like=image)  # the input's depth, its alpha unchanged
    _print_job_summary(console, result.report, {**_denoise_summary(result.report), "output": str(args.output)})
    return 0


def cmd_model_upload(args: argparse.Namespace) -> int:
    from .runtime.cluster import Cluster
    from .tasks import denoise

    cluster = Cluster.from_config(args.cluster, scheme="rss3" if args.servers == 3 else "additive")
    if args.onnx:
        from .nn import load_onnx

        shapes = dict(_shape_arg(s) for s in args.shape or [])
        model = load_onnx(args.onnx, shapes, parties=cluster.parties, scheme=cluster.scheme)
        stored = cluster.upload_model(args.id, model.encode_weights())
    else:
        stored = denoise.upload(cluster, args.id)
    _print_result(
        {
            "model": args.id,
            "tensors": len(stored),
            "servers": cluster.parties,
            "shapes": {name: list(t.shape) for name, t in stored.items()},
        },
        f"uploaded {len(stored)} weight tensors as model '{args.id}' to {cluster.parties} servers "
        "(each server holds only its share)",
    )
    return 0


def _shape_arg(text: str) -> tuple[str, tuple[int, ...]]:
    name, _, dims = text.partition("=")
    try:
        return name, tuple(int(d) for d in dims.split("x"))
    except ValueError:
        raise SafelightError(f"--shape must look like NAME=1x3x64x64, got {text!r}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from .images import captioned_panels, check_output_path, sample_image, show_warnings_as_lines, write_image
    from .tasks import denoise

    show_warnings_as_lines()
    console = Console(stderr=True)
    check_output_path(args.output)  # the directory and the format, before the job
    photo = sample_image(args.image)
    h, w = photo.shape[:2]
    size = min(args.size, h, w)
    if args.size > size:
        print(f"safelight: warning: --size {args.size} is larger than the {h}x{w} photo; using {size}", file=sys.stderr)
    clean = photo[(h - size) // 2 : (h - size) // 2 + size, (w - size) // 2 : (w - size) // 2 + size]
    noisy = denoise.add_noise(clean, args.sigma, seed=1)
    console.print(
        f"private denoising demo: scikit-image '{args.image}' {clean.shape}, Gaussian noise sigma "
        f"{args.sigma:g}, FFDNet on {args.servers} servers (weights and image secret-shared; "
        + (
            "replicated shares, honest majority: no dealer, no offline phase)"
            if args.servers == 3
            else "convolutions on shares, ReLU by garbled circuits; "
            + (
                "no third party: the servers make their own correlated randomness)"
                if args.no_dealer
                else "a dealer process supplies correlated randomness)"
            )
        )
    )
    result = _denoise_job(args, noisy, args.sigma)
    t0 = time.perf_counter()
    plain = denoise.plaintext([noisy], args.sigma)[0]
    plain_s = time.perf_counter() - t0
    private = result.outputs
    to8 = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    rows = {
        name: (denoise.psnr(img, clean), denoise.ssim(img, clean))
        for name, img in (("noisy", noisy), ("private FFDNet", private), ("plaintext FFDNet", plain))
    }
    captions = ["clean"] + [
        f"{label}\nPSNR {p:.2f} dB / SSIM {q:.4f}"
        for label, (p, q) in zip(("noisy", "private", "plaintext"), rows.values())
    ]
    write_image(args.output, captioned_panels([clean, to8(noisy), to8(private), to8(plain)], captions))
    gap = abs(rows["private FFDNet"][0] - rows["plaintext FFDNet"][0])
    _print_job_summary(
        console,
        result.report,
        {
            **_denoise_summary(result.report),
            **{f"PSNR / SSIM {k}": f"{p:.2f} dB / {q:.4f}" for k, (p, q) in rows.items()},
            "PSNR gap private vs plaintext": f"{gap:.4f} dB",
            "plaintext float64 reference time": f"{plain_s:.2f} s",
            "side-by-side (clean | noisy | private | plaintext)": str(args.output),
        },
    )
    return 0 if gap <= 0.05 else 1


def cmd_filter_demo(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from .images import check_output_path, sample_image, show_warnings_as_lines, write_image
    from .tasks import filter as filter_task

    show_warnings_as_lines()
    console = Console(stderr=True)
    check_output_path(args.output)  # the directory and the format, before the job
    image = sample_image(args.image)
    console.print(
        f"private filtering demo: scikit-image '{args.image}' {image.shape}, kernel {args.kernel}, "
        "2 servers on loopback (TLS 1.3, additive shares over Z_2^64)"
    )
    result = _run_filter(image, args.kernel, "reflect", _remote_cluster(args, 2))
    t0 = time.perf_counter()
    plain = filter_task.plaintext(image, args.kernel)
    plain_s = time.perf_counter() - t0
    err = float(np.abs(result.values - plain).max())
    side = np.concatenate([image, result.outputs, filter_task.to_image(plain, args.kernel)], axis=1)
    write_image(args.output, side)
    _print_job_summary(
        console,
        result.report,
        {
            "max |private - plaintext scipy|": f"{err:.2e} (one grey level is {1 / 255:.2e})",
            "plaintext scipy time": f"{plain_s:.3f} s",
            "side-by-side (original | private | plaintext)": str(args.output),
        },
    )
    return 0 if err <= 1 / 255 else 1


def _search_session(args: argparse.Namespace, need_servers: bool = True):
    """The catalog under --index-dir and the three servers: --cluster's, or the embedded
    default (spawned on loopback, their shares kept under <index-dir>/servers)."""
    from contextlib import ExitStack
    from pathlib import Path

    from .runtime.cluster import Cluster
    from .tasks.search_catalog import Catalog

    stack = ExitStack()
    catalog = stack.enter_context(Catalog(Path(args.index_dir).expanduser()))
    cluster = None
    if need_servers:
        if args.cluster:
            cluster = Cluster.from_config(args.cluster, scheme="rss3")
        else:
            cluster = stack.enter_context(Cluster.local(3, scheme="rss3", store=catalog.directory / "servers"))
    return stack, catalog, cluster


def cmd_search_index(args: argparse.Namespace) -> int:
    from .tasks import search

    stack, catalog, cluster = _search_session(args)
    with stack:
        before = catalog.live_photos()
        with _progress() as progress:
            task = progress.add_task(f"indexing ({args.features} features)", total=None)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            reports = search.index(
                args.paths, cluster=cluster, catalog=catalog, features=args.features, on_progress=on_progress
            )
        added = catalog.live_photos() - before
        tree = None
        if args.tree:
            drift = search.tree_drift(catalog)
            if drift > search.DRIFT:
                tree = search.build_tree(cluster, catalog, args.leaves)
        record = {
            "added": added,
            "photos": catalog.live_photos(),
            "features": args.features,
            "tree_leaves_built": tree,
            "jobs": [r.summary() for r in reports],
        }
        text = f"indexed {added} new photos ({catalog.live_photos()} in the gallery)"
        if args.tree:
            text += f"; index tree of {tree} leaves built" if tree else "; the index tree is up to date"
        _print_result(record, text)
    return 0


def cmd_search_query(args: argparse.Namespace) -> int:
    from .tasks import search

    stack, catalog, cluster = _search_session(args)
    with stack:
        result = search.query(
            args.image, cluster=cluster, catalog=catalog, top=args.top, exact=args.exact, probes=args.probe
        )
        if args.sheet:
            _contact_sheet(args.sheet, args.image, result.outputs)
        if _REPORT.json:
            probe = result.extras.get("probe_report")
            _print_json(
                {
                    "results": [{"rank": m.rank, "name": m.name, "distance": m.distance} for m in result.outputs],
                    "report": result.report.summary(),
                    "mode": result.extras["mode"],
                    "rows_searched": result.extras["rows_searched"],
                    "leaves_visited": result.extras.get("leaves_visited"),
                    "probe_report": None if probe is None else probe.summary(),
                }
            )
            return 0
        for m in result.outputs:
            print(f"{m.rank:>3}  {m.distance:8.4f}  {m.name}")
        jobs = [result.extras["probe_report"], result.report] if "probe_report" in result.extras else [result.report]
        what = (
            f"tree search (leaves {result.extras['leaves_visited']} of {result.extras['leaves']}, revealed to "
            f"the servers), {result.extras['rows_searched']} of {result.extras['gallery_rows']} photos"
            if result.extras["mode"] == "tree"
            else f"exact search over {result.extras['gallery_rows']} photos"
        )
        print(
            f"{what}: {sum(r.online_seconds for r in jobs):.2f} s online, "
            f"{', '.join(_human_bytes(sum(r.parties[i].bytes_sent for r in jobs)) for i in range(3))} sent by the "
            f"servers, {sum(r.rounds for r in jobs)} rounds",
            file=sys.stderr,
        )
    return 0


def _contact_sheet(out: str, query, matches) -> None:
    """The query, then each match, as 160-pixel thumbnails with their names."""
    from PIL import Image, ImageDraw

    size, label = 160, 18
    tiles = [("query", query)] + [(f"{m.rank}. {m.distance:.3f}", m.name) for m in matches]
    sheet = Image.new("RGB", (size * len(tiles), size + 2 * label), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (title, path) in enumerate(tiles):
        try:
            with Image.open(path) as im:
                thumb = im.convert("RGB")
                thumb.thumbnail((size, size))
        except OSError:
            thumb = Image.new("RGB", (size, size), "grey")
        sheet.paste(thumb, (i * size, label))
        draw.text((i * size + 2, 2), title, fill="black")
        draw.text((i * size + 2, size + label + 2), str(path).rsplit("/", 1)[-1][:24], fill="black")
    sheet.save(out)


def cmd_search_list(args: argparse.Namespace) -> int:
    stack, catalog, _ = _search_session(args, need_servers=False)
    with stack:
        names = [p.name for p in catalog.photos()]
        _print_result({"photos": names}, "\n".join(names) if names else "(the gallery is empty)")
    return 0


def cmd_search_rm(args: argparse.Namespace) -> int:
    stack, catalog, _ = _search_session(args, need_servers=False)
    with stack:
        catalog.remove(args.name)
        _print_result({"removed": args.name}, f"removed {args.name} (its row is never returned again)")
    return 0


def cmd_search_stats(args: argparse.Namespace) -> int:
    stack, catalog, _ = _search_session(args, need_servers=False)
    with stack:
        from .tasks import search

        tree = catalog.tree()
        record = {
            "index_dir": str(catalog.directory),
            "photos": catalog.live_photos(),
            "gallery_rows": catalog.gallery_rows(),
            "segments": len(catalog.segments()),
            "removed_rows": catalog.gallery_rows() - catalog.live_photos(),
            "tree_leaves": None if tree is None else tree[1],
            "tree_drift": None if tree is None else round(search.tree_drift(catalog), 4),
        }
        _print_result(record, "\n".join(f"{k}: {v}" for k, v in record.items()))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .images import read_image
    from .tasks import features

    image = read_image(args.input).pixels
    if args.servers is None:
        args.servers = 3 if args.feature == "sift" else 2
    if args.scheme == "he" and (args.feature != "harris" or args.servers == 3 or args.no_dealer):
        raise InputError("--scheme he computes Harris corners on ONE server (no --servers 3, no --no-dealer)")
    parties = 1 if args.scheme == "he" else 3 if args.servers == 3 else 2
    cluster = _remote_cluster(args, parties)
    if args.feature == "hog":
        result = features.hog(image, cluster=cluster, servers=args.servers, no_dealer=args.no_dealer)
        record = {**features.to_record("hog", result), "report": result.report.summary()}
        if args.json:
            Path(args.json).write_text(json.dumps(record) + "\n")
        r = result.report
        print(
            f"HOG descriptor of {len(result.outputs)} values; {r.online_seconds:.2f} s online, "
            f"{', '.join(_human_bytes(p.bytes_sent) for p in r.parties)} sent by the servers, {r.rounds} rounds"
        )
        return 0
    if args.feature == "sift":
        result = features.sift(image, cluster=cluster, servers=args.servers, no_dealer=args.no_dealer)
        points = result.outputs
        record = {**features.to_record("sift", result), "report": result.report.summary()}
        if args.json:
            Path(args.json).write_text(json.dumps(record) + "\n")
        if args.plot:
            _plot_keypoints(args.plot, image, [(int(round(r)), int(round(c))) for r, c, _ in points])
        r = result.report
        print(
            f"{len(points)} SIFT-like keypoints with 128-d descriptors; {r.online_seconds:.2f} s online, "
            f"{r.offline_seconds:.2f} s offline, {', '.join(_human_bytes(p.bytes_sent) for p in r.parties)} "
            f"sent by the servers, {r.rounds} rounds"
        )
        return 0
    result = features.harris(
        image,
        cluster=cluster,
        servers=args.servers,
        k=args.k,
        sigma=args.sigma,
        min_distance=args.min_distance,
        threshold_rel=args.threshold_rel,
        no_dealer=args.no_dealer,
        scheme=args.scheme,
        method=args.method,
    )
    record = {**features.to_record(args.feature, result), "report": result.report.summary()}
    keypoints = record["keypoints"]
    if args.json:
        Path(args.json).write_text(json.dumps(record) + "\n")
    if args.plot:
        _plot_keypoints(args.plot, image, result.outputs)
    r = result.report
    print(
        f"{len(keypoints)} Harris corners; {r.online_seconds:.2f} s online, {r.offline_seconds:.2f} s offline, "
        f"{', '.join(_human_bytes(p.bytes_sent) for p in r.parties)} sent by the servers, {r.rounds} rounds"
    )
    return 0


def _plot_keypoints(out: str, image, points) -> None:
    """The photo with a red cross on every keypoint."""
    import numpy as np
    from PIL import Image, ImageDraw

    from .tasks.features import as_grey

    a = np.asarray(image)
    rgb = a if a.ndim == 3 and a.dtype == np.uint8 else (np.stack([as_grey(a)] * 3, axis=-1) * 255).astype(np.uint8)
    im = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
    draw = ImageDraw.Draw(im)
    for r, c in points:
        draw.line([(c - 3, r), (c + 3, r)], fill=(255, 0, 0))
        draw.line([(c, r - 3), (c, r + 3)], fill=(255, 0, 0))
    im.save(out)


def cmd_watermark_keygen(args: argparse.Namespace) -> int:
    from .tasks import watermark

    watermark.keygen(args.keyfile)
    _print_result({"key": str(args.keyfile)}, f"wrote a new watermark key to {args.keyfile} (keep it secret)")
    return 0


def cmd_watermark_embed(args: argparse.Namespace) -> int:
    from PIL import Image

    from .images import read_image
    from .tasks import watermark

    key = watermark.load_key(args.key)
    image = read_image(args.input).pixels
    if args.scheme == "he" and args.servers == 3:
        raise InputError("--scheme he runs on ONE server: drop --servers 3")
    he = args.scheme == "he"
    if he and args.no_dealer:
        raise InputError("--scheme he runs on ONE server with no dealer at all: drop --no-dealer")
    cluster = None if args.plain else _remote_cluster(args, 1 if he else 3 if args.servers == 3 else 2)
    result = watermark.embed(
        image,
        key=key,
        message=args.message,
        cluster=cluster,
        plain=args.plain,
        servers=args.servers,
        no_dealer=args.no_dealer,
        he=he,
    )
    Image.fromarray(result.outputs).save(args.output)
    record = {
        "output": str(args.output),
        "message": result.extras["message"],
        "psnr": round(result.extras["psnr"], 3),
        "report": None if result.report is None else result.report.summary(),
    }
    if he:
        x = result.extras
        record["he"] = {
            "bytes": x["bytes"],
            "seconds": {k: round(v, 4) for k, v in x["seconds"].items()},
            "noise_budget_bits": x["noise_budget_bits"],
        }
    _print_result(record, f"wrote {args.output}: payload {record['message']}, PSNR {record['psnr']:.2f} dB")
    return 0


def cmd_watermark_detect(args: argparse.Namespace) -> int:
    import numpy as np

    from .images import read_image
    from .tasks import watermark

    key = watermark.load_key(args.key)
    image = read_image(args.input).pixels
    cluster = None if args.plain else _remote_cluster(args, 3 if args.servers == 3 else 2)
    result = watermark.detect(
        image,
        key=key,
        message=args.message,
        cluster=cluster,
        plain=args.plain,
        servers=args.servers,
        no_dealer=args.no_dealer,
    )
    x = result.extras
    record = {
        "message": result.outputs,
        "present": bool(x["present"]),
        "confidence": round(float(x["score"]), 4),
        "fit": round(float(x["fit"]), 4),
        "bit_confidence": [round(float(c), 3) for c in x["confidence"]],
        "report": None if result.report is None else result.report.summary(),
    }
    verdict = "present" if record["present"] else "absent"
    _print_result(
        record,
        f"payload {record['message']}, mean bit confidence {np.mean(x['confidence']):.2f}, "
        f"score {record['confidence']:.3f}: watermark {verdict}",
    )
    return 0


def _add_watermark_parser(sub) -> None:
    p = sub.add_parser("watermark", help="invisible watermarks: keygen, embed, detect")
    wsub = p.add_subparsers(dest="watermark_command", required=True)
    q = wsub.add_parser("keygen", help="create a secret watermark key (never overwrites)")
    q.add_argument("keyfile", help="where to write the key (JSON, mode 0600)")
    _add_json(q)
    q.set_defaults(func=cmd_watermark_keygen)
    q = wsub.add_parser("embed", help="mark a photo with a 64-bit payload")
    q.add_argument("input", help="the photo (8-bit RGB or grey, at least 128x128)")
    q.add_argument("output", help="the marked photo (PNG keeps it exact)")
    q.add_argument("--key", required=True, help="key file (safelight watermark keygen)")
    q.add_argument("--message", required=True, help="the payload: 16 hex digits")
    q.add_argument("--scheme", choices=["shares", "he"], default="shares", help="servers on shares, or one HE server")
    q.add_argument("--plain", action="store_true", help="run the reference on this machine (no servers)")
    q.add_argument("--cluster", help="cluster.toml of running servers (default: servers on loopback)")
    q.add_argument("--no-dealer", action="store_true", help="two servers with no third party")
    _add_servers(q)
    _add_json(q)
    q.set_defaults(func=cmd_watermark_embed)
    q = wsub.add_parser("detect", help="recover the payload of a suspect photo and say whether a mark is there")
    q.add_argument("input", help="the suspect photo")
    q.add_argument("--key", required=True, help="key file")
    q.add_argument("--message", help="16 hex digits: only say whether this payload is there (the yes/no detector)")
    q.add_argument("--plain", action="store_true", help="run the reference on this machine (no servers)")
    q.add_argument("--cluster", help="cluster.toml of running servers (default: servers on loopback)")
    q.add_argument("--no-dealer", action="store_true", help="two servers with no third party")
    _add_servers(q)
    _add_json(q)
    q.set_defaults(func=cmd_watermark_detect)


def _add_features_parser(sub) -> None:
    p = sub.add_parser(
        "features",
        help="feature detection on an encrypted image: Harris corners, HOG, SIFT-like keypoints",
    )
    p.add_argument("feature", choices=["harris", "hog", "sift"], help="which features")
    p.add_argument("input", help="the image (grey or colour; colour is made grey as skimage.color.rgb2gray)")
    p.add_argument("--json", metavar="OUT", help="write the keypoints and the job report to this JSON file")
    p.add_argument("--plot", metavar="OUT.png", help="draw the keypoints on the photo")
    p.add_argument("--k", type=float, default=0.05, help="Harris sensitivity (default 0.05)")
    p.add_argument(
        "--method",
        choices=["k", "shi-tomasi"],
        default="k",
        help="harris: det - k trace^2 (corner_harris, default) or the smaller eigenvalue (corner_shi_tomasi)",
    )
    p.add_argument("--sigma", type=float, default=1.0, help="Gaussian of the structure tensor (default 1)")
    p.add_argument("--min-distance", type=int, default=1, help="non-maximum suppression radius (default 1)")
    p.add_argument("--threshold-rel", type=float, default=0.01, help="relative threshold (default 0.01)")
    p.add_argument("--cluster", help="cluster.toml of running servers (default: servers on loopback)")
    p.add_argument("--no-dealer", action="store_true", help="two servers with no third party")
    p.add_argument(
        "--scheme",
        choices=["shares", "he"],
        default="shares",
        help="harris only: 'he' runs ONE server on BFV ciphertexts (the client thresholds after decryption)",
    )
    _add_servers(p, default=None)
    p.set_defaults(func=cmd_features)


def _add_search_parser(sub) -> None:
    from .tasks.search import DEFAULT_INDEX_DIR, DEFAULT_PROBES, DRIFT

    search_drift, search_probes = DRIFT, DEFAULT_PROBES

    p = sub.add_parser("search", help="private content-based image search on three servers")
    ssub = p.add_subparsers(dest="search_command", required=True)

    def common(q, servers: bool = True) -> None:
        q.add_argument(
            "--index-dir",
            default=str(DEFAULT_INDEX_DIR),
            help=f"the gallery's catalog and key (default {DEFAULT_INDEX_DIR})",
        )
        if servers:
            q.add_argument(
                "--cluster",
                help="cluster.toml of three running servers (default: three on loopback, "
                "their shares under <index-dir>/servers)",
            )
        q.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    q = ssub.add_parser("index", help="add photos (files or folders, recursively) to the gallery")
    q.add_argument("paths", nargs="+", help="image files or folders")
    q.add_argument(
        "--features",
        choices=["local", "private"],
        default="local",
        help="local: this machine computes the features (you may hold the model); private: the servers "
        "compute them on shares and keep them (neither the network nor the features reach you)",
    )
    q.add_argument(
        "--tree",
        action="store_true",
        help="then build the index tree (k-means, about sqrt(n) leaves: over your local features, or by the "
        "servers on the shares when the features are private), or rebuild "
        f"it when the photos added or forgotten since it was built exceed {search_drift:.0%} of it",
    )
    q.add_argument("--leaves", type=int, help="leaves of the tree (default: about sqrt(photos))")
    common(q)
    q.set_defaults(func=cmd_search_index)

    query_help = (
        "the nearest photos of an image. With an index tree: the query visits the --probe leaves nearest "
        "it and searches only those (fewer than --top results when they hold fewer photos), which REVEALS "
        "THE PATH (which leaves) to the servers; --exact (the default without a tree) scans the whole "
        "gallery and reveals only its size and --top"
    )
    q = ssub.add_parser("query", help=query_help, description=query_help)
    q.add_argument("image", help="the query image")
    q.add_argument("--top", type=int, default=10, help="how many results (default 10)")
    q.add_argument(
        "--exact", action="store_true", help="scan the whole gallery even with a tree: no leakage beyond sizes"
    )
    q.add_argument(
        "--probe",
        type=int,
        default=search_probes,
        help=f"tree mode: leaves to visit (default {search_probes}); the servers learn which",
    )
    q.add_argument("--sheet", help="write a contact sheet (query, then the results) to this PNG")
    common(q)
    q.set_defaults(func=cmd_search_query)

    q = ssub.add_parser("list", help="the names of the indexed photos")
    common(q, servers=False)
    q.set_defaults(func=cmd_search_list)
    q = ssub.add_parser("rm", help="forget a photo")
    q.add_argument("name", help="its name as `list` prints it")
    common(q, servers=False)
    q.set_defaults(func=cmd_search_rm)
    q = ssub.add_parser("stats", help="sizes of the gallery")
    common(q, servers=False)
    q.set_defaults(func=cmd_search_stats)


def cmd_serve(args: argparse.Namespace) -> int:
    from .net.config import ClusterConfig
    from .runtime.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.role in ("store", "keyserver"):
        from .store.service import StoreConfig
        from .store.service import serve as serve_store

        serve_store(args.role, StoreConfig.load(args.config), exit_with_parent=args.exit_with_parent)
        return 0
    if (args.party is None) == (args.role != "dealer"):
        raise SafelightError("give --party I for a party server, or --role dealer (not both)")
    config = ClusterConfig.load(args.config)
    if args.lane is None and config.lanes > 1:
        raise SafelightError(f"{args.config} offers {config.lanes} lanes: give --lane L (0..{config.lanes - 1})")
    serve(
        config.lane(args.lane or 0),
        args.party,
        exit_with_parent=args.exit_with_parent,
        peers_from_stdin=args.peers_from_stdin,
    )
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    from .net.certs import create_cluster_certs

    extra = ("dealer",) if args.dealer else ()
    out = create_cluster_certs(
        args.directory, args.parties, clients=tuple(args.client), extra_names=extra, days=args.days
    )
    print(
        f"wrote a CA and certificates for {args.parties} parties{' and a dealer' if extra else ''} and clients "
        f"{args.client} to {out}"
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    return bench.main(args.names, as_json=args.json, link=args.link)


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json",
        action="store_true",
        help="print the result as one JSON object on stdout (times, bytes and rounds per server, "
        "output path) and nothing else; progress stays on stderr",
    )


def _add_denoise_cluster_options(p: argparse.ArgumentParser) -> None:
    """Where a denoising job runs (denoise and demo)."""
    p.add_argument(
        "--cluster",
        help="cluster.toml of a remote cluster whose servers hold the model "
        "(default: spawn one on loopback and upload the model to it)",
    )
    p.add_argument(
        "--model-id", default="ffdnet_color", help="the id the model was uploaded under (default ffdnet_color)"
    )
    p.add_argument(
        "--no-dealer",
        action="store_true",
        help="no third party: the two servers make their own correlated randomness (lattice HE "
        "for convolutions, oblivious transfer for the rest); slower offline phase",
    )
    _add_servers(p)


def _add_servers(p: argparse.ArgumentParser, default: int | None = 2) -> None:
    p.add_argument(
        "--servers",
        type=int,
        choices=[2, 3],
        default=default,
        help="2: additive sharing on two servers; 3: replicated sharing on three servers "
        "(honest majority: no dealer, no offline phase); default "
        + ("2" if default == 2 else "3 for sift, 2 otherwise"),
    )


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = argparse.ArgumentParser(prog="safelight", description="privacy-preserving image processing")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("filter", help="filter an image privately on two servers")
    p.add_argument("input", help="the image to filter (PNG, JPEG, TIFF, ...)")
    p.add_argument(
        "output",
        help="where to write the filtered image; edge kernels (sobel-x, sobel-y: weights "
        "summing to 0) are written as |response|, other values clipped to the range",
    )
    p.add_argument(
        "--kernel",
        required=True,
        help="gaussian:SIGMA (0.1..20) | box:K (1..31) | sharpen | sobel-x | sobel-y; every one also "
        "with --scheme he (up to gaussian:20, 161x161)",
    )
    p.add_argument(
        "--padding",
        default="reflect",
        choices=["zero", "reflect", "mirror", "nearest"],
        help="how the image is extended past its border (default reflect, as scipy.ndimage)",
    )
    p.add_argument("--cluster", help="cluster.toml of a remote cluster (default: spawn one on loopback)")
    p.add_argument(
        "--private-kernel",
        action="store_true",
        help="keep the kernel secret too: shared like a model owner's weights (scheme shares: needs a "
        "dealer unless --no-dealer), or encrypted under the client's key (scheme he)",
    )
    p.add_argument(
        "--scheme",
        choices=["shares", "he"],
        default="shares",
        help="shares: additive secret sharing on two servers (default); he: homomorphic encryption on ONE server",
    )
    p.add_argument(
        "--no-dealer",
        action="store_true",
        help="with --private-kernel: the two servers make their Beaver triples themselves with "
        "homomorphic encryption (no third party)",
    )
    _add_servers(p)
    p.add_argument(
        "--frame",
        type=int,
        metavar="N",
        help="the frame of an animated or multi-page input to filter (0-based; required when it has several)",
    )
    _add_json(p)
    p.set_defaults(func=cmd_filter)

    p = sub.add_parser("denoise", help="denoise a photo privately with FFDNet on two servers")
    p.add_argument("input", help="the noisy image (PNG, JPEG, TIFF, ...)")
    p.add_argument("output", help="where to write the denoised image")
    p.add_argument("--sigma", type=float, required=True, help="noise level, 0 < sigma <= 75 (0..255 scale)")
    _add_denoise_cluster_options(p)
    p.add_argument(
        "--frame",
        type=int,
        metavar="N",
        help="the frame of an animated or multi-page input to denoise (0-based; required when it has several)",
    )
    _add_json(p)
    p.set_defaults(func=cmd_denoise)

    p = sub.add_parser("model", help="manage models stored on the servers")
    msub = p.add_subparsers(dest="model_command", required=True)
    p = msub.add_parser("upload", help="share a model's weights to the servers, stored under an id")
    p.add_argument("--cluster", required=True, help="cluster.toml of the servers to upload to")
    p.add_argument("--id", default="ffdnet_color", help="the id to store the model under (default ffdnet_color)")
    p.add_argument("--onnx", help="an ONNX model (default: the shipped colour FFDNet)")
    p.add_argument("--shape", action="append", help="input shape for dynamic dims, NAME=1x3x64x64 (repeatable)")
    _add_json(p)
    _add_servers(p)
    p.set_defaults(func=cmd_model_upload)

    p = sub.add_parser("demo", help="the main demo: private denoising of a photograph shipped with scikit-image")
    p.add_argument("--image", default="astronaut", help="a scikit-image sample photo (default astronaut)")
    p.add_argument("--sigma", type=float, default=25.0, help="Gaussian noise added, 0..255 scale (default 25)")
    p.add_argument("--size", type=int, default=128, help="side of the centre crop (default 128; 256 takes ~1 min)")
    p.add_argument(
        "--output", default="safelight-demo.png", help="where to write the side-by-side (default safelight-demo.png)"
    )
    _add_denoise_cluster_options(p)
    _add_json(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("filter-demo", help="private filtering of a photograph shipped with scikit-image")
    p.add_argument("--image", default="astronaut", help="a scikit-image sample photo (default astronaut)")
    p.add_argument("--kernel", default="gaussian:2", help="as for filter (default gaussian:2)")
    p.add_argument(
        "--output",
        default="safelight-filter-demo.png",
        help="where to write the side-by-side (default safelight-filter-demo.png)",
    )
    p.add_argument("--cluster", help="cluster.toml of a remote cluster (default: spawn one on loopback)")
    _add_json(p)
    p.set_defaults(func=cmd_filter_demo)

    p = sub.add_parser("serve", help="run one server of a cluster")
    p.add_argument(
        "--config",
        required=True,
        help="cluster.toml (format: python/safelight/net/config.py), or store.toml for --role store / keyserver",
    )
    p.add_argument("--party", type=int, help="index of this party in the config")
    p.add_argument(
        "--lane",
        type=int,
        metavar="L",
        help="which lane of a server pool this process serves (a [[party]] with hosts / lanes in cluster.toml)",
    )
    p.add_argument(
        "--role",
        choices=["party", "dealer", "store", "keyserver"],
        default="party",
        help="'dealer': deal correlated randomness (a helper you trust not to collude); "
        "'store' / 'keyserver': the encrypted store's servers (config: store.toml)",
    )
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--peers-from-stdin", action="store_true", help=argparse.SUPPRESS)  # Cluster.local
    p.set_defaults(func=cmd_serve)

    from .store.cli import add_parser as add_store_parser

    add_store_parser(sub)
    from .batch.cli import add_parser as add_batch_parser

    add_batch_parser(sub)
    _add_search_parser(sub)
    _add_features_parser(sub)
    _add_watermark_parser(sub)

    p = sub.add_parser("certs", help="create a CA and certificates for a new cluster")
    p.add_argument("directory", help="where to write ca.pem and each party's and client's .pem/.key")
    p.add_argument("--parties", type=int, required=True, help="number of servers (2 or 3)")
    p.add_argument("--client", action="append", default=None, help="client name (repeatable; default 'client')")
    p.add_argument("--dealer", action="store_true", help="also a certificate for a dealer process (--role dealer)")
    p.add_argument("--days", type=int, default=365, help="validity of the certificates (default 365)")
    p.set_defaults(func=cmd_certs)

    p = sub.add_parser("bench", help="run the built-in benchmarks with their in-run references")
    p.add_argument("names", nargs="*", help="benchmarks to run, each alone (default: all)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--link",
        choices=["lan", "wan"],
        help="run two-server benchmarks with the servers in two network namespaces on a shaped link "
        "(lan: 10 Gbit/s, 0.2 ms RTT; wan: 1 Gbit/s, 20 ms RTT); needs root, skipped with a message otherwise",
    )
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "client", None) is None and args.command == "certs":
        args.client = ["client"]
    _REPORT.json = bool(getattr(args, "json", False)) and args.command != "bench"  # bench: its own --json
    _REPORT.output = None if getattr(args, "output", None) is None else str(args.output)
    try:
        return int(args.func(args) or 0)
    except SafelightError as exc:
        print(f"safelight: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("safelight: interrupted", file=sys.stderr)
        return 130
    finally:
        _REPORT.json, _REPORT.output = False, None
