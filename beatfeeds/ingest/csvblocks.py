"""Streaming CSV record boundaries with the file line each record starts on (numpy, no parsing).

The file is read in blocks of bytes. In each block the record-ending line feeds are the ones
outside double quotes (an even number of quote characters before them), which is how every
spreadsheet and the `csv` module quote a value holding a line break. Each record gets its
byte range, the line it starts on, and its number of separators outside quotes, so that the
fast parser (pandas' C engine) sees only well-formed records and the rest go to the `csv`
module one by one. Memory is bounded by the block size (or the longest record).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

BLOCK_BYTES = 16 * 2**20
# A record may be this long at most (the csv module's field limit). Longer means a quote
# that never closes: its first line is handed over alone and reading resumes on the next.
MAX_RECORD_BYTES = 64 * 2**20
_QUOTE, _LF, _CR, _NUL = 34, 10, 13, 0


@dataclass
class Block:
    """Whole records of a file, the header excluded."""

    data: bytes
    starts: np.ndarray  # byte offset in `data` where each record starts
    ends: np.ndarray  # byte offset where it ends (exclusive, line break and CR excluded)
    lines: np.ndarray  # the file line each record starts on (the header is line 1)
    fields: np.ndarray  # separators outside quotes + 1
    suspect: np.ndarray  # holds a NUL or a bare CR outside quotes: let the csv module judge

    def __len__(self) -> int:
        return len(self.starts)

    def record(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.ends[i]]


def _outside_quotes(positions: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """Mask of positions preceded by an even number of quote characters."""
    if not len(quotes):
        return np.ones(len(positions), dtype=bool)
    return (np.searchsorted(quotes, positions) & 1) == 0


def split_block(
    buf: bytes, *, delimiter: int, first_line: int, final: bool
) -> tuple[Block, int, int]:
    """Records of `buf` -> (block, bytes consumed, line feeds consumed).

    Unless `final`, the tail after the last record-ending line feed is left for the next block.
    """
    arr = np.frombuffer(buf, dtype=np.uint8)
    quotes = np.flatnonzero(arr == _QUOTE)
    lf = np.flatnonzero(arr == _LF)
    record_lf = lf[_outside_quotes(lf, quotes)]
    if final:
        consumed = len(buf)
        ends = (
            record_lf
            if (len(record_lf) and record_lf[-1] == len(buf) - 1)
            else np.append(record_lf, len(buf))
        )
        lf_used = len(lf)
    else:
        if not len(record_lf):
            empty = np.zeros(0, dtype=np.int64)
            return Block(b"", empty, empty, empty, empty, np.zeros(0, bool)), 0, 0
        consumed = int(record_lf[-1]) + 1
        ends = record_lf
        lf_used = int(np.searchsorted(lf, consumed))
    ends = ends.astype(np.int64)
    starts = np.empty(len(ends), dtype=np.int64)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    # Line of each record start: the line feeds before it, counted in the whole block.
    lines = np.empty(len(ends), dtype=np.int64)
    lines[:1] = first_line
    lines[1:] = first_line + np.searchsorted(lf, ends[:-1]) + 1
    data = buf[:consumed]
    # CRLF: the CR belongs to the line break.
    has_cr = ends > starts
    has_cr[has_cr] = arr[ends[has_cr] - 1] == _CR
    ends = ends - has_cr
    delims = np.flatnonzero(arr[:consumed] == delimiter)
    delims = delims[_outside_quotes(delims, quotes)]
    fields = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
    suspect = np.zeros(len(ends), dtype=bool)
    odd = np.flatnonzero(arr[:consumed] == _NUL)
    cr = np.flatnonzero(arr[:consumed] == _CR)
    if len(cr):
        nxt = arr[np.minimum(cr + 1, consumed - 1)]
        nxt[cr + 1 >= consumed] = _LF
        bare = cr[(nxt != _LF) & _outside_quotes(cr, quotes)]
        odd = np.concatenate([odd, bare])
    if len(odd):
        idx = np.searchsorted(starts, odd, side="right") - 1
        suspect[idx[idx >= 0]] = True
    keep = ends > starts  # empty lines are not records
    block = Block(data, starts[keep], ends[keep], lines[keep], fields[keep], suspect[keep])
    return block, consumed, lf_used


def iter_blocks(
    fh: BinaryIO,
    *,
    delimiter: str,
    first_line: int,
    block_bytes: int = BLOCK_BYTES,
    max_record: int = MAX_RECORD_BYTES,
) -> Iterator[Block]:
    """Blocks of whole records from `fh`, positioned at the first record after the header."""
    d = ord(delimiter)
    carry = b""
    line = first_line
    while True:
        chunk = fh.read(block_bytes)
        final = not chunk
        buf = carry + chunk
        if not buf:
            return
        block, consumed, lf_used = split_block(buf, delimiter=d, first_line=line, final=final)
        carry = buf[consumed:]
        line += lf_used
        if len(block):
            yield block
        elif not final and len(carry) > max_record:
            # No record ends within max_record bytes: an unmatched quote. Hand over its first
            # line as a suspect record (the csv module will say what is wrong with it) and
            # go on from the next line, so the rows after it are not lost and memory stays
            # bounded.
            cut = carry.find(b"\n") + 1 or len(carry)
            record = carry[:cut].rstrip(b"\r\n")
            one = np.array([0], dtype=np.int64)
            yield Block(
                record,
                one * 0,
                one * 0 + len(record),
                one * 0 + line,
                one * 0 - 1,
                np.ones(1, dtype=bool),
            )
            line += carry[:cut].count(b"\n")
            carry = carry[cut:]
        if final:
            return


def header_end(head: bytes) -> int:
    """Byte offset just after the header record (its line break included), or -1."""
    arr = np.frombuffer(head, dtype=np.uint8)
    lf = np.flatnonzero(arr == _LF)
    ok = lf[_outside_quotes(lf, np.flatnonzero(arr == _QUOTE))]
    return int(ok[0]) + 1 if len(ok) else -1
