"""Issue 14's side-by-side: safelight's three-server engine (rss3) and SecretFlow SPU's ABY3 on
the same machine, one after the other in one run, plus the two-server dealer figures that
``safelight bench`` measures beside each rss3 benchmark.

    python benchmarks/rss3_vs_spu.py            # mul, relu, ffdnet
    python benchmarks/rss3_vs_spu.py mul relu   # a subset

SPU runs in its own virtual environment (benchmarks/run_spu.sh makes it, or prints why it
cannot); when it does not install, its column says so and the rest still runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OURS = {"mul": "mul_1m_rss3", "relu": "relu_1m_rss3", "ffdnet": "denoise_256_rss3"}


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def main(argv: list[str]) -> int:
    workloads = argv or ["mul", "relu", "ffdnet"]
    ours = subprocess.run(
        [sys.executable, "-m", "safelight", "bench", *(OURS[w] for w in workloads), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    mine = {r["name"]: r for r in json_lines(ours.stdout)}
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as rows:
        spu = subprocess.run(
            ["bash", str(HERE / "run_spu.sh"), *workloads, "--out", rows.name], capture_output=True, text=True
        )
        theirs = {r["workload"]: r for r in json_lines(rows.read())}
    if not theirs:
        print(f"SPU: no result ({spu.stderr.strip().splitlines()[-1:] or 'not installed'})", file=sys.stderr)
    heads = ("rss3 s", "rss3 bytes/server", "2 srv+dealer s", "SPU ABY3 s", "SPU bytes/party")
    print(f"{'workload':<8} {heads[0]:>8} {heads[1]:>22} {heads[2]:>15} {heads[3]:>11} {heads[4]:>22}")
    for w in workloads:
        r, t = mine.get(OURS[w], {}), theirs.get(w, {})
        sent = r.get("peer_bytes_per_server") or r.get("bytes_per_server") or []
        print(
            f"{w:<8} {r.get('value', float('nan')):>8.3f} {max(sent, default=0) / 1e6:>19.1f} MB"
            f" {r.get('ref_value', float('nan')):>15.3f} {t.get('seconds', float('nan')):>11.3f}"
            f" {max(t.get('bytes_sent_per_party') or [0]) / 1e6:>19.1f} MB"
        )
    print(json.dumps({"safelight": mine, "spu": theirs}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
