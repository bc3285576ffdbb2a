"""Garbled-circuit and oblivious-transfer benchmarks (issue: garbled circuits): half-gates
garbling and evaluation on one core against the bare AES work in ``cryptography``
(``gc_garble``, ``gc_eval``), garbling streamed to an evaluator process over sealed TLS
(``gc_e2e``), and IKNP correlated OT over a loopback channel (``ot``).
"""

from __future__ import annotations

import multiprocessing
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .. import _core, gc, ot
from ..net.certs import CLIENT_NAME, Identity, party_name
from ..net.pipe import ChannelPipe
from ..net.transport import accept_tls, connect, server_context
from ..protocols.gc_sign import Streamer
from ..runtime.server import keep_freed_memory
from .registry import best_time, kernel_isa, register, result, time_once
from .transport import transport_certs

GC_K = 32
GC_BATCH = 1 << 20
OT_N = 1 << 24


def _gc_workload():
    circ = gc.circuits.adder(GC_K)
    delta = gc.random_delta(1)
    zero = gc.random_labels(circ.n_inputs, GC_BATCH, seed=2)
    rng = np.random.default_rng(3)
    bits = np.concatenate(
        [
            gc.to_bits(rng.integers(0, 2**GC_K, GC_BATCH, dtype=np.uint64), GC_K),
            gc.to_bits(rng.integers(0, 2**GC_K, GC_BATCH, dtype=np.uint64), GC_K),
        ]
    )
    return circ, delta, zero, gc.encode(zero, delta, bits)


def _aes_ecb_seconds(blocks: int) -> float:
    """cryptography's AES-128-ECB on ``blocks`` 16-byte blocks (one thread): the bare AES work."""
    chunk = np.zeros(1 << 22, dtype=np.uint8)  # 4 MiB
    out = bytearray(len(chunk) + 16)
    enc = Cipher(algorithms.AES(bytes(16)), modes.ECB()).encryptor()
    total = blocks * 16

    def run() -> None:
        done = 0
        while done < total:
            n = min(len(chunk), total - done)
            enc.update_into(chunk[:n], out)
            done += n

    return best_time(run, repeats=3)


@register(
    "gc_garble",
    "half-gates garbling of a 32-bit adder over 2^20 instances on one core, M AND/s",
    emits=("gc_eval", "gc_e2e"),
)
def bench_gc() -> list[dict[str, Any]]:
    keep_freed_memory()  # as the servers do: streamed chunks reuse the heap instead of faulting pages in
    streamed = [gc_stream_seconds() for _ in range(3)]
    stream_s = [t for t, _, _ in streamed]
    stream_and, stream_bytes = streamed[0][1], streamed[0][2]

    circ, delta, zero, labels = _gc_workload()
    n_and = circ.n_and * GC_BATCH
    # Preallocated outputs (1 GB of tables): the engine is timed, not the page faults of a fresh array.
    tables, out_zero = gc.garble(circ, zero, delta, threads=1)
    out = np.empty_like(out_zero)

    def garble(threads: int) -> None:
        _core.gc_garble(circ.gates, circ.outputs, circ.n_wires, zero, delta, 0, tables, out_zero, threads)

    garble_s = best_time(lambda: garble(1), repeats=5)
    eval_s = best_time(
        lambda: _core.gc_evaluate(circ.gates, circ.outputs, circ.n_wires, labels, tables, 0, out, 1), repeats=5
    )
    garble2_s = best_time(lambda: garble(0), repeats=3)
    ecb4 = _aes_ecb_seconds(4 * n_and)
    m = n_and / 1e6
    return [
        result(
            "gc_garble",
            m / garble_s,
            "M AND/s",
            "higher",
            ref="cryptography AES-128-ECB on the 4 hash blocks per AND (1 thread)",
            ref_value=m / ecb4,
            bytes_per_and=32,
            both_cores_mand_s=m / garble2_s,
            isa=kernel_isa(),
            n_and=n_and,
        ),
        result(
            "gc_eval",
            m / eval_s,
            "M AND/s",
            "higher",
            ref="cryptography AES-128-ECB on the 2 hash blocks per AND (1 thread)",
            ref_value=2 * m / ecb4,
            isa=kernel_isa(),
            n_and=n_and,
        ),
        result(
            "gc_e2e",
            stream_and / min(stream_s) / 1e6,
            "M AND/s",
            "higher",
            stat="best of 3",
            median_mand_s=stream_and / statistics.median(stream_s) / 1e6,
            bytes_per_and=stream_bytes / stream_and,
            n_and=stream_and,
            note="32-bit multiplier garbled in this process, input labels and tables streamed over sealed "
            "TLS to an evaluator process that evaluates each chunk on arrival; published reference "
            "12 M AND/s (C++ toolkit, loopback, 32 B/AND)",
        ),
    ]


