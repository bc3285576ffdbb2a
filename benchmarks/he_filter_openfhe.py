"""Encrypted 3x3 filtering of a 256 x 256 grey image on one server with OpenFHE's CKKS.

Times the client's key generation and encryption, the server's evaluation and the
client's decryption (safelight.tasks.openfhe_filter.filter_image), the serialised ciphertext
bytes each way and the public key material, and the largest error against plaintext
filtering in grey levels. The image is the centre 256 x 256 of scikit-image's camera,
as in the ``he_filter_256`` benchmark. References measured in the same run:
scipy.ndimage on the plaintext, safelight's own BFV single-server filter
(``safelight.tasks.he_filter``, where this checkout has it) and the two-server filter on
secret shares (``safelight.tasks.filter.run``), both on loopback clusters.

Needs a Python on which ``openfhe`` imports (CPython 3.10 for openfhe 1.6.1)::

    python3.10 -m venv .venv-openfhe && .venv-openfhe/bin/pip install ".[openfhe]"
    .venv-openfhe/bin/python benchmarks/he_filter_openfhe.py            # writes he_filter_openfhe.json

OpenFHE parallelises with OpenMP; ``--threads`` (default 1) sets OMP_NUM_THREADS before
it loads, so the figures are for one core unless asked otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ("keygen", "encrypt", "evaluate", "decrypt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kernels",
        nargs="+",
        default=["box:3", "sobel-x", "sharpen"],
        help="3x3 kernel specs (default: box:3 sobel-x sharpen)",
    )
    parser.add_argument(
        "--ring-dims",
        nargs="+",
        type=int,
        default=[8192, 16384, 32768],
        help="ring dimensions swept for the first kernel, besides the automatic choice",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per configuration; the median is shown, the minimum also recorded"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("OMP_NUM_THREADS", "1")),
        help="OpenMP threads for OpenFHE (default: OMP_NUM_THREADS or 1)",
    )
    parser.add_argument(
        "--no-shares",
        action="store_true",
        help="skip the references that start loopback clusters (BFV one-server, two-server shares)",
    )
    parser.add_argument("--json", type=Path, default=HERE / "he_filter_openfhe.json")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before openfhe (libgomp) loads

    import numpy as np
    from skimage import data

    from safelight.tasks import filter as private_filter
    from safelight.tasks import openfhe_filter as he

    if not he.available():
        he.require_openfhe()  # raises with the reason and the install hint
    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    image = data.camera()[128:384, 128:384]  # 256 x 256 uint8, as the he_filter_256 benchmark

    def run(kernel: str, ring_dim: int | None) -> dict:
        runs = [he.filter_image(image, kernel, ring_dim=ring_dim) for _ in range(args.repeat)]
        plain = private_filter.plaintext(image, kernel)
        last = runs[-1]
        seconds = {s: statistics.median(r.seconds[s] for r in runs) for s in STAGES}
        fastest = {s: min(r.seconds[s] for r in runs) for s in STAGES}
        return {
            "kernel": kernel,
            "ring_dim": last.params["ring_dim"],
            "ring_dim_choice": "auto" if ring_dim is None else "given",
            "ciphertexts": last.params["ciphertexts"],
            "tile": last.params["tile"],
            "rotations": len(last.params["rotations"]),
            "seconds": seconds,
            "min_seconds": fastest,
            "client_seconds": seconds["keygen"] + seconds["encrypt"] + seconds["decrypt"],
            "ciphertext_bytes": last.ciphertext_bytes,
            "key_bytes": last.key_bytes,
            "max_error_grey_levels": max(float(np.abs(r.values - plain).max()) * 255 for r in runs),
            "max_uint8_difference": max(
                int(np.abs(r.image.astype(int) - private_filter.to_image(plain, kernel)).max()) for r in runs
            ),
        }

    rows = [run(k, None) for k in args.kernels]
    rows += [run(args.kernels[0], n) for n in args.ring_dims]
    params = he.filter_image(image[:8, :8], args.kernels[0]).params

    reference = {}
    start = time.perf_counter()
    for _ in range(args.repeat):
        plain = private_filter.plaintext(image, args.kernels[0])
    reference["scipy_seconds"] = (time.perf_counter() - start) / args.repeat
    try:
        from safelight.tasks import he_filter
    except ImportError:
        he_filter = None
    if he_filter is not None and not args.no_shares:
        import safelight

        with safelight.Cluster.local(1) as cluster:
            he_filter.run(image, kernel=args.kernels[0], cluster=cluster)  # warm-up
            bfv = [he_filter.run(image, kernel=args.kernels[0], cluster=cluster) for _ in range(args.repeat)]
        reference["safelight_bfv_one_server"] = {
            "kernel": args.kernels[0],
            "server_seconds": statistics.median(r.job.parties[0].online_seconds for r in bfv),
            "encrypt_seconds": statistics.median(r.seconds["encrypt"] for r in bfv),
            "decrypt_seconds": statistics.median(r.seconds["decrypt"] for r in bfv),
            "upload_bytes": bfv[-1].upload_bytes,
            "download_bytes": bfv[-1].download_bytes,
            "max_error_grey_levels": float(np.abs(bfv[-1].values - plain).max()) * 255,
        }
    if not args.no_shares:
        import safelight

        with safelight.Cluster.local(2) as cluster:
            private_filter.run(image, kernel=args.kernels[0], cluster=cluster)  # warm-up
            jobs = [private_filter.run(image, kernel=args.kernels[0], cluster=cluster) for _ in range(args.repeat)]
        reference["shares_two_servers"] = {
            "kernel": args.kernels[0],
            "wall_seconds": statistics.median(j.job.wall_seconds for j in jobs),
            "upload_bytes": jobs[-1].job.upload_bytes,
            "download_bytes": jobs[-1].job.download_bytes,
            "max_error_grey_levels": float(np.abs(jobs[-1].values - plain).max()) * 255,
        }

    print(
        f"OpenFHE CKKS filter, {image.shape[0]}x{image.shape[1]} grey (camera), 3x3 kernels, "
        f"{args.threads} OpenMP thread(s), median of {args.repeat}"
    )
    header = (
        f"{'kernel':<8} {'ring':>6} {'cts':>4} {'keygen':>7} {'encrypt':>7} {'server':>7} {'decrypt':>7} "
        f"{'up MB':>6} {'down MB':>7} {'keys MB':>7} {'err grey':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        s, b = r["seconds"], r["ciphertext_bytes"]
        mark = "*" if r["ring_dim_choice"] == "auto" else " "
        print(
            f"{r['kernel']:<8} {r['ring_dim']:>5}{mark} {r['ciphertexts']:>4} {s['keygen']:>7.3f} "
            f"{s['encrypt']:>7.3f} {s['evaluate']:>7.3f} {s['decrypt']:>7.3f} {b['upload'] / 1e6:>6.2f} "
            f"{b['download'] / 1e6:>7.2f} {r['key_bytes']['rotation_keys'] / 1e6:>7.2f} "
            f"{r['max_error_grey_levels']:>9.1e}"
        )
    print(
        "* automatic ring dimension (fewest ciphertext bytes); seconds; MB = 1e6 bytes; "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(f"reference ({args.kernels[0]}): scipy.ndimage {reference['scipy_seconds'] * 1e3:.1f} ms")
    if "safelight_bfv_one_server" in reference:
        b = reference["safelight_bfv_one_server"]
        print(
            f"reference: safelight BFV one server: server {b['server_seconds']:.3f} s, "
            f"encrypt {b['encrypt_seconds']:.3f} s, decrypt {b['decrypt_seconds']:.3f} s, "
            f"{b['upload_bytes'] / 1e6:.2f} MB up, {b['download_bytes'] / 1e6:.2f} MB down, "
            f"error {b['max_error_grey_levels']:.1e} grey"
        )
    if "shares_two_servers" in reference:
        sh = reference["shares_two_servers"]
        print(
            f"reference: two-server shares: wall {sh['wall_seconds'] * 1e3:.0f} ms, "
            f"{sh['upload_bytes'] / 1e6:.2f} MB up, {sh['download_bytes'] / 1e6:.2f} MB down"
        )

    record = {
        "benchmark": "he_filter_openfhe",
        "command": "python benchmarks/he_filter_openfhe.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "image": {"name": "skimage.data.camera()[128:384, 128:384]", "shape": list(image.shape), "dtype": "uint8"},
        "threads": args.threads,
        "repeat": args.repeat,
        "machine": {
            "python": platform.python_version(),
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "params": {
            k: params[k]
            for k in (
                "scheme",
                "library",
                "security",
                "multiplicative_depth",
                "scaling_bits",
                "first_mod_bits",
                "log2_q",
                "key_switching",
                "smallest_secure_ring_dim",
            )
        },
        "results": rows,
        "reference": reference,
    }
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
