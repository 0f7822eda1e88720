"""Files beatfeeds writes: private to the service's user.

The instance folder holds raw data (the SQLite database with exact addresses and
coordinates, uploaded and downloaded incident files, rejected-row reports, dry-run mail to
residents), so everything beatfeeds creates there is readable by its own user only: folders
0700, files 0600, whatever the process's umask. Each creation point uses these helpers; an
existing folder keeps the mode an operator gave it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
DIR_MODE = 0o700


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
