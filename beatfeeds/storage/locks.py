"""How long database writes wait for another writer's lock, and how to tell a refused write.

SQLite lets one writer at a time; readers in WAL mode never wait. Everything that writes on
behalf of a web request runs under a short wait (write_wait), so a long import makes such a
request fail fast (the web layer answers 503 with Retry-After) instead of holding a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import Engine, event

LOCK_WAIT = 30.0  # seconds a write waits for another writer's lock, unless write_wait says less

# What SQLite and PostgreSQL say when they refuse a write for now (not a bug of ours).
_UNAVAILABLE = (
    ("readonly database", "read-only"),
    ("read-only transaction", "read-only"),
    ("database is locked", "locked by another writer"),
    ("database is busy", "busy"),
    ("lock timeout", "locked by another writer"),
    ("could not obtain lock", "locked by another writer"),
    ("disk i/o error", "unwritable (disk I/O error)"),
    ("database or disk is full", "full"),
)


def unavailable_reason(exc: BaseException) -> str | None:
    """ "read-only", "locked by another writer"... when `exc` is the database refusing a
    write for now; None for any other error."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    for needle, reason in _UNAVAILABLE:
        if needle in text:
            return reason
    return None


_write_wait: ContextVar[float | None] = ContextVar("beatfeeds_write_wait", default=None)


@contextmanager
def write_wait(seconds: float | None) -> Iterator[None]:
    """Within this block, connections taken from any store's pool wait at most `seconds`
    for another writer's lock (SQLite's busy timeout, PostgreSQL's lock_timeout) before the
    write fails as "database is locked" (None: the default, LOCK_WAIT on SQLite).

    Web requests run under a short wait, so a long import cannot hold a request thread for
    half a minute per visitor; background jobs keep the long one.
    """
    token = _write_wait.set(seconds)
    try:
        yield
    finally:
        _write_wait.reset(token)


def set_write_wait(seconds: float | None):
    """Like write_wait, for code that brackets a request with two hooks; returns the token
    that reset_write_wait takes."""
    return _write_wait.set(seconds)


def reset_write_wait(token) -> None:
    _write_wait.reset(token)


def follow_write_wait(engine: Engine, statement: str, default_ms: int) -> None:
    """Give each connection, as it leaves the pool, the lock wait that write_wait asks for
    (one statement only when it differs from the connection's current one)."""

    @event.listens_for(engine, "checkout")
    def _lock_wait(dbapi_conn, record, _proxy):  # pragma: no cover - trivial
        seconds = _write_wait.get()
        ms = default_ms if seconds is None else max(int(seconds * 1000), 0)
        if statement.startswith("SET") and seconds is not None:
            ms = max(ms, 1)  # lock_timeout 0 would mean no limit at all
        if record.info.get("lock_wait_ms", default_ms) != ms:
            cur = dbapi_conn.cursor()
            cur.execute(statement.format(ms=ms))
            cur.close()
            if statement.startswith("SET"):
                dbapi_conn.commit()  # psycopg opened a transaction for the SET
            record.info["lock_wait_ms"] = ms
