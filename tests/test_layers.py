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

Imports of the package's own modules belong at the top of a module. One stays inside a function only
with a reason written beside it (on its line, or in the comment just above its block of imports):
`# optional extra: <what stays unloaded>` (torch, pyspark, MLflow, ...) or `# lazy: <the start-up cost
it keeps off a path that does not need it>` (e.g. pandas out of `sentimentkit --help`).
"""

from __future__ import annotations

import ast
import re
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
    assert "sentimentkit.serving.remote" in graph["sentimentkit.serving.loader"]  # inside a function
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


# --- imports inside functions: only with a reason -----------------------------------------------------
REASON = re.compile(r"#.*\b(optional extra|lazy):")


def _is_own(node: ast.stmt) -> bool:
    """An import of the package's own modules (absolute or relative)."""
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or node.module == PACKAGE or (node.module or "").startswith(f"{PACKAGE}.")
    if isinstance(node, ast.Import):
        return any(a.name == PACKAGE or a.name.startswith(f"{PACKAGE}.") for a in node.names)
    return False


def _statement_lists(node: ast.AST) -> Iterator[list[ast.stmt]]:
    """Every list of statements below `node` (bodies, else/finally branches, handlers, match cases)."""
    for child in ast.walk(node):
        for field in ("body", "orelse", "finalbody"):
            value = getattr(child, field, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                yield value


def unexplained_function_imports(path: Path, root: Path = ROOT.parent) -> list[str]:
    """`file:line: statement` (file relative to `root`) for each import of the package's own modules
    inside a function with no `# optional extra:` / `# lazy:` comment on its lines or directly above its
    block (the import statements that follow one another, blank lines allowed, comments not)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    functions = [
        n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    found: dict[int, str] = {}
    for function in functions:
        for statements in _statement_lists(function):
            block_start = None
            previous: ast.stmt | None = None
            for stmt in statements:
                is_import = isinstance(stmt, ast.Import | ast.ImportFrom)
                if not is_import:
                    previous = None
                    continue
                between = lines[previous.end_lineno : stmt.lineno - 1] if previous else ["#"]
                if any(text.strip() for text in between):
                    block_start = stmt.lineno
                previous = stmt
                if not _is_own(stmt):
                    continue
                own = lines[stmt.lineno - 1 : stmt.end_lineno]
                above = []
                line = block_start - 2
                while line >= 0 and lines[line].strip().startswith("#"):
                    above.append(lines[line])
                    line -= 1
                if not any(REASON.search(text) for text in (*own, *above)):
                    found[stmt.lineno] = (
                        f"{path.relative_to(root)}:{stmt.lineno}: {lines[stmt.lineno - 1].strip()}"
                    )
    return [found[n] for n in sorted(found)]


def test_the_reason_check_reads_comments_as_it_should(tmp_path: Path) -> None:
    source = tmp_path / PACKAGE / "m.py"
    source.parent.mkdir()
    source.write_text(
        "from sentimentkit import LABELS\n"  # 1: module level, fine
        "def a():\n"
        "    # lazy: pandas stays out of --help\n"
        "    import pandas\n"
        "\n"
        "    from sentimentkit.data import x\n"  # 6: the same block (a blank line between): covered
        "    from sentimentkit.io import y\n"  # 7: covered
        "    x()\n"
        "    from sentimentkit.io import z\n"  # 9: a new block after code: no reason
        "    # reads the table\n"
        "    from sentimentkit.io import u\n"  # 11: a comment, but no reason in it
        "    from . import w  # optional extra: torch\n"  # 12: relative, with its reason
        "def b():\n"
        "    if True:\n"
        "        import sentimentkit.api\n"  # 15: nested in an if, still inside a function
        "    from sentimentkit.config import s  # pandas: keeps --help fast\n",  # 16: no `lazy:`
        encoding="utf-8",
    )
    found = unexplained_function_imports(source, tmp_path)
    assert [f.split(":")[1] for f in found] == ["9", "11", "15", "16"], found


def test_imports_inside_functions_say_why() -> None:
    """The package's own modules are imported at a module's top; one inside a function says why there."""
    found = [f for path in sorted(ROOT.rglob("*.py")) for f in unexplained_function_imports(path)]
    assert not found, (
        "imports of the package's own modules inside functions without a reason: move each to the top of "
        "its module, or (only when it must stay) write `# optional extra: <what stays unloaded>` or "
        "`# lazy: <the measured start-up cost it saves>` on its line or just above its block:\n"
        + "\n".join(found)
    )