GC_STREAM_K = 32  # 32-bit multiplier: 993 ANDs per instance
GC_STREAM_CHUNK = 1 << 12  # instances per streamed chunk (4 MB of input labels, 127 MB of tables)
GC_STREAM_CHUNKS = 12


def _gc_stream_evaluator(listener: socket.socket, certs: Path, report) -> None:
    """Child process: accept the garbler's link, receive input labels and table chunks,
    evaluate each chunk as it arrives; report (finish time, checksum) on ``report``."""
    keep_freed_memory()  # as a server does: received chunks reuse the heap
    try:
        raw, _ = listener.accept()
        channel = accept_tls(raw, server_context(Identity.from_dir(certs, party_name(0))), 60.0, "sealed")
        circ = gc.circuits.multiplier(GC_STREAM_K)
        colours = 0
        for i in range(GC_STREAM_CHUNKS):
            labels = channel.recv().array
            tables = channel.recv().array
            out = gc.evaluate(circ, labels, tables, i * GC_STREAM_CHUNK)
            colours += int(gc.colour(out).sum())
        report.send((time.perf_counter(), colours))
        channel.close()
    except BaseException as exc:  # the parent re-raises it
        report.send((None, repr(exc)))


class _NamedSender:
    """The send half of a pipe over one Channel (what the gc_sign streamer expects)."""

    def __init__(self, channel) -> None:
        self.channel = channel

    def send(self, name: str, array: np.ndarray) -> None:
        self.channel.send_tensor(b"\0" * 16, name, array)


def gc_stream_seconds() -> tuple[float, int, int]:
    """Garble a 32-bit multiplier over GC_STREAM_CHUNKS chunks in this process and stream the
    input labels and tables over a sealed TLS link to an evaluator *process*, which evaluates
    each chunk on arrival. Returns (seconds from the first garbling to the evaluator's last
    output, AND gates, bytes sent)."""
    circ = gc.circuits.multiplier(GC_STREAM_K)
    delta = gc.random_delta()
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory(prefix="safelight-bench-") as tmp:
        certs = transport_certs(tmp)
        listener = socket.create_server(("127.0.0.1", 0))
        mp = multiprocessing.get_context("fork")
        ours, theirs = mp.Pipe()
        child = mp.Process(target=_gc_stream_evaluator, args=(listener, certs, theirs), daemon=True)
        child.start()
        try:
            channel = connect(
                "127.0.0.1",
                listener.getsockname()[1],
                Identity.from_dir(certs, CLIENT_NAME),
                party_name(0),
                60.0,
                records="sealed",
            )
            pipe = _NamedSender(channel)
            t0 = time.perf_counter()
            with Streamer(pipe) as out:
                for i in range(GC_STREAM_CHUNKS):
                    zero = gc.random_labels(circ.n_inputs, GC_STREAM_CHUNK, seed=rng.bytes(16))
                    bits = rng.integers(0, 2, (circ.n_inputs, GC_STREAM_CHUNK), dtype=np.uint8)
                    tables, _ = gc.garble(circ, zero, delta, i * GC_STREAM_CHUNK)
                    out.put(("labels", gc.encode(zero, delta, bits)), ("tables", tables))
            if not ours.poll(120):
                raise TimeoutError("the evaluator process did not finish")
            finished, detail = ours.recv()
            if finished is None:
                raise RuntimeError(f"evaluator process failed: {detail}")
            sent = channel.bytes_sent
            channel.close()
        finally:
            listener.close()
            child.join(10)
            if child.is_alive():
                child.kill()
    return finished - t0, circ.n_and * GC_STREAM_CHUNK * GC_STREAM_CHUNKS, sent


