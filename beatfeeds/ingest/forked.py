"""Run a generator in a child process and read its items here, so that CPU-bound work on both
sides (parsing in the child, database writes in the parent) uses two cores instead of taking
turns on the GIL.

The child is forked: it starts at once, with everything the generator needs already in
memory, and nothing has to be pickled to start it. Items come back pickled through a pipe.
The child never touches what it inherited beyond the generator (database connections stay
the parent's), and leaves with `os._exit`, so no inherited finaliser or atexit hook runs.
If the parent dies (even by SIGKILL) the child's next write fails and it exits; if the
parent stops reading early, it kills the child.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = "done"
_ITEM = "item"
_FAILED = "failed"


def available() -> bool:
    """Whether this platform can fork (Linux, the BSDs; not Windows). macOS can, but forking
    a process with threads there is unsafe, so it is not used."""
    return "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin"


class ChildFailed(RuntimeError):
    """The child died without saying why (killed, out of memory)."""


class iterate:  # noqa: N801 - used like a function, in a with statement
    """`with iterate(make) as items:` the items of `make()`, produced in a forked child
    process started at once, in order. An exception in the child is raised here (the same
    exception when it can be pickled). Leaving the block stops the child."""

    def __init__(self, make: Callable[[], Iterator[T]]):
        ctx = multiprocessing.get_context("fork")
        self._reader, writer = ctx.Pipe(duplex=False)
        self._child = ctx.Process(
            target=_child, args=(make, self._reader, writer), daemon=True, name="beatfeeds-parse"
        )
        self._child.start()
        writer.close()

    def __enter__(self) -> Iterator[T]:
        return self._items()

    def __exit__(self, *exc) -> None:
        self._reader.close()
        if self._child.is_alive():
            self._child.kill()
        self._child.join()

    def _items(self) -> Iterator[T]:
        while True:
            try:
                kind, payload = self._reader.recv()
            except EOFError:
                self._child.join()
                raise ChildFailed(
                    f"the parsing process ended unexpectedly (exit code {self._child.exitcode})"
                ) from None
            if kind == _ITEM:
                yield payload
            elif kind == _DONE:
                return
            else:
                raise payload


def _child(make, reader, writer) -> None:  # pragma: no cover - runs in the child process
    reader.close()
    code = 0
    try:
        for item in make():
            writer.send((_ITEM, item))
        writer.send((_DONE, None))
    except BrokenPipeError:
        code = 1  # the parent is gone
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        code = 1
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that cannot travel: its text can
            exc = RuntimeError("".join(traceback.format_exception(exc)))
        try:
            writer.send((_FAILED, exc))
        except (BrokenPipeError, OSError):
            pass
    finally:
        try:
            writer.close()
        finally:
            os._exit(code)
