"""Private gaussian:2 filtering of a 512x512 RGB photo on ``Cluster.local(2)`` vs plaintext scipy.

The cluster starts once per module, outside the timing; a private round covers
encode, TLS upload, evaluation on both servers, download and decode.
"""

from __future__ import annotations

import numpy as np
import pytest

from safelight import bench
from safelight.runtime.cluster import Cluster
from safelight.tasks import filter as filter_task

GROUP = "filter_512 gaussian:2 astronaut 512x512x3"


@pytest.fixture(scope="module")
def image():
    return bench.filter_image()


@pytest.fixture(scope="module")
def cluster():
    with Cluster.local(2) as c:
        yield c


@pytest.mark.benchmark(group=GROUP)
def test_filter_private(benchmark, image, cluster):
    res = benchmark.pedantic(
        filter_task.run,
        args=(image,),
        kwargs={"kernel": bench.FILTER_KERNEL, "cluster": cluster},
        rounds=3,
        warmup_rounds=1,
    )
    job = res.job
    err = float(np.abs(res.values - filter_task.plaintext(image, bench.FILTER_KERNEL)).max())
    benchmark.extra_info.update(
        bytes_per_party=[p.bytes_sent + p.bytes_received for p in job.parties],
        upload_bytes=job.upload_bytes,
        download_bytes=job.download_bytes,
        rounds=job.rounds,
        max_abs_error=err,
    )
    assert err <= 1 / 255


@pytest.mark.benchmark(group=GROUP)
def test_filter_plaintext_scipy(benchmark, image):
    benchmark.pedantic(filter_task.plaintext, args=(image, bench.FILTER_KERNEL), rounds=5, warmup_rounds=1)
