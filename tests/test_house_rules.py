"""The house rules the code itself can be held to, checked statically over ``ragkit/``.

1. The core never imports a connector: no module under ``ragkit/`` imports a
   ``ragkit_*`` package, at module level, inside a function or under
   ``TYPE_CHECKING``. An optional component (a connector's store, embedder,
   test-set generator ...) is found through :mod:`ragkit.registry` by role
   and name, never by module path.
2. No import cycles between the core's modules: none through module-level
   imports, and none either once the imports inside functions are counted
   (the two cycle tests' docstrings say why each counts).

Both read the source with :mod:`ast`; nothing is imported, so a heavy or
broken module cannot hide a breach.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "ragkit"
CONNECTOR_PREFIX = "ragkit_"


@dataclass(frozen=True)
class Import:
    """One import statement's module, as written in a file (relative imports resolved)."""

    module: str
    names: tuple[str, ...]
    """For ``from module import a, b``: ``("a", "b")``; empty for ``import module``."""
    line: int
    top_level: bool
    """At module level (also under ``if``/``try`` there), not inside a function."""
    type_only: bool
    """Under ``if TYPE_CHECKING:``: never executed."""


def module_name(path: Path, root: Path = CORE) -> str:
    """``ragkit/a/b.py`` → ``ragkit.a.b``; ``ragkit/a/__init__.py`` → ``ragkit.a``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved against ``module``)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, root: Path = CORE) -> Iterator[Import]:
    """Every import in the file at ``path``, anywhere in it, with where it sits."""
    module = module_name(path, root)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def walk(node: ast.AST, top_level: bool, type_only: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(alias.name, (), child.lineno, top_level, type_only)
            elif isinstance(child, ast.ImportFrom):
                names = tuple(alias.name for alias in child.names)
                yield Import(_resolve(module, is_package, child), names, child.lineno, top_level, type_only)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), top_level, True)
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), top_level, type_only)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, False, type_only)
            else:  # classes, if/try/with at module level, and the statements inside functions
                yield from walk(child, top_level, type_only)

    yield from walk(tree, True, False)


def core_files(root: Path = CORE) -> list[Path]:
    """Every Python module of the core, in a stable order."""
    return sorted(root.rglob("*.py"))


def connector_imports(root: Path = CORE) -> list[str]:
    """``file:line imports name`` for every import of a ``ragkit_*`` package under ``root``."""
    found = []
    for path in core_files(root):
        for item in imports(path, root):
            if item.module.split(".")[0].startswith(CONNECTOR_PREFIX):
                found.append(f"{path.relative_to(root.parent).as_posix()}:{item.line} imports {item.module}")
    return sorted(set(found))


def _targets(item: Import, modules: set[str]) -> list[str]:
    """The core modules an import statement names: ``from a import b`` names ``a.b`` if it is a module, else ``a``."""
    if not item.names:
        return [item.module]
    named = [f"{item.module}.{name}" for name in item.names if f"{item.module}.{name}" in modules]
    if len(named) < len(item.names):  # some name is an attribute of ``item.module`` itself
        named.append(item.module)
    return named


def import_graph(root: Path = CORE, deferred: bool = False) -> dict[str, dict[str, int]]:
    """Module → the core modules it imports, with the line of the first import of each.

    Module-level imports only, or with ``deferred`` also those inside
    functions; never those under ``if TYPE_CHECKING:`` (they do not run).

    Importing ``ragkit.a.b`` also runs ``ragkit/a/__init__.py`` first, so the
    packages on the way are edges too, except the importer's own enclosing
    packages: they are already running when it runs, and importing a
    submodule through them does not run them again.
    """
    files = core_files(root)
    modules = {module_name(path, root) for path in files}
    graph: dict[str, dict[str, int]] = {}
    for path in files:
        source = module_name(path, root)
        edges: dict[str, int] = {}
        for item in imports(path, root):
            if item.type_only or not (item.top_level or deferred):
                continue
            for target in _targets(item, modules):
                if target not in modules:
                    continue
                parts = target.split(".")
                on_the_way = [".".join(parts[:end]) for end in range(1, len(parts))]
                for name in [*(p for p in on_the_way if not source.startswith(p + ".")), target]:
                    if name in modules and name != source:
                        edges.setdefault(name, item.line)
        graph[source] = edges
    return graph


def _components(graph: Mapping[str, Mapping[str, int]]) -> list[set[str]]:
    """The strongly connected components of ``graph`` with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for start in sorted(graph):
        if start not in index:
            visit(start)
    return found


