"""The import graph of the product: monitor -> models/streams only, and no cycle among modules."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

PACKAGES = ("monitor", "models", "streams")


def _modules() -> dict[str, object]:
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(path, known) -> set[str]:
    """Product modules imported anywhere in the file (inside functions too: a lazy import is still a use)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m in known}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(path, mods) - {name} for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycles_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_product_modules():
    graph = import_graph()
    assert "monitor.cli.commands" in graph and "monitor.cli.options" in graph["monitor.cli.commands"]
    assert cycles(graph) == []


def test_models_and_streams_never_import_monitor():
    graph = import_graph()
    wrong = {m: sorted(d for d in deps if d.split(".")[0] == "monitor")
             for m, deps in graph.items() if m.split(".")[0] in ("models", "streams")}
    assert {m: d for m, d in wrong.items() if d} == {}


def _layer(module: str) -> str:
    """The layer a product module belongs to: monitor's sub-package or top-level module, or models/streams."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "monitor" and len(parts) > 1 else parts[0]


def test_monitor_layers_form_no_cycle():
    """Sub-packages stack in layers (README's module map): an import never runs back up, lazily or not."""
    graph = import_graph()
    layers: dict[str, set[str]] = {}
    for m, deps in graph.items():
        layers.setdefault(_layer(m), set()).update(_layer(d) for d in deps if _layer(d) != _layer(m))
    assert {"monitor.app", "monitor.core", "monitor.config", "monitor.keyed"} <= set(layers)
    assert cycles(layers) == []
