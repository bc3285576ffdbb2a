#!/usr/bin/env bash
# The SPU ABY3 reference of issue 14 in a virtual environment of its own (SPU pins numpy < 2
# and its own jax). Skips with a message where SPU does not install (its wheels exist for
# some CPython versions and Linux x86_64/aarch64 only).
# Usage: benchmarks/run_spu.sh [mul relu ffdnet] [--protocol aby3|cheetah] [--ffdnet-size N] [--out FILE]
set -uo pipefail
cd "$(dirname "$0")/.."
venv=.venv-spu
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import spu' >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" || ! "$venv/bin/pip" install -q "spu==0.9.5"; then
        echo "SPU 0.9.5 does not install on this machine ($(python3 --version)); no SPU reference" >&2
        exit 0
    fi
fi
size=256
args=("$@")
for i in "${!args[@]}"; do
    [ "${args[$i]}" != "--ffdnet-size" ] || size="${args[$((i + 1))]}"
done
weights=benchmarks/ffdnet_weights.npz
[ "$size" = 256 ] || weights="benchmarks/ffdnet_weights_$size.npz"
if [[ " $* " == *" ffdnet "* ]] && [ ! -f "$weights" ]; then
    python benchmarks/export_ffdnet_weights.py --size "$size"  # the project's own environment
fi
[ $# -gt 0 ] || set -- mul relu
exec "$venv/bin/python" benchmarks/spu_aby3.py "$@" --json
