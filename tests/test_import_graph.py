"""The import graph of `src/unlearn` has no circle.

A circle (a imports b, b imports a, even from inside a function) makes the modules one unit that
only works in a certain import order; what two modules share belongs in a third that both import.
The graph is read from the source (ast), imports inside functions included, so a circle hidden
behind a function-level import is found too; imports under `if TYPE_CHECKING:` never run and
are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_files(root: Path = SRC) -> dict[str, Path]:
    """Dotted module name -> file, for every module and package under `root/unlearn`."""
    names = {}
    for path in sorted((root / "unlearn").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project's modules that module `name` imports. `from p import x` names module `p.x` when
    that is a module, else `p`; a parent package that Python initialises on the way is not an
    edge (it imports its children, so counting it would make every re-exporting package a circle)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    # `if TYPE_CHECKING:` imports never run: annotations only, the usual way to name a type back
    type_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                 for stmt in node.body for inner in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: climb level-1 packages from this module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {m for m in found if m in known and m != name}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    files = module_files(root)
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_src_has_no_import_circle():
    assert circles(import_graph()) == []


@pytest.mark.parametrize("files, circle", [
    ({"a.py": "from unlearn import b\n", "b.py": "def f():\n    from unlearn.a import x\n"},
     [["unlearn.a", "unlearn.b"]]),
    ({"a.py": "from . import b\n", "b.py": "from .c import y\n", "c.py": "import unlearn.a\n"},
     [["unlearn.a", "unlearn.b", "unlearn.c"]]),
    ({"a.py": "from unlearn import b\n", "b.py": "import os\n"}, []),
    ({"a.py": "from unlearn import b\n", "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
              "    from unlearn.a import A\n"}, []),
    # a package re-exporting its child, and the child importing a sibling through the package path
    ({"p/__init__.py": "from unlearn.p.q import f\n", "p/q.py": "from unlearn.p.r import g\n", "p/r.py": ""}, []),
])
def test_circles_are_found_in_a_made_up_package(tmp_path, files, circle):
    for relative, text in {"__init__.py": "", **files}.items():
        path = tmp_path / "unlearn" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert circles(import_graph(tmp_path)) == circle
