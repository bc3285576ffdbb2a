"""Issue 18's side-by-side: safelight's two servers without a dealer (silent OT, OT-based
comparisons, HE products) and SecretFlow SPU's CHEETAH (two parties, no dealer), on the
same machine, one after the other in one run:

- a ReLU and a fixed-point product of 2^20 values (``safelight bench relu_1m_nodealer
  mul_1m_nodealer``; SPU: the same sizes at 16 fractional bits);
- the shipped FFDNet at 64x64, weights and image secret (safelight: ``denoise.run`` with
  ``no_dealer`` on two servers spawned here; SPU: the same network in jax, every input
  secret).

    python benchmarks/nodealer_vs_cheetah.py [mul relu ffdnet] [--json OUT]

SPU runs in its own virtual environment (benchmarks/run_spu.sh makes it, or prints why it
cannot); when it does not install, its column says so and the rest still runs. Times
include each side's setup (SPU's first run: link, keys and compilation; safelight's server
start and model upload are outside, as in ``safelight bench``); bytes are each party's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage import data

from rss3_vs_spu import json_lines  # this folder is on sys.path when a script here runs

HERE = Path(__file__).resolve().parent
OURS = {"mul": "mul_1m_nodealer", "relu": "relu_1m_nodealer"}
SIZE = 64
SIGMA = 25.0


def _psnr(image: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((image - clean) ** 2)))


def our_ffdnet() -> dict:
    """The dealer-free FFDNet at SIZE x SIZE: the photo export_ffdnet_weights.py --size SIZE writes."""
    from safelight import Cluster
    from safelight.tasks import denoise

    top = 256 - SIZE // 2
    clean = data.astronaut()[top : top + SIZE, top : top + SIZE]
    noisy = denoise.add_noise(clean, SIGMA, seed=1)
    plain = denoise.plaintext([noisy], SIGMA)[0]
    with Cluster.local(2) as cluster:
        denoise.upload(cluster)
        started = time.perf_counter()
        result = denoise.run(noisy, cluster=cluster, sigma=SIGMA, no_dealer=True)
        seconds = time.perf_counter() - started
    report = result.report
    gap = abs(_psnr(result.outputs, clean / 255.0) - _psnr(plain, clean / 255.0))
    return {
        "seconds": seconds,
        "online_s": report.online_seconds,
        "offline_s": report.offline_seconds,
        "bytes_per_server": [p.bytes_sent for p in report.parties],
        "psnr_gap_db": gap,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", help="mul, relu, ffdnet (default: all three)")
    parser.add_argument("--json", help="write both sides' figures here")
    args = parser.parse_args(argv)
    args.workloads = args.workloads or ["mul", "relu", "ffdnet"]
    if set(args.workloads) - {"mul", "relu", "ffdnet"}:
        parser.error(f"workloads are mul, relu and ffdnet, not {args.workloads}")
    mine: dict = {}
    benches = [OURS[w] for w in args.workloads if w in OURS]
    if benches:
        ours = subprocess.run(
            [sys.executable, "-m", "safelight", "bench", *benches, "--json"], capture_output=True, text=True, check=True
        )
        for r in json_lines(ours.stdout):
            per_value = r["peer_bytes_per_value_per_server"]
            mine[{v: k for k, v in OURS.items()}[r["name"]]] = {
                "seconds": r["value"],
                "bytes_per_server": [b * r["values"] for b in per_value],
                "bytes_per_value_per_server": per_value,
                "online_s": r["online_s"],
                "offline_s": r["offline_s"],
            }
    if "ffdnet" in args.workloads:
        mine["ffdnet"] = our_ffdnet()
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as rows:
        spu = subprocess.run(
            ["bash", str(HERE / "run_spu.sh"), *args.workloads, "--protocol", "cheetah"]
            + ["--ffdnet-size", str(SIZE), "--out", rows.name],
            capture_output=True,
            text=True,
        )
        theirs = {r["workload"]: r for r in json_lines(rows.read())}
    if not theirs:
        print(f"SPU: no result ({spu.stderr.strip().splitlines()[-1:] or 'not installed'})", file=sys.stderr)
    print(f"{'workload':<8} {'safelight s':>12} {'bytes/server':>16} {'SPU CHEETAH s':>14} {'bytes/party':>16}")
    for w in args.workloads:
        r, t = mine.get(w, {}), theirs.get(w, {})
        print(
            f"{w:<8} {r.get('seconds', float('nan')):>12.2f} {max(r.get('bytes_per_server') or [0]) / 1e6:>13.1f} MB"
            f" {t.get('seconds', float('nan')):>14.2f} {max(t.get('bytes_sent_per_party') or [0]) / 1e6:>13.1f} MB"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"safelight": mine, "spu_cheetah": theirs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
