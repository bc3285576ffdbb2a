"""What a client can make a server hold: memory per idle connection, after connections
close, for oversized control messages, and for concurrent denoising jobs.

Run it on a quiet machine, then the same script against an older checkout to compare
(the script uses only what both versions have)::

    python benchmarks/server_memory.py [--connections 1000] [--jobs 5] [--size 64] [--json OUT]

Figures are party servers' resident memory (VmRSS) and peak (VmHWM) from /proc.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import socket
import sys
import threading
import time

import safelight
from safelight.net.transport import HEADER, MAGIC, MsgType, connect

MIB = 1 << 20


def status(pid: int, field: str) -> float:
    """A /proc/PID/status memory field in MiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def settle(pid: int, seconds: float = 2.0) -> float:
    """RSS once the server had time to finish closing what it was asked to drop."""
    time.sleep(seconds)
    return status(pid, "VmRSS")


def local_cluster(**kw) -> safelight.Cluster:
    """Cluster.local, with generous connection limits where this version has them (to
    measure what idle connections cost rather than how many are refused)."""
    if "limits" in inspect.signature(safelight.Cluster.local).parameters:
        from safelight.net.config import ServerLimits

        kw["limits"] = ServerLimits(max_connections=4000, max_handshakes=4000, handshake_timeout=120.0)
    return safelight.Cluster.local(**kw)


def idle_connections(n: int) -> dict[str, float]:
    with local_cluster(parties=2, timeout=120.0) as cluster:
        pid = cluster.processes[0].pid
        addr = cluster.config.parties[0]
        base = settle(pid, 1.0)
        channels, refused = [], ""
        for _ in range(n):
            try:
                channels.append(connect(addr.host, addr.port, cluster.identity, "party-0", 120.0))
            except safelight.errors.SafelightError as exc:  # the server gave out: report how far it got
                refused = f"{type(exc).__name__}: {exc}"
                break
        held = settle(pid)
        for ch in channels:
            ch.close()
        after = settle(pid, 3.0)
        return {
            "opened": len(channels),
            "refused": refused,
            "rss_base_mib": base,
            "rss_with_idle_mib": held,
            "kib_per_idle_connection": (held - base) * 1024 / max(len(channels), 1),
            "rss_after_close_mib": after,
            "held_after_close_mib": after - base,
        }


