"""The project's own benchmarks, each measured against an in-run reference.

Run them with ``safelight bench [NAME ...] [--json]``. Every benchmark times
safelight and a reference implementation (numpy, ``cryptography``, plain TCP,
scipy) the same way in the same process, so the ratio between the two is
meaningful on any machine even where absolute figures are not.

A benchmark is a function registered under a name; it returns one or more
result dicts built with :func:`result`::

    @register("gc_garble", "garbling throughput vs ...")
    def bench_gc_garble() -> list[dict]:
        ours = best_time(lambda: ...)
        ref = best_time(lambda: ...)
        return [result("gc_garble", gates / ours, "Mgates/s", "higher",
                       ref="...", ref_value=gates / ref)]

Result keys: ``name``, ``value``, ``unit``, ``better`` (``"higher"`` or
``"lower"``) and, where a reference ran, ``ref`` (what it is), ``ref_value`` and
``ratio`` (> 1 means safelight did better), followed by benchmark-specific
figures (``isa``, ``bytes_per_party``, ``rounds``, ...).
"""

from __future__ import annotations

import json
import queue
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

EXIT_USAGE = 2
EXIT_FAILED = 1

# Problem sizes (fixed by the issue that introduced each benchmark).
RING_N = 1 << 24  # uint64 elements per operand
PRG_BYTES = 64 << 20
TRANSPORT_BYTES = 256 << 20
FILTER_IMAGE = "astronaut"  # 512 x 512 RGB
FILTER_KERNEL = "gaussian:2"

GB = 1e9  # throughput figures are decimal GB/s

BenchFunc = Callable[[], "dict[str, Any] | list[dict[str, Any]]"]


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Benchmark:
    name: str
    func: BenchFunc
    description: str
    emits: tuple[str, ...] = field(default=())  # result names besides ``name`` (selectable too)


REGISTRY: dict[str, Benchmark] = {}


def register(name: str, description: str = "", emits: Sequence[str] = ()) -> Callable[[BenchFunc], BenchFunc]:
    """Decorator: register ``func`` as benchmark ``name`` (emitting results ``name`` and ``emits``)."""

    def wrap(func: BenchFunc) -> BenchFunc:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is already registered")
        REGISTRY[name] = Benchmark(name, func, description or (func.__doc__ or "").strip().split("\n")[0],
                                   tuple(emits))
        return func

    return wrap


def known_names() -> list[str]:
    """Every name ``safelight bench`` accepts: benchmarks and the extra results they emit."""
    names: list[str] = []
    for bench in REGISTRY.values():
        names.append(bench.name)
        names.extend(e for e in bench.emits if e not in names)
    return names


def resolve(names: Iterable[str]) -> list[Benchmark]:
    """Benchmarks to run for ``names`` (all when empty), in registry order, each once.

    Raises KeyError listing the unknown names.
    """
    names = list(names)
    if not names:
        return list(REGISTRY.values())
    by_result = {}
    for bench in REGISTRY.values():
        for n in (bench.name, *bench.emits):
            by_result.setdefault(n, bench)
    unknown = [n for n in names if n not in by_result]
    if unknown:
        raise KeyError(", ".join(unknown))
    wanted = {by_result[n].name for n in names}
    return [b for b in REGISTRY.values() if b.name in wanted]


# ---------------------------------------------------------------------------
# helpers for benchmark functions
# ---------------------------------------------------------------------------
def result(name: str, value: float, unit: str, better: str, ref: str | None = None,
           ref_value: float | None = None, **extra: Any) -> dict[str, Any]:
    """One result dict; ``ratio`` is derived so that > 1 always means safelight did better."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    out: dict[str, Any] = {"name": name, "value": float(value), "unit": unit, "better": better}
    if ref is not None and ref_value is not None:
        out["ref"] = ref
        out["ref_value"] = float(ref_value)
        if value and ref_value:  # no ratio (rather than an infinite one, which is not JSON) for a zero
            out["ratio"] = float(value) / float(ref_value) if better == "higher" else float(ref_value) / float(value)
    out.update(extra)
    return out


def time_once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_time(fn: Callable[[], Any], repeats: int = 7, warmup: int = 1) -> float:
    """Best wall time of ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    return min(time_once(fn) for _ in range(repeats))


def paired_times(ours: Callable[[], Any], ref: Callable[[], Any], repeats: int = 7,
                 warmup: int = 1) -> tuple[list[float], list[float]]:
    """Time ``ours`` and ``ref`` alternately, so that drift on a shared machine hits both alike."""
    for _ in range(warmup):
        ours()
        ref()
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        a.append(time_once(ours))
        b.append(time_once(ref))
    return a, b


def _isa() -> str:
    from . import _core

    return str(_core.isa())


