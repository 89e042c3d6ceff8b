"""The import structure of mlproj: no cycles (imports inside functions count) and no reach
between subsystems that must not know each other. Read from the source with ast, no import."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import mlproj

SRC = Path(mlproj.__file__).parent

# Subsystem -> subsystems it must never import (directly or inside a function).
FORBIDDEN = {
    "tracking": {"sources", "envs", "backends", "local_run", "spec", "docker", "cli", "api"},
    "envs": {"tracking", "backends", "local_run", "cli", "api", "sources"},
    "spec": {"sources", "envs", "tracking", "backends", "local_run", "docker", "cli", "api"},
    "sources": {"spec", "envs", "tracking", "backends", "local_run", "docker", "cli", "api"},
    "docker": {"envs", "tracking", "backends", "local_run", "sources", "cli", "api"},
}
# Modules every subsystem may use: they depend on nothing in mlproj but errors and settings.
NEUTRAL = (
    "errors", "redaction", "fsutil", "locations", "statuses", "tags", "home", "report", "shell",
    "settings", "hashing", "records",
)  # fmt: skip


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for imported in targets:
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: set(_imports(name, path, modules)) for name, path in modules.items()}


def _subsystem(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_subsystems_do_not_reach_sideways() -> None:
    reaches = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if _subsystem(target) in FORBIDDEN.get(_subsystem(module), ())
    )
    assert reaches == []


def test_neutral_modules_depend_only_on_errors_and_settings() -> None:
    # settings is the one home of MLPROJ_* variables, itself on errors alone.
    graph = _graph()
    assert graph["mlproj.settings"] <= {"mlproj.errors"}
    for name in NEUTRAL:
        assert graph[f"mlproj.{name}"] <= {"mlproj.errors", "mlproj.settings"}, name
