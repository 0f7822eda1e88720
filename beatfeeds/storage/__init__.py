"""The storage layer: the only module with SQL. SQLAlchemy Core over SQLite or PostgreSQL."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import (
    Connection,
    Engine,
    Index,
    String,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from beatfeeds.core import identifiers
from beatfeeds.core.errors import BeatNotFound, Conflict, NoActiveBeatMap, NotFound
from beatfeeds.core.files import create_private
from beatfeeds.core.models import (
    COUNTERS,
    Beat,
    BeatSet,
    FeedEntry,
    ImportRun,
    IncidentRow,
    Rejection,
    User,
)
from beatfeeds.ingest.columnar import format_datetimes
from beatfeeds.publish.privacy import snap_point
from beatfeeds.storage import schema as t
from beatfeeds.storage.boundaries import BoundaryStoreMixin
from beatfeeds.storage.email import EmailStoreMixin
from beatfeeds.storage.locks import (  # noqa: F401 (the storage layer's own names)
    LOCK_WAIT,
    follow_write_wait,
    reset_write_wait,
    set_write_wait,
    unavailable_reason,
    write_wait,
)
from beatfeeds.storage.outbound import OutboundStoreMixin
from beatfeeds.storage.public import PublicStoreMixin
from beatfeeds.storage.records import RecordsStoreMixin

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r'^revision = "([^"]+)"', re.M)
_DOWN_REVISION = re.compile(r'^down_revision = "([^"]+)"', re.M)
_IMPORT_CACHE_KIB = 256 * 1024  # SQLite page cache while an import runs
_SORT_CACHE_KIB = 2 * 1024  # and while it rebuilds indexes (see rebuild_incident_indexes)
_SQLITE_PAGE_SIZE = 16384
_BULK_LOAD_ROWS = 20_000  # from this size on, an import into a smaller table defers indexes
_KEY_BATCH = 500  # keys per IN (...) query, well under every backend's parameter limit

# Audit actions that change nothing a feed shows, or whose effect the feed stamps already see
# (imports write incident rows and an import run). Every other action marks feeds as possibly
# changed: a new kind of staff action is covered until someone proves it need not be.
# Sign-ins are here above all: a stranger writes them, and must not make feeds rebuild.
_QUIET_AUDIT = (
    "auth.",
    "users.",
    "presets.",
    "sources.",
    "outbound.",
    "outbox.",
    "alerts.",
    "incidents.upload",
    "incidents.map",
    "incidents.cancel",
    "incidents.import",
    "incidents.remove-files",
)
STAFF_CHANGE_META = "feeds.staff_change"


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


class SQLStore(
    BoundaryStoreMixin, RecordsStoreMixin, PublicStoreMixin, OutboundStoreMixin, EmailStoreMixin
):
    """Every query beatfeeds runs. Methods take and return plain values and dataclasses."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._beats_cache: dict[int, list[Beat]] = {}
        self._beats_stamp: dict[int, tuple] = {}
        self._identifier_key: bytes | None = None

    @classmethod
    def from_url(cls, url: str) -> SQLStore:
        return cls(make_engine(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def database_files(self) -> tuple[Path, ...]:
        """The files of an SQLite database (with its WAL and shared-memory files), else ()."""
        db = self.engine.url.database if self.dialect == "sqlite" else None
        if not db or db == ":memory:":
            return ()
        return tuple(Path(db + suffix) for suffix in ("", "-wal", "-shm", "-journal"))

    # ---- schema -------------------------------------------------------------------------
    # Alembic is imported only to migrate: every CLI command checks the revision, and
    # importing Alembic for that would add a fifth of a second to each.
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

    # ---- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
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

    # ---- beat maps ----------------------------------------------------------------------
    def create_beat_set(
        self,
        name: str,
        beats: Sequence[Beat],
        *,
        effective_date: date | None,
        source_filename: str | None,
        created_by: str | None,
        now: datetime,
    ) -> int:
        """Store a new draft beat map with its beats; returns its id."""
        with self.engine.begin() as conn:
            set_id = conn.execute(
                insert(t.beat_sets)
                .values(
                    name=name,
                    status="draft",
                    effective_date=effective_date,
                    source_filename=source_filename,
                    created_at=now,
                    created_by=created_by,
                )
                .returning(t.beat_sets.c.id)
            ).scalar_one()
            conn.execute(
                insert(t.beats),
                [
                    {
                        "beat_set_id": set_id,
                        "code": b.code,
                        "sector": b.sector,
                        "precinct": b.precinct,
                        "name": b.name,
                        "geometry_wkb": shapely.to_wkb(b.geometry),
                    }
                    for b in beats
                ],
            )
        return set_id

    def _beat_set_from_row(self, row, count: int = 0) -> BeatSet:
        return BeatSet(
            id=row.id,
            name=row.name,
            status=row.status,
            effective_date=row.effective_date,
            created_at=row.created_at,
            created_by=row.created_by,
            published_at=row.published_at,
            beat_count=count,
        )

    def list_beat_sets(self) -> list[BeatSet]:
        counts = (
            select(t.beats.c.beat_set_id, func.count().label("n"))
            .group_by(t.beats.c.beat_set_id)
            .subquery()
        )
        q = (
            select(t.beat_sets, counts.c.n)
            .outerjoin(counts, counts.c.beat_set_id == t.beat_sets.c.id)
            .order_by(t.beat_sets.c.id)
        )
        with self.engine.connect() as conn:
            return [self._beat_set_from_row(r, r.n or 0) for r in conn.execute(q)]

    def get_beat_set(self, set_id: int) -> BeatSet:
        for bs in self.list_beat_sets():
            if bs.id == set_id:
                return bs
        raise NotFound(f"No beat map with id {set_id}.")

    def active_beat_set(self) -> BeatSet:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.beat_sets).where(t.beat_sets.c.status == "active")).first()
        if row is None:
            raise NoActiveBeatMap()
        return self._beat_set_from_row(row)

    def active_beat_set_id(self) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.beat_sets.c.id).where(t.beat_sets.c.status == "active")
            ).scalar()

    def beat_sets_for_join(self) -> list[int]:
        """Beat maps every incident is joined against: all but retired ones."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(t.beat_sets.c.id)
                    .where(t.beat_sets.c.status != "retired")
                    .order_by(t.beat_sets.c.id)
                ).scalars()
            )

    def beats(self, set_id: int) -> list[Beat]:
        """The beats of a map, sorted by code, with shapely geometries (cached per process).

        A draft edited by another process (the web app, while the scheduler imports) has new
        beat rows: the cache is checked against the rows' count and newest id.
        """
        with self.engine.connect() as conn:
            stamp = tuple(
                conn.execute(
                    select(func.count(), func.max(t.beats.c.id)).where(
                        t.beats.c.beat_set_id == set_id
                    )
                ).one()
            )
        if self._beats_stamp.get(set_id) != stamp:
            self._beats_cache.pop(set_id, None)
            self._beats_stamp[set_id] = stamp
        if set_id not in self._beats_cache:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(t.beats).where(t.beats.c.beat_set_id == set_id).order_by(t.beats.c.code)
                ).all()
            self._beats_cache[set_id] = [
                Beat(
                    code=r.code,
                    sector=r.sector,
                    precinct=r.precinct,
                    name=r.name,
                    geometry=shapely.from_wkb(r.geometry_wkb),
                )
                for r in rows
            ]
        return self._beats_cache[set_id]

    def beat(self, set_id: int, code: str) -> Beat:
        for b in self.beats(set_id):
            if b.code == code:
                return b
        raise BeatNotFound(f"No beat {code!r} in the current beat map.")

    def publish_beat_set(self, set_id: int, *, now: datetime) -> int | None:
        """Make a map the active one and retire the previous; returns the retired id."""
        with self.engine.begin() as conn:
            row = conn.execute(select(t.beat_sets).where(t.beat_sets.c.id == set_id)).first()
            if row is None:
                raise NotFound(f"No beat map with id {set_id}.")
            if row.status == "active":
                raise Conflict(f"Beat map {set_id} is already active.")
            previous = conn.execute(
                select(t.beat_sets.c.id).where(t.beat_sets.c.status == "active")
            ).scalar()
            if previous is not None:
                conn.execute(
                    update(t.beat_sets)
                    .where(t.beat_sets.c.id == previous)
                    .values(status="retired", retired_at=now)
                )
            conn.execute(
                update(t.beat_sets)
                .where(t.beat_sets.c.id == set_id)
                .values(status="active", published_at=now, retired_at=None)
            )
        return previous

    def schedule_beat_set(self, set_id: int, effective: date) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(select(t.beat_sets).where(t.beat_sets.c.id == set_id)).first()
            if row is None:
                raise NotFound(f"No beat map with id {set_id}.")
            if row.status not in ("draft", "scheduled"):
                raise Conflict(f"Beat map {set_id} is {row.status}; only drafts can be scheduled.")
            conn.execute(
                update(t.beat_sets)
                .where(t.beat_sets.c.id == set_id)
                .values(status="scheduled", effective_date=effective)
            )

    def last_retired_beat_set_id(self) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.beat_sets.c.id)
                .where(t.beat_sets.c.status == "retired")
                .order_by(t.beat_sets.c.retired_at.desc(), t.beat_sets.c.id.desc())
                .limit(1)
            ).scalar()

    def located_incidents_missing_join(
        self, set_id: int
    ) -> Iterator[list[tuple[int, float, float]]]:
        """(id, lon, lat) of located incidents with no row for this map yet, in batches."""
        j = t.incident_beats
        q = (
            select(t.incidents.c.id, t.incidents.c.lon, t.incidents.c.lat)
            .where(t.incidents.c.lat.is_not(None))
            .where(
                ~select(j.c.incident_id)
                .where(and_(j.c.incident_id == t.incidents.c.id, j.c.beat_set_id == set_id))
                .exists()
            )
            .order_by(t.incidents.c.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        for i in range(0, len(rows), 20000):
            yield [tuple(r) for r in rows[i : i + 20000]]

    def save_incident_beats(self, set_id: int, pairs: Iterable[tuple[int, str | None]]) -> None:
        rows = [{"incident_id": i, "beat_set_id": set_id, "beat_code": c} for i, c in pairs]
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(t.incident_beats), rows)

    # ---- imports ------------------------------------------------------------------------
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

    def beat_sets_exist(self, conn: Connection, ids: Iterable[int]) -> bool:
        ids = set(ids)
        found = conn.execute(select(t.beat_sets.c.id).where(t.beat_sets.c.id.in_(ids))).scalars()
        return set(found) == ids

    def start_import_run(
        self,
        conn: Connection,
        *,
        source: str,
        filename: str,
        file_sha256: str | None,
        preset: str | None,
        user_email: str | None,
        now: datetime,
    ) -> int:
        if conn.dialect.name == "sqlite":
            # A bulk insert into four indexes thrashes SQLite's default 2 MB page cache.
            conn.exec_driver_sql(f"PRAGMA cache_size=-{_IMPORT_CACHE_KIB}")
        return conn.execute(
            insert(t.import_runs)
            .values(
                source=source,
                filename=filename,
                file_sha256=file_sha256,
                preset=preset,
                status="running",
                started_at=now,
                user_email=user_email,
                counters=json.dumps(dict.fromkeys(COUNTERS, 0)),
            )
            .returning(t.import_runs.c.id)
        ).scalar_one()

    def finish_import_run(
        self,
        conn: Connection,
        run_id: int,
        *,
        counters: dict[str, int],
        rejections: Sequence[Rejection],
        report_path: str | None,
        now: datetime,
        status: str = "done",
        error: str | None = None,
    ) -> None:
        conn.execute(
            update(t.import_runs)
            .where(t.import_runs.c.id == run_id)
            .values(
                status=status,
                finished_at=now,
                counters=json.dumps(counters),
                report_path=report_path,
                error=error,
            )
        )
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA cache_size=-2000")  # SQLite's default again
        if rejections:
            conn.execute(
                insert(t.import_rejections),
                [
                    {"run_id": run_id, "line": r.line, "reason": r.reason, "raw": r.raw[:2000]}
                    for r in rejections
                ],
            )

    def record_failed_import(
        self,
        *,
        source: str,
        filename: str,
        preset: str | None,
        user_email: str | None,
        error: str,
        now: datetime,
    ) -> int:
        """A run that could not start (unusable file), kept for the import history."""
        with self.engine.begin() as conn:
            return conn.execute(
                insert(t.import_runs)
                .values(
                    source=source,
                    filename=filename,
                    preset=preset,
                    status="failed",
                    started_at=now,
                    finished_at=now,
                    user_email=user_email,
                    counters=json.dumps(dict.fromkeys(COUNTERS, 0)),
                    error=error,
                )
                .returning(t.import_runs.c.id)
            ).scalar_one()

    def list_import_runs(self, limit: int = 50) -> list[ImportRun]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.import_runs).order_by(t.import_runs.c.id.desc()).limit(limit)
            ).all()
        return [
            ImportRun(
                id=r.id,
                source=r.source,
                filename=r.filename,
                preset=r.preset,
                status=r.status,
                started_at=r.started_at,
                finished_at=r.finished_at,
                user_email=r.user_email,
                counters=json.loads(r.counters),
                report_path=r.report_path,
                error=r.error,
            )
            for r in rows
        ]

    def existing_incidents(
        self, conn: Connection, source: str, external_ids: Sequence[str]
    ) -> dict[str, tuple[int, str, datetime, datetime]]:
        """external_id -> (incident id, row hash, created_at, publish_at) for ids already
        stored (created_at is the first import time)."""
        out: dict[str, tuple[int, str, datetime, datetime]] = {}
        c = t.incidents.c
        for i in range(0, len(external_ids), _KEY_BATCH):
            batch = external_ids[i : i + _KEY_BATCH]
            for r in conn.execute(
                select(c.external_id, c.id, c.row_hash, c.created_at, c.publish_at)
                .where(c.source == source)
                .where(c.external_id.in_(batch))
            ):
                out[r.external_id] = (r.id, r.row_hash, r.created_at, r.publish_at)
        return out

    def source_has_incidents(self, conn: Connection, source: str) -> bool:
        """Whether any incident of this dataset is stored (a first import needs no lookups)."""
        c = t.incidents.c
        return conn.execute(select(c.id).where(c.source == source).limit(1)).first() is not None

    def insert_incident_columns(
        self,
        conn: Connection,
        columns: dict[str, object],
        *,
        beats: dict[int, Sequence[str | None]],
    ) -> None:
        """Bulk-insert new incidents given column-wise, and their beat rows.

        Two statements for a whole chunk: `columns` maps incidents columns (all but `id`) to
        sequences, numpy arrays (datetime64 with NaT, float with NaN for NULL) or one value for
        every row.
        """
        n = max((len(v) for v in columns.values() if _is_column(v)), default=0)
        if n:
            self.insert_prepared_incidents(
                conn,
                self.prepare_incident_columns(
                    conn, columns, beats=beats, ids=self._new_incident_ids(conn, n)
                ),
            )

    def first_free_incident_id(self, conn: Connection) -> int | None:
        """The id a run's first new incident gets, when the run can number its rows itself:
        on SQLite its transaction holds the write lock, so ids from max(id) + 1 on stay free
        until it ends. None on PostgreSQL, whose sequence hands ids out."""
        if conn.dialect.name != "sqlite":
            return None
        return conn.execute(select(func.coalesce(func.max(t.incidents.c.id), 0))).scalar_one() + 1

    def prepare_incident_columns(
        self,
        conn: Connection,
        columns: dict[str, object],
        *,
        beats: dict[int, Sequence[str | None]],
        ids: Sequence[int],
    ) -> PreparedIncidents:
        """The driver-ready statements and rows for `insert_incident_columns`, with these
        ids. Runs no SQL, so an import prepares a chunk while the previous one is being
        written."""
        n = len(ids)
        mark = _placeholder(conn)
        names, marks, values = ["id"], [mark], [ids]
        for name, v in columns.items():
            names.append(name)
            if isinstance(v, BoundValues):
                marks.append(mark)
                values.append(v)
            elif _is_column(v):
                marks.append(mark)
                values.append(self._bind_column(conn, name, v, n))
            else:  # one value for every row: written into the statement, not bound n times
                marks.append(
                    literal(v, t.incidents.c[name].type)
                    .compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
                    .string
                )
        # Column names come from the schema and marks are driver placeholders or literals
        # compiled by SQLAlchemy: no text from a file reaches the statement.
        cols, vals = ", ".join(names), ", ".join(marks)
        sql = f"INSERT INTO incidents ({cols}) VALUES ({vals})"  # nosec B608
        if len({len(v) for v in values}) > 1:
            raise ValueError("incident columns of different lengths")
        rows = _Rows(values, n)
        if conn.dialect.name == "sqlite" and isinstance(ids, range) and ids.step == 1:
            # One statement per beat, its rows' ids as a JSON array of offsets: SQLite
            # expands it itself, instead of the driver binding three values per row.
            beat_rows = [
                (ids.start, set_id, code, offsets)
                for set_id, codes in beats.items()
                for code, offsets in _offsets_by_code(codes)
            ]
            return PreparedIncidents(
                sql,
                rows,
                (
                    "INSERT INTO incident_beats (incident_id, beat_set_id, beat_code) "
                    "SELECT ? + value, ?, ? FROM json_each(?)"
                ),
                beat_rows,
            )
        beat_rows = [
            (i, set_id, code)
            for set_id, codes in beats.items()
            for i, code in zip(ids, codes, strict=True)
        ]
        return PreparedIncidents(
            sql,
            rows,
            (
                f"INSERT INTO incident_beats (incident_id, beat_set_id, beat_code) "  # nosec B608
                f"VALUES ({mark}, {mark}, {mark})"
            ),
            beat_rows,
        )  # mark: the driver's placeholder

    def bind_incident_columns(self, columns: dict[str, object]) -> dict[str, object]:
        """`columns` (as `insert_incident_columns` takes them) with their text converted for
        the driver, each such column a `BoundValues` list. Runs no SQL: a parsing process does
        it for the writing one. Numbers and times stay numpy arrays, which travel between
        processes as they are and are converted by `prepare_incident_columns`, on the
        writing side, which has time to spare while the parsing one is the busier."""
        n = max((len(v) for v in columns.values() if _is_column(v)), default=0)
        return {
            name: BoundValues(self._bind_column(self.engine, name, v, n))
            if _is_column(v) and not _numeric(v)
            else v
            for name, v in columns.items()
        }

    def insert_prepared_incidents(self, conn: Connection, prepared: PreparedIncidents) -> None:
        if prepared.rows and conn.dialect.name == "sqlite":
            # The driver itself, fed row tuples made as it goes: no list of a chunk's
            # tuples built first (SQLAlchemy wants one), and no GIL for it on the caller.
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                cursor.executemany(prepared.sql, zip(*prepared.rows.columns, strict=False))
            finally:
                cursor.close()
        elif prepared.rows:
            conn.exec_driver_sql(prepared.sql, list(zip(*prepared.rows.columns, strict=False)))
        if prepared.beat_rows:
            conn.exec_driver_sql(prepared.beat_sql, prepared.beat_rows)

    def defer_incident_indexes(self, conn: Connection, expected_rows: int) -> bool:
        """Before a bulk load on SQLite, drop the secondary indexes it would otherwise update
        row by row in random order; `rebuild_incident_indexes` builds them again, by sorting,
        in the same transaction, so no other connection ever sees them missing and a run
        that fails or is killed leaves them as they were. Only when the load is at least as
        big as the table: rebuilding covers the rows already stored too."""
        if conn.dialect.name != "sqlite" or expected_rows < _BULK_LOAD_ROWS:
            return False
        stored = conn.execute(select(func.coalesce(func.max(t.incidents.c.id), 0))).scalar_one()
        if expected_rows < stored:
            return False
        for index in _deferrable_indexes():
            index.drop(conn)
        return True

    def rebuild_incident_indexes(self, conn: Connection) -> None:
        # SQLite sorts for CREATE INDEX in runs of at most its page cache, then merges them.
        # One run the size of the import's large cache sorts slowly (out of the CPU caches)
        # and on one core; runs of a few MiB are sorted by two threads and merged: half the
        # time for a million rows. The cache has done its work by now.
        conn.exec_driver_sql(f"PRAGMA cache_size=-{_SORT_CACHE_KIB}")
        conn.exec_driver_sql("PRAGMA threads=2")
        for index in _deferrable_indexes():
            index.create(conn)
        conn.exec_driver_sql("PRAGMA threads=0")

    def _new_incident_ids(self, conn: Connection, n: int) -> list[int]:
        if conn.dialect.name == "postgresql":
            # Only the row count varies, and it is an int.
            return list(
                conn.exec_driver_sql(
                    "SELECT nextval(pg_get_serial_sequence('incidents', 'id')) "  # nosec B608
                    f"FROM generate_series(1, {int(n)})"
                ).scalars()
            )
        # SQLite: the run's transaction already holds the write lock, so max(id) cannot move.
        first = conn.execute(select(func.coalesce(func.max(t.incidents.c.id), 0))).scalar_one()
        return list(range(first + 1, first + 1 + n))

    def _bind_column(self, conn: Connection | Engine, name: str, values, n: int) -> list:
        """A column as the driver takes it, converted the way SQLAlchemy would bind it."""
        proc = t.incidents.c[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if not _is_column(values):
            return [values if proc is None else proc(values)] * n
        if isinstance(values, np.ndarray):
            if values.dtype.kind == "M":
                return _bind_datetimes(conn, t.incidents.c[name].type, values)
            if values.dtype.kind == "f":
                return [None if v != v else v for v in values.tolist()]
            if values.dtype.kind == "b" and conn.dialect.name == "sqlite":
                return values.astype(np.int8).tolist()  # what SQLAlchemy stores for booleans
            values = values.tolist()
        if proc is not None and not isinstance(t.incidents.c[name].type, (String,)):
            return [proc(v) for v in values]
        return list(values)

    def update_incidents(
        self,
        conn: Connection,
        rows: Sequence[tuple[int, IncidentRow]],
        *,
        hashes: Sequence[str],
        publish_at: Sequence[datetime],
        run_id: int | None,
        now: datetime,
    ) -> None:
        """Update changed incidents in place (their uid, and so their entry id, stays)."""
        if not rows:
            return
        c = t.incidents.c
        stmt = update(t.incidents).where(c.id == bindparam("_id"))
        conn.execute(
            stmt,
            [
                _incident_values(r, h, p, run_id, now) | {"_id": i}
                for (i, r), h, p in zip(rows, hashes, publish_at, strict=True)
            ],
        )
        self._replace_beats(conn, rows, delete_first=True)

    def _replace_beats(
        self, conn: Connection, rows: Sequence[tuple[int, IncidentRow]], delete_first: bool
    ) -> None:
        if delete_first:
            ids = [i for i, _ in rows]
            for k in range(0, len(ids), _KEY_BATCH):
                conn.execute(
                    delete(t.incident_beats).where(
                        t.incident_beats.c.incident_id.in_(ids[k : k + _KEY_BATCH])
                    )
                )
        values = [
            {"incident_id": i, "beat_set_id": s, "beat_code": code}
            for i, r in rows
            for s, code in r.beat_codes.items()
        ]
        if values:
            conn.execute(insert(t.incident_beats), values)

    def policy_inputs(self, after_id: int, limit: int) -> list[dict]:
        """What the publication policy decides from, for incidents after `after_id`, by id:
        the stored raw fields (id, sensitive, category_text, description, address, located,
        occurred_at, reported_at, created_at) and the stored decisions (category,
        block_address, suppressed_reason, publish_at)."""
        c = t.incidents.c
        with self.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    select(
                        c.id,
                        c.sensitive,
                        c.category_text,
                        c.description,
                        c.address,
                        c.lat.is_not(None).label("located"),
                        c.occurred_at,
                        c.reported_at,
                        c.created_at,
                        c.category,
                        c.block_address,
                        c.suppressed_reason,
                        c.publish_at,
                        c.released_digest,
                    )
                    .where(c.id > after_id)
                    .order_by(c.id)
                    .limit(limit)
                )
            ]

    def set_policy_results(self, rows: Sequence[dict], now: datetime) -> None:
        """Store decisions redone under a new policy: dicts of id, category, block_address,
        suppressed_reason and publish_at."""
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(t.incidents).where(t.incidents.c.id == bindparam("_id")),
                [
                    {
                        "_id": r["id"],
                        "category": r["category"],
                        "block_address": r["block_address"],
                        "suppressed_reason": r["suppressed_reason"],
                        "publish_at": r["publish_at"],
                        "updated_at": now,
                    }
                    for r in rows
                ],
            )

    def incident_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(t.incidents)).scalar_one()

    def latest_event_time(self) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(t.incidents.c.event_time))).scalar()

    # ---- feeds --------------------------------------------------------------------------
    def _public_entries_query(self, set_id: int, now: datetime):
        i, j, b = t.incidents.c, t.incident_beats, t.beats
        return (
            select(
                i.uid,
                i.category,
                i.category_text,
                i.description,
                i.block_address,
                i.event_time,
                i.updated_at,
                i.publish_at,
                i.source,
                i.external_id,
                i.lat,
                i.lon,
                j.c.beat_code,
                b.c.sector,
                b.c.precinct,
            )
            .select_from(
                t.incidents.join(j, and_(j.c.incident_id == i.id, j.c.beat_set_id == set_id)).join(
                    b, and_(b.c.beat_set_id == set_id, b.c.code == j.c.beat_code)
                )
            )
            .where(i.suppressed_reason.is_(None))
            .where(i.retracted_at.is_(None))
            .where(i.publish_at <= now)
        )

    def public_entries(
        self,
        set_id: int,
        *,
        now: datetime,
        beat: str | None = None,
        sector: str | None = None,
        precinct: str | None = None,
        limit: int = 50,
        offset: int = 0,
        categories: Sequence[str] = (),
        exclude: Sequence[str] = (),
        since: datetime | None = None,
        geo_precision: float | None = None,
    ) -> list[FeedEntry]:
        """Published entries of an area (the whole city when no area is given), newest first.

        `categories` keeps only those categories, `exclude` drops some, `since` drops entries
        whose event is older. With `geo_precision`, each entry carries its point snapped to
        that grid (the raw coordinates never leave this layer).
        """
        q = self._area_filter(self._public_entries_query(set_id, now), beat, sector, precinct)
        if categories:
            q = q.where(t.incidents.c.category.in_(list(categories)))
        if exclude:
            q = q.where(t.incidents.c.category.not_in(list(exclude)))
        if since is not None:
            q = q.where(t.incidents.c.event_time >= since)
        q = (
            q.order_by(t.incidents.c.event_time.desc(), t.incidents.c.uid)
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            return [_entry(r, geo_precision) for r in conn.execute(q)]

    def public_entry(self, set_id: int, uid: str, *, now: datetime) -> FeedEntry | None:
        q = self._public_entries_query(set_id, now).where(t.incidents.c.uid == uid)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _entry(row) if row else None

    def public_counts_by_beat(self, set_id: int, *, now: datetime) -> dict[str, int]:
        q = self._public_entries_query(set_id, now).subquery()
        with self.engine.connect() as conn:
            return {
                r[0]: r[1]
                for r in conn.execute(select(q.c.beat_code, func.count()).group_by(q.c.beat_code))
            }

    def incident_private(self, source: str, external_id: str) -> dict | None:
        """Everything stored about one incident, private fields included (staff/tests only)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.incidents)
                .where(t.incidents.c.source == source)
                .where(t.incidents.c.external_id == external_id)
            ).first()
            if row is None:
                return None
            beats = dict(
                conn.execute(
                    select(t.incident_beats.c.beat_set_id, t.incident_beats.c.beat_code).where(
                        t.incident_beats.c.incident_id == row.id
                    )
                ).all()
            )
        return dict(row._mapping) | {"beats": beats}

    # ---- users, sign-in, audit ----------------------------------------------------------
    def add_user(self, email: str, role: str, password_hash: str, now: datetime) -> int:
        with self.engine.begin() as conn:
            if conn.execute(select(t.users.c.id).where(t.users.c.email == email)).first():
                raise Conflict(f"A user {email} already exists.")
            return conn.execute(
                insert(t.users)
                .values(
                    email=email,
                    role=role,
                    password_hash=password_hash,
                    disabled=False,
                    created_at=now,
                    password_changed_at=now,
                )
                .returning(t.users.c.id)
            ).scalar_one()

    def _user(self, row) -> User:
        return User(
            id=row.id,
            email=row.email,
            role=row.role,
            password_hash=row.password_hash,
            disabled=row.disabled,
            created_at=row.created_at,
            password_changed_at=row.password_changed_at,
        )

    def user_by_email(self, email: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.email == email)).first()
        return self._user(row) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.id == user_id)).first()
        return self._user(row) if row else None

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            return [self._user(r) for r in conn.execute(select(t.users).order_by(t.users.c.email))]

    def update_user(self, email: str, **values) -> None:
        with self.engine.begin() as conn:
            n = conn.execute(update(t.users).where(t.users.c.email == email).values(**values))
        if n.rowcount == 0:
            raise NotFound(f"No user {email}.")

    def record_login_attempt(self, email: str, client: str, success: bool, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.login_attempts).values(email=email, client=client, success=success, at=now)
            )

    def failed_logins_since(
        self, since: datetime, *, email: str | None = None, client: str | None = None
    ) -> int:
        c = t.login_attempts.c
        q = select(func.count()).where(c.at >= since).where(c.success.is_(False))
        if email is not None:
            q = q.where(c.email == email)
        if client is not None:
            q = q.where(c.client == client)
        with self.engine.connect() as conn:
            return conn.execute(q).scalar_one()

    def prune_login_attempts(self, before: datetime) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                delete(t.login_attempts).where(t.login_attempts.c.at < before)
            ).rowcount

    def audit(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        detail: dict | None = None,
        *,
        now: datetime,
        conn: Connection | None = None,
    ) -> None:
        """Append to the audit log (inside `conn`'s transaction when given).

        A staff action that may change what feeds show also moves STAFF_CHANGE_META, which
        the feed stamps read; sign-ins and the like do not (see _QUIET_AUDIT).
        """
        stmt = insert(t.audit_log).values(
            at=now,
            actor=actor,
            action=action,
            target=target,
            detail=json.dumps(detail, sort_keys=True, default=str) if detail else None,
        )
        if conn is not None:
            self._append_audit(conn, stmt, action)
            return
        with self.engine.begin() as c:
            self._append_audit(c, stmt, action)

    def _append_audit(self, conn: Connection, stmt, action: str) -> None:
        entry_id = conn.execute(stmt).inserted_primary_key[0]
        if not action.startswith(_QUIET_AUDIT):
            conn.execute(delete(t.meta).where(t.meta.c.key == STAFF_CHANGE_META))
            conn.execute(insert(t.meta).values(key=STAFF_CHANGE_META, value=str(entry_id)))

    def audit_log(self, limit: int = 200) -> list[dict]:
        with self.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit)
                )
            ]