def _over_tls(
    here: Callable[[ChannelPipe, dict], Any], there: Callable[[ChannelPipe, dict], Any], wait: float = 300
) -> tuple[Any, dict]:
    """Two parties over a TLS 1.3 loopback link with throwaway certificates: ``there`` on a
    helper thread (the accepting end; its channel in ``box["channel"]``, its result in
    ``box["there"]``), ``here`` on this thread (its channel in ``box["here_channel"]``).
    Returns here's result and the box, once the helper is done (at most ``wait`` s)."""
    with tempfile.TemporaryDirectory(prefix="safelight-bench-") as tmp:
        certs = transport_certs(tmp)
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        box: dict[str, Any] = {}

        def accepting_side() -> None:
            raw, _ = listener.accept()
            ch = accept_tls(raw, server_context(Identity.from_dir(certs, party_name(0))), 120.0)
            box["channel"] = ch
            box["there"] = there(ChannelPipe(ch, ch), box)

        thread = threading.Thread(target=accepting_side, daemon=True)
        thread.start()
        ch = connect("127.0.0.1", port, Identity.from_dir(certs, CLIENT_NAME), party_name(0), 120.0)
        box["here_channel"] = ch
        out = here(ChannelPipe(ch, ch), box)
        thread.join(wait)
        listener.close()
        ch.close()
    return out, box


SILENT_N = 10_000_000  # one main iteration's worth per extend


@register("ot_silent", "silent (Ferret-style LPN) correlated OT over a loopback channel, M COT/s, next to IKNP")
def bench_ot_silent() -> dict[str, Any]:
    """Sender here, receiver on a thread (one core each), over TLS on loopback. After the
    setup (IKNP base OTs and bootstrap COTs, one bootstrap iteration) and one warm-up
    extend, the best of 3 extends of 10 M COTs into reused arrays; IKNP extends the same
    count on the same kind of link in the same run. Bits per COT: what each side sent
    during the timed extends, over the COTs."""

    def link(role):
        return _over_tls(lambda pipe, box: role("sender", pipe, box), lambda pipe, box: role("receiver", pipe, box))

    def silent_role(side, pipe, box):
        buffer = np.zeros((SILENT_N, 2), dtype=np.uint64)
        if side == "receiver":
            party = ot.SilentReceiver().setup(pipe)
            for _ in range(4):
                party.extend(SILENT_N, pipe, out=buffer)
            return None
        t0 = time.perf_counter()
        party = ot.SilentSender().setup(pipe)
        setup_s = time.perf_counter() - t0
        party.extend(SILENT_N, pipe, out=buffer)
        while "channel" not in box:
            time.sleep(0.01)
        sent_before, received_before = pipe.out.bytes_sent, box["channel"].bytes_sent
        times = [time_once(lambda: party.extend(SILENT_N, pipe, out=buffer)) for _ in range(3)]
        sent = pipe.out.bytes_sent - sent_before
        received = box["channel"].bytes_sent - received_before
        return {"setup_s": setup_s, "times": times, "sender_bytes": sent, "receiver_bytes": received}

    def iknp_role(side, pipe, box):
        if side == "receiver":
            party = ot.COTReceiver().setup(pipe)
            choices = np.random.default_rng(9).integers(0, 2, SILENT_N, dtype=np.uint8)
            for _ in range(3):
                party.extend(choices, pipe)
            return None
        party = ot.COTSender().setup(pipe)
        return {"times": [time_once(lambda: party.extend(SILENT_N, pipe)) for _ in range(3)]}

    silent, _ = link(silent_role)
    iknp, _ = link(iknp_role)
    best, iknp_best = min(silent["times"]), min(iknp["times"][1:])
    steady = ot.MAIN
    return result(
        "ot_silent",
        SILENT_N / best / 1e6,
        "M COT/s",
        "higher",
        ref="IKNP on the same link, same run, M COT/s",
        ref_value=SILENT_N / iknp_best / 1e6,
        stat="best of 3 extends of 10 M after a warm-up",
        bits_per_cot=8 * (silent["sender_bytes"] + silent["receiver_bytes"]) / (3 * SILENT_N),
        bits_per_cot_steady_state=(2 * steady.trees * steady.depth + steady.trees) * 128 / (steady.n - steady.base),
        iknp_bits_per_cot=128,
        setup_s=silent["setup_s"],
        cores_per_party=1,
        published_reference_bits_per_cot=0.45,
    )


