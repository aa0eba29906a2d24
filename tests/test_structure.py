"""The package's import structure, read from the source with ``ast`` (nothing is imported):
no import cycle among promptmix modules, no promptmix module imported inside a function
outside ``cli/`` (where subcommands load lazily), ``inference/``, ``serving/`` and the commands
that serve, predict, evaluate or draw attention reaching nothing of ``training/`` (they read
saved runs through ``rundirs/``), and ``rundirs/`` itself below both training and inference.
The checks run on the real tree and, to show they can fail, on small trees that break each
rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.Module):
    """(node, inside a function) for every import executed at run time: those under
    ``if TYPE_CHECKING:`` are for type checkers only."""

    def walk(node: ast.AST, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.orelse:
                    yield from walk(stmt, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, in_function
            yield from walk(
                child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            )

    yield from walk(tree, False)


def import_graph(root: Path, package: str) -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """``{module: modules of the package it imports}`` and ``(module, imported)`` for every
    import of a package module made inside a function."""
    files = {module_name(p, root): p for p in (root / package).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    in_functions = []
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node, in_function in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(node, name, is_package, files):
                graph[name].add(target)
                if in_function:
                    in_functions.append((name, target))
    return graph, in_functions


def _targets(node: ast.AST, module: str, is_package: bool, files: dict) -> list[str]:
    """The package modules an import statement loads (``from pkg import sub`` loads ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in files]
    base = node.module or ""
    if node.level:  # relative: from the importing module's package
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join(anchor + ([node.module] if node.module else []))
    found = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in files]
    if base in files and len(found) < len(node.names):
        found.append(base)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_import_cycle_among_promptmix_modules():
    graph, _ = import_graph(SRC, "promptmix")
    assert len(graph) > 50 and graph["promptmix.training.stages"]  # the tree was read
    assert cycles(graph) == []


def test_no_promptmix_module_is_imported_inside_a_function_outside_cli():
    _, in_functions = import_graph(SRC, "promptmix")
    assert [(m, t) for m, t in in_functions if not m.startswith("promptmix.cli")] == []
    assert any(m.startswith("promptmix.cli") for m, _ in in_functions)  # cli does load lazily


SERVING_PATH_CLI = ["promptmix.cli.serve", "promptmix.cli.predict", "promptmix.cli.eval", "promptmix.cli.attention"]


def forbidden_reach(graph: dict[str, set[str]], sources: list[str], below: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(module, reached)`` for every module of ``sources`` and every module under one of the
    prefixes ``below`` that it imports, directly or through other modules."""
    return [(m, r) for m in sorted(sources) for r in sorted(reachable(graph, m)) if r.startswith(below)]


def training_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports into ``training`` that answering, evaluating or serving must not make, from
    ``inference``, ``serving`` or the commands that serve, predict, evaluate or draw attention."""
    answering = [
        m for m in graph if m.startswith(("promptmix.inference", "promptmix.serving")) or m in SERVING_PATH_CLI
    ]
    return forbidden_reach(graph, answering, ("promptmix.training",))


def reader_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from ``rundirs`` (reading saved runs) into ``training`` or ``inference``, above it."""
    reader = [m for m in graph if m.startswith("promptmix.rundirs")]
    return forbidden_reach(graph, reader, ("promptmix.training", "promptmix.inference"))


def test_inference_serving_and_their_commands_import_nothing_from_training():
    graph, _ = import_graph(SRC, "promptmix")
    assert {"promptmix.inference.predictor", "promptmix.inference.evaluate", "promptmix.serving.app"} <= set(graph)
    assert all(module in graph for module in SERVING_PATH_CLI)
    assert training_edges(graph) == []


def test_reading_runs_sits_below_training_and_inference():
    graph, _ = import_graph(SRC, "promptmix")
    assert {"promptmix.rundirs.read", "promptmix.rundirs.data", "promptmix.rundirs.config"} <= set(graph)
    assert "promptmix.rundirs.read" in graph["promptmix.inference.loader"]  # serving reads runs through it
    assert reader_edges(graph) == []


def test_training_and_reader_edges_are_found(tmp_path):
    files = {
        "__init__.py": "",
        "inference/__init__.py": "",
        "inference/engine.py": "from promptmix.util import f\n",
        "util.py": "from promptmix.training.data import x\n",
        "training/__init__.py": "",
        "training/data.py": "",
        "training/rundir.py": "",
        "training/config.py": "",
        "rundirs/__init__.py": "",
        "rundirs/read.py": "from promptmix.rundirs.config import c\n",
        "rundirs/config.py": "from promptmix.training.config import TrainConfig\n",
        "cli/__init__.py": "",
        "cli/eval.py": "from promptmix.training.rundir import r\n",
        "cli/predict.py": "def run():\n    from promptmix.rundirs.read import find_methods\n",
        "cli/train.py": "from promptmix.training.rundir import r\n",  # training's own command may
    }
    root = tmp_path / "tree"
    for name, text in files.items():
        path = root / "promptmix" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    graph, _ = import_graph(root, "promptmix")
    assert training_edges(graph) == [
        ("promptmix.cli.eval", "promptmix.training.rundir"),
        ("promptmix.cli.predict", "promptmix.training.config"),  # through rundirs, inside a function
        ("promptmix.inference.engine", "promptmix.training.data"),
    ]
    assert reader_edges(graph) == [
        ("promptmix.rundirs.config", "promptmix.training.config"),
        ("promptmix.rundirs.read", "promptmix.training.config"),
    ]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"__init__.py": "", "a.py": "from pkg.b import x\n", "b.py": "import pkg.a\n"}, [["pkg.a", "pkg.b"]]),
        (
            {"__init__.py": "from pkg import a\n", "a.py": "from pkg import b\n", "b.py": "from . import a\n"},
            [["pkg.a", "pkg.b"]],
        ),
        ({"__init__.py": "from pkg.a import f\n", "a.py": "from pkg import g\n"}, [["pkg", "pkg.a"]]),
        (
            {
                "__init__.py": "",
                "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
                "b.py": "from pkg.a import A\n",
            },
            [],
        ),
    ],
)
def test_the_checks_find_what_they_look_for(tmp_path, files, expected):
    graph, _ = import_graph(_tree(tmp_path, files), "pkg")
    assert cycles(graph) == expected


def test_in_function_imports_are_found(tmp_path):
    root = _tree(tmp_path, {"__init__.py": "", "a.py": "def f():\n    from pkg import b\n    import os\n", "b.py": ""})
    graph, in_functions = import_graph(root, "pkg")
    assert in_functions == [("pkg.a", "pkg.b")] and graph["pkg.a"] == {"pkg.b"}
