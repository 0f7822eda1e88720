"""Where the package's own files are: inside the installed wheel, or at the repository root."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """`templates` or `data`: inside the installed wheel, or at the repository root."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name
