"""Reading an incident file: its encoding and delimiter, its header, and its records in chunks.

Two readers share one set of record checks (`check_cells`): `iter_raw_rows` yields one row at
a time as {column: text} (previews, the demo), `iter_raw_frames` yields chunks of records as
columns for the fast path (`columnar`), finding record boundaries with numpy (`csvblocks`) and
parsing well-formed records with pandas' C engine; the rest go to the `csv` module one by one.
Unreadable records become rejections with the line they start on, never errors.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from beatfeeds.core.errors import UnusableFile
from beatfeeds.core.models import Rejection
from beatfeeds.ingest import csvblocks

MAX_FIELD_BYTES = 1_000_000  # a longer field rejects its row, never the file
_SNIFF_BYTES = 64 * 1024
csv.field_size_limit(64 * 1024 * 1024)


def sniff_text(path: Path) -> tuple[str, str]:
    """(encoding, delimiter) of a CSV file; UnusableFile when it is empty or binary."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head.strip():
        raise UnusableFile("The file is empty.")
    if b"\x00" in head:
        raise UnusableFile("The file is not text (it contains NUL bytes); export it as CSV.")
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    else:
        try:
            head.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the sniff boundary is still UTF-8.
            encoding = "utf-8" if exc.start >= len(head) - 3 else "cp1252"
    text = head.decode(encoding, errors="replace")
    first = text.replace("\r\n", "\n").replace("\r", "\n").split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=counts.get)
    if counts[delimiter] == 0:
        delimiter = ","
    return encoding, delimiter


def read_header(path: Path) -> list[str]:
    """The file's column names (spaces and a byte-order mark stripped)."""
    encoding, delimiter = sniff_text(path)
    with open(path, newline="", encoding=encoding, errors="replace") as fh:
        try:
            header = next(csv.reader(fh, delimiter=delimiter))
        except (StopIteration, csv.Error) as exc:
            raise UnusableFile(f"Cannot read a header line: {exc}") from exc
    return [h.strip().lstrip("\ufeff") for h in header]


# ---- records and their checks -----------------------------------------------------------------
def csv_rows(lines, delimiter: str, first_line: int) -> Iterator[tuple[int, list[str] | Exception]]:
    """(start line, cells or the csv error) for each record the csv module reads from `lines`."""
    reader = csv.reader(lines, delimiter=delimiter)
    prev_end = 0
    while True:
        start = first_line + prev_end
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            prev_end = reader.line_num
            yield start, exc
            continue
        prev_end = reader.line_num
        yield start, cells


def check_cells(
    start: int,
    cells: list[str] | Exception,
    width: int,
    max_field: int,
    rejections: list[Rejection],
) -> bool:
    """True when a record can be used; otherwise a rejection is recorded (blank lines: neither)."""
    if isinstance(cells, Exception):
        rejections.append(Rejection(start, f"unreadable CSV: {cells}"))
        return False
    if not cells or (len(cells) == 1 and not cells[0].strip()):
        return False  # blank line
    if len(cells) != width:
        rejections.append(
            Rejection(start, f"has {len(cells)} fields, the header has {width}", raw_text(cells))
        )
        return False
    if any(len(c) > max_field for c in cells):
        rejections.append(
            Rejection(
                start, f"a field is longer than {max_field} characters", raw_text(cells)[:200]
            )
        )
        return False
    return True


def raw_text(cells: list[str]) -> str:
    """A row's cells as one CSV line (at most 2,000 characters), for the rejection report."""
    buf = io.StringIO()
    csv.writer(buf).writerow(cells)
    return buf.getvalue().rstrip("\r\n")[:2000]


# ---- one row at a time ------------------------------------------------------------------------
@dataclass
class RawRow:
    """One record as {column: text}, with the file line it starts on."""

    line: int
    values: dict[str, str]


def iter_raw_rows(path: Path, rejections: list[Rejection]) -> Iterator[RawRow]:
    """Rows as {column: text} with the file line each starts on; unreadable rows are rejected."""
    encoding, delimiter = sniff_text(path)
    with open(path, newline="", encoding=encoding, errors="replace") as fh:
        records = csv_rows(fh, delimiter, first_line=1)
        _, first = next(records)
        header = [h.strip().lstrip("\ufeff") for h in first]
        width = len(header)
        for start, cells in records:
            if check_cells(start, cells, width, MAX_FIELD_BYTES, rejections):
                yield RawRow(start, dict(zip(header, cells, strict=True)))


# ---- chunks of records as columns -------------------------------------------------------------
@dataclass
class RawFrame:
    """One chunk of records: the needed columns (str), the line each starts on, and a way back
    to all of a record's cells (for rejections)."""

    frame: pd.DataFrame  # columns: header positions
    lines: np.ndarray
    refs: list  # per row: a record number in `block`, or the row's cells
    block: csvblocks.Block | None
    encoding: str
    delimiter: str
    records: int  # records read, rejected ones included

    def cells(self, i: int) -> list[str]:
        ref = self.refs[i]
        if isinstance(ref, list):
            return ref
        text = self.block.record(ref).decode(self.encoding, errors="replace")
        for _, cells in csv_rows(io.StringIO(text, newline=""), self.delimiter, 0):
            return cells if isinstance(cells, list) else [text]
        return [text]


