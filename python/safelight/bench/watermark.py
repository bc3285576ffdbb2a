"""Private watermarking (issue 17): embedding and detection of a 512x512 RGB photo on two
servers with a dealer (and on three with rss3, and the embedding on one HE server, reported
beside), next to the numpy reference in the same process."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from skimage import data

from ..runtime.cluster import Cluster
from ..tasks import watermark
from ..tasks import watermark_scheme as scheme
from .registry import job_figures, register, result

KEY = scheme.Key(b"safelight-bench-watermark-key-32")
MESSAGE = "5afe11c0ffee2026"


def _jobs(operation: str, photo: np.ndarray) -> dict[Any, Any]:
    """The median of 3 jobs (after one warm-up job) on two servers and a dealer with the
    comparisons auto picks (the fewer bytes: OT), on the same with garbled circuits
    ("gc": more bytes, less computing), and on three servers."""
    out = {}
    for setting in (2, "gc", 3):
        local = Cluster.local(3, scheme="rss3") if setting == 3 else Cluster.local(2, dealer=True)
        options = {"comparisons": "gc"} if setting == "gc" else {}
        with local as cluster:
            runs = []
            for _ in range(4):
                if operation == "embed":
                    runs.append(watermark.embed(photo, key=KEY, message=MESSAGE, cluster=cluster, **options))
                else:
                    runs.append(watermark.detect(photo, key=KEY, cluster=cluster, **options))
        runs = sorted(runs[1:], key=lambda r: r.report.online_seconds + r.report.offline_seconds)
        out[setting] = runs[1]
    return out


@register("watermark_embed_512", "private watermark embedding of a 512x512 RGB photo on 2 servers + dealer, total s")
def bench_watermark_embed_512() -> dict[str, Any]:
    photo = data.astronaut()
    t0 = time.perf_counter()
    reference = watermark.embed(photo, key=KEY, message=MESSAGE, plain=True)
    plain_s = time.perf_counter() - t0
    runs = _jobs("embed", photo)
    two, three = runs[2], runs[3]
    return result(
        "watermark_embed_512",
        two.report.online_seconds + two.report.offline_seconds,
        "s",
        "lower",
        ref="the numpy reference (same process), s",
        ref_value=plain_s,
        stat="median of 3 jobs",
        psnr=two.extras["psnr"],
        psnr_reference=reference.extras["psnr"],
        largest_pixel_difference_to_reference=int(
            np.abs(two.outputs.astype(int) - reference.outputs.astype(int)).max()
        ),
        **job_figures(two.report),
        **job_figures(runs["gc"].report, "gc_"),
        **job_figures(three.report, "rss3_"),
        **_he_figures(photo, reference.outputs),
    )


def _he_figures(photo: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """The one-server HE embedding (median of 3 after a warm-up): its phases' seconds, the
    bytes of each leg and the noise budget left."""
    with Cluster.local(1) as cluster:
        runs = []
        for _ in range(4):
            t0 = time.perf_counter()
            run = watermark.embed(photo, key=KEY, message=MESSAGE, cluster=cluster, he=True)
            runs.append((time.perf_counter() - t0, run))
    seconds, median = sorted(runs[1:], key=lambda r: r[0])[1]
    x = median.extras
    return {
        "he_total_s": seconds,
        **{f"he_{phase}_s": value for phase, value in x["seconds"].items()},
        **{f"he_{leg}_bytes": value for leg, value in x["bytes"].items()},
        "he_noise_budget_bits": x["noise_budget_bits"],
        "he_psnr": x["psnr"],
        "he_largest_pixel_difference_to_reference": int(
            np.abs(median.outputs.astype(int) - reference.astype(int)).max()
        ),
    }


@register("watermark_detect_512", "private watermark detection in a 512x512 RGB photo on 2 servers + dealer, total s")
def bench_watermark_detect_512() -> dict[str, Any]:
    marked = watermark.embed(data.astronaut(), key=KEY, message=MESSAGE, plain=True).outputs
    t0 = time.perf_counter()
    reference = watermark.detect(marked, key=KEY, plain=True)
    plain_s = time.perf_counter() - t0
    runs = _jobs("detect", marked)
    two, three = runs[2], runs[3]
    return result(
        "watermark_detect_512",
        two.report.online_seconds + two.report.offline_seconds,
        "s",
        "lower",
        ref="the numpy reference (same process), s",
        ref_value=plain_s,
        stat="median of 3 jobs",
        payload_equal=two.outputs == reference.outputs == MESSAGE,
        present=two.extras["present"],
        fit=two.extras["fit"],
        fit_reference=reference.extras["fit"],
        **job_figures(two.report),
        **job_figures(runs["gc"].report, "gc_"),
        **job_figures(three.report, "rss3_"),
    )