def _cycle_in(component: set[str], graph: Mapping[str, Mapping[str, int]]) -> list[str]:
    """One cycle through the first module of ``component``, as ``[a, b, ..., a]`` (shortest, by BFS)."""
    start = min(component)
    came_from: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph.get(node, {})):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt in component and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def find_cycles(graph: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` per knot of mutually importing modules; empty when there is none."""
    return [_cycle_in(component, graph) for component in _components(graph)]


def describe(cycle: list[str], graph: Mapping[str, Mapping[str, int]]) -> str:
    """The cycle with the line of each import: ``ragkit.a (line 3) -> ragkit.b (line 9) -> ragkit.a``."""
    steps = [f"{a} (line {graph[a][b]})" for a, b in pairwise(cycle)]
    return " -> ".join([*steps, cycle[-1]])


def test_the_core_never_imports_a_connector():
    """No module under ``ragkit/`` imports a ``ragkit_*`` package, not even inside a function.

    The core finds optional components through :mod:`ragkit.registry`
    (``registry.get(role, name)``), which loads them from the
    ``ragkit.components`` entry points the connectors declare.
    """
    breaches = connector_imports()
    assert not breaches, "the core imports a connector package; use ragkit.registry instead:\n" + "\n".join(breaches)


def test_no_import_cycle_through_module_level_imports():
    """No cycle through the imports that run when a ``ragkit/`` module is imported.

    Counted: imports at module level, including under ``if``/``try``; a
    package's ``__init__`` counts as imported by whoever imports one of its
    submodules from outside it. Such a cycle is a defect of its own: the
    import order starts to matter, and one module meets the other half
    initialised.
    """
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles through module-level imports:\n" + "\n".join(describe(c, graph) for c in cycles)


def test_no_import_cycle_through_deferred_imports_either():
    """No cycle either once the imports inside functions are counted too (``TYPE_CHECKING`` ones still not).

    Why they count: moving one import of a circle into a function stops
    the interpreter from tripping over it, not the design: the two modules
    still need each other, and what they share belongs in a third module
    both import (``evaluation/report.py`` and ``html_report.py`` were such a
    pair; their shared helpers now live in ``evaluation/report_data.py``).
    Counting them costs the house nothing it relies on: deferring a heavy
    *outside* library (torch, ragas ...) adds no edge between core modules,
    and the registry and the lazy package exports load built-in modules by
    name (``importlib.import_module``), which is a lookup, not an import
    statement. ``TYPE_CHECKING`` imports never run, so they are left out.
    """
    graph = import_graph(deferred=True)
    cycles = find_cycles(graph)
    assert not cycles, "import cycles counting imports inside functions:\n" + "\n".join(
        describe(c, graph) for c in cycles
    )


def test_the_checks_see_function_level_imports_and_relative_imports(tmp_path: Path):
    """The walker finds an import inside a function and resolves ``from . import x``: the checks are not blind."""
    package = tmp_path / "ragkit"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "sub" / "__init__.py").write_text("from . import b\n", encoding="utf-8")
    (package / "sub" / "b.py").write_text(
        "def f():\n    import ragkit_milvus.store\n    from ragkit.sub import b\n", encoding="utf-8"
    )
    (package / "a.py").write_text("from ragkit.sub.b import f\n", encoding="utf-8")
    assert connector_imports(package) == ["ragkit/sub/b.py:2 imports ragkit_milvus.store"]
    graph = import_graph(package)
    assert graph["ragkit.sub"] == {"ragkit.sub.b": 1}
    assert graph["ragkit.a"] == {"ragkit.sub": 1, "ragkit.sub.b": 1}
    assert find_cycles(graph) == []
    (package / "sub" / "b.py").write_text("def f():\n    import ragkit.a\n", encoding="utf-8")
    assert find_cycles(import_graph(package)) == []
    assert find_cycles(import_graph(package, deferred=True)) == [["ragkit.a", "ragkit.sub.b", "ragkit.a"]]
    (package / "sub" / "b.py").write_text("import ragkit.a\n", encoding="utf-8")
    assert find_cycles(import_graph(package)) == [["ragkit.a", "ragkit.sub.b", "ragkit.a"]]
