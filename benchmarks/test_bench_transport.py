"""256 MB uint64 tensor between two threads over loopback Channels: TLS 1.3 (mutual auth) vs plain TCP.

Each round is timed from just before ``Channel.send_tensor`` until the receiving
thread's ``Channel.recv`` has returned the whole array.
"""

from __future__ import annotations

import pytest

from safelight import bench

ROUNDS = 5


@pytest.fixture(scope="module")
def payload():
    return bench.transport_payload(bench.TRANSPORT_BYTES)


@pytest.fixture(scope="module")
def tls_link(tmp_path_factory, payload):
    with bench.Link(bench.transport_certs(tmp_path_factory.mktemp("transport"))) as link:
        link.transfer(payload, check=True)
        yield link


@pytest.fixture(scope="module")
def plain_link(payload):
    with bench.Link(None) as link:
        link.transfer(payload, check=True)
        yield link


def _run(benchmark, record_throughput, link, payload):
    # pedantic times the whole call; transfer() itself stops the clock when the receiver has the array
    benchmark.pedantic(link.transfer, args=(payload,), rounds=ROUNDS, warmup_rounds=1)
    record_throughput(benchmark, payload.nbytes)


@pytest.mark.benchmark(group="transport 256 MB loopback")
def test_transport_tls(benchmark, record_throughput, tls_link, payload):
    benchmark.extra_info["cipher"] = tls_link.cipher
    _run(benchmark, record_throughput, tls_link, payload)


@pytest.mark.benchmark(group="transport 256 MB loopback")
def test_transport_plain_tcp(benchmark, record_throughput, plain_link, payload):
    _run(benchmark, record_throughput, plain_link, payload)