RELU_OT_N = 1 << 20


@register("relu_1m_ot", "OT-based ReLU protocol (silent OT, millionaires) of 2^20 values between two parties, s")
def bench_relu_1m_ot() -> dict[str, Any]:
    """The protocol of :mod:`safelight.protocols.ot_compare` alone (not yet the Program's
    relu op): parties 0 and 1 on one core each, over TLS on loopback, 40-bit signs. After
    the link's setup and one warm-up ReLU, the best of 3; bytes per value and party are
    everything each side sent during the timed runs (silent OT included)."""
    from ..protocols import ot_compare

    rng = np.random.default_rng(5)
    x = rng.integers(-(2**30), 2**30, RELU_OT_N, dtype=np.int64)
    shares = [rng.integers(0, 2**64, RELU_OT_N, dtype=np.uint64)]
    shares.append((x.view(np.uint64) - shares[0]).astype(np.uint64))

    def party_one(pipe, box) -> np.ndarray:
        link = ot_compare.OtLink(1, pipe)
        for _ in range(4):
            out = ot_compare.relu(link, shares[1])
        return out

    def party_zero(pipe, box) -> dict[str, Any]:
        t0 = time.perf_counter()
        link = ot_compare.OtLink(0, pipe)
        setup_s = time.perf_counter() - t0
        ot_compare.relu(link, shares[0])
        while "channel" not in box:
            time.sleep(0.01)
        sent = [pipe.out.bytes_sent, box["channel"].bytes_sent]
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = ot_compare.relu(link, shares[0])
            times.append(time.perf_counter() - t0)
        return {"setup_s": setup_s, "sent": sent, "times": times, "out": out}

    mine, box = _over_tls(party_zero, party_one)
    sent = [box["here_channel"].bytes_sent - mine["sent"][0], box["channel"].bytes_sent - mine["sent"][1]]
    times, setup_s, out0 = mine["times"], mine["setup_s"], mine["out"]
    correct = bool(np.array_equal((out0 + box["there"]).view(np.int64), np.maximum(x, 0)))
    return result(
        "relu_1m_ot",
        min(times),
        "s",
        "lower",
        stat="best of 3 after a warm-up",
        values=RELU_OT_N,
        bits=40,
        bytes_per_value_per_party=[b / (3 * RELU_OT_N) for b in sent],
        rounds_per_relu=2 + 4 + 2,
        setup_s=setup_s,
        correct=correct,
        published_reference="SPU 0.9.5 CHEETAH, 2 parties, loopback: 26 s, 56 bytes per value per party",
    )


@register("ot", "IKNP correlated OT over a loopback channel (TLS 1.3 handshake, sealed records), M OT/s")
def bench_ot() -> dict[str, Any]:
    def receiver_side(pipe, box) -> None:
        rec = ot.COTReceiver().setup(pipe)
        choices = np.random.default_rng(9).integers(0, 2, OT_N, dtype=np.uint8)
        for _ in range(4):
            rec.extend(choices, pipe)

    def sender_side(pipe, box) -> tuple[float, list[float]]:
        t0 = time.perf_counter()
        sender = ot.COTSender().setup(pipe)
        base_s = time.perf_counter() - t0
        return base_s, [time_once(lambda: sender.extend(OT_N, pipe)) for _ in range(4)]

    (base_s, times), _ = _over_tls(sender_side, receiver_side, wait=120)
    best = min(times[1:])
    return result(
        "ot",
        OT_N / best / 1e6,
        "M OT/s",
        "higher",
        base_ot_s=base_s,
        n=OT_N,
        bytes_per_ot=16,
        published_reference_mot_s=88,
        stat="best of 3 after a warm-up",
    )
