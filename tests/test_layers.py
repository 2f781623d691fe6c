"""Dependencies flow one way: the import graph of the project has no cycle, the engine's layers import only
downwards, and what the dashboard reads numbers with loads no torch.

The graph is read from the source (``ast``), so it includes imports inside functions and under
``TYPE_CHECKING``; the stage list adds the modules of the stage functions it names by dotted path
(``module:function``, imported when a stage runs).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from igcore.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("igcore", "dashboard", "bench", "testkit", "tests")


def modules() -> dict[str, Path]:
    """Every module of the project by its dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def lazy_names(found: dict[str, Path]) -> dict[str, str]:
    """``{package.Name: package.module}`` for the names a package loads on first use (a ``_LAZY`` dict of name ->
    submodule and a module ``__getattr__``, as ``igcore.discover``): importing such a name imports that module."""
    lazy = {}
    for name, path in found.items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
                for attr, module in ast.literal_eval(node.value).items():
                    lazy[f"{name}.{attr}"] = f"{name}.{module}"
    return lazy


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of the project it imports}``, at any depth of its code (a package's lazily loaded name
    counts as its module: :func:`lazy_names`)."""
    found = modules()
    lazy = lazy_names(found)

    def own(name: str) -> str | None:  # the project module a dotted name lives in
        name = lazy.get(name, name)
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        edges: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names]
            edges.update(t for t in map(own, targets) if t and t != name)
        graph[name] = edges
    graph["igcore.stages"] |= {path.partition(":")[0] for s in STAGES for path in (s.function, s.preflight) if path}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return found


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> str:
    """A shortest path from the component's first module back to itself, ``a -> b -> a`` (for the failure message)."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & inside):
                if w == start:
                    return " -> ".join([*paths[v], start])
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    return ", ".join(component)


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 100 and "igcore.config" in graph["igcore.pipeline"]  # the graph is really read
    assert "igcore.stages.train" in graph["igcore.stages"]  # stage functions named by dotted path count
    assert "igcore.discover.remeasure" in graph["dashboard.engine"]  # a lazily loaded name counts as its module
    assert [one_cycle(graph, c) for c in cycles(graph)] == []


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


#: The engine's layers, lowest first: a module imports only from its own layer and the ones before it.
#: A module belongs to the layer of the longest prefix listed (``igcore.microscope.params`` before ``igcore.microscope``).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("igcore.errors", "igcore.settings", "igcore.schema")),
    ("registries and parameters", (
        "igcore.architectures", "igcore.runtime", "igcore.worlds", "igcore.hypothesis", "igcore.methods", "igcore.baseline_params", "igcore.concepts_params",
        "igcore.features_params", "igcore.search.params", "igcore.discover.params", "igcore.prior.params", "igcore.prior.encoders",
        "igcore.microscope.params", "igcore.microscope.registry", "igcore.microscope._baselines",
        "igcore.microscope.grad_cam", "igcore.microscope.gradient_shap", "igcore.microscope.integrated_gradients",
        "igcore.microscope.layer_integrated_gradients", "igcore.microscope.occlusion", "igcore.microscope.saliency",
    )),
    ("config", ("igcore.config",)),
    ("estimators", ("igcore",)),
    ("store and executors", ("igcore.store", "igcore.executors", "igcore.labels", "igcore.resolve", "igcore.discover.view", "igcore.discover.remeasure",
                             "igcore.microscope.attribution",
                             "igcore.microscope.sanity", "igcore.microscope.runner")),
    ("context", ("igcore.context",)),
    ("stages", ("igcore.stages", "igcore.peers", "igcore.microscope.recompute")),
    ("pipeline and CLI", ("igcore.pipeline", "igcore.cli", "igcore.__main__")),
    ("dashboard", ("dashboard",)),
)


#: Packages that sit in another layer than their modules: the microscope's ``__init__`` re-exports a public API
#: gathered from every layer of its parts (so it sits at the highest); the peer registry is the peers package's
#: ``__init__``, below the config, while each peer's module holds a stage function.
PACKAGE_LAYERS = {"igcore.microscope": "stages", "igcore.peers": "registries and parameters"}


def layer_of(module: str) -> int:
    """The index of ``module``'s layer in :data:`LAYERS` (-1 outside the engine and the dashboard)."""
    if module in PACKAGE_LAYERS:
        return [name for name, _ in LAYERS].index(PACKAGE_LAYERS[module])
    best, depth = -1, -1
    for i, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = i, len(prefix)
    return best


def test_the_engine_imports_only_downwards():
    graph = import_graph()
    upwards = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
        for m, targets in sorted(graph.items()) if layer_of(m) >= 0
        for t in sorted(targets) if layer_of(t) > layer_of(m)
    ]
    assert upwards == []


#: The engine modules the dashboard reads stored numbers with (its number-reading pages import these).
NUMBER_READERS = (
    "igcore.errors", "igcore.schema", "igcore.store", "igcore.stages", "igcore.config", "igcore.hypothesis",
    "igcore.likelihood", "igcore.labels", "igcore.prior.store", "igcore.prior.elicit", "igcore.worlds",
    "igcore.microscope.registry", "igcore.peers",
)


def test_reading_numbers_loads_no_torch():
    code = (
        "import importlib, sys\n"
        f"for name in {NUMBER_READERS!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'captum') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["igcore.config", "igcore.stages"])
def test_the_config_and_the_stage_list_load_without_torch(name):
    out = subprocess.run([sys.executable, "-c", f"import sys, {name}; print('torch' in sys.modules)"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
