"""The package's layers (DESIGN.md), read off the import statements of its sources.

From the bottom up: core (the compiled modules and the private helpers), problems, running,
networks, analysis (analyses and plots), lab (experiments, sweeps, store, report, CLI). A module may
import its own layer and the layers below; an import of a higher layer, at module level, inside a
function or under ``if TYPE_CHECKING:``, is a violation: an annotation that names a class is a
dependency on its module too, and a cycle hidden from the interpreter by ``TYPE_CHECKING`` is still
two modules that cannot be read, tested or moved one without the other. The violations that exist
today are listed in ``KNOWN`` with the reason each is there; the redesign removes them. The test
fails on a new violation, on a new import cycle, and on an entry of ``KNOWN`` that no longer exists
(so the list shrinks as they are removed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trajcore"

LAYERS = ("core", "problems", "running", "networks", "analysis", "lab")

# Module (or package prefix) -> layer; the longest matching prefix decides. A module not listed that
# defines a problem family (``class X(Problem)``) is in the problems layer: a new family needs no entry.
LAYER_OF = {
    "trajcore._core": "core",
    "trajcore._series": "core",
    "trajcore._memory": "core",
    "trajcore._storage": "core",
    "trajcore._validation": "core",
    "trajcore._json": "core",
    "trajcore._deprecation": "core",
    "trajcore.config": "core",
    "trajcore.problem": "problems",
    "trajcore.dynamics": "running",
    "trajcore.noise": "running",
    "trajcore.trajectory": "running",
    "trajcore.initialization": "running",
    "trajcore.network": "networks",
    "trajcore.basis": "networks",
    "trajcore.bases": "networks",
    "trajcore.data": "networks",
    "trajcore.torch": "networks",
    "trajcore.analysis": "analysis",
    "trajcore.plot": "analysis",
    "trajcore.experiments": "lab",
    "trajcore.sweep": "lab",
    "trajcore.store": "lab",
    "trajcore.report": "lab",
    "trajcore.cli": "lab",
    "trajcore.__main__": "lab",
}

# (importer, imported): why the import is there today. Each is a violation the redesign removes.
KNOWN: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _defines_a_problem(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id == "Problem" for b in node.bases)
        for node in tree.body
    )


def _layer(module: str) -> str | None:
    best = max(
        (prefix for prefix in LAYER_OF if module == prefix or module.startswith(prefix + ".")), key=len, default=None
    )
    if best is not None:
        return LAYER_OF[best]
    path = _sources().get(module)
    return "problems" if path is not None and _defines_a_problem(path) else None


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Modules of this package that ``module`` imports anywhere in its source (under ``TYPE_CHECKING`` too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for name in candidates:
            # ``from . import _core`` names a compiled module; ``from .x import f`` names module x
            if name.startswith("trajcore") and (name in known or name in LAYER_OF) and name != module:
                found.add(name)
    # the package itself is only an import of its submodules' names (``from . import _core``)
    found.discard("trajcore")
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    sources = _sources()
    return {module: _imports(module, path, set(sources)) for module, path in sources.items()}


def test_every_module_has_a_layer(graph):
    unplaced = sorted(m for m in graph if m != "trajcore" and _layer(m) is None)
    assert not unplaced, f"modules without a layer (add them to LAYER_OF): {unplaced}"


def test_no_module_imports_a_higher_layer(graph):
    found = {}
    for module, targets in graph.items():
        if module == "trajcore":  # the package's namespace gathers every layer for the user
            continue
        for target in targets:
            mine, theirs = _layer(module), _layer(target)
            if mine and theirs and LAYERS.index(theirs) > LAYERS.index(mine):
                found[(module, target)] = f"{mine} imports {theirs}"
    new = {pair: why for pair, why in found.items() if pair not in KNOWN}
    assert not new, f"imports of a higher layer: {new}"
    gone = sorted(set(KNOWN) - set(found))
    assert not gone, f"no longer violations, remove them from KNOWN: {gone}"


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph ``edges`` (depth-first search), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles(graph):
    # a package's __init__ importing its own modules is not an edge back into itself
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    cycle = _cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_reader_sees_what_it_should(tmp_path):
    """The walk itself, on a module written here: relative, absolute, function-level and
    TYPE_CHECKING imports are counted, an import from outside the package is not."""
    module = tmp_path / "example.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import numpy\n"
        "from . import dynamics\n"
        "from .analysis.series import monotonicity_index\n"
        "import trajcore.noise\n"
        "if TYPE_CHECKING:\n"
        "    from .network import NetworkRun\n"
        "def later():\n"
        "    from .plot import style\n",
        encoding="utf-8",
    )
    known = set(_sources())
    assert _imports("trajcore.example", module, known) == {
        "trajcore.dynamics",
        "trajcore.analysis.series",
        "trajcore.noise",
        "trajcore.network",
        "trajcore.plot",
        "trajcore.plot.style",
    }
