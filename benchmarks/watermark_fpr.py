"""The watermark detector's statistics on UNMARKED photos (issue 17: false-positive rate
<= 1e-6): random crops of scikit-image's photos (several sizes) under fresh random keys,
the best fit over every candidate (geometry x gain) and the best agreement with a random
payload. The 1e-6 tail is extrapolated from a normal fit of the upper half of each
statistic's distribution and, more conservatively, from a generalised Pareto fit of the
excesses over its 95 % quantile (peaks over threshold); the empirical quantiles are printed
beside them.

    python benchmarks/watermark_fpr.py [--samples 10000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import stats
from skimage import data

from safelight.tasks import watermark_scheme as W

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "hubble_deep_field", "cat")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--json")
    args = ap.parse_args()
    rng = np.random.default_rng(20261207)
    photos = [getattr(data, name)() for name in PHOTOS]
    fits, agreements = [], []
    started = time.perf_counter()
    for i in range(args.samples):
        photo = photos[i % len(photos)]
        side = int(rng.integers(W.MIN_SIDE, min(photo.shape[:2]) + 1))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = np.ascontiguousarray(photo[top : top + side, left : left + side])
        key = W.Key(rng.bytes(W.KEY_BYTES))
        message = rng.integers(0, 2, W.PAYLOAD_BITS)
        fits.append(W.detect(crop, key).score)
        agreements.append(W.detect(crop, key, message).score)
    out = {"samples": args.samples, "seconds": time.perf_counter() - started}
    for name, values, threshold in (
        ("fit", np.array(fits), W.FIT_THRESHOLD),
        ("agreement", np.array(agreements), W.AGREEMENT_THRESHOLD),
    ):
        upper = values[values >= np.median(values)]
        mu, sigma = np.median(values), np.sqrt(np.mean((upper - np.median(values)) ** 2))
        # peaks over the 95 % quantile, fitted by a generalised Pareto law: the usual tail
        # model for maxima, heavier-tailed than the normal fit when the data say so
        u = float(np.quantile(values, 0.95))
        excess = values[values > u] - u
        shape, _, scale = stats.genpareto.fit(excess, floc=0.0)
        rate = excess.size / values.size
        pareto_1e6 = u + float(stats.genpareto.isf(1e-6 / rate, shape, loc=0.0, scale=scale))
        pareto_fpr = rate * float(stats.genpareto.sf(threshold - u, shape, loc=0.0, scale=scale))
        out[name] = {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "max": float(values.max()),
            "quantile_0.999": float(np.quantile(values, 0.999)),
            "normal_fit_upper_half": [float(mu), float(sigma)],
            "value_at_1e-6": float(mu + sigma * stats.norm.isf(1e-6)),
            "threshold": threshold,
            "fpr_at_threshold_extrapolated": float(stats.norm.sf((threshold - mu) / sigma)),
            "false_positives_observed": int((values >= threshold).sum()),
            "pareto_tail_shape_scale": [float(shape), float(scale)],
            "value_at_1e-6_pareto": pareto_1e6,
            "fpr_at_threshold_pareto": pareto_fpr,
        }
        print(name, json.dumps(out[name]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
