"""Command line: ``safelight serve|certs|filter|denoise|model|store|demo|bench``.

Errors the user can fix (bad input, bad config, unreachable servers) print one
line and exit with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from .errors import SafelightError

EXIT_USAGE = 2


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


@contextmanager
def _cluster(args: argparse.Namespace, parties: int, dealer: bool = False) -> Iterator["object"]:
    from .runtime.cluster import Cluster

    if args.cluster:
        cluster = Cluster.from_config(args.cluster)
        if cluster.parties != parties:
            raise SafelightError(f"{args.cluster} has {cluster.parties} servers; this task needs {parties}")
        yield cluster
    else:
        with Cluster.local(parties, dealer=dealer) as cluster:
            yield cluster


def _progress():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from rich.console import Console

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=False)


def _print_job_summary(console, job, extra: dict[str, str] | None = None) -> None:
    from rich.table import Table

    table = Table(title="job summary", show_header=True)
    table.add_column("party")
    table.add_column("server time", justify="right")
    table.add_column("sent", justify="right")
    table.add_column("received", justify="right")
    table.add_column("rounds", justify="right")
    for p in job.parties:
        table.add_row(f"party-{p.party}", f"{p.seconds:.3f} s", _human_bytes(p.bytes_sent),
                      _human_bytes(p.bytes_received), str(p.rounds))
    console.print(table)
    console.print(f"wall time {job.wall_seconds:.3f} s, client upload {_human_bytes(job.upload_bytes)}, "
                  f"download {_human_bytes(job.download_bytes)}")
    for key, value in (extra or {}).items():
        console.print(f"{key}: {value}")


def _run_filter(image, kernel: str, padding: str, cluster, private_kernel: bool = False, no_dealer: bool = False):
    from .tasks import filter as filter_task

    with _progress() as progress:
        return filter_task.run(image, kernel, cluster, padding=padding, on_progress=_layer_progress(progress),
                               private_kernel=private_kernel, no_dealer=no_dealer)


def _he_filter(args: argparse.Namespace, image) -> int:
    """``safelight filter --scheme he``: one server filters the encrypted image."""
    from rich.console import Console

    from .images import write_image
    from .tasks import he_filter

    console = Console(stderr=True)
    with _cluster(args, 1) as cluster:
        with _progress() as progress:
            result = he_filter.run(image, args.kernel, cluster, padding=args.padding,
                                   encrypted_kernel=args.private_kernel, on_progress=_layer_progress(progress))
    write_image(args.output, result.image)
    _print_job_summary(console, result.job, {
        "scheme": "homomorphic encryption (BFV), one server; the secret key never left this machine",
        "client encrypt / decrypt": f"{result.seconds['encrypt']:.3f} s / {result.seconds['decrypt']:.3f} s",
        "ciphertexts up / down": f"{_human_bytes(result.upload_bytes)} / {_human_bytes(result.download_bytes)}",
        "output": str(args.output)})
    return 0


def cmd_filter(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .images import read_image, write_image
    from .tasks import filter as filter_task

    console = Console(stderr=True)
    filter_task.parse_kernel(args.kernel)  # fail fast on a bad spec, before starting servers
    image = read_image(args.input)
    if not Path(args.output).parent.exists():
        raise SafelightError(f"output directory {Path(args.output).parent} does not exist")
    if args.scheme == "he":
        return _he_filter(args, image)
    if args.no_dealer and not args.private_kernel:
        raise SafelightError("--no-dealer only matters with --private-kernel (a public kernel needs no dealer)")
    with _cluster(args, 2, dealer=args.private_kernel and not args.no_dealer) as cluster:
        result = _run_filter(image, args.kernel, args.padding, cluster, args.private_kernel, args.no_dealer)
    write_image(args.output, result.image)
    _print_job_summary(console, result.job, {"output": str(args.output)})
    return 0


def _layer_progress(progress):
    """A progress callback showing each party's current step (layer) of the Program."""
    bars = {}

    def on_progress(party: int, step: int, of: int, op: str) -> None:
        if party not in bars:
            bars[party] = progress.add_task(f"party-{party}", total=of)
        progress.update(bars[party], completed=step, description=f"party-{party} step {step}/{of} {op}")

    return on_progress


def _denoise_summary(job) -> dict[str, str]:
    ops = job.ops()
    linear = {"conv2d", "matmul", "mul"}
    lin_s = sum(v["seconds"] for k, v in ops.items() if k in linear)
    nonlin_s = sum(v["seconds"] for k, v in ops.items() if k in {"relu", "max_pool2d", "less"})
    return {
        "online / offline": f"{job.online_seconds:.2f} s / {job.offline_seconds:.2f} s "
                            f"(online: linear {lin_s:.2f} s, ReLU {nonlin_s:.2f} s)",
        "bytes per server": ", ".join(f"party-{p.party} {_human_bytes(p.bytes_sent)}" for p in job.parties),
        "rounds": str(job.rounds),
    }


