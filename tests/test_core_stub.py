"""Typed stubs for the compiled module (issue 13, point 5): the committed
python/safelight/_core.pyi is what pybind11-stubgen produces from the built
``safelight._core`` (no drift), it names every public member, and the installed
package ships it together with the ``py.typed`` marker."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import safelight
from safelight import _core

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "python" / "safelight" / "_core.pyi"
TOOL = ROOT / "tools" / "gen_core_stub.py"


def test_stub_matches_the_built_module():
    if importlib.util.find_spec("pybind11_stubgen") is None:
        pytest.skip(
            "pybind11-stubgen is not installed (pip install pybind11-stubgen, or the 'dev' extra): "
            "cannot regenerate _core.pyi to check it for drift"
        )
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--check"], check=False, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"_core.pyi drifted from the built module:\n{proc.stdout}{proc.stderr}"


def test_stub_names_every_public_member():
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
    public = {name for name in dir(_core) if not name.startswith("_")}
    assert public, "safelight._core has no public names?"
    assert not public - defined, f"missing from {STUB.name}: {sorted(public - defined)}"


def test_installed_package_ships_stub_and_marker():
    # safelight.__path__ is site-packages/safelight for a wheel install; an editable install
    # adds python/safelight. Either way a type checker must find both files in the package.
    for name in ("_core.pyi", "py.typed"):
        assert any((Path(p) / name).is_file() for p in safelight.__path__), (
            f"{name} is not in the installed package ({list(safelight.__path__)})"
        )