# ---------------------------------------------------------------------------
# ring engine vs numpy
# ---------------------------------------------------------------------------
def ring_operands(n: int = RING_N, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two random uint64 operands and an output buffer, all preallocated and touched."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    b = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    out = np.zeros(n, dtype=np.uint64)
    return a, b, out


def _bench_ring_op(name: str, ref_fn: Callable[..., Any], ref_name: str) -> dict[str, Any]:
    """``_core.<name>`` (ring_add or ring_mul) on 2^24 uint64 vs the numpy ufunc, GB/s."""
    from . import _core

    ours_fn = getattr(_core, name)
    a, b, out = ring_operands()
    n = a.size
    nbytes = 3 * 8 * n
    repeats = 15
    ours, ref = paired_times(lambda: ours_fn(a, b, out), lambda: ref_fn(a, b, out=out), repeats)
    # a wrong kernel would make the comparison meaningless: check once, untimed
    ours_fn(a, b, out)
    expect = ref_fn(a[:4096], b[:4096])
    if not np.array_equal(out[:4096], expect):
        raise AssertionError(f"_core.{name} disagrees with numpy")
    return result(name, nbytes / min(ours) / GB, "GB/s", "higher", ref=ref_name, ref_value=nbytes / min(ref) / GB,
                  elements=n, isa=_isa(), repeats=repeats, stat="best")


# Two benchmarks, not one emitting both: ``safelight bench ring_add`` times only the add.
@register("ring_add", "Z_2^64 add of 2^24 uint64 vs numpy, GB/s (3 x 8 bytes per element)")
def bench_ring_add() -> dict[str, Any]:
    return _bench_ring_op("ring_add", np.add, "numpy np.add(a, b, out=out)")


@register("ring_mul", "Z_2^64 multiply of 2^24 uint64 vs numpy, GB/s (3 x 8 bytes per element)")
def bench_ring_mul() -> dict[str, Any]:
    return _bench_ring_op("ring_mul", np.multiply, "numpy np.multiply(a, b, out=out)")


# ---------------------------------------------------------------------------
# PRG vs cryptography AES-128-CTR
# ---------------------------------------------------------------------------
PRG_SEED = bytes(range(16))


def prg_reference(seed: bytes, nonce: int = 0, counter: int = 0) -> Callable[[np.ndarray, np.ndarray], None]:
    """``fill(zeros, out)``: AES-128-CTR keystream with ``cryptography`` (encrypting zeros) into ``out``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = nonce.to_bytes(8, "big") + counter.to_bytes(8, "big")

    def fill(zeros: np.ndarray, out: np.ndarray) -> None:
        enc = Cipher(algorithms.AES(seed), modes.CTR(iv)).encryptor()
        enc.update_into(zeros, out)

    return fill


def prg_buffers(nbytes: int = PRG_BYTES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ours_out, zeros, ref_out); ref_out has a block of slack, as ``update_into`` may require."""
    ours = np.zeros(nbytes // 8, dtype=np.uint64)
    zeros = np.zeros(nbytes, dtype=np.uint8)
    ref = np.zeros(nbytes + 16, dtype=np.uint8)
    return ours, zeros, ref


def prg_status(seed: bytes = PRG_SEED) -> dict[str, Any]:
    """Whether ``_core.prg_fill`` is still the all-zero placeholder and whether it matches AES-128-CTR."""
    from . import _core

    n = 4096
    ours = np.zeros(n, dtype=np.uint8)
    _core.prg_fill(seed, ours, 7, 3)
    ref = np.zeros(n + 16, dtype=np.uint8)
    prg_reference(seed, 7, 3)(np.zeros(n, dtype=np.uint8), ref)
    return {"placeholder": bool(not ours.any()), "matches_cryptography": bool(np.array_equal(ours, ref[:n]))}


@register("prg", "AES-128-CTR keystream (64 MiB) vs cryptography, GB/s")
def bench_prg() -> dict[str, Any]:
    from . import _core

    out, zeros, ref_out = prg_buffers()
    ref_fill = prg_reference(PRG_SEED)
    repeats = 7
    ours, ref = paired_times(lambda: _core.prg_fill(PRG_SEED, out), lambda: ref_fill(zeros, ref_out), repeats)
    return result("prg", PRG_BYTES / min(ours) / GB, "GB/s", "higher",
                  ref="cryptography AES-128-CTR update_into", ref_value=PRG_BYTES / min(ref) / GB,
                  bytes=PRG_BYTES, isa=_isa(), **prg_status(), repeats=repeats, stat="best")


# ---------------------------------------------------------------------------
# transport: TLS 1.3 channel vs plain TCP channel
# ---------------------------------------------------------------------------
class Link:
    """A sender Channel and a receiving thread over loopback, TLS 1.3 (mutual auth) or plain TCP.

    ``transfer(array)`` returns the seconds from just before ``send_tensor`` until the
    receiving thread has returned the whole array from ``Channel.recv``.
    """

    def __init__(self, certs: Path | None, timeout: float = 60.0, records: str = "sealed") -> None:
        from .runtime.certs import CLIENT_NAME, Identity, party_name
        from .runtime.transport import Channel, accept_tls, connect, server_context

        self.tls = certs is not None
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        accepted: queue.Queue = queue.Queue()

        def accept() -> None:
            try:
                raw, _ = listener.accept()
                if certs is None:
                    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    accepted.put(Channel(raw, CLIENT_NAME, timeout))
                else:
                    ctx = server_context(Identity.from_dir(certs, party_name(0)))
                    accepted.put(accept_tls(raw, ctx, timeout, records))
            except BaseException as exc:  # handed to the constructing thread
                accepted.put(exc)

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        try:
            identity = Identity.from_dir(certs, CLIENT_NAME) if certs is not None else None
            self.sender = connect("127.0.0.1", port, identity, party_name(0), timeout, records=records)
            got = accepted.get(timeout=timeout)
        finally:
            acceptor.join(timeout)
            listener.close()
        if isinstance(got, BaseException):
            self.sender.close()
            raise got
        self.receiver = got
        sock = self.sender.sock
        self.cipher = None if not self.tls else (
            sock.cipher()[0] if hasattr(sock, "cipher") else "TLS 1.3 handshake + AES-256-GCM sealed records")
        self._arrived: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._receive_loop, daemon=True)
        self._thread.start()

    def _receive_loop(self) -> None:
        while True:
            try:
                frame = self.receiver.recv()
            except BaseException as exc:
                self._arrived.put((time.perf_counter(), exc))
                return
            self._arrived.put((time.perf_counter(), frame.array))

    def transfer(self, array: np.ndarray, check: bool = False) -> float:
        t0 = time.perf_counter()
        self.sender.send_tensor(b"\0" * 16, "bench", array)
        t1, got = self._arrived.get()
        if isinstance(got, BaseException):
            raise got
        if check and not np.array_equal(got, array):
            raise AssertionError("the received array differs from the one sent")
        return t1 - t0

    def close(self) -> None:
        self.sender.close()
        self._thread.join(5)
        self.receiver.close()

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def transport_certs(directory: str | Path) -> Path:
    """A throwaway certificate set: ``party-0`` (server) and ``client``."""
    from .runtime.certs import create_cluster_certs

    return create_cluster_certs(Path(directory) / "certs", 1)


def transport_payload(nbytes: int = TRANSPORT_BYTES) -> np.ndarray:
    return np.arange(nbytes // 8, dtype=np.uint64)


@register("transport_tls", "256 MB tensor over a loopback TLS 1.3-authenticated Channel vs plain TCP, GB/s")
def bench_transport() -> dict[str, Any]:
    """The default channel (TLS 1.3 handshake, sealed AES-GCM records) against plain TCP with the
    same framing; TLS records end to end (``records = "tls"``) are measured alongside."""
    payload = transport_payload()
    repeats = 5
    with tempfile.TemporaryDirectory(prefix="safelight-bench-") as tmp:
        certs = transport_certs(tmp)
        with Link(certs) as sealed, Link(None) as plain, Link(certs, records="tls") as tls_records:
            for link in (sealed, plain, tls_records):
                link.transfer(payload, check=True)
            ours, ref = paired_times(lambda: sealed.transfer(payload), lambda: plain.transfer(payload), repeats,
                                     warmup=0)
            tls_only = best_time(lambda: tls_records.transfer(payload), repeats=3, warmup=0)
            cipher = sealed.cipher
    value = payload.nbytes / min(ours) / GB
    return result("transport_tls", value, "GB/s", "higher",
                  ref="plain TCP Channel (same framing, no TLS)", ref_value=payload.nbytes / min(ref) / GB,
                  bytes=payload.nbytes, cipher=cipher, tls_records_gbps=payload.nbytes / tls_only / GB,
                  target_gbps=1.0, meets_target=bool(value >= 1.0), repeats=repeats, stat="best")


# ---------------------------------------------------------------------------
# end to end: private Gaussian filtering vs plaintext scipy
# ---------------------------------------------------------------------------
def filter_image() -> np.ndarray:
    from skimage import data

    return getattr(data, FILTER_IMAGE)()


@register("filter_512", "private gaussian:2 filter of a 512x512 RGB photo on 2 local servers vs scipy, seconds")
def bench_filter() -> dict[str, Any]:
    from .runtime.cluster import Cluster
    from .tasks import filter as filter_task

    image = filter_image()
    repeats = 3
    with Cluster.local(2) as cluster:
        runs = []
        filter_task.run(image, FILTER_KERNEL, cluster)  # warm-up: connections, imports, caches
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = filter_task.run(image, FILTER_KERNEL, cluster)
            runs.append((time.perf_counter() - t0, res))
    ours_s, last = min(runs, key=lambda r: r[0])
    ref_s = best_time(lambda: filter_task.plaintext(image, FILTER_KERNEL), repeats=5)
    plain = filter_task.plaintext(image, FILTER_KERNEL)
    # for context only: scipy's separable Gaussian (two 1-D passes) on the same values
    from scipy import ndimage

    from .sharing import as_plain_values

    values, _ = as_plain_values(image)
    sigma = float(FILTER_KERNEL.partition(":")[2])
    separable_s = best_time(lambda: ndimage.gaussian_filter(values, (sigma, sigma, 0), mode="reflect"), repeats=5)
    job = last.job
    return result("filter_512", ours_s, "s", "lower",
                  ref="plaintext scipy.ndimage.convolve", ref_value=ref_s,
                  image=f"{FILTER_IMAGE} {'x'.join(map(str, image.shape))}", kernel=FILTER_KERNEL,
                  bytes_per_party=[int(p.bytes_sent + p.bytes_received) for p in job.parties],
                  upload_bytes=int(job.upload_bytes), download_bytes=int(job.download_bytes),
                  rounds=int(job.rounds), max_abs_error=float(np.abs(last.values - plain).max()),
                  median_s=statistics.median(r[0] for r in runs),
                  scipy_separable_gaussian_s=separable_s, repeats=repeats, stat="best")


# ---------------------------------------------------------------------------
# secure arithmetic (issue: arithmetic engine)
# ---------------------------------------------------------------------------
GEMM_N = 1024
MUL_N = 1 << 20
CONV_SHAPE = (1, 64, 128, 128)
CONV_WEIGHT = (64, 64, 3, 3)


@register("gemm", "Z_2^64 GEMM 1024^3 vs numpy float64 matmul (BLAS) and numpy int64 matmul, GOP/s")
def bench_gemm() -> dict[str, Any]:
    from . import ring

    n = GEMM_N
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2**64, (n, n), dtype=np.uint64)
    b = rng.integers(0, 2**64, (n, n), dtype=np.uint64)
    out = np.empty((n, n), dtype=np.uint64)
    fa, fb = rng.random((n, n)), rng.random((n, n))
    # Timed in blocks, not alternately: OpenBLAS worker threads keep spinning for a while
    # after each call and would steal the cores from the next ring GEMM.
    ours = best_time(lambda: ring.matmul(a, b, out), repeats=7)
    blas = best_time(lambda: fa @ fb, repeats=7)
    ia, ib = a.view(np.int64), b.view(np.int64)
    int64_s = time_once(lambda: ia @ ib)
    ops = 2.0 * n**3 / 1e9
    return result("gemm", ops / ours, "GOP/s", "higher", ref="numpy float64 matmul (BLAS)", ref_value=ops / blas,
                  numpy_int64_gops=ops / int64_s, vs_numpy_int64=int64_s / ours, isa=_isa(), size=n)


def _secure_jobs(parties: int, build: Callable[[Any], None], values: dict[str, np.ndarray], runs: int = 3,
                 ots: str = "iknp"):
    """Run a Program ``runs`` times on a fresh local cluster with a dealer; return the jobs.

    Two warm-up jobs run first and are not returned: the servers' heaps grow to the
    job's working set during them (first-touch page faults).
    """
    from . import encode
    from .runtime.cluster import Cluster
    from .runtime.program import Program

    prog = Program(parties)
    tensors = {name: prog.input(name, v.shape) for name, v in values.items()}
    build(prog, tensors)
    with Cluster.local(parties, dealer=True) as cluster:
        jobs = [cluster.run(prog, {k: encode(v, parties) for k, v in values.items()}, triples="dealer", ots=ots)
                for _ in range(runs + 2)]
    return jobs[2:]


def _median_job(jobs: list, op: str):
    """The job whose ``op`` time is the median (upper) of the runs, and all runs' times in seconds."""
    times = [j.ops()[op]["seconds"] for j in jobs]
    order = sorted(range(len(jobs)), key=lambda i: times[i])
    return jobs[order[len(order) // 2]], sorted(times)


@register("mul_1m", "secure elementwise multiply of 2^20 fixed-point values on 2 servers (dealer), online ms")
def bench_mul_1m() -> dict[str, Any]:
    rng = np.random.default_rng(6)
    x, y = rng.uniform(-10, 10, MUL_N), rng.uniform(-10, 10, MUL_N)
    jobs = _secure_jobs(2, lambda p, t: p.output(p.mul(t["x"], t["y"]), "z"), {"x": x, "y": y}, runs=9)
    job, times = _median_job(jobs, "mul")
    op = job.ops()["mul"]
    return result("mul_1m", op["seconds"] * 1e3, "ms", "lower", stat="median of 9 jobs",
                  min_ms=times[0] * 1e3, max_ms=times[-1] * 1e3, offline_ms=job.offline_seconds * 1e3,
                  bytes_per_party=op["bytes_sent"], bytes_received_per_party=op["bytes_received"],
                  rounds=op["rounds"], dealer_bytes=job.dealer.peer_bytes_sent if job.dealer else None,
                  values=MUL_N, published_reference_ms=115, published_reference_bytes_per_party=32 * 2**20)


def plaintext_conv_nchw(x: np.ndarray, w: np.ndarray, padding: int) -> np.ndarray:
    """Float64 conv (NCHW x OIHW, stride 1) by a sliding-window view and one BLAS tensordot."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))  # N C H W kh kw
    return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


@register("conv_layer", "secure conv 64->64 3x3 on 1x64x128x128, 2 servers (dealer) vs numpy float64 conv, online s")
def bench_conv_layer() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    x, w = rng.uniform(0, 1, CONV_SHAPE), rng.uniform(-0.05, 0.05, CONV_WEIGHT)
    jobs = _secure_jobs(2, lambda p, t: p.output(p.conv2d(t["x"], t["w"], padding=1), "y"), {"x": x, "w": w},
                        runs=5)
    job, times = _median_job(jobs, "conv2d")
    op = job.ops()["conv2d"]
    plain = best_time(lambda: plaintext_conv_nchw(x, w, 1), repeats=3)
    return result("conv_layer", op["seconds"], "s", "lower", ref="numpy float64 conv (sliding window + BLAS)",
                  ref_value=plain, stat="median of 5 jobs", min_s=times[0], offline_s=job.offline_seconds,
                  bytes_per_party=op["bytes_sent"],
                  rounds=op["rounds"], dealer_bytes=job.dealer.peer_bytes_sent if job.dealer else None, isa=_isa())


@register("conv_layer_nodealer", "secure conv 64->64 3x3 on 1x64x128x128, 2 servers, dealer-free triples "
          "(lattice HE between the servers) vs the dealer version in the same run, offline + online s")
def bench_conv_layer_nodealer() -> dict[str, Any]:
    from . import encode
    from .runtime.cluster import Cluster
    from .runtime.program import Program

    rng = np.random.default_rng(7)
    x, w = rng.uniform(0, 1, CONV_SHAPE), rng.uniform(-0.05, 0.05, CONV_WEIGHT)
    prog = Program(2)
    prog.output(prog.conv2d(prog.input("x", x.shape), prog.input("w", w.shape), padding=1), "y")
    inputs = {"x": encode(x, 2), "w": encode(w, 2)}
    with Cluster.local(2, dealer=True) as cluster:
        free = [cluster.run(prog, inputs, triples="he") for _ in range(3)]
        dealt = [cluster.run(prog, inputs, triples="dealer") for _ in range(3)]

    def total(job):
        return job.offline_seconds + job.online_seconds

    free.sort(key=total)
    dealt.sort(key=total)
    job, ref = free[1], dealt[1]
    return result("conv_layer_nodealer", total(job), "s", "lower", ref="the same layer with a dealer (offline + online)",
                  ref_value=total(ref), stat="median of 3 jobs", offline_s=job.offline_seconds,
                  online_s=job.online_seconds, bytes_per_party=job.parties[0].peer_bytes_sent,
                  rounds=job.rounds, ref_offline_s=ref.offline_seconds, ref_online_s=ref.online_seconds,
                  ref_bytes_per_party=ref.parties[0].peer_bytes_sent,
                  ref_dealer_bytes=ref.dealer.peer_bytes_sent if ref.dealer else None, isa=_isa())


@register("he_filter_256", "encrypted 3x3 stride-1 convolution of a 256x256 grey photo on ONE server (BFV, "
          "coefficient packing) vs scipy in plaintext, s (server evaluation)")
def bench_he_filter_256() -> dict[str, Any]:
    from scipy import ndimage
    from skimage import data

    from .runtime.cluster import Cluster
    from .tasks import filter as plain_filter
    from .tasks import he_filter

    image = data.camera()[128:384, 128:384]
    kernel = "box:3"
    with Cluster.local(1) as cluster:
        runs = [he_filter.run(image, kernel, cluster) for _ in range(5)]
        secret = [he_filter.run(image, kernel, cluster, encrypted_kernel=True) for _ in range(3)]
    runs.sort(key=lambda r: r.job.parties[0].online_seconds)
    secret.sort(key=lambda r: r.job.parties[0].online_seconds)
    r = runs[2]
    err = float(np.abs(r.values - plain_filter.plaintext(image, kernel)).max() * 255)
    k = plain_filter.kernel_from(kernel)
    values = image.astype(np.float64) / 255
    plain = best_time(lambda: ndimage.convolve(values, k, mode="reflect"), repeats=5)
    return result("he_filter_256", r.job.parties[0].online_seconds, "s", "lower", ref="scipy.ndimage.convolve",
                  ref_value=plain, stat="median of 5 jobs", encrypt_s=r.seconds["encrypt"],
                  decrypt_s=r.seconds["decrypt"], upload_bytes=r.upload_bytes, download_bytes=r.download_bytes,
                  max_error_grey_levels=err, encrypted_kernel_s=secret[1].job.parties[0].online_seconds,
                  encrypted_kernel_download_bytes=secret[1].download_bytes, isa=_isa())


# ---------------------------------------------------------------------------
# garbled circuits and oblivious transfer (issue: garbled circuits)
# ---------------------------------------------------------------------------
GC_K = 32
GC_BATCH = 1 << 20
OT_N = 1 << 24
RELU_N = 1 << 20


def _gc_workload():
    from . import gc

    circ = gc.circuits.adder(GC_K)
    delta = gc.random_delta(1)
    zero = gc.random_labels(circ.n_inputs, GC_BATCH, seed=2)
    rng = np.random.default_rng(3)
    bits = np.concatenate([gc.to_bits(rng.integers(0, 2**GC_K, GC_BATCH, dtype=np.uint64), GC_K),
                           gc.to_bits(rng.integers(0, 2**GC_K, GC_BATCH, dtype=np.uint64), GC_K)])
    return circ, delta, zero, gc.encode(zero, delta, bits)


def _aes_ecb_seconds(blocks: int) -> float:
    """cryptography's AES-128-ECB on ``blocks`` 16-byte blocks (one thread): the bare AES work."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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


@register("gc_garble", "half-gates garbling of a 32-bit adder over 2^20 instances on one core, M AND/s",
          emits=("gc_eval", "gc_e2e"))
def bench_gc() -> list[dict[str, Any]]:
    from . import gc

    from . import _core

    from .runtime.server import keep_freed_memory

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
    eval_s = best_time(lambda: _core.gc_evaluate(circ.gates, circ.outputs, circ.n_wires, labels, tables, 0, out, 1),
                       repeats=5)
    garble2_s = best_time(lambda: garble(0), repeats=3)
    ecb4 = _aes_ecb_seconds(4 * n_and)
    m = n_and / 1e6
    return [
        result("gc_garble", m / garble_s, "M AND/s", "higher",
               ref="cryptography AES-128-ECB on the 4 hash blocks per AND (1 thread)", ref_value=m / ecb4,
               bytes_per_and=32, both_cores_mand_s=m / garble2_s, isa=_isa(), n_and=n_and),
        result("gc_eval", m / eval_s, "M AND/s", "higher",
               ref="cryptography AES-128-ECB on the 2 hash blocks per AND (1 thread)", ref_value=2 * m / ecb4,
               isa=_isa(), n_and=n_and),
        result("gc_e2e", stream_and / min(stream_s) / 1e6, "M AND/s", "higher", stat="best of 3",
               median_mand_s=stream_and / statistics.median(stream_s) / 1e6,
               bytes_per_and=stream_bytes / stream_and, n_and=stream_and,
               note="32-bit multiplier garbled in this process, input labels and tables streamed over sealed "
                    "TLS to an evaluator process that evaluates each chunk on arrival; published reference "
                    "12 M AND/s (C++ toolkit, loopback, 32 B/AND)"),
    ]


GC_STREAM_K = 32  # 32-bit multiplier: 993 ANDs per instance
GC_STREAM_CHUNK = 1 << 12  # instances per streamed chunk (4 MB of input labels, 127 MB of tables)
GC_STREAM_CHUNKS = 12


def _gc_stream_evaluator(listener: socket.socket, certs: Path, report) -> None:
    """Child process: accept the garbler's link, receive input labels and table chunks,
    evaluate each chunk as it arrives; report (finish time, checksum) on ``report``."""
    from . import gc
    from .runtime.certs import Identity, party_name
    from .runtime.server import keep_freed_memory
    from .runtime.transport import accept_tls, server_context

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


def gc_stream_seconds() -> tuple[float, int, int]:
    """Garble a 32-bit multiplier over GC_STREAM_CHUNKS chunks in this process and stream the
    input labels and tables over a sealed TLS link to an evaluator *process*, which evaluates
    each chunk on arrival. Returns (seconds from the first garbling to the evaluator's last
    output, AND gates, bytes sent)."""
    import multiprocessing

    from . import gc
    from .protocols.gc_sign import _Streamer
    from .runtime.certs import CLIENT_NAME, Identity, party_name
    from .runtime.transport import connect

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
            channel = connect("127.0.0.1", listener.getsockname()[1], Identity.from_dir(certs, CLIENT_NAME),
                              party_name(0), 60.0, records="sealed")
            pipe = _NamedSender(channel)
            t0 = time.perf_counter()
            with _Streamer(pipe) as out:
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


class _NamedSender:
    """The send half of a pipe over one Channel (what the gc_sign streamer expects)."""

    def __init__(self, channel) -> None:
        self.channel = channel

    def send(self, name: str, array: np.ndarray) -> None:
        self.channel.send_tensor(b"\0" * 16, name, array)


@register("ot", "IKNP correlated OT over a loopback channel (TLS 1.3 handshake, sealed records), M OT/s")
def bench_ot() -> dict[str, Any]:
    from . import ot
    from .runtime.certs import CLIENT_NAME, Identity, party_name
    from .runtime.transport import accept_tls, connect, server_context

    with tempfile.TemporaryDirectory(prefix="safelight-bench-") as tmp:
        certs = transport_certs(tmp)
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        box: dict[str, Any] = {}

        def receiver_side() -> None:
            raw, _ = listener.accept()
            ch = accept_tls(raw, server_context(Identity.from_dir(certs, party_name(0))), 120.0)
            pipe = ot.ChannelPipe(ch, ch)
            rec = ot.COTReceiver().setup(pipe)
            choices = np.random.default_rng(9).integers(0, 2, OT_N, dtype=np.uint8)
            for _ in range(4):
                rec.extend(choices, pipe)
            box["ok"] = True

        thread = threading.Thread(target=receiver_side, daemon=True)
        thread.start()
        ch = connect("127.0.0.1", port, Identity.from_dir(certs, CLIENT_NAME), party_name(0), 120.0)
        pipe = ot.ChannelPipe(ch, ch)
        t0 = time.perf_counter()
        sender = ot.COTSender().setup(pipe)
        base_s = time.perf_counter() - t0
        times = [time_once(lambda: sender.extend(OT_N, pipe)) for _ in range(4)]
        thread.join(120)
        listener.close()
        ch.close()
    best = min(times[1:])
    return result("ot", OT_N / best / 1e6, "M OT/s", "higher", base_ot_s=base_s, n=OT_N,
                  bytes_per_ot=16, published_reference_mot_s=88, stat="best of 3 after a warm-up")


RELU_BOUNDED_BITS = 24  # |x| < 2^7 at 16 fractional bits: the inputs here lie in [-10, 10]


@register("relu_1m", "secure ReLU of 2^20 fixed-point values on 2 servers (GC sign + dealer triples), online s")
def bench_relu() -> list[dict[str, Any]]:
    from .protocols.nonlinear import DEFAULT_BITS

    x = np.random.default_rng(10).uniform(-10, 10, RELU_N)
    runs = {}
    for bits, ots in ((RELU_BOUNDED_BITS, "iknp"), (DEFAULT_BITS, "iknp"), (RELU_BOUNDED_BITS, "dealer")):
        jobs = _secure_jobs(2, lambda p, t, b=bits: p.output(p.relu(t["x"], bits=b), "y"), {"x": x}, runs=3,
                            ots=ots)
        runs[bits, ots] = _median_job(jobs, "relu")[0]
    job = runs[RELU_BOUNDED_BITS, "iknp"]
    op = job.ops()["relu"]
    wide_job = runs[DEFAULT_BITS, "iknp"]
    wide = wide_job.ops()["relu"]
    dealt = runs[RELU_BOUNDED_BITS, "dealer"]
    n_and = (DEFAULT_BITS - 1) * RELU_N
    # end to end: every byte and second of the sign protocol, offline (OTs, garbling, tables)
    # and online (masked inputs, label corrections, evaluation), plus the two Beaver products
    e2e_seconds = wide_job.offline_seconds + wide["seconds"]
    peer_bytes = wide_job.parties[0].peer_bytes_sent + wide_job.parties[1].peer_bytes_sent
    return [
        result("relu_1m", op["seconds"], "s", "lower", stat="median of 3 jobs", bits=RELU_BOUNDED_BITS,
               offline_s=job.offline_seconds, bytes_per_party=op["bytes_sent"], rounds=op["rounds"],
               offline_bytes_per_party=[p.peer_bytes_sent - b for p, b in zip(job.parties, op["bytes_sent"])],
               online_s_40_bits=wide["seconds"], offline_s_40_bits=wide_job.offline_seconds,
               bytes_per_party_40_bits=wide["bytes_sent"],
               online_s_dealer_ots=dealt.ops()["relu"]["seconds"], offline_s_dealer_ots=dealt.offline_seconds,
               # the whole sign protocol at 40 bits (offline + online, every byte on the peer links),
               # as AND gates per second: OTs and input labels weigh as much as the tables here
               sign_e2e_mand_s=n_and / e2e_seconds / 1e6, sign_bytes_per_and=peer_bytes / n_and,
               published_reference_s=1.9, published_reference_bytes_per_party=464e6),
    ]

# ---------------------------------------------------------------------------
# private FFDNet denoising (issue 5)
# ---------------------------------------------------------------------------
DENOISE_SIGMA = 25.0


def _plaintext_ffdnet_seconds(noisy: np.ndarray) -> tuple[float, str]:
    """Best-of-3 plaintext FFDNet time on the same image: onnxruntime where installed,
    else the float64 numpy reference."""
    from .tasks import denoise

    try:
        import onnxruntime as ort

        from .models import ffdnet_color_path

        session = ort.InferenceSession(str(ffdnet_color_path()), providers=["CPUExecutionProvider"])
        x = noisy.transpose(2, 0, 1)[None].astype(np.float32)
        feed = {"image": x, "noise_map": np.full((1, 1, x.shape[2] // 2, x.shape[3] // 2),
                                                 DENOISE_SIGMA / 255, np.float32)}
        return best_time(lambda: session.run(None, feed), repeats=3), "onnxruntime (CPU, float32)"
    except ImportError:
        return best_time(lambda: denoise.plaintext([noisy], DENOISE_SIGMA), repeats=1), "numpy float64 reference"


def _denoise_bench(size: int) -> dict[str, Any]:
    from skimage import data

    from .runtime.cluster import Cluster
    from .tasks import denoise

    photo = data.astronaut()
    clean = photo[(512 - size) // 2:(512 + size) // 2, (512 - size) // 2:(512 + size) // 2]
    noisy = denoise.add_noise(clean, DENOISE_SIGMA, seed=1)
    with Cluster.local(2, dealer=True) as cluster:
        denoise.upload(cluster)
        denoise.run(cluster, [noisy], DENOISE_SIGMA)  # warm-up: the servers' heaps grow to the job
        res = denoise.run(cluster, [noisy], DENOISE_SIGMA)
    job = res.job
    plain = denoise.plaintext([noisy], DENOISE_SIGMA)[0]
    gap = abs(denoise.psnr(res.images[0], clean) - denoise.psnr(plain, clean))
    plain_s, plain_ref = _plaintext_ffdnet_seconds(noisy)
    layers = []
    for s in job.steps():
        if s["op"] in ("conv2d", "relu", "rescale"):
            layers.append({"op": s["op"], "online_s": round(s["seconds"], 3),
                           "offline_s": round(s["offline_seconds"], 3), "bytes_sent": s["bytes_sent"]})
    return result(f"denoise_{size}", job.online_seconds, "s", "lower", stat="second job on warm servers",
                  offline_s=job.offline_seconds, total_s=job.online_seconds + job.offline_seconds,
                  bytes_per_server=[p.bytes_sent for p in job.parties], rounds=job.rounds,
                  psnr_gap_db=gap, psnr_private_db=denoise.psnr(res.images[0], clean),
                  psnr_noisy_db=denoise.psnr(noisy, clean), ssim_private=denoise.ssim(res.images[0], clean),
                  plaintext_s=plain_s, plaintext=plain_ref,
                  ratio_to_plaintext=(job.online_seconds + job.offline_seconds) / plain_s,
                  dealer_s=job.dealer.offline_seconds if job.dealer else 0.0, layers=layers,
                  published_reference_s=42.0, published_reference_bytes_per_party=4.2e9,
                  published_reference_rounds=112)


@register("denoise_256", "private FFDNet on a 256x256 RGB photo, sigma 25, 2 servers + dealer, online s")
def bench_denoise_256() -> dict[str, Any]:
    return _denoise_bench(256)


@register("denoise_512", "private FFDNet on a 512x512 RGB photo, sigma 25, 2 servers + dealer, online s")
def bench_denoise_512() -> dict[str, Any]:
    return _denoise_bench(512)


# ---------------------------------------------------------------------------
# the encrypted store (issue 7): the functions live with the store
# ---------------------------------------------------------------------------
@register("store_put", "encrypted-store upload of 1-megapixel JPEGs (OPRF keys, AES-SIV, near-duplicate tags), "
          "images/s")
def bench_store_put() -> list[dict[str, Any]]:
    from .store.bench import bench_put

    return bench_put()


@register("store_query_100k", "near-duplicate candidate query on a 100,000-entry store index, ms")
def bench_store_query() -> list[dict[str, Any]]:
    from .store.bench import bench_query

    return bench_query()


# ---------------------------------------------------------------------------
# running and printing
# ---------------------------------------------------------------------------
def run(names: Iterable[str] = (), on_result: Callable[[dict[str, Any]], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None) -> list[dict[str, Any]]:
    """Run the named benchmarks (all when empty) and return their results.

    A benchmark named in ``names`` keeps all its results; one selected only through an
    extra result name it emits (``ring_mul``) keeps just the results asked for.
    A benchmark that raises is reported to ``on_error`` (re-raised without one).
    """
    names = list(names)
    out = []
    for bench in resolve(names):
        # asking for a benchmark by name gives everything it emits; asking for one of
        # its extra results gives just that one
        wanted = None if not names or bench.name in names else set(names) & set(bench.emits)
        try:
            produced = bench.func()
        except Exception as exc:  # one broken benchmark should not hide the others
            if on_error is None:
                raise
            on_error(bench.name, exc)
            continue
        for res in [produced] if isinstance(produced, dict) else list(produced):
            if wanted is None or res["name"] in wanted:
                out.append(res)
                if on_result is not None:
                    on_result(res)
    return out


def _fmt_number(x: float) -> str:
    if x == 0 or 0.01 <= abs(x) < 1e5:
        return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"
    return f"{x:.3g}"


def _fmt_extra(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt_extra(v) for v in value) + "]"
    return str(value)


MAIN_KEYS = ("name", "value", "unit", "better", "ref", "ref_value", "ratio")


def render_table(results: list[dict[str, Any]], title: str = "safelight bench"):
    from rich.table import Table

    table = Table(title=title, show_header=True)
    table.add_column("benchmark")
    table.add_column("safelight", justify="right")
    table.add_column("reference", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("reference is", overflow="fold")
    table.add_column("details", overflow="fold")
    for r in results:
        unit = r["unit"]
        ratio = r.get("ratio")
        ratio_s = "" if ratio is None else f"{ratio:.2f}x"
        if ratio is not None:
            ratio_s = f"[{'green' if ratio >= 1 else 'yellow'}]{ratio_s}[/]"
        details = ", ".join(f"{k}={_fmt_extra(v)}" for k, v in r.items() if k not in MAIN_KEYS)
        table.add_row(
            r["name"],
            f"{_fmt_number(r['value'])} {unit}",
            f"{_fmt_number(r['ref_value'])} {unit}" if "ref_value" in r else "",
            ratio_s,
            r.get("ref", ""),
            details,
        )
    return table


def main(names: Sequence[str] = (), as_json: bool = False) -> int:
    """``safelight bench``: 0 when every benchmark ran, 1 when one failed, 2 for an unknown name."""
    names = list(names or ())
    try:
        resolve(names)
    except KeyError as exc:
        print(f"safelight: error: unknown benchmark {exc.args[0]}; known: {', '.join(known_names())}",
              file=sys.stderr)
        return EXIT_USAGE
    failed: list[str] = []

    def on_error(name: str, exc: BaseException) -> None:
        failed.append(name)
        print(f"safelight: benchmark {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)

    if as_json:
        def emit(res: dict[str, Any]) -> None:
            print(json.dumps(res), flush=True)

        run(names, on_result=emit, on_error=on_error)
    else:
        from rich.console import Console

        err = Console(stderr=True)
        results: list[dict[str, Any]] = []
        with err.status("running benchmarks") as status:
            for bench in resolve(names):
                status.update(f"running {bench.name}: {bench.description}")
                sub = [n for n in names if n in (bench.name, *bench.emits)] or [bench.name, *bench.emits]
                results.extend(run(sub, on_error=on_error))
        Console().print(render_table(results))
    return EXIT_FAILED if failed else 0


# ---------------------------------------------------------------------------
# NTT engine (issue 6): negacyclic NTT of one prime on one core
# ---------------------------------------------------------------------------
NTT_SIZES = (4096, 8192, 16384, 32768, 65536)
# Intel HEXL's published AVX-512 forward NTT times, microseconds (Boemer et al.,
# "Intel HEXL: Accelerating Homomorphic Encryption with Intel AVX512-IFMA52", 2021).
NTT_HEXL_FORWARD_US = {4096: 11.7, 8192: 25.4, 16384: 54.0, 32768: 113.0, 65536: 244.0}
NTT_NUMPY_BITS = 31  # the numpy reference multiplies residues in uint64: q < 2**32
NTT_SEAL_PRIMES = 4  # RNS primes per SEAL ciphertext polynomial (amortises the call)


def _bit_reverse_indices(n: int) -> np.ndarray:
    log_n = n.bit_length() - 1
    idx = np.arange(n)
    rev = np.zeros(n, dtype=np.int64)
    for b in range(log_n):
        rev |= ((idx >> b) & 1) << (log_n - 1 - b)
    return rev


def numpy_ntt_forward(n: int, q: int, psi: int) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy-vectorised iterative negacyclic NTT for ``q < 2**32`` (one stage per numpy pass).

    Same definition and order as :class:`safelight.he.NTT` with root ``psi``: Cooley-Tukey,
    natural order in, bit-reversed order out. Returns ``forward(a) -> new uint64 array``.
    """
    if q >= 1 << 32:
        raise ValueError("the numpy reference NTT needs q < 2**32 (uint64 products)")
    powers = np.empty(n, dtype=np.uint64)
    x = 1
    for e in range(n):
        powers[e] = x
        x = x * psi % q
    w = powers[_bit_reverse_indices(n)]
    qq = np.uint64(q)

    def forward(a: np.ndarray) -> np.ndarray:
        a = np.array(a, dtype=np.uint64)
        m, t = 1, n
        while m < n:
            t //= 2
            blk = a.reshape(m, 2, t)
            x = blk[:, 0, :]
            v = blk[:, 1, :] * w[m:2 * m, None] % qq
            y = (x + (qq - v)) % qq
            blk[:, 0, :] = (x + v) % qq
            blk[:, 1, :] = y
            m *= 2
        return a

    return forward


def seal_ntt_us(n: int, bits: int = 60, primes: int = NTT_SEAL_PRIMES,
                repeats: int = 30) -> tuple[float, float] | None:
    """Microsoft SEAL's forward and inverse NTT, microseconds per prime, or None without tenseal.

    TenSEAL's ``sealapi`` exposes no bare NTT, but ``Evaluator.transform_to_ntt_inplace`` /
    ``transform_from_ntt_inplace`` on a BFV ciphertext run SEAL's negacyclic NTT on each of
    its 2 x ``primes`` polynomials and nothing else of note; the best call time divided by
    that count is SEAL's per-prime NTT time (plus a share of one binding call).
    """
    try:
        import tenseal.sealapi as sa
    except ImportError:
        return None
    parms = sa.EncryptionParameters(sa.SCHEME_TYPE.BFV)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(sa.CoeffModulus.Create(n, [bits] * primes))
    parms.set_plain_modulus(sa.PlainModulus.Batching(n, 20))
    ctx = sa.SEALContext(parms, True, sa.SEC_LEVEL_TYPE.NONE)
    keygen = sa.KeyGenerator(ctx)
    pk = sa.PublicKey()
    keygen.create_public_key(pk)
    ct = sa.Ciphertext()
    sa.Encryptor(ctx, pk).encrypt_zero(ct)
    ev = sa.Evaluator(ctx)
    polys = ct.size() * primes
    fwd = inv = float("inf")
    ev.transform_to_ntt_inplace(ct)  # warm-up
    ev.transform_from_ntt_inplace(ct)
    for _ in range(repeats):
        fwd = min(fwd, time_once(lambda: ev.transform_to_ntt_inplace(ct)))
        inv = min(inv, time_once(lambda: ev.transform_from_ntt_inplace(ct)))
    return fwd / polys * 1e6, inv / polys * 1e6


def _ntt_kernel_us(ntt, direction: str, isa: str, repeats: int = 30) -> float:
    """Best microseconds per call of the C++ kernel (timed in C++) on instruction-set path ``isa``."""
    from . import _core

    previous = _core.isa()
    _core.set_isa(isa)
    try:
        return ntt.time_kernel(direction, repeats=repeats, inner=max(3, 200_000 // ntt.n)) * 1e6
    finally:
        _core.set_isa(previous)


def _ntt_bench(n: int) -> dict[str, Any]:
    from . import _core
    from .he import NTT, ntt_primes

    isa = _isa()
    q60, q50 = ntt_primes(60, n, 1)[0], ntt_primes(50, n, 1)[0]
    ntt60, ntt50 = NTT(n, q60), NTT(n, q50)
    ntt50_no_ifma = NTT(n, q50, ifma=False)
    by_path_60: dict[str, list[float]] = {}
    by_path_50: dict[str, list[float]] = {}
    for name in _core.available_isas():
        by_path_60[name] = [_ntt_kernel_us(ntt60, d, name) for d in ("forward", "inverse")]
        by_path_50[name] = [_ntt_kernel_us(ntt50_no_ifma, d, name) for d in ("forward", "inverse")]
        if name == "avx512" and "avx512ifma" in ntt50.paths:
            by_path_50["avx512ifma"] = [_ntt_kernel_us(ntt50, d, name) for d in ("forward", "inverse")]
    fwd60, inv60 = by_path_60[isa]
    path50 = ntt50.paths[0]
    fwd50, inv50 = by_path_50[path50 if path50 in by_path_50 else isa]

    # through the Python API (binding, validation of the input range), in place
    a = np.random.default_rng(6).integers(0, q60, n, dtype=np.uint64)
    api_us = best_time(lambda: ntt60.forward(a, out=a), repeats=200) * 1e6

    # numpy reference on a 31-bit prime, checked against safelight on the same prime (untimed)
    q31 = ntt_primes(NTT_NUMPY_BITS, n, 1)[0]
    ntt31 = NTT(n, q31)
    ref_forward = numpy_ntt_forward(n, q31, ntt31.roots[0])
    x = np.random.default_rng(7).integers(0, q31, n, dtype=np.uint64)
    if not np.array_equal(ref_forward(x), ntt31.forward(x)):
        raise AssertionError("safelight's NTT disagrees with the numpy reference")
    numpy_us = best_time(lambda: ref_forward(x), repeats=5) * 1e6

    seal = seal_ntt_us(n)
    extra: dict[str, Any] = {}
    if seal is None:
        ref, ref_value = f"numpy vectorised iterative NTT ({NTT_NUMPY_BITS}-bit prime)", numpy_us
        extra["seal_reference"] = "tenseal not installed"
    else:
        ref = (f"Microsoft SEAL NTT via tenseal.sealapi (60-bit primes; Evaluator.transform_to_ntt_inplace "
               f"on a BFV ciphertext / {2 * NTT_SEAL_PRIMES} polynomials)")
        ref_value = seal[0]
        extra["seal_inverse_us"] = seal[1]
    return result(f"ntt_{n}", fwd60, "us", "lower", ref=ref, ref_value=ref_value,
                  inverse_us=inv60, forward_us_50bit=fwd50, inverse_us_50bit=inv50,
                  path_60bit=ntt60.paths[0], path_50bit=path50, isa=isa,
                  forward_us_python_api=api_us, numpy_ref_us=numpy_us, **extra,
                  us_by_path_60bit=by_path_60, us_by_path_50bit=by_path_50,
                  published_reference_us=NTT_HEXL_FORWARD_US[n],
                  published_reference="Intel HEXL AVX-512 forward NTT (Boemer et al. 2021)",
                  stat="best of 30 batches, timed in C++ (kernel only)")


for _n in NTT_SIZES:
    register(f"ntt_{_n}", f"forward negacyclic NTT, N={_n}, one 60-bit prime, one core, us "
             "(inverse and 50-bit/IFMA in the details)")(lambda _n=_n: _ntt_bench(_n))
del _n


# ---------------------------------------------------------------------------
# BFV engine: ciphertext multiply + relinearise vs Microsoft SEAL (tenseal.sealapi)
# ---------------------------------------------------------------------------
# coeff modulus bit sizes as SEAL takes them (the last prime is the special,
# key-switching prime): 218 and 438 bits, the 128-bit bounds for these n.
HE_MUL_BITS = {8192: [55, 55, 54, 54], 16384: [54] * 7 + [60]}
HE_MUL_T_BITS = 20  # batching prime t = 1 mod 2n, as SEAL's PlainModulus.Batching(n, 20)
HE_MUL_REPEATS = {8192: 31, 16384: 15}


def he_mul_workload(n: int) -> dict[str, Any]:
    """One ciphertext multiply + relinearise on both sides, same parameters.

    Returns a dict with ``ours`` and ``seal`` (zero-argument callables, ``seal`` None
    without tenseal), ``ours_mul`` / ``ours_relin`` and ``seal_mul`` / ``seal_relin`` (the
    two halves), and the parameters. safelight: ``Context.multiply(a, b, relin_key)``
    on two fresh secret-key ciphertexts in coefficient form (one thread). SEAL (via
    tenseal.sealapi, its own bindings): ``Evaluator.multiply`` then
    ``relinearize_inplace`` with the same n, primes and t (checked equal).
    """
    from .he import bfv, ntt_primes

    bits = HE_MUL_BITS[n]
    t = ntt_primes(HE_MUL_T_BITS, n, 1)[0]
    try:
        import tenseal.sealapi as sa
    except ImportError:
        sa = None
    if sa is not None:  # SEAL's own choice of primes for these sizes, used on both sides
        parms = sa.EncryptionParameters(sa.SCHEME_TYPE.BFV)
        parms.set_poly_modulus_degree(n)
        parms.set_coeff_modulus(sa.CoeffModulus.Create(n, bits))
        parms.set_plain_modulus(sa.PlainModulus.Batching(n, HE_MUL_T_BITS))
        sctx = sa.SEALContext(parms, True, sa.SEC_LEVEL_TYPE.TC128)
        primes = [m.value() for m in parms.coeff_modulus()]
        if parms.plain_modulus().value() != t:
            raise AssertionError("SEAL chose another plaintext modulus")
        params = bfv.Params(n, q_primes=primes[:-1], special_primes=primes[-1:], t=t)
    else:
        params = bfv.Params(n, q_bits=bits[:-1], special_bits=bits[-1:], t=t)
    ctx = bfv.Context(params)
    sk = ctx.keygen()
    rk = ctx.relin_key(sk)
    rng = np.random.default_rng(n)
    va, vb = (rng.integers(0, t, n, dtype=np.uint64) for _ in range(2))
    a, b = (ctx.encrypt_batch(v, sk, seeded=False) for v in (va, vb))
    expect = (va.astype(object) * vb % t).astype(np.uint64)
    product = ctx.multiply(a, b, rk)
    if not np.array_equal(ctx.decrypt_batch(product, sk).reshape(n), expect):
        raise AssertionError("safelight's BFV product decrypted wrongly")
    out: dict[str, Any] = {
        "n": n, "t": t, "coeff_bits": bits, "primes": list(params.q + params.special),
        "aux_primes": ctx._core.num_aux,
        "ours": lambda: ctx.multiply(a, b, rk),
        "ours_mul": lambda: ctx.multiply(a, b),
        "ours_kernel_s": lambda repeats=10: ctx._core.time_multiply_relin(a.data, b.data, rk._data, repeats),
        "budget_after": int(ctx.invariant_noise_budget(product, sk)[0]),
        "budget_fresh": int(ctx.invariant_noise_budget(a, sk)[0]),
        "seal": None,
    }
    if sa is None:
        return out
    keygen = sa.KeyGenerator(sctx)
    skey = keygen.secret_key()
    pk = sa.PublicKey()
    keygen.create_public_key(pk)
    rks = sa.RelinKeys()
    keygen.create_relin_keys(rks)
    encoder = sa.BatchEncoder(sctx)
    enc = sa.Encryptor(sctx, pk)
    ev = sa.Evaluator(sctx)
    dec = sa.Decryptor(sctx, skey)
    cts = []
    for v in (va, vb):
        pt = sa.Plaintext()
        encoder.encode([int(x) for x in v], pt)
        ct = sa.Ciphertext()
        enc.encrypt(pt, ct)
        cts.append(ct)
    dest = sa.Ciphertext()

    def seal() -> None:
        ev.multiply(cts[0], cts[1], dest)
        ev.relinearize_inplace(dest, rks)

    seal()
    pt = sa.Plaintext()
    dec.decrypt(dest, pt)
    if encoder.decode_uint64(pt) != [int(x) for x in expect]:
        raise AssertionError("SEAL's product decrypted wrongly")
    out.update(seal=seal, seal_mul=lambda: ev.multiply(cts[0], cts[1], dest),
               seal_budget_after=int(dec.invariant_noise_budget(dest)))
    return out


def _he_mul_bench(n: int) -> dict[str, Any]:
    w = he_mul_workload(n)
    reps = HE_MUL_REPEATS[n]
    extra: dict[str, Any] = {
        "isa": _isa(), "threads": 1, "coeff_modulus_bits": w["coeff_bits"], "plain_modulus": w["t"],
        "aux_primes": w["aux_primes"], "budget_fresh_bits": w["budget_fresh"],
        "budget_after_bits": w["budget_after"],
        "safelight_kernel_best_ms": w["ours_kernel_s"]() * 1e3,
        "stat": f"median of {reps} alternating runs (safelight, SEAL), through each library's Python binding",
    }
    if w["seal"] is None:
        ours = statistics.median(time_once(w["ours"]) for _ in range(reps)) * 1e3
        extra["seal_reference"] = "tenseal not installed"
        return result(f"he_mul_{n}", ours, "ms", "lower", **extra)
    a, b = paired_times(w["ours"], w["seal"], repeats=reps, warmup=2)
    am, bm = paired_times(w["ours_mul"], w["seal_mul"], repeats=reps, warmup=1)
    ours, seal = statistics.median(a) * 1e3, statistics.median(b) * 1e3
    extra.update(safelight_vs_seal=ours / seal, safelight_best_ms=min(a) * 1e3, seal_best_ms=min(b) * 1e3,
                 safelight_multiply_ms=statistics.median(am) * 1e3, seal_multiply_ms=statistics.median(bm) * 1e3,
                 seal_budget_after_bits=w["seal_budget_after"])
    ref = (f"Microsoft SEAL BFV via tenseal.sealapi: Evaluator.multiply + relinearize_inplace, same n, "
           f"primes {w['coeff_bits']} bits and t")
    return result(f"he_mul_{n}", ours, "ms", "lower", ref=ref, ref_value=seal, **extra)


for _n in HE_MUL_BITS:
    register(f"he_mul_{_n}", f"BFV ciphertext multiply + relinearise, N={_n}, {sum(HE_MUL_BITS[_n])}-bit "
             "modulus, one thread, ms (vs SEAL)")(lambda _n=_n: _he_mul_bench(_n))
del _n
