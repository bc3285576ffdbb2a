"""Private FFDNet vs plaintext FFDNet on real photographs at sigma 15, 25 and 50.

For every noise level, jobs of ``--batch`` photos (centre crops of the photographs
scikit-image ships) run on two local servers with a dealer; the
script prints PSNR/SSIM against the clean photo for the noisy input, a Gaussian filter,
plaintext FFDNet (float64) and private FFDNet, and the PSNR gap private vs plaintext.

    PYTHONPATH=python python3 benchmarks/denoise_quality.py [--size 128] [--batch 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from skimage import data, filters

import safelight
from safelight.tasks import denoise

PHOTOS = [
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "rocket",
    "gravel",
]
SIGMAS = [15, 25, 50]
GAUSS = {15: 0.8, 25: 1.0, 50: 1.5}  # blur std (pixels) of the Gaussian-filter baseline per noise level


def crop(name: str, size: int) -> np.ndarray:
    img = getattr(data, name)()
    h, w = img.shape[:2]
    return img[(h - size) // 2 : (h - size) // 2 + size, (w - size) // 2 : (w - size) // 2 + size]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument(
        "--batch",
        type=int,
        default=5,
        help="photos per job (the garbled material of one layer of the whole batch is held in memory)",
    )
    ap.add_argument("--json")
    args = ap.parse_args()
    clean = {name: crop(name, args.size) for name in PHOTOS}
    rows = []
    with safelight.Cluster.local(2, dealer=True) as cluster:
        denoise.upload(cluster)
        for sigma in SIGMAS:
            noisy = [denoise.add_noise(clean[n], sigma, seed=i) for i, n in enumerate(PHOTOS)]
            private = []
            for lo in range(0, len(PHOTOS), args.batch):
                t0 = time.perf_counter()
                res = denoise.run(list(noisy[lo : lo + args.batch]), cluster=cluster, sigma=sigma)
                private += res.images
                print(
                    f"sigma {sigma}: {len(res.images)} photos {args.size}x{args.size} in one job: online "
                    f"{res.job.online_seconds:.1f} s, offline {res.job.offline_seconds:.1f} s, "
                    f"wall {time.perf_counter() - t0:.1f} s"
                )
            plain = denoise.plaintext(noisy, sigma)
            for name, n, p, q in zip(PHOTOS, noisy, plain, private):
                grey = n.ndim == 2
                gauss = filters.gaussian(n, GAUSS[sigma], channel_axis=None if grey else 2)
                row = {"photo": name, "sigma": sigma}
                for label, img in (("noisy", n), ("gaussian", gauss), ("plaintext", p), ("private", q)):
                    row[f"psnr_{label}"] = denoise.psnr(img, clean[name])
                    row[f"ssim_{label}"] = denoise.ssim(img, clean[name])
                row["gap_db"] = abs(row["psnr_private"] - row["psnr_plaintext"])
                rows.append(row)
                print(
                    f"  {name:22s} PSNR noisy {row['psnr_noisy']:6.2f}  gaussian {row['psnr_gaussian']:6.2f}  "
                    f"plaintext {row['psnr_plaintext']:6.2f}  private {row['psnr_private']:6.2f}  "
                    f"gap {row['gap_db']:.4f} dB | SSIM noisy {row['ssim_noisy']:.3f} gaussian "
                    f"{row['ssim_gaussian']:.3f} plaintext {row['ssim_plaintext']:.3f} private "
                    f"{row['ssim_private']:.3f}"
                )
    worst = max(r["gap_db"] for r in rows)
    print(f"largest PSNR gap private vs plaintext: {worst:.4f} dB over {len(rows)} (photo, sigma) pairs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    raise SystemExit(0 if worst <= 0.05 else 1)


if __name__ == "__main__":
    main()
