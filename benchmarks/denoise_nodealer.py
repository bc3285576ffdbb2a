"""Private FFDNet denoising with and without a dealer, side by side on one machine.

    PYTHONPATH=python python3 benchmarks/denoise_nodealer.py 64 128

For each size: a centre crop of scikit-image's astronaut with Gaussian noise (sigma 25),
one job with dealt correlated randomness (dealer process) and one with the servers making
their own (``triples="he"``: BFV for the convolutions, OT for products and truncation
pairs), each on a fresh local cluster. Prints offline/online seconds, bytes per server and
the PSNR of both against the plaintext network; writes ``denoise_nodealer.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from skimage import data

from safelight.runtime.cluster import Cluster
from safelight.tasks import denoise


def one(size: int, triples: str) -> dict:
    photo = data.astronaut()
    h, w = photo.shape[:2]
    clean = photo[(h - size) // 2 : (h - size) // 2 + size, (w - size) // 2 : (w - size) // 2 + size]
    noisy = denoise.add_noise(clean, 25, seed=1)
    with Cluster.local(2, dealer=triples == "dealer") as cluster:
        denoise.upload(cluster)
        started = time.perf_counter()
        result = denoise.run([noisy], cluster=cluster, sigma=25, triples=triples)
        wall = time.perf_counter() - started
    plain = denoise.plaintext([noisy], 25)[0]
    job = result.job
    return {
        "size": size,
        "triples": triples,
        "wall_s": wall,
        "offline_s": job.offline_seconds,
        "online_s": job.online_seconds,
        "bytes_per_server": [p.bytes_sent for p in job.parties],
        "dealer_bytes": job.dealer.peer_bytes_sent if job.dealer else 0,
        "psnr_private": denoise.psnr(result.images[0], clean),
        "psnr_plaintext": denoise.psnr(plain, clean),
    }


def main(sizes: list[int]) -> None:
    rows = [one(size, triples) for size in sizes for triples in ("dealer", "he")]
    print(f"{'size':>5} {'triples':>7} {'offline s':>10} {'online s':>9} {'GB/server':>10} {'PSNR gap dB':>11}")
    for r in rows:
        print(
            f"{r['size']:>5} {r['triples']:>7} {r['offline_s']:>10.1f} {r['online_s']:>9.2f} "
            f"{max(r['bytes_per_server']) / 1e9:>10.2f} {abs(r['psnr_private'] - r['psnr_plaintext']):>11.4f}"
        )
    out = Path(__file__).with_name("denoise_nodealer.json")
    out.write_text(
        json.dumps(
            {
                "command": "PYTHONPATH=python python3 benchmarks/denoise_nodealer.py " + " ".join(map(str, sizes)),
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [64])
