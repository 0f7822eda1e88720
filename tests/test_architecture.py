"""The package's shape, checked: rooms import only downward, no import cycle, no giant module.

docs/architecture.md draws the rooms; this test is its enforcement. Imports are read from the
syntax tree of every module, including imports inside functions (a lazy import that dodges a
cycle is still a cycle), but not those under `if TYPE_CHECKING:` (annotations only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "beatfeeds"
MAX_LINES = 600

# Which rooms each room may import (besides itself). The lower rooms hold no SQL and no
# Flask and never reach up; services take a store, they do not import storage; the faces
# (web, cli, and the wiring modules app, jobs, scheduler) may use anything below them.
LOWER = {
    "core": set(),
    "ingest": {"core"},
    "geo": {"core", "ingest"},
    "publish": {"core", "ingest", "geo"},
    "delivery": {"core", "publish"},
}
ALLOWED = {
    **LOWER,
    "storage": {"core", "ingest", "geo", "publish"},
    "services": {"core", "ingest", "geo", "publish", "delivery"},
    "web": {"core", "ingest", "geo", "publish", "delivery", "services", "storage", "app"},
    "cli": {
        "core",
        "ingest",
        "geo",
        "publish",
        "delivery",
        "services",
        "storage",
        "app",
        "jobs",
        "scheduler",
        "web",
    },
    "app": {"core", "ingest", "geo", "publish", "delivery", "services", "storage", "web"},
    "jobs": {"core", "ingest", "geo", "publish", "delivery", "services", "storage"},
    "scheduler": {"core", "jobs"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if "migrations" in rel.parts:
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str) -> set[str]:
    """The beatfeeds modules that module `name` imports (the most specific module named)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from package import submodule` uses the submodule, not the package's __init__
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module
                for alias in node.names
            ]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and target != "beatfeeds":
                out.add(target)
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def room(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "beatfeeds"


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_reader_finds_every_room():
    rooms = {room(name) for name in MODULES}
    assert set(ALLOWED) - {"app", "jobs", "scheduler"} <= rooms
    assert GRAPH["beatfeeds.app"], "the graph reader found no import in app.py"


def test_no_import_cycle():
    assert _cycle() is None, " -> ".join(_cycle() or [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_rooms_import_only_downward(name):
    own = room(name)
    if own == "beatfeeds":
        return
    allowed = ALLOWED[own] | {own}
    wrong = sorted(dep for dep in GRAPH[name] if room(dep) not in allowed)
    assert not wrong, f"{name} ({own}) may not import {wrong}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_giant_module(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it along its seams"


STORE_RECEIVERS = {"store", "store()", "ctx.store", "self.store", "run.store", "p.store", "s"}


def test_the_package_names_the_table_group_of_every_store_call():
    """Outside storage, `store.incidents.add_incidents(...)`, never the facade's shorthand."""
    from beatfeeds.storage import SQLStore

    store = SQLStore.from_url("sqlite://")
    shorthand = set(store.__dict__["_forward"])
    assert len(shorthand) > 100  # the reader sees the facade's names
    found = []
    for name, path in MODULES.items():
        if room(name) == "storage":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in shorthand
                and ast.unparse(node.value) in STORE_RECEIVERS
            ):
                found.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert not found, "name the repository: " + ", ".join(found)


def test_a_cycle_and_an_upward_import_are_caught(monkeypatch):
    """The checks can fail: a crafted graph with a cycle and a lower room reaching up."""
    fake = {"beatfeeds.core.a": {"beatfeeds.core.b"}, "beatfeeds.core.b": {"beatfeeds.core.a"}}
    monkeypatch.setattr(f"{__name__}.GRAPH", fake)
    assert _cycle() == ["beatfeeds.core.a", "beatfeeds.core.b", "beatfeeds.core.a"]
    assert room("beatfeeds.services.imports") not in ALLOWED["ingest"] | {"ingest"}
