"""Secure-computation benchmarks on local clusters, each job reporting bytes and rounds per
server: private filtering of a photo against scipy (``filter_512``), secure multiply and
convolution (``mul_1m``, ``conv_layer``, ``conv_layer_nodealer``), secure ReLU by a
garbled-circuit sign (``relu_1m``), and private FFDNet denoising against plaintext
onnxruntime (``denoise_256``, ``denoise_512``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage
from skimage import data

from ..models import ffdnet_color_path
from ..program.program import Program
from ..protocols.nonlinear import DEFAULT_BITS
from ..runtime.cluster import Cluster
from ..sharing import as_plain_values, encode
from ..tasks import denoise
from ..tasks import filter as filter_task
from .registry import best_time, kernel_isa, link_figures, local_cluster, register, result

# ---------------------------------------------------------------------------
# end to end: private Gaussian filtering vs plaintext scipy
# ---------------------------------------------------------------------------
FILTER_IMAGE = "astronaut"  # 512 x 512 RGB
FILTER_KERNEL = "gaussian:2"


def filter_image() -> np.ndarray:
    return getattr(data, FILTER_IMAGE)()


@register("filter_512", "private gaussian:2 filter of a 512x512 RGB photo on 2 local servers vs scipy, seconds")
def bench_filter() -> dict[str, Any]:
    image = filter_image()
    repeats = 3
    with Cluster.local(2) as cluster:
        runs = []
        filter_task.run(image, kernel=FILTER_KERNEL, cluster=cluster)  # warm-up: connections, imports, caches
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = filter_task.run(image, kernel=FILTER_KERNEL, cluster=cluster)
            runs.append((time.perf_counter() - t0, res))
    ours_s, last = min(runs, key=lambda r: r[0])
    ref_s = best_time(lambda: filter_task.plaintext(image, FILTER_KERNEL), repeats=5)
    plain = filter_task.plaintext(image, FILTER_KERNEL)
    # for context only: scipy's separable Gaussian (two 1-D passes) on the same values
    values, _ = as_plain_values(image)
    sigma = float(FILTER_KERNEL.partition(":")[2])
    separable_s = best_time(lambda: ndimage.gaussian_filter(values, (sigma, sigma, 0), mode="reflect"), repeats=5)
    job = last.job
    return result(
        "filter_512",
        ours_s,
        "s",
        "lower",
        ref="plaintext scipy.ndimage.convolve",
        ref_value=ref_s,
        image=f"{FILTER_IMAGE} {'x'.join(map(str, image.shape))}",
        kernel=FILTER_KERNEL,
        bytes_per_party=[int(p.bytes_sent + p.bytes_received) for p in job.parties],
        upload_bytes=int(job.upload_bytes),
        download_bytes=int(job.download_bytes),
        rounds=int(job.rounds),
        max_abs_error=float(np.abs(last.values - plain).max()),
        median_s=statistics.median(r[0] for r in runs),
        scipy_separable_gaussian_s=separable_s,
        repeats=repeats,
        stat="best",
    )


# ---------------------------------------------------------------------------
# secure arithmetic (issue: arithmetic engine)
# ---------------------------------------------------------------------------
MUL_N = 1 << 20
CONV_SHAPE = (1, 64, 128, 128)
CONV_WEIGHT = (64, 64, 3, 3)


def _secure_jobs(
    parties: int,
    build: Callable[[Any], None],
    values: dict[str, np.ndarray],
    runs: int = 3,
    ots: str = "iknp",
    comparisons: str = "auto",
):
    """Run a Program ``runs`` times on a fresh local cluster with a dealer; return the jobs.

    Two warm-up jobs run first and are not returned: the servers' heaps grow to the
    job's working set during them (first-touch page faults).
    """
    prog = Program(parties)
    tensors = {name: prog.input(name, v.shape) for name, v in values.items()}
    build(prog, tensors)
    with Cluster.local(parties, dealer=True) as cluster:
        jobs = [
            cluster.run(
                prog,
                {k: encode(v, parties) for k, v in values.items()},
                triples="dealer",
                ots=ots,
                comparisons=comparisons,
            )
            for _ in range(runs + 2)
        ]
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
    return result(
        "mul_1m",
        op["seconds"] * 1e3,
        "ms",
        "lower",
        stat="median of 9 jobs",
        min_ms=times[0] * 1e3,
        max_ms=times[-1] * 1e3,
        offline_ms=job.offline_seconds * 1e3,
        bytes_per_party=op["bytes_sent"],
        bytes_received_per_party=op["bytes_received"],
        rounds=op["rounds"],
        dealer_bytes=job.dealer.peer_bytes_sent if job.dealer else None,
        values=MUL_N,
        published_reference_ms=115,
        published_reference_bytes_per_party=32 * 2**20,
    )


def _nodealer_jobs(build: Callable[[Any, dict], None], values: dict[str, np.ndarray], runs: int = 3) -> list:
    """``runs`` jobs (after a warm-up) on two fresh local servers and no third party: the
    servers make every correlation themselves (``triples="he"``; ReLUs take the OT path)."""
    prog = Program(2)
    tensors = {name: prog.input(name, v.shape) for name, v in values.items()}
    build(prog, tensors)
    with Cluster.local(2) as cluster:
        jobs = [cluster.run(prog, {k: encode(v, 2) for k, v in values.items()}, triples="he") for _ in range(runs + 1)]
    return sorted(jobs[1:], key=lambda j: j.offline_seconds + j.online_seconds)


def _nodealer_result(name: str, jobs: list, values: int, **extra: Any) -> dict[str, Any]:
    job = jobs[len(jobs) // 2]
    total = job.offline_seconds + job.online_seconds
    return result(
        name,
        total,
        "s",
        "lower",
        stat=f"median of {len(jobs)} jobs after a warm-up, offline and online together",
        offline_s=job.offline_seconds,
        online_s=job.online_seconds,
        peer_bytes_per_value_per_server=[p.peer_bytes_sent / values for p in job.parties],
        rounds=job.rounds,
        values=values,
        **extra,
    )


@register("mul_1m_nodealer", "secure multiply of 2^20 fixed-point values, 2 servers and no third party, total s")
def bench_mul_1m_nodealer() -> dict[str, Any]:
    rng = np.random.default_rng(6)
    x, y = rng.uniform(-10, 10, MUL_N), rng.uniform(-10, 10, MUL_N)
    jobs = _nodealer_jobs(lambda p, t: p.output(p.mul(t["x"], t["y"]), "z"), {"x": x, "y": y})
    return _nodealer_result("mul_1m_nodealer", jobs, MUL_N, target_s=1.0, target_bytes_per_value=64)


@register(
    "relu_1m_nodealer",
    "secure ReLU of 2^20 fixed-point values (|x| < 2^7 at 16 fractional bits), 2 servers and no third party, total s",
)
def bench_relu_1m_nodealer() -> dict[str, Any]:
    x = np.random.default_rng(10).uniform(-10, 10, RELU_N)
    # the workload of relu_1m and relu_1m_rss3 (k = 24), and the op's default k = 40 beside it
    jobs = _nodealer_jobs(lambda p, t: p.output(p.relu(t["x"], bits=RELU_BOUNDED_BITS), "y"), {"x": x})
    wide = _nodealer_result(
        "relu_1m_nodealer_40_bits",
        _nodealer_jobs(lambda p, t: p.output(p.relu(t["x"], bits=DEFAULT_BITS), "y"), {"x": x}),
        RELU_N,
    )
    return _nodealer_result(
        "relu_1m_nodealer",
        jobs,
        RELU_N,
        bits=RELU_BOUNDED_BITS,
        sign="ot (silent OT millionaires, picked for jobs without a dealer)",
        target_s=5.0,
        target_bytes_per_value=100,
        published_reference="SPU 0.9.5 CHEETAH: 26 s, 56 bytes per value per party (its full 64-bit ring)",
        bits_40={k: wide[k] for k in ("value", "offline_s", "online_s", "peer_bytes_per_value_per_server", "rounds")},
    )


def plaintext_conv_nchw(x: np.ndarray, w: np.ndarray, padding: int) -> np.ndarray:
    """Float64 conv (NCHW x OIHW, stride 1) by a sliding-window view and one BLAS tensordot."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))  # N C H W kh kw
    return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


