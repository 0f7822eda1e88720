"""The tests' own layout: no test module imports another test module or a conftest.py.
Fixtures shared by several modules live in conftest.py files, helpers in tests/support."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_no_test_module_imports_another_test_module_or_a_conftest():
    offending = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, module in _imported_modules(tree):
            parts = module.split(".")
            if parts[0] != "tests":
                continue
            if any(p.startswith("test_") or p == "conftest" for p in parts[1:]):
                offending.append(f"{path.relative_to(TESTS.parent)}:{line}: {module}")
    assert offending == []
