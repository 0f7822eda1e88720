"""The rejected-rows CSV: line, reason, then the row's own columns, formulas neutralised.

One writer for both places it is made: the report an import run writes (`imports`) and the
download of a past run's rejected rows (`records`). Staff can fix the rows in it and import
the file again.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Protocol, TextIO

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class RejectedRow(Protocol):
    """A rejection as a run reports it or the store keeps it."""

    line: int
    reason: str
    raw: str


def csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas in text we write to CSV (`=cmd|...` -> `'=cmd|...`).

    Plain numbers such as a longitude `-122.3` stay as they are.
    """
    if value and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def write_rejected_rows(
    fh: TextIO, header: list[str] | None, rejections: Iterable[RejectedRow]
) -> None:
    """Write the rejected rows to `fh` (opened with newline="").

    With the file's `header`, each row's text is split back into its columns; without it
    (None: the file is no longer at hand) the row is one `row` column."""
    w = csv.writer(fh)
    w.writerow(["line", "reason", *(map(csv_safe, header) if header is not None else ["row"])])
    for r in rejections:
        if header is not None:
            cells = next(csv.reader([r.raw]), []) if r.raw else []
        else:
            cells = [r.raw]
        w.writerow([r.line, csv_safe(r.reason), *map(csv_safe, cells)])