@register("conv_layer", "secure conv 64->64 3x3 on 1x64x128x128, 2 servers (dealer) vs numpy float64 conv, online s")
def bench_conv_layer() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    x, w = rng.uniform(0, 1, CONV_SHAPE), rng.uniform(-0.05, 0.05, CONV_WEIGHT)
    jobs = _secure_jobs(2, lambda p, t: p.output(p.conv2d(t["x"], t["w"], padding=1), "y"), {"x": x, "w": w}, runs=5)
    job, times = _median_job(jobs, "conv2d")
    op = job.ops()["conv2d"]
    plain = best_time(lambda: plaintext_conv_nchw(x, w, 1), repeats=3)
    return result(
        "conv_layer",
        op["seconds"],
        "s",
        "lower",
        ref="numpy float64 conv (sliding window + BLAS)",
        ref_value=plain,
        stat="median of 5 jobs",
        min_s=times[0],
        offline_s=job.offline_seconds,
        bytes_per_party=op["bytes_sent"],
        rounds=op["rounds"],
        dealer_bytes=job.dealer.peer_bytes_sent if job.dealer else None,
        isa=kernel_isa(),
    )


@register(
    "conv_layer_nodealer",
    "secure conv 64->64 3x3 on 1x64x128x128, 2 servers, dealer-free triples "
    "(lattice HE between the servers) vs the dealer version in the same run, offline + online s",
)
def bench_conv_layer_nodealer() -> dict[str, Any]:
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
    return result(
        "conv_layer_nodealer",
        total(job),
        "s",
        "lower",
        ref="the same layer with a dealer (offline + online)",
        ref_value=total(ref),
        stat="median of 3 jobs",
        offline_s=job.offline_seconds,
        online_s=job.online_seconds,
        bytes_per_party=job.parties[0].peer_bytes_sent,
        rounds=job.rounds,
        ref_offline_s=ref.offline_seconds,
        ref_online_s=ref.online_seconds,
        ref_bytes_per_party=ref.parties[0].peer_bytes_sent,
        ref_dealer_bytes=ref.dealer.peer_bytes_sent if ref.dealer else None,
        isa=kernel_isa(),
    )


