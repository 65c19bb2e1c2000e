"""No import circle between runner's packages (an import-linter style check).

The graph is read from the source with `ast`, not by importing: an edge A -> B
means a module of A imports a module of B when it is loaded (at module level,
not under `if TYPE_CHECKING:` and not inside a function). A package is a
folder under runner/ (runner.engine, runner.steps ...); every top-level module
(runner.errors, runner.cli ...) is a node of its own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "runner"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def load_time_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is loaded (functions and classes' methods skipped)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _type_checking(node):
                yield from load_time_imports(node.body)
            yield from load_time_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(h.body for h in node.handlers)):
                yield from load_time_imports(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from load_time_imports(node.body)


def imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement names (`from a import b` may name module a.b)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and (ROOT / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


Graph = dict[str, dict[str, list[str]]]  # node -> {node it imports: why (file:line ...)}


def module_graph() -> Graph:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: Graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in load_time_imports(tree.body):
            for name in imported(module, path.name == "__init__.py", node):
                if name in modules and name != module:
                    where = f"{path.relative_to(ROOT.parent)}:{node.lineno} imports {name}"
                    graph.setdefault(module, {}).setdefault(name, []).append(where)
    return graph


def package_graph(modules: Graph) -> Graph:
    graph: Graph = {}
    for a, targets in modules.items():
        for b, why in targets.items():
            if package_of(a) != package_of(b):
                graph.setdefault(package_of(a), {}).setdefault(package_of(b), []).extend(why)
    return graph


def circles(graph: Graph) -> list[list[str]]:
    """One circle (a closed path) through each strongly connected part of `graph`."""
    found: list[list[str]] = []
    done: set[str] = set()
    for start in sorted(graph):
        path = _path_back(graph, start, start, [start], set())
        if path and not done & set(path):
            found.append(path)
            done |= set(path)
    return found


def _path_back(graph: Graph, node: str, goal: str, path: list[str],
               seen: set[str]) -> list[str] | None:
    for nxt in sorted(graph.get(node, {})):
        if nxt == goal:
            return path
        if nxt not in seen:
            seen.add(nxt)
            found = _path_back(graph, nxt, goal, [*path, nxt], seen)
            if found:
                return found
    return None


def cycle_text(graph: Graph, cycle: list[str]) -> str:
    hops = zip(cycle, cycle[1:] + cycle[:1], strict=True)
    return "\n".join(f"  {a} -> {b}: " + "; ".join(graph[a][b][:3]) for a, b in hops)


def test_no_import_cycle_between_runners_packages() -> None:
    graph = package_graph(module_graph())
    found = circles(graph)
    assert not found, "import circles between runner's packages:\n" + "\n\n".join(
        cycle_text(graph, c) for c in found)


def test_a_circle_is_found() -> None:
    graph: Graph = {"a": {"b": ["a:1"]}, "b": {"c": ["b:1"]}, "c": {"a": ["c:1"]}, "d": {}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b": ["a:1"]}, "b": {}}) == []


def test_the_graph_sees_real_edges() -> None:
    """The check above is only worth something if the reader finds imports at all."""
    modules = module_graph()
    assert "runner.steps.base" in modules["runner.steps.set_image"]
    assert "runner.kube" in package_graph(modules)["runner.steps"]


def test_type_checking_and_function_imports_do_not_count(tmp_path: Path) -> None:
    source = ("from typing import TYPE_CHECKING\nimport a\nif TYPE_CHECKING:\n    import b\n"
              "def f():\n    import c\nclass K:\n    import d\n    def m(self):\n        import e\n"
              "try:\n    import g\nexcept ImportError:\n    import h\n")
    found = [n.names[0].name for n in load_time_imports(ast.parse(source).body)
             if isinstance(n, ast.Import)]
    assert found == ["a", "d", "g", "h"]


@pytest.mark.parametrize(("module", "package", "level", "name", "expected"), [
    ("runner.review.preview", False, 1, "expect", ["runner.review.expect"]),
    ("runner.review", True, 1, "preview", ["runner.review.preview"]),
    ("runner.review.preview", False, 2, "steps", ["runner.steps"]),
])
def test_relative_imports_resolve(module: str, package: bool, level: int, name: str,
                                  expected: list[str]) -> None:
    node = ast.ImportFrom(module=name, names=[ast.alias(name="x")], level=level)
    assert imported(module, package, node)[0] == expected[0]
