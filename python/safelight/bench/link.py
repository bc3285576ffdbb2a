"""A shaped link between the two servers for benchmarks (issue 18): two network namespaces
joined by a veth pair whose rate a ``tbf`` qdisc shapes, made and removed here.

Layout (all addresses private, names carry this process's pid):

- namespace A holds server 0 at 10.78.1.2, namespace B server 1 at 10.78.2.2;
- the shaped veth pair joins A (10.77.0.1) and B (10.77.0.2); each namespace routes the other
  server's address through it, so everything between the servers crosses the shaped link,
  in both directions;
- the client and the dealer stay in this namespace and reach each server over an unshaped
  veth pair of its own (the dealer listens at 10.78.1.1; B reaches it over its own pair).

Round trips: where the kernel has ``netem`` its delay is added on both ends of the link
(half the RTT each way) and the measured time includes it. Where it does not (these
machines), the benchmark adds rounds x RTT to the measured time and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import UnsupportedError


@dataclass(frozen=True)
class LinkProfile:
    name: str
    rate_bits: int  # per second, each direction
    rtt_s: float


LINKS = {
    "lan": LinkProfile("lan", 10 * 10**9, 0.2e-3),
    "wan": LinkProfile("wan", 10**9, 20e-3),
}


@dataclass(frozen=True)
class ShapedLink:
    """What :func:`shaped_link` made: where the processes bind and how to start them."""

    profile: LinkProfile
    hosts: list[str]  # server 0, server 1, dealer
    launch: list[list[str]]  # command prefixes, same order
    netem: bool  # whether the RTT is in the measured time (else add rounds x RTT)

    def added_seconds(self, rounds: int) -> float:
        """The round trips' cost the measurement lacks (0 with netem)."""
        return 0.0 if self.netem else rounds * self.profile.rtt_s


def unavailable() -> str | None:
    """Why a shaped link cannot be made here (None: it can)."""
    if os.geteuid() != 0:
        return "the shaped link needs root (network namespaces and tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the shaped link needs iproute2's {tool!r}"
    return None


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True)


def _must(*args: str) -> None:
    done = _run(*args)
    if done.returncode:
        raise UnsupportedError(f"cannot build the shaped link: {' '.join(args)}: {done.stderr.strip()}")


def _shape(namespace: str, device: str, profile: LinkProfile) -> bool:
    """tbf at the profile's rate on the device's egress (with netem's half RTT under it
    where that exists); whether netem took."""
    rate = f"{profile.rate_bits}bit"
    burst = str(max(profile.rate_bits // 8 // 250, 64 * 1024))  # one 4 ms tick's worth at least
    netns = ["ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", device]
    delay = f"{profile.rtt_s / 2 * 1e6:.0f}us"
    if _run(*netns, "root", "handle", "1:", "netem", "delay", delay).returncode == 0:
        _must(*netns, "parent", "1:", "handle", "2:", "tbf", "rate", rate, "burst", burst, "latency", "100ms")
        return True
    _must(*netns, "root", "tbf", "rate", rate, "burst", burst, "latency", "100ms")
    return False


@contextmanager
def shaped_link(name: str) -> Iterator[ShapedLink]:
    """Make the namespaces for profile ``name`` ("lan" or "wan"); remove them on exit."""
    if name not in LINKS:
        raise UnsupportedError(f"unknown link {name!r}: one of {sorted(LINKS)}")
    reason = unavailable()
    if reason:
        raise UnsupportedError(reason)
    profile, tag = LINKS[name], f"{os.getpid() % 100000}"
    ns = {side: f"sl{tag}{side}" for side in "ab"}
    made: list[str] = []
    try:
        for side in "ab":
            _must("ip", "netns", "add", ns[side])
            made.append(ns[side])
            _must("ip", "-n", ns[side], "link", "set", "lo", "up")
        # the shaped pair between the servers
        _must("ip", "link", "add", f"sl{tag}sa", "type", "veth", "peer", "name", f"sl{tag}sb")
        for side, address in (("a", "10.77.0.1"), ("b", "10.77.0.2")):
            device = f"sl{tag}s{side}"
            _must("ip", "link", "set", device, "netns", ns[side])
            _must("ip", "-n", ns[side], "addr", "add", f"{address}/24", "dev", device)
            _must("ip", "-n", ns[side], "link", "set", device, "up")
        # an unshaped pair from this namespace to each server's
        for side, subnet in (("a", "10.78.1"), ("b", "10.78.2")):
            outer, inner = f"sl{tag}o{side}", f"sl{tag}i{side}"
            _must("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            _must("ip", "link", "set", inner, "netns", ns[side])
            _must("ip", "addr", "add", f"{subnet}.1/24", "dev", outer)
            _must("ip", "link", "set", outer, "up")
            _must("ip", "-n", ns[side], "addr", "add", f"{subnet}.2/24", "dev", inner)
            _must("ip", "-n", ns[side], "link", "set", inner, "up")
        # each server reaches the other's address over the shaped pair, the dealer over its own
        _must("ip", "-n", ns["a"], "route", "add", "10.78.2.0/24", "via", "10.77.0.2")
        _must("ip", "-n", ns["b"], "route", "add", "10.78.1.0/24", "via", "10.77.0.1")
        _must("ip", "-n", ns["b"], "route", "add", "10.78.1.1/32", "via", "10.78.2.1")
        netem = all([_shape(ns[side], f"sl{tag}s{side}", profile) for side in "ab"])
        yield ShapedLink(
            profile,
            ["10.78.1.2", "10.78.2.2", "10.78.1.1"],
            [["ip", "netns", "exec", ns["a"]], ["ip", "netns", "exec", ns["b"]], []],
            netem,
        )
    finally:
        for namespace in made:  # removing a namespace removes its devices and their peers
            _run("ip", "netns", "del", namespace)