@dataclass(frozen=True)
class _Rows:
    """Rows as columns, made into tuples only as they are written."""

    columns: list[Sequence]
    n: int

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return zip(*self.columns, strict=False)


@dataclass
class PreparedIncidents:
    """A chunk of new incidents as the driver takes it (see prepare_incident_columns)."""

    sql: str
    rows: _Rows
    beat_sql: str
    beat_rows: list[tuple]


def _offsets_by_code(codes) -> list[tuple[str | None, str]]:
    """(beat code or None, JSON array of the positions with that code) for a column."""
    import pandas as pd

    labels, uniques = pd.factorize(np.asarray(codes, dtype=object), use_na_sentinel=False)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(uniques) + 1))
    return [
        (
            None if pd.isna(code) else str(code),
            json.dumps(order[bounds[k] : bounds[k + 1]].tolist()),
        )
        for k, code in enumerate(uniques)
    ]


class BoundValues(list):
    """A column of incidents converted for the driver (see bind_incident_columns).

    Pickled compactly, as it travels from the parsing process: a column of text without
    NUL characters becomes one string, which costs a fraction of a million small ones."""

    __slots__ = ()

    def __reduce__(self):
        try:
            joined = "\x00".join(self)
        except TypeError:  # not all text (numbers, NULLs)
            return BoundValues, (list(self),)
        if len(self) > 1 and joined.count("\x00") != len(self) - 1:
            return BoundValues, (list(self),)  # a value holds a NUL itself
        return _split_values, (joined, len(self))


