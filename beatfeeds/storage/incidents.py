"""Incidents: the bulk writes of an import, updates, policy re-runs, joins to beat maps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)

from beatfeeds.core.models import (
    IncidentRow,
)
from beatfeeds.storage import schema as t
from beatfeeds.storage.bulk import (
    BoundValues,
    PreparedIncidents,
    _bind_datetimes,
    _deferrable_indexes,
    _incident_values,
    _is_column,
    _numeric,
    _offsets_by_code,
    _placeholder,
    _Rows,
)
from beatfeeds.storage.engine import Repository

_SORT_CACHE_KIB = 2 * 1024  # and while it rebuilds indexes (see rebuild_incident_indexes)


_BULK_LOAD_ROWS = 20_000  # from this size on, an import into a smaller table defers indexes


_KEY_BATCH = 500  # keys per IN (...) query, well under every backend's parameter limit


class IncidentRepository(Repository):
    """The incidents and incident_beats tables."""

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
        with self.db.begin() as conn:
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
        with self.db.begin() as conn:
            conn.execute(insert(t.incident_beats), rows)
