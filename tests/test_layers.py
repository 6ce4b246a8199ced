"""The package's layers never import upward, and no module imports itself in a circle.

docs/architecture.md#layers shows the same table. Every runtime import counts, the
function-level ones included (they run too, only later); imports under
``if TYPE_CHECKING:`` do not, since they never execute and only name types for
annotations. A new module must be given a layer here, or this test fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "resticm_core"

#: Lowest first. A module may import modules of its own layer or below.
LAYERS: dict[str, tuple[str, ...]] = {
    "foundation": (
        "errors",
        "model_keys",
        "phases",
        "secrets",
        "children",
        "process",
        "pipes",
        "trusted_path",
        "logcontext",
        "display",
        "reachability",
        "state",
        "locking",
        "plugin_discovery",
        "restic.locks",
        "inherited_env",
        "atomic_files",
        "backoff",
        "json_values",
    ),
    "contracts": ("hooks", "dumps", "notify.api", "hookspecs"),
    "config": (
        "config",
        "converter",
        "config_file",
        "config_check",
        "plugin_manager",
        # issue 18
        "policy",
        "restic_options",
        "config_schema",
        "config_show",
        "config_init",
        "config_merge",
        "config_interpolate",
        "config_sources",
        "jobs",
    ),
    "engines": (
        "restic",
        "restic.errors",
        "restic.environment",
        "restic.runner",
        "restic.facade",
        "restic.summaries",
        "preflight",
        "progress",
        "hook_lifecycle",
        "builtins",
        "builtins.*",
        "run_state",
        "workflow",
        "mirror",
        "notify",
        "notify.dispatch",
        "notify.events",
        "notifiers",
        "lockcheck",
        "monitoring",
        "snapshot_count",
        "snapshot_select",
        "restoring",
        "browse",
        "drill",
        "dump_stream",
        "logs",
        "testing",
    ),
    "front ends": (
        "",  # the package itself: resticm_core's public API
        "__main__",
        "console",
        "cli",
        "cli_types",
        "commands",
        "completion",
        "restore_commands",
        "dump_commands",
        "schedule",
        "schedule_jobs",
        "jobs_cli",
        "go_migration",
        "status",
        "report_text",
        "ansible_module",
    ),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer_of(module: str) -> int | None:
    for rank, names in enumerate(LAYERS.values()):
        for name in names:
            if name == module or (name.endswith(".*") and module.startswith(name[:-1])):
                return rank
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)
    return found


def _target(module: str, node: ast.ImportFrom, alias: str) -> str | None:
    """The package module an ``ImportFrom`` of *alias* loads, or None (not ours)."""
    if node.level == 0:
        if not (node.module or "").startswith("resticm_core"):
            return None
        base = (node.module or "").removeprefix("resticm_core").lstrip(".")
    else:
        package = (
            module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        )
        package = [p for p in package if p]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([node.module] if node.module else [])])
    candidate = f"{base}.{alias}".lstrip(".")
    return candidate if candidate in MODULES else base


def imports_of(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                target = _target(module, node, alias.name)
                if target is not None:
                    found.add(target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("resticm_core"):
                    name = alias.name.removeprefix("resticm_core").lstrip(".")
                    found.add(name if name in MODULES else "")
    found.discard(module)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer() -> None:
    missing = sorted(m or "resticm_core" for m in MODULES if _layer_of(m) is None)
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


def test_no_module_imports_upward() -> None:
    upward = []
    for module, targets in sorted(GRAPH.items()):
        own = _layer_of(module)
        for target in sorted(targets):
            other = _layer_of(target)
            if own is not None and other is not None and other > own:
                names = list(LAYERS)
                upward.append(
                    f"{module or 'resticm_core'} ({names[own]}) imports "
                    f"{target or 'resticm_core'} ({names[other]})"
                )
    assert not upward, "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_the_checker_sees_an_upward_and_a_circular_import() -> None:
    """The checks above are not vacuous: a planted violation is found."""
    planted = {**GRAPH, "errors": {*GRAPH["errors"], "workflow"}}
    assert any("errors" in c and "workflow" in c for c in _cycles(planted))
    assert _layer_of("errors") < _layer_of("workflow")  # type: ignore[operator]


@pytest.mark.parametrize("module", ["config", "hooks", "dumps", "notify.api"])
def test_what_plugins_and_models_import_stays_low(module: str) -> None:
    """The contracts and the models never load an engine (restic, workflow...)."""
    engines = set(LAYERS["engines"]) | set(LAYERS["front ends"])
    assert not (GRAPH[module] & engines), GRAPH[module] & engines
