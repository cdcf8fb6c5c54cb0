"""The package's import graph: no circles, and every import points down a floor (or stays on its own).

The graph is built from the source with `ast` (nothing is imported), every import counted: at module
level, inside functions (the lazy ones that keep an optional extra unloaded) and under TYPE_CHECKING,
plus the module names a package `__init__` hands to `import_module` (serving's lazy exports). An
import names the deepest package module it reaches: `from sentimentkit.mlops import registry` is an
arrow to `sentimentkit.mlops.registry`, `from sentimentkit.mlops import CHAMPION` one to the
`sentimentkit.mlops` package itself.

Floors, from the ground up (a module may import its own floor and those below, never above):
redact, io, config, errors, palette and the package root < text < data < models < serving, training
< scale, insights, mlops, feedback < api, ui, cli. Run it alone with `pytest tests/test_layers.py`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "sentimentkit"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Each floor lists the package's first-level modules and subpackages on it, lowest first.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("", "redact", "io", "config", "errors", "palette"),  # "" is the package root (LABELS, __version__)
    ("text",),
    ("data",),
    ("models",),
    ("serving", "training"),
    ("scale", "insights", "mlops", "feedback"),
    ("api", "ui", "cli", "__main__"),
)
FLOOR_OF = {part: floor for floor, parts in enumerate(FLOORS) for part in parts}


def module_name(path: Path) -> str:
    """`sentimentkit/api/app.py` -> `sentimentkit.api.app`; a package's `__init__.py` -> the package."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    """Every module of the package (tests live outside it), by dotted name."""
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The deepest package module `name` reaches (`a.b.NAME` -> `a.b` when NAME is no module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported(tree: ast.Module, module: str, is_package: bool) -> Iterator[str]:
    """Every dotted name `tree` imports, relative imports made absolute."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and is_package:
            yield node.value  # import_module("sentimentkit.x.y") targets of a package's lazy exports


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (itself excluded)."""
    modules = package_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for imported in _imported(tree, name, path.name == "__init__.py"):
            if imported == PACKAGE or imported.startswith(f"{PACKAGE}."):
                target = _resolve(imported, modules)
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def floor(module: str) -> int:
    """The floor of a package module: that of its first-level module or subpackage."""
    part = module.split(".")[1] if "." in module else ""
    if part not in FLOOR_OF:
        raise AssertionError(f"{module} is on no floor: add `{part}` to FLOORS in tests/test_layers.py")
    return FLOOR_OF[part]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_the_imports_it_should(graph: dict[str, set[str]]) -> None:
    """The reader itself: module-level, function-level and lazy-export imports all become arrows."""
    assert "sentimentkit.text.preprocess" in graph["sentimentkit.data"]  # module level
    assert "sentimentkit.serving.transformer" in graph["sentimentkit.serving.loader"]  # inside a function
    assert "sentimentkit.serving.predictor" in graph["sentimentkit.serving"]  # import_module target
    assert "sentimentkit" in graph["sentimentkit.config"]  # from sentimentkit import LABELS
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles(graph: dict[str, set[str]]) -> None:
    found = cycles(graph)
    assert not found, "import circles (break each by moving the shared code down a floor):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_every_module_is_on_a_floor(graph: dict[str, set[str]]) -> None:
    for module in graph:
        floor(module)


def test_imports_point_down(graph: dict[str, set[str]]) -> None:
    upward = sorted(
        f"{source} (floor {floor(source)}) -> {target} (floor {floor(target)})"
        for source, targets in graph.items()
        for target in targets
        if floor(target) > floor(source)
    )
    assert not upward, "imports that climb a floor:\n" + "\n".join(upward)
