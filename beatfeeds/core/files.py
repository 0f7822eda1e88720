"""Files beatfeeds writes: private to the service's user.

The instance folder holds raw data (the SQLite database with exact addresses and
coordinates, uploaded and downloaded incident files, rejected-row reports, dry-run mail to
residents), so everything beatfeeds creates there is readable by its own user only: folders
0700, files 0600, whatever the process's umask. Each creation point uses these helpers; an
existing folder keeps the mode an operator gave it.

Files beatfeeds reads are hashed and their rows estimated here too (`Tally`, `sha256_file`,
`estimate_rows`): one reading of the rule for uploads, polled sources and import runs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
DIR_MODE = 0o700
BLOCK_BYTES = 2**20  # files are read (hashed, copied) in blocks of this size


def private_dir(path: str | os.PathLike) -> Path:
    """Create `path` and any missing parents with mode 0700 (existing ones are left alone)."""
    path = Path(path)
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process made it first; it made it with these helpers too
        os.chmod(p, DIR_MODE)  # mkdir's mode passes through the umask
    return path


def create_private(path: str | os.PathLike) -> Path:
    """Create an empty file with mode 0600 if it does not exist (for SQLite, before it opens
    the file: its -wal and -shm files then take the same mode)."""
    path = Path(path)
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return path


def open_private(path: str | os.PathLike, mode: str = "wb", **kwargs) -> IO:
    """`open(path, mode)` for writing (`w`, `wb`, `a` ...), the file created or truncated
    with mode 0600 (an existing file is made 0600 as well)."""
    path = Path(path)
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` to a file of mode 0600 (text as UTF-8)."""
    with open_private(path, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


# ---- reading files: hashes and line counts ------------------------------------------------------
def line_ends(data: bytes) -> int:
    """Line ends in `data`: line feeds, or carriage returns where there are none (old Mac
    files end lines with CR alone)."""
    return data.count(b"\n") or data.count(b"\r")


class Tally:
    """The SHA-256, size and line ends of a file's bytes, given block by block."""

    def __init__(self):
        self._sha = hashlib.sha256()
        self.size = 0
        self.lines = 0

    def update(self, block: bytes) -> None:
        self._sha.update(block)
        self.size += len(block)
        self.lines += line_ends(block)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file (hex), read in blocks: the digest `Tally` gives while copying."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def estimate_rows(path: str | os.PathLike) -> int:
    """Rows in a file, from the line length of its first MiB (enough to choose a strategy)."""
    size = Path(path).stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(BLOCK_BYTES)
    lines = line_ends(head)
    return int(size * lines / len(head)) if head and lines else 0


def count_rows(path: str | os.PathLike) -> int | None:
    """Data rows in a CSV counted from all its line ends (a quoted newline counts too): the
    total of a progress bar. None when the file cannot be read."""
    try:
        lines = last = 0
        crs = 0
        with open(path, "rb") as fh:
            while chunk := fh.read(4 * BLOCK_BYTES):
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
