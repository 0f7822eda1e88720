"""The ingest room (issue 15): one implementation of each parsing rule and of the row
fingerprint, shared by the per-row and the column-wise paths; one rejected-rows CSV writer;
and no module of `beatfeeds.ingest` reaching up into services, storage or the faces."""

from __future__ import annotations

import ast
import csv
import io
from datetime import datetime
from pathlib import Path

import pytest

from beatfeeds.core.models import IncidentRow, Rejection
from beatfeeds.ingest import columnar
from beatfeeds.ingest.fields import row_hash
from beatfeeds.ingest.report import csv_safe, write_rejected_rows

INGEST = Path(__file__).resolve().parents[2] / "beatfeeds" / "ingest"
ABOVE = ("beatfeeds.services", "beatfeeds.storage", "beatfeeds.web", "beatfeeds.cli")
ALLOWED = ("beatfeeds.core", "beatfeeds.ingest")


def _imported(path: Path) -> set[str]:
    """Every beatfeeds module a file imports, at module level or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "beatfeeds" or m.startswith("beatfeeds.")}


@pytest.mark.parametrize("path", sorted(INGEST.glob("*.py")), ids=lambda p: p.name)
def test_ingest_modules_import_only_core_and_ingest(path):
    mods = _imported(path)
    assert not [m for m in mods if m.startswith(ABOVE)], f"{path.name} reaches up: {mods}"
    assert all(m.startswith(ALLOWED) for m in mods), mods


def test_the_column_wise_fingerprint_is_the_per_row_one():
    rows = [
        IncidentRow(
            line=2,
            source="t",
            external_id="A1",
            reported_at=datetime(2016, 3, 26, 4, 9),
            occurred_at=None,
            category_text="THEFT",
            description="Theft from car",
            address="1900 E JEFFERSON ST",
            lat=47.6062,
            lon=-122.3321,
            source_beat="K3",
            sensitive=False,
            classification_texts=("x", "y"),
        ),
        IncidentRow(
            line=3,
            source="t",
            external_id="A2",
            reported_at=None,
            occurred_at=datetime(2016, 3, 25, 20, 9, 59),
            category_text="",
            description="ÉTÉ \u2014 unicode",
            address="",
            lat=None,
            lon=None,
            source_beat=None,
            sensitive=True,
            classification_texts=("", "z"),
        ),
    ]
    frame = columnar._rows_frame(rows, 2)
    assert [h.hex() for h in columnar.row_hashes(frame, 2)] == [row_hash(r) for r in rows]


def test_one_writer_makes_the_rejected_rows_csv_with_and_without_the_header():
    rejections = [
        Rejection(2, "=HYPERLINK(1)", '7,"a, b",=cmd|x,-122.3'),
        Rejection(5, "unreadable CSV: x", ""),
    ]
    with_header = io.StringIO()
    write_rejected_rows(with_header, ["id", "=name", "what", "lon"], rejections)
    assert list(csv.reader(io.StringIO(with_header.getvalue()))) == [
        ["line", "reason", "id", "'=name", "what", "lon"],
        ["2", "'=HYPERLINK(1)", "7", "a, b", "'=cmd|x", "-122.3"],
        ["5", "unreadable CSV: x"],
    ]
    without = io.StringIO()
    write_rejected_rows(without, None, rejections)
    assert list(csv.reader(io.StringIO(without.getvalue()))) == [
        ["line", "reason", "row"],
        ["2", "'=HYPERLINK(1)", '7,"a, b",=cmd|x,-122.3'],
        ["5", "unreadable CSV: x", ""],
    ]
    assert csv_safe("-122.3") == "-122.3" and csv_safe("-1+2") == "'-1+2"