def oversized_control(count: int, size: int) -> dict[str, float]:
    """``count`` connections each announcing a ``size``-byte SUBMIT and sending its body."""
    with local_cluster(parties=2, timeout=30.0) as cluster:
        pid = cluster.processes[0].pid
        addr = cluster.config.parties[0]
        base = settle(pid, 1.0)
        body = b'{"program": "' + b"x" * (size - 16) + b'"}'
        body = body[:size]

        def send() -> None:
            try:
                ch = connect(addr.host, addr.port, cluster.identity, "party-0", 30.0)
                ch.sock.sendall(HEADER.pack(MAGIC, 1, MsgType.SUBMIT, 0, b"\0" * 16, len(body)))
                ch.sock.sendall(body)
                try:
                    ch.expect(MsgType.RESULT)
                except safelight.errors.SafelightError:
                    pass
                ch.close()
            except (OSError, safelight.errors.SafelightError):
                pass

        threads = [threading.Thread(target=send) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = settle(pid)
        return {
            "rss_base_mib": base,
            "peak_mib": status(pid, "VmHWM"),
            "rss_after_mib": after,
            "held_after_mib": after - base,
        }


def concurrent_denoise(jobs: int, size: int) -> dict[str, float]:
    from safelight.images import sample_image
    from safelight.tasks import denoise

    with local_cluster(parties=2, dealer=True, timeout=300.0) as cluster:
        denoise.upload(cluster)
        pid = cluster.processes[1].pid
        base = settle(pid, 1.0)
        noisy = denoise.add_noise(sample_image("astronaut")[:size, :size], 25, seed=1)
        errors: list[str] = []

        def run() -> None:
            try:
                denoise.run([noisy], cluster=cluster, sigma=25)
            except safelight.errors.SafelightError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        started = time.perf_counter()
        threads = [threading.Thread(target=run) for _ in range(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        after = settle(pid)
        return {
            "rss_base_mib": base,
            "peak_mib": status(pid, "VmHWM"),
            "rss_idle_after_mib": after,
            "held_after_mib": after - base,
            "seconds": seconds,
            "failed_jobs": len(errors),
            "errors": errors[:2],
        }


def admission_estimate(size: int, no_dealer: bool) -> dict[str, float]:
    """One FFDNet job on fresh servers: what admission reserves against each party's peak."""
    from safelight.images import sample_image
    from safelight.protocols.preprocessing import Plan
    from safelight.runtime.admission import job_memory
    from safelight.runtime.client import GC_BYTES_PER_OT, PREPROCESS_BUDGET
    from safelight.tasks import denoise

    model = denoise.denoiser(1, size, size)
    per_op = GC_BYTES_PER_OT * model.program.ot_demand() > PREPROCESS_BUDGET  # the client's choice
    ots = model.program.ot_demand_per_step(per_op)
    # the larger need: the last party's, which receives a dealer's corrections
    need = (
        job_memory(model.program, Plan(model.program.correlations()), per_op, no_dealer, ots, corrections=not no_dealer)
        / MIB
    )
    with local_cluster(parties=2, dealer=not no_dealer, timeout=300.0) as cluster:
        denoise.upload(cluster)
        base = [status(p.pid, "VmRSS") for p in cluster.processes[:2]]
        noisy = denoise.add_noise(sample_image("astronaut")[:size, :size], 25, seed=1)
        job = denoise.run([noisy], cluster=cluster, sigma=25, no_dealer=no_dealer).job
        peaks = [status(p.pid, "VmHWM") for p in cluster.processes]
    grown = [peak - b for peak, b in zip(peaks, base)]
    return {
        "preprocess": "per_op" if per_op else "ahead",
        "estimate_mib": need,
        "peak_mib": max(grown),
        "estimate_over_peak": need / max(grown),
        "process_peaks_mib": peaks,
        "bytes_sent": [p.bytes_sent for p in job.parties],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000, help="idle authenticated connections")
    parser.add_argument("--jobs", type=int, default=5, help="concurrent denoising jobs")
    parser.add_argument("--size", type=int, default=64, help="image side of each denoising job")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--only",
        choices=["idle", "control", "program", "denoise", "admission"],
        action="append",
        help="run only these parts (repeatable; 'admission' runs only when named)",
    )
    parser.add_argument("--no-dealer", action="store_true", help="admission: a dealer-free job")
    args = parser.parse_args()
    parts = args.only or ["idle", "control", "program", "denoise"]
    out: dict[str, object] = {"safelight": os.path.dirname(safelight.__file__), "python": sys.version.split()[0]}
    if "idle" in parts:
        out["idle_connections"] = {"count": args.connections, **idle_connections(args.connections)}
        print(json.dumps({"idle_connections": out["idle_connections"]}), flush=True)
    if "control" in parts:
        out["submit_64mib_x8"] = oversized_control(8, 64 * MIB - 1)
        print(json.dumps({"submit_64mib_x8": out["submit_64mib_x8"]}), flush=True)
    if "program" in parts:
        out["program_json_48mb"] = oversized_control(1, 48_000_000)
        print(json.dumps({"program_json_48mb": out["program_json_48mb"]}), flush=True)
    if "denoise" in parts:
        out["denoise_concurrent"] = {"jobs": args.jobs, "size": args.size, **concurrent_denoise(args.jobs, args.size)}
        print(json.dumps({"denoise_concurrent": out["denoise_concurrent"]}), flush=True)
    if "admission" in parts:
        out["admission"] = {
            "size": args.size,
            "no_dealer": args.no_dealer,
            **admission_estimate(args.size, args.no_dealer),
        }
        print(json.dumps({"admission": out["admission"]}), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    socket.setdefaulttimeout(120)
    main()
