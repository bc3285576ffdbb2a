"""The shaped link of ``safelight bench --link`` (issue 18): two servers in two network
namespaces whose veth pair a tbf qdisc shapes; made and removed by the benchmark itself."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from safelight import cli
from safelight.bench import link as L
from safelight.bench import registry
from safelight.program.program import Program
from safelight.runtime.cluster import Cluster
from safelight.sharing import decode, encode

needs_link = pytest.mark.skipif(L.unavailable() is not None, reason=str(L.unavailable()))


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@needs_link
def test_a_job_runs_on_the_shaped_link_and_the_namespaces_go_away():
    before = _namespaces()
    with L.shaped_link("lan") as link, Cluster.local(2, dealer=True, hosts=link.hosts, launch=link.launch) as c:
        p = Program(2)
        a, b = p.input("a", (1000,)), p.input("b", (1000,))
        p.output(p.mul(a, b), "c")
        x = np.linspace(-3, 3, 1000)
        job = c.run(p, {"a": encode(x, 2), "b": encode(x, 2)})
        assert np.allclose(decode(job.outputs["c"]), x * x, atol=1e-3)
        assert len(_namespaces() - before) == 2
    assert _namespaces() == before


SINK = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.78.2.2", 5999)); s.listen(); print("up", flush=True)
c, _ = s.accept()
while c.recv(1 << 20): pass
c.sendall(b"k")
"""
SOURCE = """
import socket, sys, time
s = socket.create_connection(("10.78.2.2", 5999)); block = b"x" * (1 << 20); t = time.perf_counter()
for _ in range(int(sys.argv[1])): s.sendall(block)
s.shutdown(socket.SHUT_WR); s.recv(1); print(time.perf_counter() - t)
"""


@needs_link
def test_the_wan_link_is_shaped_to_one_gigabit_between_the_servers():
    mib = 40
    with L.shaped_link("wan") as link:
        sink = subprocess.Popen([*link.launch[1], sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
        try:
            assert sink.stdout.readline().strip() == "up"
            done = subprocess.run([*link.launch[0], sys.executable, "-c", SOURCE, str(mib)], capture_output=True)
            seconds = float(done.stdout)
        finally:
            sink.kill()
    # a rate limit gives a lower bound: 40 MiB at 1 Gbit/s take 0.34 s (unshaped: a few ms)
    assert seconds >= 0.8 * mib * 2**20 * 8 / 1e9
    assert link.added_seconds(10) == (0.0 if link.netem else pytest.approx(0.2))


def test_bench_link_is_skipped_with_a_message_where_it_cannot_run(monkeypatch, capsys):
    monkeypatch.setattr(registry, "link_unavailable", lambda: "the shaped link needs root")
    assert cli.main(["bench", "mul_1m", "--link", "wan"]) == 0
    assert "skipped: the shaped link needs root" in capsys.readouterr().err


def test_the_link_takes_two_servers_only():
    registry._active_link = L.ShapedLink(L.LINKS["lan"], ["h0", "h1", "h2"], [[], [], []], False)
    try:
        with pytest.raises(Exception, match="TWO servers"):
            registry.local_cluster(3)
        figures = registry.link_figures(rounds=100, measured_s=1.0)
        assert figures["link"] == "lan" and figures["total_with_rtt_s"] == pytest.approx(1.0 + 100 * 0.2e-3)
    finally:
        registry._active_link = None
    assert registry.link_figures(5, 1.0) == {"link": "loopback"}
