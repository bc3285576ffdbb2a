"""The house rules that import-linter's layers contract does not state by itself: no import
circle anywhere in the package (within a layer too), the package root imported only for the
C++ module, and no private name imported from another module."""

import ast
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (pip install import-linter)")

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "safelight"


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("safelight")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle_anywhere(graph):
    modules = set(graph.modules)
    # "from . import _core" reads as an import of the root (see the next test)
    edges = {m: (set(graph.find_modules_directly_imported_by(m)) - {"safelight"}) & modules for m in modules}
    assert _cycles(edges) == []


def test_the_root_is_imported_only_for_the_cpp_module(graph):
    others = []
    for module in graph.modules:
        if "safelight" in graph.find_modules_directly_imported_by(module):
            for detail in graph.get_import_details(importer=module, imported="safelight"):
                if "_core" not in detail["line_contents"]:
                    others.append((module, detail["line_contents"]))
    assert others == []


def test_no_private_name_is_imported_from_another_module():
    private = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and alias.name not in ("_core", "__version__"):
                        private.append(f"{path.relative_to(PACKAGE)}: {alias.name}")
    assert private == []