# ---------------------------------------------------------------------------
# secure ReLU: garbled-circuit sign (issue: garbled circuits)
# ---------------------------------------------------------------------------
RELU_N = 1 << 20
RELU_BOUNDED_BITS = 24  # |x| < 2^7 at 16 fractional bits: the inputs here lie in [-10, 10]


@register("relu_1m", "secure ReLU of 2^20 fixed-point values on 2 servers (GC sign + dealer triples), online s")
def bench_relu() -> list[dict[str, Any]]:
    x = np.random.default_rng(10).uniform(-10, 10, RELU_N)
    runs = {}
    for bits, ots, comparisons in (
        (RELU_BOUNDED_BITS, "iknp", "gc"),
        (DEFAULT_BITS, "iknp", "gc"),
        (RELU_BOUNDED_BITS, "dealer", "gc"),
        (RELU_BOUNDED_BITS, "iknp", "auto"),  # with a dealer, auto: the OT path on dealt correlations
        (DEFAULT_BITS, "iknp", "auto"),
    ):
        jobs = _secure_jobs(
            2, lambda p, t, b=bits: p.output(p.relu(t["x"], bits=b), "y"), {"x": x}, 3, ots, comparisons
        )
        runs[bits, ots, comparisons] = _median_job(jobs, "relu")[0]
    ot_path = {}
    for bits in (RELU_BOUNDED_BITS, DEFAULT_BITS):
        dealt_job = runs[bits, "iknp", "auto"]
        ot_path[f"ot_dealt_{bits}_bits"] = {
            "total_s": dealt_job.online_seconds + dealt_job.offline_seconds,
            "online_s": dealt_job.ops()["relu"]["seconds"],
            "offline_s": dealt_job.offline_seconds,
            "peer_bytes_per_value_per_party": [p.peer_bytes_sent / RELU_N for p in dealt_job.parties],
            "dealer_bytes_per_value": dealt_job.dealer.peer_bytes_sent / RELU_N,
            "rounds": dealt_job.ops()["relu"]["rounds"],
        }
    runs = {(b, o): j for (b, o, c), j in runs.items() if c == "gc"}
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
        result(
            "relu_1m",
            op["seconds"],
            "s",
            "lower",
            stat="median of 3 jobs",
            bits=RELU_BOUNDED_BITS,
            offline_s=job.offline_seconds,
            bytes_per_party=op["bytes_sent"],
            rounds=op["rounds"],
            offline_bytes_per_party=[p.peer_bytes_sent - b for p, b in zip(job.parties, op["bytes_sent"])],
            # everything each server sent the other, offline and online, per value (issue 18)
            peer_bytes_per_value_per_party=[p.peer_bytes_sent / RELU_N for p in job.parties],
            peer_bytes_per_value_per_party_40_bits=[p.peer_bytes_sent / RELU_N for p in wide_job.parties],
            online_s_40_bits=wide["seconds"],
            offline_s_40_bits=wide_job.offline_seconds,
            bytes_per_party_40_bits=wide["bytes_sent"],
            online_s_dealer_ots=dealt.ops()["relu"]["seconds"],
            offline_s_dealer_ots=dealt.offline_seconds,
            # the whole sign protocol at 40 bits (offline + online, every byte on the peer links),
            # as AND gates per second: OTs and input labels weigh as much as the tables here
            sign_e2e_mand_s=n_and / e2e_seconds / 1e6,
            sign_bytes_per_and=peer_bytes / n_and,
            published_reference_s=1.9,
            published_reference_bytes_per_party=464e6,
            **ot_path,
        ),
    ]


