"""The engine's layer table, enforced on every import (function-local ones included), and no import cycles.

Primitives (one layer, any order among them but no cycle): conventions, geometry, so3, fourier, ctf,
correlation, search, metrics, gan, rng, lazy, latent (the Manifold protocol), resources, cliargs, plots, phantom, samples,
io, jobs. Data: sim (imports primitives only). Families — align, hyptest, drgn, multicryogan, tomograms, matching —
import the primitives, sim and themselves, never each other. Top: the manifold registry, the benches (hub, core and tomogram benches), the tomogram-to-average workflow
(particle_qa), the test of template-matching candidates (candidate_tests) and the CLI, which may import anything. No module imports a CLI module except the CLI itself; the napari layer imports no CLI module
of the engine.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cryoforge"
PLUGIN = ROOT / "napari_cryoforge"

PRIMITIVES = {"cryoforge", "conventions", "configs", "hints", "geometry", "so3", "fourier", "ctf", "correlation", "search", "metrics",
              "gan", "latent", "lazy", "rng", "resources", "cliargs", "plots", "phantom", "samples", "io", "jobs"}
DATA = {"sim"}
FAMILIES = {"align", "hyptest", "drgn", "multicryogan", "tomograms", "matching"}
TOP = {"manifold", "bench", "bench_core", "bench_tomo", "bench_scale", "bench_tm", "cli", "particle_qa", "candidate_tests"}
LAYER = {**{u: 0 for u in PRIMITIVES}, **{u: 1 for u in DATA}, **{u: 2 for u in FAMILIES}, **{u: 3 for u in TOP}}


def _module(path: Path, base: Path, package: str) -> tuple[str, bool]:
    parts = list(path.relative_to(base).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join([package, *(parts[:-1] if is_pkg else parts)]), is_pkg


def _imports(path: Path, module: str, is_pkg: bool) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``path``, at any depth; ``from x import y`` also yields
    ``x.y`` (y may be a module)."""
    pkg = module if is_pkg else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return out


def _engine_modules() -> dict[str, set[str]]:
    """Every engine module and the engine modules it imports (resolved to existing modules)."""
    files = {_module(p, SRC.parent, "")[0].lstrip("."): p for p in SRC.rglob("*.py")}
    known = set(files)
    graph = {}
    for name, path in files.items():
        deps = set()
        for _, target in _imports(path, name, path.name == "__init__.py"):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("cryoforge") and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cryoforge"


def _is_cli(module: str) -> bool:
    return module.split(".")[-1] == "cli"


def test_every_engine_unit_is_in_the_table():
    units = {_unit(m) for m in _engine_modules()}
    assert units <= set(LAYER), f"declare these in the layer table: {sorted(units - set(LAYER))}"


def test_imports_follow_the_layer_table():
    bad = []
    for module, deps in _engine_modules().items():
        u = _unit(module)
        for dep in deps:
            d = _unit(dep)
            if LAYER[u] == 3 or d == u or (LAYER[u] == 0 and LAYER[d] == 0):
                pass
            elif LAYER[u] in (1, 2) and LAYER[d] < LAYER[u] and not (LAYER[d] == 2):
                pass
            else:
                bad.append(f"{module} ({['primitives', 'data', 'family', 'top'][LAYER[u]]}) imports {dep}")
            if _is_cli(dep) and not _is_cli(module):
                bad.append(f"{module} imports the CLI module {dep}")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _engine_modules()
    # a module's own package __init__ is imported with it: edges into a parent package are not cycles of design
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_napari_layer_uses_no_cli_module():
    bad = []
    for path in PLUGIN.rglob("*.py"):
        module, is_pkg = _module(path, PLUGIN.parent, "")
        for line, target in _imports(path, module.lstrip("."), is_pkg):
            if target.startswith("cryoforge.") and target.endswith(".cli") and target != "cryoforge.cli":
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, bad


@pytest.mark.parametrize("source, expected", [
    ("from ..align.pipeline import x\n", "cryoforge.hyptest (family) imports cryoforge.align.pipeline"),
    ("from .cli import register\n", "imports the CLI module cryoforge.hyptest.cli"),
])
def test_the_rule_catches_a_violation(tmp_path, monkeypatch, source, expected):
    """The checker itself: a family importing a sibling, a library module importing a CLI module."""
    import shutil

    fake = tmp_path / "src" / "cryoforge"
    shutil.copytree(SRC, fake)
    (fake / "hyptest" / "__init__.py").write_text(source)
    monkeypatch.setitem(globals(), "SRC", fake)
    with pytest.raises(AssertionError, match=re.escape(expected)):
        test_imports_follow_the_layer_table()


def test_engine_never_mentions_or_imports_gui_packages():
    import subprocess
    import sys

    for f in SRC.rglob("*.py"):
        text = f.read_text()
        assert "napari" not in text and "qtpy" not in text, f
    code = ("import sys, importlib, pkgutil, cryoforge\n"
            "for m in pkgutil.walk_packages(cryoforge.__path__, 'cryoforge.'): importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('napari', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'vispy', 'magicgui')]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
