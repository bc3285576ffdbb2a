"""Reference for issue 14: SecretFlow SPU's ABY3 (3 parties, 2-out-of-3 replicated sharing)
over loopback, on the same workloads as ``safelight bench mul_1m_rss3 relu_1m_rss3
denoise_256_rss3``; with ``--protocol cheetah``, issue 18's: SPU's CHEETAH (2 parties, no
dealer: silent OT and lattice HE) beside ``relu_1m_nodealer mul_1m_nodealer`` and the
dealer-free FFDNet (``--ffdnet-size 64``).

SPU pins numpy < 2 and its own jax, so it lives in a virtual environment of its own:

    python3 -m venv .venv-spu && .venv-spu/bin/pip install spu==0.9.5
    .venv-spu/bin/python benchmarks/spu_aby3.py [mul relu ffdnet] [--json]

(``benchmarks/run_spu.sh`` does both and prints a message instead when SPU does not
install). Each workload is compiled once, its inputs are secret-shared by SPU's own Io,
then three parties (threads of one process: SPU's runtime releases the GIL) run it over
brpc links on 127.0.0.1, each with SPU's profiler on: the bytes each party sent come from
SPU's own "Link details" lines (one per party, in the order they finish). The FFDNet
workload needs the weights exported by ``python benchmarks/export_ffdnet_weights.py`` (in
the project's own environment).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

N = 1 << 20
FFDNET_WEIGHTS = Path(__file__).with_name("ffdnet_weights.npz")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


PROTOCOLS = {"aby3": 3, "cheetah": 2}  # parties


def _party(rank, ports, executable, shares, config, results) -> None:
    """One SPU party on its own thread (SPU's runtime releases the GIL): its brpc link, its
    shares, one timed run."""
    import spu.api as spu_api
    import spu.libspu as libspu

    desc = libspu.link.Desc()
    for r, port in enumerate(ports):
        desc.add_party(f"p{r}", f"127.0.0.1:{port}")
    link = libspu.link.create_brpc(desc, rank)
    runtime = spu_api.Runtime(link, config)
    for name, share in zip(executable.input_names, shares):
        runtime.set_var(name, share[rank])
    t0 = time.perf_counter()
    runtime.run(executable)
    seconds = time.perf_counter() - t0
    results[rank] = (seconds, [runtime.get_var(name) for name in executable.output_names])


def run_workload(fun, args: list[np.ndarray], protocol: str = "aby3") -> dict:
    import jax.numpy as jnp  # noqa: F401  (jax must be importable before spu's frontend)
    import spu.api as spu_api
    import spu.libspu as libspu
    import spu.utils.frontend as spu_fe

    kind = {"aby3": libspu.ProtocolKind.ABY3, "cheetah": libspu.ProtocolKind.CHEETAH}[protocol]
    parties = PROTOCOLS[protocol]
    config = libspu.RuntimeConfig(protocol=kind, field=libspu.FieldType.FM64)
    config.enable_pphlo_profile = True
    config.fxp_fraction_bits = 16  # as safelight's default scale
    names = [f"in{i}" for i in range(len(args))]
    executable, _ = spu_fe.compile(
        spu_fe.Kind.JAX,
        fun,
        args,
        {},
        names,
        [libspu.Visibility.VIS_SECRET] * len(args),
        lambda out: [f"out{i}" for i in range(len(out))],
    )
    io = spu_api.Io(parties, config)
    shares = [io.make_shares(np.asarray(a), libspu.Visibility.VIS_SECRET) for a in args]
    ports = _free_ports(parties)
    results: dict = {}
    with tempfile.TemporaryFile() as log:
        sys.stdout.flush()
        saved = [os.dup(1), os.dup(2)]
        for fd in (1, 2):  # SPU's logger writes each party's "Link details" line to one of them
            os.dup2(log.fileno(), fd)
        try:
            threads = [
                threading.Thread(target=_party, args=(r, ports, executable, shares, config, results))
                for r in range(parties)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            for fd, old in zip((1, 2), saved):
                os.dup2(old, fd)
                os.close(old)
        log.seek(0)
        sent = [int(b) for b in re.findall(rb"Link details: total send bytes (\d+)", log.read())]
    if len(results) != parties:
        raise RuntimeError("an SPU party failed")
    result = io.reconstruct([results[r][1][0] for r in range(parties)])
    return {"seconds": max(results[r][0] for r in range(parties)), "bytes_sent_per_party": sent, "result": result}


def _ffdnet(weights: dict[str, np.ndarray]):
    """Colour FFDNet in jax, as ``safelight.models.ffdnet_reference`` (KAIR order): pixel-unshuffle
    by 2, the noise map appended as the last channel, 12 conv3x3 with ReLU between them,
    pixel-shuffle. The weights are secret inputs like the image."""
    import jax.numpy as jnp
    from jax import lax

    def forward(image, noise_map, *ws):
        n, c, h, w = image.shape
        x = image.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)
        x = jnp.concatenate([x, noise_map], axis=1)
        for i in range(0, len(ws), 2):
            x = lax.conv_general_dilated(x, ws[i], (1, 1), "SAME") + ws[i + 1][None, :, None, None]
            if i + 2 < len(ws):
                x = jnp.maximum(x, 0)
        co = x.shape[1] // 4
        return x.reshape(n, co, 2, 2, h // 2, w // 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, co, h, w)

    layers = len([k for k in weights if k.endswith(".weight")])
    return forward, [weights[f"conv{k}.{part}"] for k in range(1, layers + 1) for part in ("weight", "bias")]


def _psnr(image: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((image - clean) ** 2)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=["mul", "relu"], choices=["mul", "relu", "ffdnet"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="aby3", help="aby3 (3 parties) or cheetah (2)")
    parser.add_argument(
        "--ffdnet-size", type=int, default=256, help="the FFDNet photo's side (export_ffdnet_weights.py --size)"
    )
    parser.add_argument("--out", help="also append each result as a JSON line here (SPU's log lines share stdout)")
    args = parser.parse_args(argv)
    try:
        import spu  # noqa: F401
    except ImportError:
        print("SPU is not installed here: run benchmarks/run_spu.sh (it makes .venv-spu)", file=sys.stderr)
        return 0
    rng = np.random.default_rng(6)
    out = []
    for name in args.workloads:
        extra: dict = {}
        if name == "mul":
            x, y = rng.uniform(-10, 10, N), rng.uniform(-10, 10, N)
            r = run_workload(lambda a, b: a * b, [x, y], args.protocol)
            err = float(np.abs(r["result"] - x * y).max())
        elif name == "relu":
            x = rng.uniform(-100, 100, N)
            r = run_workload(lambda a: a * (a > 0), [x], args.protocol)
            err = float(np.abs(r["result"] - np.maximum(x, 0)).max())
        else:
            size = args.ffdnet_size
            path = FFDNET_WEIGHTS if size == 256 else FFDNET_WEIGHTS.with_name(f"ffdnet_weights_{size}.npz")
            if not path.exists():
                print(f"{path} is missing: run benchmarks/export_ffdnet_weights.py --size {size}", file=sys.stderr)
                continue
            data = dict(np.load(path))
            noisy, sigma, reference = data.pop("noisy"), data.pop("sigma"), data.pop("plaintext")
            clean = data.pop("clean")
            forward, ws = _ffdnet(data)
            noise = np.full((1, 1, noisy.shape[2] // 2, noisy.shape[3] // 2), float(sigma) / 255)
            r = run_workload(forward, [noisy, noise, *ws], args.protocol)
            denoised = np.clip(np.asarray(r["result"]), 0.0, 1.0)  # as safelight's plaintext reference
            err = float(np.abs(denoised - reference).max())
            extra = {"psnr_gap_db": abs(_psnr(denoised, clean) - _psnr(reference, clean))}
        row = {
            "workload": name,
            "seconds": r["seconds"],
            "bytes_sent_per_party": r["bytes_sent_per_party"],
            "bytes_per_value_per_party": [b / N if b else None for b in r["bytes_sent_per_party"]]
            if name != "ffdnet"
            else None,
            "max_abs_error": err,
            "spu": f"0.9.5 {args.protocol.upper()} FM64, 16 fractional bits, "
            f"{PROTOCOLS[args.protocol]} parties over brpc on 127.0.0.1",
            "protocol": args.protocol,
            **extra,
        }
        out.append(row)
        print(json.dumps(row) if args.json else row, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
