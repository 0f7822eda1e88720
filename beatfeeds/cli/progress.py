"""Import progress on the command line: a tqdm bar on a terminal, plain lines otherwise
(cron mail, CI logs and pipes get one readable line per chunk, no control characters)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from beatfeeds.core.files import count_rows


def row_progress(path: Path, stream: TextIO) -> Callable[[int | None], None]:
    """A callback for imports.import_file(progress=...): rows done so far; None to finish.

    The file's rows are counted at the first call, not before the import starts: by then
    the import is reading the file anyway (and, for a big one, parsing it in another
    process), so counting costs it nothing."""
    if stream.isatty():
        bar: list[tqdm] = []

        def show_bar(n: int | None) -> None:
            if not bar:
                total = count_rows(path)
                # A terminal that reports no size (a bare pty, some CI runners) would
                # otherwise get no bar at all from tqdm.
                size = shutil.get_terminal_size(fallback=(80, 24))
                bar.append(
                    tqdm(
                        total=total,
                        unit=" rows",
                        unit_scale=not total or total >= 100_000,
                        desc=path.name,
                        file=stream,
                        ncols=size.columns or 80,
                        nrows=size.lines or 24,
                        leave=True,
                    )
                )
            if n is None:
                if bar[0].total is not None and bar[0].n < bar[0].total:
                    bar[0].total = bar[0].n  # the estimate counted quoted newlines
                bar[0].close()
                return
            bar[0].update(n - bar[0].n)

        return show_bar

    totals: list[int | None] = []

    def show_line(n: int | None) -> None:
        if n is None:
            return
        if not totals:
            totals.append(count_rows(path))
        total = totals[0]
        if total:
            share = min(100, round(100 * n / total))
            stream.write(f"{path.name}: {n:,} of about {total:,} rows ({share}%)\n")
        else:
            stream.write(f"{path.name}: {n:,} rows\n")
        stream.flush()

    return show_line