def _split_values(joined: str, n: int) -> BoundValues:
    return BoundValues(joined.split("\x00") if n else [])


def _deferrable_indexes() -> list[Index]:
    """Indexes a bulk load may drop and rebuild. Not the (source, external_id) one: it guards
    identity while the run looks rows up. The uid one may go: a uid is a hash of that pair,
    so the other index already keeps uids apart, and rebuilding still checks uniqueness."""
    # Not ix_incident_beats_set_code: new rows go to the end of each beat's range, cheaply.
    names = ("ix_incidents_uid", "ix_incidents_event_time", "ix_incidents_publish_at")
    found = [i for i in t.incidents.indexes if i.name in names]
    assert len(found) == len(names)
    return found


def _numeric(v) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind in "biufM"


def _is_column(v) -> bool:
    return isinstance(v, (list, tuple, np.ndarray))


def _placeholder(conn: Connection) -> str:
    return {"qmark": "?", "numeric": "?", "named": "?"}.get(conn.dialect.paramstyle, "%s")


def _bind_datetimes(conn: Connection | Engine, type_, values: np.ndarray) -> list:
    """datetime64 values for the driver; on SQLite as the text SQLAlchemy stores, written
    column-wise (per-value formatting is most of a bulk insert's cost otherwise)."""
    micro = values.astype("datetime64[us]")
    proc = type_.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    if proc is None:
        out = micro.astype(object).tolist()
        for i in np.flatnonzero(np.isnat(values)).tolist():
            out[i] = None
        return out
    probe = datetime(2001, 2, 3, 4, 5, 6, 7)
    if proc(probe) == format_datetimes(np.array([probe], dtype="datetime64[us]"), sep=" ")[0]:
        return format_datetimes(micro, sep=" ")
    # a storage format we do not write: SQLAlchemy's own processor
    return [None if v is None else proc(v) for v in micro.astype(object).tolist()]


