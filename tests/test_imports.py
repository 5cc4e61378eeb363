"""No import cycles in the package, lazy ones included.

``lint-imports`` checks the layers, but siblings marked ``a : b`` may import each other, and the
adapters are one layer. This reads every import statement of every module under ``retrykit/``
(at module level and inside functions; not those under ``if TYPE_CHECKING:``, which never run)
and fails on any cycle between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "retrykit"


def _module_names(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module under *package* (a package is its __init__)."""
    names: dict[str, Path] = {}
    for path in package.rglob("*.py"):
        parts = [package.name, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of the nodes under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            for child in node.body:
                found.update(id(n) for n in ast.walk(child))
    return found


def import_graph(package: Path) -> dict[str, dict[str, int]]:
    """Module -> {module it imports: line of the first such import}, within *package*."""
    modules = _module_names(package)
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skipped = _type_checking_only(tree)
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` of a name in a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _describe(graph: dict[str, dict[str, int]], group: list[str]) -> str:
    edges = [f"{a} -> {b} (line {graph[a][b]})" for a in group for b in graph[a] if b in group]
    return "; ".join(edges)


def test_the_package_has_no_import_cycle_even_lazy() -> None:
    """No module of retrykit imports (at any depth, in any function) a module that imports it."""
    graph = import_graph(PACKAGE)
    assert len(graph) > 40  # the package was found and read
    assert "retrykit._overload_memory" in graph["retrykit._breaker"]  # edges were found
    found = cycles(graph)
    assert not found, "import cycles: " + " | ".join(_describe(graph, group) for group in found)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a lazy import, inside a function, closes the cycle
        ({"a.py": "from . import b\n", "b.py": "def f():\n    from .a import x\n"}, [["pkg.a", "pkg.b"]]),
        # through three modules, absolute and relative spellings, and the package itself
        (
            {
                "__init__.py": "from .a import x\n",
                "a.py": "import pkg.sub.c\nx = 1\n",
                "sub/__init__.py": "",
                "sub/c.py": "def f():\n    import pkg\n",
            },
            [["pkg", "pkg.a", "pkg.sub.c"]],
        ),
        # only under TYPE_CHECKING: never imported at run time, no cycle
        (
            {
                "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import y\n",
                "b.py": "from .a import x\n",
            },
            [],
        ),
        # a chain, no way back
        ({"a.py": "from .b import y\n", "b.py": "from . import c\n", "c.py": "import os\n"}, []),
    ],
    ids=["lazy", "three-modules", "type-checking-only", "chain"],
)
def test_the_check_finds_lazy_cycles(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    """The check itself: it follows function-level imports and skips TYPE_CHECKING ones."""
    package = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    assert expected == cycles(import_graph(package))
