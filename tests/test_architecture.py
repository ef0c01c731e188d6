"""The package's layout holds: no import cycle, imports point the way ARCHITECTURE.md says.

The graph is read from the source (every `import` and `from ... import` anywhere in a
module: at the top, under `TYPE_CHECKING`, inside functions; and the `lazy_module(...)`
names), not from what happens to be loaded, so a type-only or lazy import that closes a
cycle fails too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "wandb_inference"
SHELLS = {"wandb_inference._async_client", "wandb_inference._client"}
# The subpackages below the clients; each may use the core modules at the top (errors,
# options, request checks), never the client shells, the send core, the CLI or the server.
LOWER = ("_policy", "_streaming", "_types", "_catalog", "_helpers", "_tracing")
CORE = {"wandb_inference._prepare", "wandb_inference._replies"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """module -> the package's modules it imports, in any way."""
    modules = _modules() if modules is None else modules
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module) if node.level else (node.module or "")
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in modules else base)
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "lazy_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                targets = [str(node.args[0].value)]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def _importers(graph: dict[str, set[str]], targets: Iterable[str]) -> set[str]:
    wanted = set(targets)
    return {name for name, deps in graph.items() if deps & wanted}


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_sees_type_only_and_lazy_imports(tmp_path: Path) -> None:
    """The check itself can fail: a type-only import and a lazy one close a cycle here."""
    pkg = tmp_path / "wandb_inference"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._b import B\n")
    (pkg / "_b.py").write_text("def f():\n    from wandb_inference._c import C\n")
    (pkg / "_c.py").write_text("_a = lazy_module('wandb_inference._a')\n")
    modules = {_module_name_in(tmp_path, p): p for p in pkg.rglob("*.py")}
    cycle = find_cycle(import_graph(modules))
    assert cycle is not None and set(cycle) == {"wandb_inference._a", "wandb_inference._b", "wandb_inference._c"}


def _module_name_in(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_only_the_public_door_and_the_cli_import_the_client_shells() -> None:
    graph = import_graph()
    allowed = {"wandb_inference"} | {m for m in graph if m.startswith("wandb_inference._cli")}
    assert _importers(graph, SHELLS) - SHELLS <= allowed


@pytest.mark.parametrize("subpackage", LOWER)
def test_lower_layers_never_import_upwards(subpackage: str) -> None:
    """The subpackages under the clients use the core modules, never the layers above."""
    graph = import_graph()
    above = SHELLS | CORE | {m for m in graph if m.startswith(("wandb_inference._cli", "wandb_inference.server"))}
    for module, deps in graph.items():
        if module.startswith(f"wandb_inference.{subpackage}"):
            assert not deps & above, (module, sorted(deps & above))


def test_the_local_server_uses_only_the_catalog_and_the_document() -> None:
    graph = import_graph()
    for module, deps in graph.items():
        if module.startswith("wandb_inference.server"):
            facade = {d for d in deps if not d.startswith("wandb_inference.server")}
            allowed = {"wandb_inference._catalog._table"} | {d for d in facade if d.startswith("wandb_inference._spec")}
            assert facade <= allowed, (module, sorted(facade))


def test_subpackage_inits_import_nothing() -> None:
    """`import wandb_inference._policy` (on the client's path) costs one docstring."""
    for package in ("_policy", "_streaming", "_types", "_catalog", "_tracing"):
        tree = ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8"))
        assert all(isinstance(node, ast.Expr) for node in tree.body), package


def test_hand_written_modules_stay_small() -> None:
    """ARCHITECTURE.md: about 400 lines a module; a module past 500 does two things."""
    generated = {"wandb_inference._catalog._constructors"}
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in _modules().items()
        if name not in generated
    }
    too_big = {name: lines for name, lines in sizes.items() if lines > 500}
    assert too_big == {}, too_big
