"""The geo room stands on its own: it imports only core, ingest and itself."""

from __future__ import annotations

import ast
from pathlib import Path

import beatfeeds.geo

ALLOWED = ("beatfeeds.core", "beatfeeds.ingest", "beatfeeds.geo")


def beatfeeds_imports(path: Path) -> set[str]:
    """Every beatfeeds module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("beatfeeds")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("beatfeeds"):
            found.add(node.module)
    return found


def test_geo_imports_nothing_above_it():
    room = Path(beatfeeds.geo.__file__).parent
    files = sorted(room.glob("*.py"))
    assert {f.stem for f in files} >= {"beatfiles", "checks", "diff", "edits", "spatial"}
    wrong = {
        f"{f.name}: {name}"
        for f in files
        for name in beatfeeds_imports(f)
        if not (name in ALLOWED or name.startswith(tuple(a + "." for a in ALLOWED)))
    }
    assert not wrong