def _cells_frame(rows: list[list[str]], needed: list[int]) -> pd.DataFrame:
    return pd.DataFrame({i: [r[i] for r in rows] for i in needed}, dtype=object)


def iter_raw_frames(
    path: Path,
    *,
    encoding: str,
    delimiter: str,
    width: int,
    needed: list[int],
    chunk_rows: int,
    max_field: int,
    rejections: list[Rejection],
    block_bytes: int = csvblocks.BLOCK_BYTES,
    max_record: int = csvblocks.MAX_RECORD_BYTES,
) -> Iterator[RawFrame]:
    """The file's records after the header, in chunks of at most `chunk_rows`."""
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
        bare_cr = head.count(b"\r") != head.count(b"\r\n")
        end = csvblocks.header_end(head)
        if bare_cr or end < 0:
            # Old Mac line ends (or a header longer than 64 KiB): the csv module, streaming.
            yield from _csv_module_frames(
                path, encoding, delimiter, width, needed, chunk_rows, max_field, rejections
            )
            return
        fh.seek(end)
        first_line = 1 + head[:end].count(b"\n")
        for block in csvblocks.iter_blocks(
            fh,
            delimiter=delimiter,
            first_line=first_line,
            block_bytes=block_bytes,
            max_record=max_record,
        ):
            for a in range(0, len(block), chunk_rows):
                yield _block_frame(
                    block,
                    a,
                    min(a + chunk_rows, len(block)),
                    encoding,
                    delimiter,
                    width,
                    needed,
                    max_field,
                    rejections,
                )


def _block_frame(
    block: csvblocks.Block,
    a: int,
    b: int,
    encoding: str,
    delimiter: str,
    width: int,
    needed: list[int],
    max_field: int,
    rejections: list[Rejection],
) -> RawFrame:
    length = block.ends[a:b] - block.starts[a:b]
    good = (block.fields[a:b] == width) & ~block.suspect[a:b] & (length <= max_field)
    good &= ~((block.fields[a:b] == 1) & (length < 64))  # maybe a line of spaces: csv decides
    good_idx = np.flatnonzero(good) + a
    frame = None
    if len(good_idx):
        if len(good_idx) == b - a:
            payload = block.data[block.starts[a] : block.ends[b - 1]]
        else:
            payload = b"\n".join(block.data[block.starts[i] : block.ends[i]] for i in good_idx)
        try:
            frame = pd.read_csv(
                io.BytesIO(payload),
                sep=delimiter,
                header=None,
                names=list(range(width)),
                usecols=needed,
                dtype=str,
                na_filter=False,
                keep_default_na=False,
                skip_blank_lines=True,
                encoding=encoding,
                encoding_errors="replace",
                engine="c",
                quotechar='"',
                doublequote=True,
            )
        except (ValueError, pd.errors.ParserError):
            frame = None
        if frame is not None and len(frame) != len(good_idx):
            frame = None
    if frame is None:  # let the csv module read every record of this chunk
        good_idx = np.zeros(0, dtype=np.int64)
        others = np.arange(a, b)
    else:
        others = np.flatnonzero(~good) + a
    lines = block.lines[good_idx]
    refs: list = good_idx.tolist()
    extra_rows, extra_lines = [], []
    for i in others:
        text = block.record(i).decode(encoding, errors="replace")
        for start, cells in csv_rows(io.StringIO(text, newline=""), delimiter, int(block.lines[i])):
            if check_cells(start, cells, width, max_field, rejections):
                extra_rows.append(cells)
                extra_lines.append(start)
    if frame is None:
        frame = pd.DataFrame({i: pd.Series(dtype=object) for i in needed})
    if extra_rows:
        frame = pd.concat([frame, _cells_frame(extra_rows, needed)], ignore_index=True)
        lines = np.concatenate([lines, np.array(extra_lines, dtype=np.int64)])
        refs = refs + extra_rows
        order = np.argsort(lines, kind="stable")
        frame = frame.iloc[order].reset_index(drop=True)
        lines = lines[order]
        refs = [refs[k] for k in order]
    return RawFrame(frame, lines, refs, block, encoding, delimiter, b - a)


def _csv_module_frames(
    path, encoding, delimiter, width, needed, chunk_rows, max_field, rejections
) -> Iterator[RawFrame]:
    with open(path, newline="", encoding=encoding, errors="replace") as fh:
        rows = csv_rows(fh, delimiter, 1)
        next(rows, None)  # the header
        batch, lines, read = [], [], 0
        for start, cells in rows:
            read += 1
            if check_cells(start, cells, width, max_field, rejections):
                batch.append(cells)
                lines.append(start)
            if read >= chunk_rows:
                yield RawFrame(
                    _cells_frame(batch, needed),
                    np.array(lines, dtype=np.int64),
                    batch,
                    None,
                    encoding,
                    delimiter,
                    read,
                )
                batch, lines, read = [], [], 0
        yield RawFrame(
            _cells_frame(batch, needed),
            np.array(lines, dtype=np.int64),
            batch,
            None,
            encoding,
            delimiter,
            read,
        )