def _denoise_job(args, images, sigma: float):
    from .tasks import denoise

    no_dealer = getattr(args, "no_dealer", False)
    with _cluster(args, 2, dealer=not args.cluster and not no_dealer) as cluster:
        if not args.cluster:  # the embedded cluster: this user is the model owner too
            denoise.upload(cluster, args.model_id)
        with _progress() as progress:
            options = {"triples": "he"} if no_dealer else {}
            return denoise.run(cluster, images, sigma, args.model_id, on_progress=_layer_progress(progress),
                               **options)


def cmd_denoise(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from .images import read_image, write_image
    from .tasks import denoise

    console = Console(stderr=True)
    sigma = denoise.check_sigma(args.sigma)  # fail fast, before starting servers
    image = read_image(args.input)
    denoise.as_float_image(image)
    if not Path(args.output).parent.exists():
        raise SafelightError(f"output directory {Path(args.output).parent} does not exist")
    result = _denoise_job(args, [image], sigma)
    write_image(args.output, np.round(result.images[0] * 255).astype(np.uint8))
    _print_job_summary(console, result.job, {**_denoise_summary(result.job), "output": str(args.output)})
    return 0


def cmd_model_upload(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .runtime.cluster import Cluster
    from .tasks import denoise

    console = Console(stderr=True)
    cluster = Cluster.from_config(args.cluster)
    if args.onnx:
        from .nn import load_onnx

        model = load_onnx(args.onnx, dict(_shape_arg(s) for s in args.shape or []), parties=cluster.parties)
        stored = cluster.upload_model(args.id, model.encode_weights())
    else:
        stored = denoise.upload(cluster, args.id)
    console.print(f"uploaded {len(stored)} weight tensors as model '{args.id}' to {cluster.parties} servers "
                  "(each server holds only its share)")
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

    from .images import sample_image, write_image
    from .tasks import denoise

    console = Console(stderr=True)
    photo = sample_image(args.image)
    h, w = photo.shape[:2]
    size = min(args.size, h, w)
    clean = photo[(h - size) // 2:(h - size) // 2 + size, (w - size) // 2:(w - size) // 2 + size]
    noisy = denoise.add_noise(clean, args.sigma, seed=1)
    console.print(f"private denoising demo: scikit-image '{args.image}' {clean.shape}, Gaussian noise sigma "
                  f"{args.sigma:g}, FFDNet on 2 servers (weights and image secret-shared; convolutions on "
                  "shares, ReLU by garbled circuits; "
                  + ("no third party: the servers make their own correlated randomness)" if args.no_dealer
                     else "a dealer process supplies correlated randomness)"))
    result = _denoise_job(args, [noisy], args.sigma)
    t0 = time.perf_counter()
    plain = denoise.plaintext([noisy], args.sigma)[0]
    plain_s = time.perf_counter() - t0
    private = result.images[0]
    to8 = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    write_image(args.output, np.concatenate([clean, to8(noisy), to8(private), to8(plain)], axis=1))
    rows = {name: (denoise.psnr(img, clean), denoise.ssim(img, clean))
            for name, img in (("noisy", noisy), ("private FFDNet", private), ("plaintext FFDNet", plain))}
    gap = abs(rows["private FFDNet"][0] - rows["plaintext FFDNet"][0])
    _print_job_summary(console, result.job, {
        **_denoise_summary(result.job),
        **{f"PSNR / SSIM {k}": f"{p:.2f} dB / {q:.4f}" for k, (p, q) in rows.items()},
        "PSNR gap private vs plaintext": f"{gap:.4f} dB",
        "plaintext float64 reference time": f"{plain_s:.2f} s",
        "side-by-side (clean | noisy | private | plaintext)": str(args.output),
    })
    return 0 if gap <= 0.05 else 1


def cmd_filter_demo(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from .images import sample_image, write_image
    from .tasks import filter as filter_task

    console = Console(stderr=True)
    image = sample_image(args.image)
    console.print(f"private filtering demo: scikit-image '{args.image}' {image.shape}, kernel {args.kernel}, "
                  "2 servers on loopback (TLS 1.3, additive shares over Z_2^64)")
    with _cluster(args, 2) as cluster:
        result = _run_filter(image, args.kernel, "reflect", cluster)
    t0 = time.perf_counter()
    plain = filter_task.plaintext(image, args.kernel)
    plain_s = time.perf_counter() - t0
    err = float(np.abs(result.values - plain).max())
    side = np.concatenate([image, result.image, filter_task.to_image(plain, args.kernel)], axis=1)
    write_image(args.output, side)
    _print_job_summary(console, result.job, {
        "max |private - plaintext scipy|": f"{err:.2e} (one grey level is {1/255:.2e})",
        "plaintext scipy time": f"{plain_s:.3f} s",
        "side-by-side (original | private | plaintext)": str(args.output),
    })
    return 0 if err <= 1 / 255 else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from .runtime.config import ClusterConfig
    from .runtime.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.role in ("store", "keyserver"):
        from .store.service import StoreConfig, serve as serve_store

        serve_store(args.role, StoreConfig.load(args.config), exit_with_parent=args.exit_with_parent)
        return 0
    if (args.party is None) == (args.role != "dealer"):
        raise SafelightError("give --party I for a party server, or --role dealer (not both)")
    serve(ClusterConfig.load(args.config), args.party, exit_with_parent=args.exit_with_parent)
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    from .runtime.certs import create_cluster_certs

    out = create_cluster_certs(args.directory, args.parties, clients=tuple(args.client), days=args.days)
    print(f"wrote a CA and certificates for {args.parties} parties and clients {args.client} to {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    return bench.main(args.names, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safelight", description="privacy-preserving image processing")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("filter", help="filter an image privately on two servers")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--kernel", required=True, help="gaussian:SIGMA | box:K | sharpen | sobel-x | sobel-y")
    p.add_argument("--padding", default="reflect", choices=["zero", "reflect", "mirror", "nearest"])
    p.add_argument("--cluster", help="cluster.toml of a remote cluster (default: spawn one on loopback)")
    p.add_argument("--private-kernel", action="store_true",
                   help="keep the kernel secret too: shared like a model owner's weights (scheme shares: needs a "
                        "dealer unless --no-dealer), or encrypted under the client's key (scheme he)")
    p.add_argument("--scheme", choices=["shares", "he"], default="shares",
                   help="shares: additive secret sharing on two servers (default); he: homomorphic encryption "
                        "on ONE server")
    p.add_argument("--no-dealer", action="store_true",
                   help="with --private-kernel: the two servers make their Beaver triples themselves with "
                        "homomorphic encryption (no third party)")
    p.set_defaults(func=cmd_filter)

    p = sub.add_parser("denoise", help="denoise a photo privately with FFDNet on two servers")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--sigma", type=float, required=True, help="noise level, 0 < sigma <= 75 (0..255 scale)")
    p.add_argument("--cluster", help="cluster.toml of a remote cluster whose servers hold the model "
                                     "(default: spawn one on loopback and upload the model to it)")
    p.add_argument("--model-id", default="ffdnet_color")
    p.add_argument("--no-dealer", action="store_true",
                   help="no third party: the two servers make their own correlated randomness (lattice HE "
                        "for convolutions, oblivious transfer for the rest); slower offline phase")
    p.set_defaults(func=cmd_denoise)

    p = sub.add_parser("model", help="manage models stored on the servers")
    msub = p.add_subparsers(dest="model_command", required=True)
    p = msub.add_parser("upload", help="share a model's weights to the servers, stored under an id")
    p.add_argument("--cluster", required=True, help="cluster.toml")
    p.add_argument("--id", default="ffdnet_color")
    p.add_argument("--onnx", help="an ONNX model (default: the shipped colour FFDNet)")
    p.add_argument("--shape", action="append", help="input shape for dynamic dims, NAME=1x3x64x64 (repeatable)")
    p.set_defaults(func=cmd_model_upload)

    p = sub.add_parser("demo", help="the main demo: private denoising of a photograph shipped with scikit-image")
    p.add_argument("--image", default="astronaut")
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--size", type=int, default=128, help="side of the centre crop (default 128; 256 takes ~1 min)")
    p.add_argument("--output", default="safelight-demo.png")
    p.add_argument("--cluster")
    p.add_argument("--model-id", default="ffdnet_color")
    p.add_argument("--no-dealer", action="store_true",
                   help="no third party: the two servers make their own correlated randomness (lattice HE "
                        "for convolutions, oblivious transfer for the rest); slower offline phase")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("filter-demo", help="private filtering of a photograph shipped with scikit-image")
    p.add_argument("--image", default="astronaut")
    p.add_argument("--kernel", default="gaussian:2")
    p.add_argument("--output", default="safelight-filter-demo.png")
    p.add_argument("--cluster")
    p.set_defaults(func=cmd_filter_demo)

    p = sub.add_parser("serve", help="run one server of a cluster")
    p.add_argument("--config", required=True)
    p.add_argument("--party", type=int, help="index of this party in the config")
    p.add_argument("--role", choices=["party", "dealer", "store", "keyserver"], default="party",
                   help="'dealer': deal correlated randomness (a helper you trust not to collude); "
                        "'store' / 'keyserver': the encrypted store's servers (config: store.toml)")
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)

    from .store.cli import add_parser as add_store_parser

    add_store_parser(sub)

    p = sub.add_parser("certs", help="create a CA and certificates for a new cluster")
    p.add_argument("directory")
    p.add_argument("--parties", type=int, required=True)
    p.add_argument("--client", action="append", default=None, help="client name (repeatable; default 'client')")
    p.add_argument("--days", type=int, default=365)
    p.set_defaults(func=cmd_certs)

    p = sub.add_parser("bench", help="run the built-in benchmarks with their in-run references")
    p.add_argument("names", nargs="*")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "client", None) is None and args.command == "certs":
        args.client = ["client"]
    try:
        return int(args.func(args) or 0)
    except SafelightError as exc:
        print(f"safelight: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("safelight: interrupted", file=sys.stderr)
        return 130
