"""The engine, its connections and transactions, migrations, and the write-lock wait.

SQLite lets one writer at a time; readers in WAL mode never wait. Everything that writes on
behalf of a web request runs under a short wait (write_wait), so a long import makes such a
request fail fast (the web layer answers 503 with Retry-After) instead of holding a thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from beatfeeds.core import identifiers
from beatfeeds.core.errors import Conflict
from beatfeeds.core.files import create_private
from beatfeeds.storage import schema as t

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


MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r'^revision = "([^"]+)"', re.M)
_DOWN_REVISION = re.compile(r'^down_revision = "([^"]+)"', re.M)
_SQLITE_PAGE_SIZE = 16384


# Constraints whose violation has a message of its own (the rest get the general one), by
# what the databases name in theirs: PostgreSQL the index, SQLite the table and column.
_CONSTRAINT_MESSAGES = {
    ("ux_beat_sets_one_active", "beat_sets.status"): (
        "Another beat map was published at the same time; nothing was changed. "
        "Reload the beat maps and try again."
    ),
}


def integrity_message(exc: IntegrityError) -> str:
    """What to tell a user when the database refuses a change as breaking its integrity."""
    text = str(exc.orig)
    for names, message in _CONSTRAINT_MESSAGES.items():
        if any(name in text for name in names):
            return message
    return (
        "That change conflicts with data already stored (a duplicate, or a reference to "
        "something that no longer exists); nothing was changed. Reload and try again."
    )


def make_engine(url: str) -> Engine:
    """An engine with the connection settings beatfeeds relies on."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            # It holds exact addresses and coordinates: 0600 from the start (SQLite gives
            # the -wal and -shm files the database file's mode).
            create_private(u.database)
        engine = create_engine(url, connect_args={"timeout": LOCK_WAIT})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            # A new database gets 16 KiB pages (an existing one keeps its own): bulk imports
            # write a third less and commit in half the time than with 4 KiB pages.
            cur.execute(f"PRAGMA page_size={_SQLITE_PAGE_SIZE}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT * 1000)}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        follow_write_wait(engine, "PRAGMA busy_timeout={ms}", int(LOCK_WAIT * 1000))
        return engine
    engine = create_engine(url, pool_pre_ping=True)
    follow_write_wait(engine, "SET lock_timeout = {ms}", 0)  # 0: PostgreSQL waits forever
    return engine


def _alembic_config(conn: Connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


# The write transaction each Database has open in this thread or task (see unit_of_work).
_OPEN: ContextVar[dict[int, Connection] | None] = ContextVar("beatfeeds_transactions", default=None)


class Database:
    """The engine and what every table group shares: transactions, schema revision, meta."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._identifier_key: bytes | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def database_files(self) -> tuple[Path, ...]:
        """The files of an SQLite database (with its WAL and shared-memory files), else ()."""
        db = self.engine.url.database if self.dialect == "sqlite" else None
        if not db or db == ":memory:":
            return ()
        return tuple(Path(db + suffix) for suffix in ("", "-wal", "-shm", "-journal"))

    def upgrade(self) -> tuple[str | None, str]:
        """Run migrations to head; returns (revision before, revision after)."""
        from alembic import command

        before = self.current_revision()
        with self.engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # Migrations that change a table copy it on SQLite (Alembic's batch mode);
                # with foreign keys on, dropping the old copy would cascade into the rows
                # that reference it. Off for the migration (it must precede the
                # transaction), checked before committing, and on again after.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()  # ends SQLAlchemy's autobegun transaction; SQLite had none
            try:
                with conn.begin():
                    command.upgrade(_alembic_config(conn), "head")
                    if sqlite:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
            finally:
                if sqlite:
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()
        return before, self.current_revision()

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()

    def head_revision(self) -> str:
        """The newest migration: the one revision no other revises (our history is linear)."""
        revisions, revised = set(), set()
        for path in (MIGRATIONS / "versions").glob("*.py"):
            text = path.read_text(encoding="utf-8")
            revisions.update(_REVISION.findall(text))
            revised.update(_DOWN_REVISION.findall(text))
        heads = revisions - revised
        if len(heads) != 1:
            raise RuntimeError(f"migrations have {len(heads)} heads: {sorted(heads)}")
        return heads.pop()

    def is_current(self) -> bool:
        return self.current_revision() == self.head_revision()

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(select(1))
        return True

    def check_writable(self, timeout: float = 1.0) -> str | None:
        """None when a write can start within `timeout` seconds; else why it cannot (the
        database is read-only, or another writer holds its lock). The write touches the
        schema revision row and is rolled back."""
        ms = max(int(timeout * 1000), 1)
        try:
            with self.engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={ms}")
                else:
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                try:
                    conn.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")
                finally:
                    conn.rollback()
                    if conn.dialect.name == "sqlite":  # back to the pool's own setting
                        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy)}")
        except DBAPIError as exc:
            reason = unavailable_reason(exc)
            if reason is None:
                raise
            return reason
        return None

    @contextmanager
    def transaction(
        self, rollback: bool = False, *, foreign_keys: bool = True
    ) -> Iterator[Connection]:
        """One database transaction; an import runs entirely inside one.

        With rollback=True everything is undone at the end (a dry run sees exact counters).
        foreign_keys=False: SQLite does not look up the parent of every row written (half
        the cost of writing a beat row); for an import, whose rows reference only the run
        it creates, the incidents it inserts and beat maps it checks under the write lock
        (`beat_sets_exist`). It deletes no parent row, so no cascade is missed.
        """
        with self.engine.connect() as conn:
            unchecked = not foreign_keys and conn.dialect.name == "sqlite"
            if unchecked:  # only outside a transaction does SQLite change this
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()  # ends SQLAlchemy's autobegun transaction; SQLite had none
            try:
                trans = conn.begin()
                try:
                    yield conn
                except BaseException:
                    trans.rollback()
                    raise
                if rollback:
                    trans.rollback()
                else:
                    trans.commit()
            finally:
                if unchecked:
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction, committed at the end (rolled back on error).

        On SQLite it takes the write lock as it starts (BEGIN IMMEDIATE) rather than at its
        first write, so what it reads is the state it writes on: two stores publishing a
        beat map at once run one after the other, not both on the same old active map.
        A duplicate key or a broken constraint the database refuses becomes Conflict, with
        a message a user can act on, not a server error.
        """
        open_now = _OPEN.get() or {}
        joined = open_now.get(id(self))
        if joined is not None:  # inside a unit of work: its transaction, its commit
            yield joined
            return
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    # pysqlite begins only before a write; this begins now, and pysqlite
                    # still commits or rolls back what it sees open.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                token = _OPEN.set({**open_now, id(self): conn})
                try:
                    yield conn
                finally:
                    _OPEN.reset(token)
        except IntegrityError as exc:
            raise Conflict(integrity_message(exc)) from exc

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """Several repository writes as one transaction: all of them or none.

        Every `begin()` inside the block (in this thread or task) joins the block's
        transaction instead of committing on its own, so a use case of several steps
        (publish a beat map, record its boundary changes, audit it) cannot stop half done.
        Reads made through other connections inside the block see the state before it.
        """
        with self.begin():
            yield

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self.begin() as conn:
            conn.execute(delete(t.meta).where(t.meta.c.key == key))
            conn.execute(insert(t.meta).values(key=key, value=value))

    def identifier_key(self) -> bytes:
        """The instance key published ids are derived under (see beatfeeds.core.identifiers).

        Migration 0008 creates it; a database migrated only part way gets it here, once:
        every store on the database reads the same row, and of two stores creating it at
        the same time the second finds the first one's (the primary key refuses a second).
        """
        if self._identifier_key is None:
            text = self.get_meta(identifiers.KEY_META)
            if text is None:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(
                            insert(t.meta).values(
                                key=identifiers.KEY_META, value=identifiers.new_key()
                            )
                        )
                except IntegrityError:
                    pass  # another store made it first
                text = self.get_meta(identifiers.KEY_META)
            self._identifier_key = identifiers.parse_key(text)
        return self._identifier_key

    def dispose(self) -> None:
        """Close the pool's connections (a forked process or a test is done with them)."""
        self.engine.dispose()


class Repository:
    """Queries of one table group, over the shared Database."""

    def __init__(self, db: Database):
        self.db = db
        self.engine = db.engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name