# ---------------------------------------------------------------------------
# private FFDNet denoising (issue 5)
# ---------------------------------------------------------------------------
DENOISE_SIGMA = 25.0


def _plaintext_ffdnet_seconds(noisy: np.ndarray) -> tuple[float, str]:
    """Best-of-3 plaintext FFDNet time on the same image: onnxruntime where installed,
    else the float64 numpy reference."""
    try:
        import onnxruntime as ort

        session = ort.InferenceSession(str(ffdnet_color_path()), providers=["CPUExecutionProvider"])
        x = noisy.transpose(2, 0, 1)[None].astype(np.float32)
        feed = {
            "image": x,
            "noise_map": np.full((1, 1, x.shape[2] // 2, x.shape[3] // 2), DENOISE_SIGMA / 255, np.float32),
        }
        return best_time(lambda: session.run(None, feed), repeats=3), "onnxruntime (CPU, float32)"
    except ImportError:
        return best_time(lambda: denoise.plaintext([noisy], DENOISE_SIGMA), repeats=1), "numpy float64 reference"


def _denoise_bench(size: int, no_dealer: bool = False) -> dict[str, Any]:
    photo = data.astronaut()
    clean = photo[(512 - size) // 2 : (512 + size) // 2, (512 - size) // 2 : (512 + size) // 2]
    noisy = denoise.add_noise(clean, DENOISE_SIGMA, seed=1)
    triples = "he" if no_dealer else None
    garbled = None
    with local_cluster(2, dealer=not no_dealer) as cluster:
        denoise.upload(cluster)
        if not no_dealer:  # warm-up: the servers' heaps grow to the job (the dealer-free job is long enough)
            denoise.run([noisy], cluster=cluster, sigma=DENOISE_SIGMA)
        res = denoise.run([noisy], cluster=cluster, sigma=DENOISE_SIGMA, triples=triples)
        if not no_dealer:  # the garbled-circuit signs on the same servers, for reference
            garbled = denoise.run([noisy], cluster=cluster, sigma=DENOISE_SIGMA, comparisons="gc").job
    job = res.job
    reference = {}
    if garbled is not None:
        reference = {
            "gc_online_s": garbled.online_seconds,
            "gc_offline_s": garbled.offline_seconds,
            "gc_total_s": garbled.online_seconds + garbled.offline_seconds,
            "gc_bytes_per_server": [p.bytes_sent for p in garbled.parties],
            "gc_rounds": garbled.rounds,
        }
        figures = link_figures(garbled.rounds, 0.0)
        if "rtt_added_s" in figures:  # on a shaped link
            reference["gc_rtt_added_s"] = figures["rtt_added_s"]
    plain = denoise.plaintext([noisy], DENOISE_SIGMA)[0]
    gap = abs(denoise.psnr(res.images[0], clean) - denoise.psnr(plain, clean))
    plain_s, plain_ref = _plaintext_ffdnet_seconds(noisy)
    layers = []
    for s in job.steps():
        if s["op"] in ("conv2d", "relu", "rescale"):
            layers.append(
                {
                    "op": s["op"],
                    "online_s": round(s["seconds"], 3),
                    "offline_s": round(s["offline_seconds"], 3),
                    "bytes_sent": s["bytes_sent"],
                }
            )
    total = job.online_seconds + job.offline_seconds
    return result(
        f"denoise_{size}" + ("_nodealer" if no_dealer else ""),
        total if no_dealer else job.online_seconds,
        "s",
        "lower",
        stat="one job on fresh servers" if no_dealer else "second job on warm servers",
        comparisons=(
            "auto: the OT path (bytes first) on the dealer's correlations; gc_*: the garbled path, same servers"
            if not no_dealer
            else "auto: the OT path on silent OT"
        ),
        dealer_bytes=job.dealer.peer_bytes_sent if job.dealer else 0,
        **link_figures(job.rounds, total),
        **reference,
        offline_s=job.offline_seconds,
        total_s=job.online_seconds + job.offline_seconds,
        bytes_per_server=[p.bytes_sent for p in job.parties],
        rounds=job.rounds,
        psnr_gap_db=gap,
        psnr_private_db=denoise.psnr(res.images[0], clean),
        psnr_noisy_db=denoise.psnr(noisy, clean),
        ssim_private=denoise.ssim(res.images[0], clean),
        plaintext_s=plain_s,
        plaintext=plain_ref,
        ratio_to_plaintext=(job.online_seconds + job.offline_seconds) / plain_s,
        dealer_s=job.dealer.offline_seconds if job.dealer else 0.0,
        layers=layers,
        published_reference_s=42.0,
        published_reference_bytes_per_party=4.2e9,
        published_reference_rounds=112,
    )


@register("denoise_256", "private FFDNet on a 256x256 RGB photo, sigma 25, 2 servers + dealer, online s")
def bench_denoise_256() -> dict[str, Any]:
    return _denoise_bench(256)


@register(
    "denoise_256_nodealer",
    "private FFDNet on a 256x256 RGB photo, sigma 25, 2 servers and no third party at all, total s",
)
def bench_denoise_256_nodealer() -> dict[str, Any]:
    return _denoise_bench(256, no_dealer=True)


@register("denoise_512", "private FFDNet on a 512x512 RGB photo, sigma 25, 2 servers + dealer, online s")
def bench_denoise_512() -> dict[str, Any]:
    return _denoise_bench(512)


# ---------------------------------------------------------------------------
# three servers, replicated sharing (issue 14): each next to the two-server dealer figure
# of the same run
# ---------------------------------------------------------------------------
def _rss3_jobs(build: Callable[[Any, dict], None], values: dict[str, np.ndarray], runs: int = 3) -> list:
    """Run a Program ``runs`` times on three fresh local servers with replicated sharing (after
    two warm-up jobs, as :func:`_secure_jobs`)."""
    prog = Program(3, scheme="rss3")
    tensors = {name: prog.input(name, v.shape) for name, v in values.items()}
    build(prog, tensors)
    with Cluster.local(3, scheme="rss3") as cluster:
        jobs = [cluster.run(prog, {k: encode(v, 3, scheme="rss3") for k, v in values.items()}) for _ in range(runs + 2)]
    return jobs[2:]


def _job_total(job) -> float:
    return job.online_seconds + job.offline_seconds


def _rss3_result(name: str, jobs: list, op: str, dealer_jobs: list, dealer_op: str, n: int, **extra) -> dict:
    totals = sorted(_job_total(j) for j in jobs)
    job = sorted(jobs, key=_job_total)[len(jobs) // 2]
    dealer_job = sorted(dealer_jobs, key=_job_total)[len(dealer_jobs) // 2]
    sent = [p.peer_bytes_sent for p in job.parties]
    dealer_sent = [p.peer_bytes_sent for p in dealer_job.parties]
    return result(
        name,
        _job_total(job),
        "s",
        "lower",
        ref="2 servers + dealer (same run), total s",
        ref_value=_job_total(dealer_job),  # its offline includes the dealer's dealing
        stat=f"median of {len(jobs)} jobs",
        min_s=totals[0],
        max_s=totals[-1],
        online_s=job.online_seconds,
        offline_s=job.offline_seconds,
        setup_s=job.setup_seconds,  # key agreement and waiting for the slowest upload: not in the total
        op_online_s=job.ops()[op]["seconds"],
        bytes_per_server=sent,
        bytes_per_value_per_server=[b / n for b in sent],
        rounds=job.rounds,
        dealer_online_s=dealer_job.ops()[dealer_op]["seconds"],
        dealer_offline_s=dealer_job.offline_seconds,
        dealer_bytes_per_server=dealer_sent,
        dealer_bytes_per_value_per_server=[b / n for b in dealer_sent],
        dealer_bytes=dealer_job.dealer.peer_bytes_sent if dealer_job.dealer else None,
        values=n,
        **extra,
    )


@register("mul_1m_rss3", "secure multiply of 2^20 values on 3 servers, replicated sharing (no dealer), total s")
def bench_mul_1m_rss3() -> list[dict[str, Any]]:
    rng = np.random.default_rng(6)
    x, y = rng.uniform(-10, 10, MUL_N), rng.uniform(-10, 10, MUL_N)
    values = {"x": x, "y": y}
    # three servers and the client share 2 cores here: a steadier median needs many jobs
    raw = _rss3_jobs(lambda p, t: p.output(p.mul(t["x"], t["y"], rescale=False), "z"), values, runs=25)
    fixed = _rss3_jobs(lambda p, t: p.output(p.mul(t["x"], t["y"]), "z"), values, runs=5)
    dealer = _secure_jobs(2, lambda p, t: p.output(p.mul(t["x"], t["y"], rescale=False), "z"), values, runs=25)
    out = _rss3_result("mul_1m_rss3", raw, "mul", dealer, "mul", MUL_N, what="ring product (no truncation)")
    out["fixed_point"] = _rss3_result("mul_1m_rss3_fixed", fixed, "mul", dealer, "mul", MUL_N)
    out["fixed_point"]["what"] = "fixed-point product with exact truncation in the same step"
    out["published_reference"] = "SPU 0.9.5 ABY3, 3 parties, loopback: 0.23 s, 17 bytes per value per party"
    return [out]


@register("relu_1m_rss3", "secure ReLU of 2^20 values (|x| < 2^7 at 16 fractional bits) on 3 servers, total s")
def bench_relu_1m_rss3() -> list[dict[str, Any]]:
    x = np.random.default_rng(10).uniform(-100, 100, RELU_N)
    jobs = _rss3_jobs(lambda p, t: p.output(p.relu(t["x"], bits=RELU_BOUNDED_BITS), "y"), {"x": x}, runs=3)
    dealer = _secure_jobs(2, lambda p, t: p.output(p.relu(t["x"], bits=RELU_BOUNDED_BITS), "y"), {"x": x}, runs=3)
    out = _rss3_result("relu_1m_rss3", jobs, "relu", dealer, "relu", RELU_N, bits=RELU_BOUNDED_BITS)
    out["published_reference"] = "SPU 0.9.5 ABY3, 3 parties, loopback: 2.7 s, 57 bytes per value per party"
    return [out]


def _denoise_run(cluster, noisy: np.ndarray):
    denoise.upload(cluster)
    denoise.run([noisy], cluster=cluster, sigma=DENOISE_SIGMA)  # warm-up: the servers' heaps grow to the job
    return denoise.run([noisy], cluster=cluster, sigma=DENOISE_SIGMA)


@register("denoise_256_rss3", "private FFDNet 256x256 RGB, sigma 25, 3 servers replicated (no dealer), total s")
def bench_denoise_256_rss3() -> dict[str, Any]:
    photo = data.astronaut()
    clean = photo[128:384, 128:384]
    noisy = denoise.add_noise(clean, DENOISE_SIGMA, seed=1)
    with Cluster.local(3, scheme="rss3") as cluster:
        res = _denoise_run(cluster, noisy)
    with Cluster.local(2, dealer=True) as cluster:
        ref = _denoise_run(cluster, noisy)
    plain = denoise.plaintext([noisy], DENOISE_SIGMA)[0]

    def gap(r) -> float:
        return abs(denoise.psnr(r.images[0], clean) - denoise.psnr(plain, clean))

    job, ref_job = res.job, ref.job
    return result(
        "denoise_256_rss3",
        _job_total(job),
        "s",
        "lower",
        ref="2 servers + dealer (same run), total s",
        ref_value=_job_total(ref_job),
        stat="second job on warm servers",
        online_s=job.online_seconds,
        offline_s=job.offline_seconds,
        setup_s=job.setup_seconds,
        bytes_per_server=[p.bytes_sent for p in job.parties],
        peer_bytes_per_server=[p.peer_bytes_sent for p in job.parties],
        rounds=job.rounds,
        psnr_gap_db=gap(res),
        psnr_private_db=denoise.psnr(res.images[0], clean),
        dealer_online_s=ref_job.online_seconds,
        dealer_offline_s=ref_job.offline_seconds,
        dealer_bytes_per_server=[p.bytes_sent for p in ref_job.parties],
        dealer_psnr_gap_db=gap(ref),
        published_reference="SPU 0.9.5 ABY3: 66.7 s, 1.30 GB per party, gap 0.010 dB; CrypTen 0.4.1: 30.7-32.4 s, "
        "4.17 GB per party",
    )
