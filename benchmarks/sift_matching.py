"""SIFT-like keypoints (safelight.tasks.sift) against OpenCV's SIFT on photo pairs related by
scale (0.5-0.8) and a small rotation (<= 10 degrees): the share of correct matches.

Both detectors see the same uint8 photos. Matches: each keypoint of the first photo to its
nearest descriptor in the second, kept when the nearest is closer than 0.8 times the second
nearest (Lowe's ratio test); a match is correct when the second keypoint lies within TOL
pixels of where the known transform puts the first (in the second photo's pixels). The
figure is correct / kept matches, per pair and pooled; the issue asks safelight's pooled
share to be at least 0.8x OpenCV's.

safelight's keypoints and descriptors here are the plaintext reference's
(``sift.plaintext_sift``): the private pipeline outputs the same (tests/test_sift.py), and
``--private`` runs the first pair on three servers too.

    python benchmarks/sift_matching.py [--private] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from skimage import color, data, transform

from safelight.tasks import sift

TOL = 4.0
RATIO = 0.8
PHOTOS = {
    "camera": lambda: data.camera(),
    "astronaut": lambda: (color.rgb2gray(data.astronaut()) * 255).astype(np.uint8),
    "coffee": lambda: (color.rgb2gray(data.coffee()) * 255).astype(np.uint8),
    "chelsea": lambda: (color.rgb2gray(data.chelsea()) * 255).astype(np.uint8),
    "brick": lambda: data.brick(),
    "grass": lambda: data.grass(),
}
PAIRS = [(0.8, 0.0), (0.65, 5.0), (0.5, 10.0), (0.7, -8.0)]


def transformed(image: np.ndarray, scale: float, degrees: float) -> tuple[np.ndarray, transform.SimilarityTransform]:
    """The photo scaled and rotated about its centre, and the transform of (col, row) points."""
    h, w = image.shape
    out_shape = (int(round(h * scale)), int(round(w * scale)))
    rot = transform.SimilarityTransform(scale=scale, rotation=np.deg2rad(degrees))
    centre_in = np.array([(w - 1) / 2, (h - 1) / 2])
    centre_out = np.array([(out_shape[1] - 1) / 2, (out_shape[0] - 1) / 2])
    shift = centre_out - rot(centre_in[None])[0]
    tform = transform.SimilarityTransform(scale=scale, rotation=np.deg2rad(degrees), translation=shift)
    warped = transform.warp(image, tform.inverse, output_shape=out_shape, order=1, preserve_range=True)
    return np.clip(np.round(warped), 0, 255).astype(np.uint8), tform


def share_correct(kp_a, desc_a, kp_b, desc_b, tform) -> tuple[int, int]:
    """(correct, kept) matches; keypoints as (row, col)."""
    if len(kp_a) == 0 or len(kp_b) < 2:
        return 0, 0
    d2 = (desc_a**2).sum(1)[:, None] + (desc_b**2).sum(1)[None, :] - 2 * desc_a @ desc_b.T
    order = np.argsort(d2, axis=1)[:, :2]
    rows = np.arange(len(kp_a))
    best, second = d2[rows, order[:, 0]], d2[rows, order[:, 1]]
    kept = np.sqrt(np.maximum(best, 0)) < RATIO * np.sqrt(np.maximum(second, 0))
    mapped = tform(kp_a[:, ::-1])[:, ::-1]  # (row, col) -> (col, row) -> transform -> (row, col)
    error = np.linalg.norm(mapped - kp_b[order[:, 0]], axis=1)
    return int((kept & (error <= TOL)).sum()), int(kept.sum())


def opencv_features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    points, desc = cv2.SIFT_create().detectAndCompute(image, None)
    if desc is None:
        return np.empty((0, 2)), np.empty((0, 128))
    return np.array([[p.pt[1], p.pt[0]] for p in points]), desc.astype(np.float64)


def safelight_features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points, desc = sift.plaintext_sift(image)
    return points[:, :2], desc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--private", action="store_true", help="also run the first pair on three servers")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    rows, totals = [], {"opencv": [0, 0], "safelight": [0, 0]}
    for name, load in PHOTOS.items():
        a = load()
        for scale, degrees in PAIRS:
            b, tform = transformed(a, scale, degrees)
            row = {"photo": name, "scale": scale, "degrees": degrees}
            for method, detect in (("opencv", opencv_features), ("safelight", safelight_features)):
                (ka, da), (kb, db) = detect(a), detect(b)
                correct, kept = share_correct(ka, da, kb, db, tform)
                row[method] = {"keypoints": [len(ka), len(kb)], "kept": kept, "correct": correct}
                totals[method][0] += correct
                totals[method][1] += kept
            rows.append(row)
            print(
                f"{name:9s} scale {scale:.2f} rot {degrees:+5.1f}: "
                + "  ".join(f"{m} {row[m]['correct']}/{row[m]['kept']}" for m in ("opencv", "safelight"))
            )
    share = {m: c / max(k, 1) for m, (c, k) in totals.items()}
    result = {"tolerance_px": TOL, "ratio_test": RATIO, "pairs": rows, "share": share}
    result["safelight_over_opencv"] = share["safelight"] / max(share["opencv"], 1e-12)
    print(f"pooled share of correct matches: opencv {share['opencv']:.3f}, safelight {share['safelight']:.3f}")
    print(f"ratio {result['safelight_over_opencv']:.3f} (needs >= 0.8)")
    if args.private:
        from safelight.tasks import features

        a = PHOTOS["camera"]()
        b, tform = transformed(a, *PAIRS[0])
        started = time.perf_counter()
        ra, rb = features.run(a, feature="sift", servers=3), features.run(b, feature="sift", servers=3)
        correct, kept = share_correct(
            ra.outputs[:, :2], ra.extras["descriptors"], rb.outputs[:, :2], rb.extras["descriptors"], tform
        )
        result["private_first_pair"] = {"correct": correct, "kept": kept, "seconds": time.perf_counter() - started}
        print(f"private (3 servers), camera first pair: {correct}/{kept}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