def _incident_values(
    r: IncidentRow, row_hash: str, publish_at: datetime, run_id: int | None, now: datetime
) -> dict:
    return {
        "source": r.source,
        "external_id": r.external_id,
        "reported_at": r.reported_at,
        "occurred_at": r.occurred_at,
        "event_time": r.event_time,
        "category": r.category,
        "category_text": r.category_text,
        "description": r.description,
        "address": r.address,
        "block_address": r.block_address,
        "lat": r.lat,
        "lon": r.lon,
        "source_beat": r.source_beat,
        "sensitive": r.sensitive,
        "suppressed_reason": r.suppressed_reason,
        "row_hash": row_hash,
        "updated_at": now,
        "publish_at": publish_at,
        "last_run_id": run_id,
    }


def _entry(r, geo_precision: float | None = None) -> FeedEntry:
    point = None
    if geo_precision and r.lat is not None and r.lon is not None:
        point = snap_point(r.lat, r.lon, geo_precision)
    return FeedEntry(
        uid=r.uid,
        title="",
        category=r.category,
        category_text=r.category_text,
        description=r.description,
        block_address=r.block_address,
        event_time=r.event_time,
        updated_at=r.updated_at,
        publish_at=r.publish_at,
        beat=r.beat_code,
        sector=r.sector,
        precinct=r.precinct,
        source=r.source,
        external_id=r.external_id,
        point=point,
    )
