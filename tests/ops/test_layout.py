"""The layout keeps its shape: modules stay small, imports never cycle, kernels stay pure."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("stfcube/pipeline", "stfcube/kernels", "stfcube/flows")
#: Largest module, in lines (a module past it mixes concerns: split it).
MAX_LINES = 600


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def module_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported (not inside functions or TYPE_CHECKING)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for item in ast.walk(node):
            if isinstance(item, ast.Import):
                names |= {alias.name for alias in item.names}
            elif isinstance(item, ast.ImportFrom) and item.module:
                names |= {item.module, *(f"{item.module}.{a.name}" for a in item.names)}
    return names


def test_no_module_is_too_long() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by concern: {long}"


def test_module_imports_do_not_cycle() -> None:
    known = modules()
    graph = {name: module_imports(path) & known.keys() - {name} for name, path in known.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycles.append([*trail[trail.index(other) :], other])
            elif other not in state:
                visit(other, [*trail, other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_kernels_never_import_the_pipeline() -> None:
    for name, path in modules().items():
        if name.startswith("stfcube.kernels"):
            imported = {
                n
                for n in module_imports(path) | _function_imports(path)
                if n.startswith(("stfcube.pipeline", "stfcube.flows"))
            }
            assert not imported, f"{name} imports {sorted(imported)}"


def _function_imports(path: Path) -> set[str]:
    """Every module named in an import statement anywhere in the file."""
    names: set[str] = set()
    for item in ast.walk(ast.parse(path.read_text())):
        if isinstance(item, ast.ImportFrom) and item.module:
            names.add(item.module)
        elif isinstance(item, ast.Import):
            names |= {alias.name for alias in item.names}
    return names
