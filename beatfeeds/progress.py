"""Import progress on the command line: a tqdm bar on a terminal, plain lines otherwise
(cron mail, CI logs and pipes get one readable line per chunk, no control characters)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

_SCAN = 4 * 1024 * 1024


def estimate_rows(path: Path) -> int | None:
    """Data rows in a CSV, estimated from its line ends (quoted newlines count too)."""
    try:
        lines = last = 0
        crs = 0
        with open(path, "rb") as fh:
            while chunk := fh.read(_SCAN):
                lines += chunk.count(b"\n")
                crs += chunk.count(b"\r")
                last = chunk[-1]
        if lines == 0:
            lines = crs  # old Mac files end lines with CR alone
        if last not in (0x0A, 0x0D) and (lines or last):
            lines += 1  # no line end after the last row
        return max(lines - 1, 0)
    except OSError:
        return None


def row_progress(path: Path, stream: TextIO) -> Callable[[int | None], None]:
    """A callback for imports.import_file(progress=...): rows done so far; None to finish."""
    total = estimate_rows(path)
    if stream.isatty():
        # A terminal that reports no size (a bare pty, some CI runners) would otherwise get
        # no bar at all from tqdm.
        size = shutil.get_terminal_size(fallback=(80, 24))
        bar = tqdm(total=total, unit=" rows",
                   unit_scale=not total or total >= 100_000, desc=path.name, file=stream,
                   ncols=size.columns or 80, nrows=size.lines or 24, leave=True)

        def show_bar(n: int | None) -> None:
            if n is None:
                if bar.total is not None and bar.n < bar.total:
                    bar.total = bar.n  # the estimate counted quoted newlines
                bar.close()
                return
            bar.update(n - bar.n)

        return show_bar

    def show_line(n: int | None) -> None:
        if n is None:
            return
        if total:
            share = min(100, round(100 * n / total))
            stream.write(f"{path.name}: {n:,} of about {total:,} rows ({share}%)\n")
        else:
            stream.write(f"{path.name}: {n:,} rows\n")
        stream.flush()

    return show_line
