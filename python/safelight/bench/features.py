"""Feature detection on shares (issue 16): private Harris corners of a 512x512 grey photo
on three servers (rss3) and on two servers with a dealer, next to scikit-image's
corner_harris + corner_peaks in the same process."""

from __future__ import annotations

import time
from typing import Any

from skimage import data

from ..runtime.cluster import Cluster
from ..tasks import features
from ..tasks.report import JobReport
from .registry import job_figures, register, result


def _agreement(found, reference) -> tuple[float, int]:
    ref = {tuple(x) for x in reference}
    got = {tuple(x) for x in found}
    near = sum(any(abs(r[0] - g[0]) <= 1 and abs(r[1] - g[1]) <= 1 for g in got) for r in ref)
    return near / max(1, len(ref)), len(got - ref)


@register("features_harris_512", "private Harris corners of a 512x512 grey photo on 3 servers (rss3), total s")
def bench_features_harris_512() -> dict[str, Any]:
    image = data.camera()
    t0 = time.perf_counter()
    for _ in range(3):
        reference, _ = features.plaintext_harris(image)
    plain_s = (time.perf_counter() - t0) / 3
    with Cluster.local(3, scheme="rss3") as cluster:
        runs = [features.harris(image, cluster=cluster) for _ in range(3)]
    rss3 = sorted(runs, key=lambda r: r.report.online_seconds)[1]
    with Cluster.local(2, dealer=True) as cluster:
        two = features.harris(image, cluster=cluster)
    found, extra = _agreement(rss3.outputs, reference)
    found2, extra2 = _agreement(two.outputs, reference)
    r, r2 = rss3.report, two.report
    return result(
        "features_harris_512",
        r.online_seconds + r.offline_seconds,
        "s",
        "lower",
        ref="scikit-image corner_harris + corner_peaks (same process), s",
        ref_value=plain_s,
        stat="median of 3 jobs",
        keypoints_reference=len(reference),
        keypoints_found_within_1px=found,
        keypoints_extra=extra,
        bytes_per_server=[p.bytes_sent for p in r.parties],
        rounds=r.rounds,
        **job_figures(r2, "two_servers_"),
        two_servers_found_within_1px=found2,
        two_servers_extra=extra2,
    )


@register("features_hog_512", "private HOG of a 512x512 grey photo on 3 servers (rss3), total s")
def bench_features_hog_512() -> dict[str, Any]:
    import numpy as np

    image = data.camera()
    t0 = time.perf_counter()
    for _ in range(3):
        reference = features.plaintext_hog(image)
    plain_s = (time.perf_counter() - t0) / 3
    with Cluster.local(3, scheme="rss3") as cluster:
        runs = [features.hog(image, cluster=cluster) for _ in range(3)]
    run = sorted(runs, key=lambda r: r.report.online_seconds)[1]
    with Cluster.local(2, dealer=True) as cluster:
        two = features.hog(image, cluster=cluster)
    err, err2 = np.abs(run.outputs - reference), np.abs(two.outputs - reference)
    r, r2 = run.report, two.report
    return result(
        "features_hog_512",
        r.online_seconds + r.offline_seconds,
        "s",
        "lower",
        ref="scikit-image hog (same process), s",
        ref_value=plain_s,
        stat="median of 3 jobs",
        components=int(reference.size),
        within_1e3=float((err <= 1e-3).mean()),
        max_error=float(err.max()),
        bytes_per_server=[p.bytes_sent for p in r.parties],
        rounds=r.rounds,
        **job_figures(r2, "two_servers_"),
        two_servers_within_1e3=float((err2 <= 1e-3).mean()),
        two_servers_max_error=float(err2.max()),
    )


def _sift_512(parties: int) -> dict[str, Any]:
    import numpy as np

    from ..sharing import decode, encode
    from ..tasks import sift

    grey = features.as_grey(data.camera())
    t0 = time.perf_counter()
    reference = sift.plaintext_maps(grey)
    plain_s = time.perf_counter() - t0
    scheme = "rss3" if parties == 3 else "additive"
    program = sift.sift_program(*grey.shape, parties, scheme)
    local = Cluster.local(3, scheme="rss3") if parties == 3 else Cluster.local(2, dealer=True)
    with local as cluster:
        job = cluster.run(program, {"image": encode(grey * sift.SIFT_SCALE, parties, scheme=scheme)})
    got = {name: decode(share) for name, share in job.outputs.items()}
    keys = [k for k in reference if k.startswith("keys")]
    flips = sum(int((np.abs(got[k].round() - reference[k]) > 0.5).sum()) for k in keys)
    total = sum(int(reference[k].sum()) for k in keys)
    errors = np.concatenate([np.abs(got[k] - reference[k]).ravel() for k in reference if k.startswith("desc")])
    report = JobReport.from_job(job)
    return result(
        "features_sift_512" if parties == 3 else "features_sift_512_two_servers",
        report.online_seconds + report.offline_seconds,
        "s",
        "lower",
        ref="the same algorithm in numpy (same process), s",
        ref_value=plain_s,
        stat="one job",
        keypoints_reference=total,
        keypoints_differing=flips,
        descriptor_values=int(errors.size),
        descriptors_within_1e3=float((errors <= 1e-3).mean()),
        descriptor_max_error=float(errors.max()),
        **job_figures(report),
        download_bytes=report.download_bytes,
        steps=len(program.steps),
        slowest_ops_s={
            op: round(v["seconds"], 2) for op, v in sorted(report.ops.items(), key=lambda kv: -kv[1]["seconds"])[:6]
        },
    )


@register(
    "features_sift_512", "private SIFT-like keypoints + descriptors of a 512x512 photo on 3 servers (rss3), total s"
)
def bench_features_sift_512() -> dict[str, Any]:
    return _sift_512(3)


@register("features_sift_512_two_servers", "the same SIFT-like job on 2 servers with a dealer (about 70 s), total s")
def bench_features_sift_512_two_servers() -> dict[str, Any]:
    return _sift_512(2)


@register("features_harris_he_512", "Harris responses of a 512x512 photo on ONE server over BFV ciphertexts, total s")
def bench_features_harris_he_512() -> dict[str, Any]:
    import numpy as np

    from ..tasks import he_harris

    image = data.camera()
    t0 = time.perf_counter()
    reference, _ = features.plaintext_harris(image)
    plain_s = time.perf_counter() - t0
    started = time.perf_counter()
    run = he_harris.harris(image)
    total_s = time.perf_counter() - started
    found, extra = _agreement(run.outputs, reference)
    r = run.report
    return result(
        "features_harris_he_512",
        total_s,
        "s",
        "lower",
        ref="scikit-image corner_harris + corner_peaks (same process), s",
        ref_value=plain_s,
        stat="one job",
        seconds=run.extras["seconds"],
        server_online_s=r.online_seconds,
        upload_bytes=r.upload_bytes,
        download_bytes=r.download_bytes,
        noise_budget_bits=run.extras["noise_budget_bits"],
        keypoints_reference=len(reference),
        keypoints_found_within_1px=found,
        keypoints_extra=extra,
        ciphertexts=int(np.ceil(2 * he_harris.Tiles(512, 512, 5).ciphertexts)),
    )
