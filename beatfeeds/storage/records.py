"""Import runs and their rejections, the staff view of incidents, `needs review` releases and
retraction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    Connection,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)

from beatfeeds.core.errors import Conflict, EntryNotFound, NotFound
from beatfeeds.core.models import (
    COUNTERS,
    ImportRun,
    Rejection,
    StaffIncident,
)
from beatfeeds.storage import schema as t
from beatfeeds.storage.accounts import AccountRepository
from beatfeeds.storage.engine import Database, Repository

_IMPORT_CACHE_KIB = 256 * 1024  # SQLite page cache while an import runs


class RecordsRepository(Repository):
    """The import_runs and import_rejections tables, and incidents as staff see them."""

    def __init__(self, db: Database, accounts: AccountRepository):
        super().__init__(db)
        self.accounts = accounts  # staff actions are audited in their own transaction

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
        with self.db.begin() as conn:
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

    def get_import_run(self, run_id: int) -> ImportRun:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.import_runs).where(t.import_runs.c.id == run_id)).first()
        if r is None:
            raise NotFound(f"No import run {run_id}.")
        return ImportRun(
            id=r.id,
            source=r.source,
            filename=r.filename,
            preset=r.preset,
            status=r.status,
            started_at=r.started_at,
            finished_at=r.finished_at,
            user_email=r.user_email,
            counters=json.loads(r.counters) or dict.fromkeys(COUNTERS, 0),
            report_path=r.report_path,
            error=r.error,
        )

    def run_rejections(self, run_id: int) -> list[Rejection]:
        c = t.import_rejections.c
        with self.engine.connect() as conn:
            return [
                Rejection(r.line, r.reason, r.raw or "")
                for r in conn.execute(
                    select(c.line, c.reason, c.raw).where(c.run_id == run_id).order_by(c.line, c.id)
                )
            ]

    def _staff_query(self):
        i, j = t.incidents.c, t.incident_beats.c
        active = select(t.beat_sets.c.id).where(t.beat_sets.c.status == "active").scalar_subquery()
        return select(t.incidents, j.beat_code).select_from(
            t.incidents.outerjoin(
                t.incident_beats, and_(j.incident_id == i.id, j.beat_set_id == active)
            )
        )

    @staticmethod
    def _staff_incident(r) -> StaffIncident:
        return StaffIncident(
            uid=r.uid,
            source=r.source,
            external_id=r.external_id,
            event_time=r.event_time,
            category=r.category,
            category_text=r.category_text,
            description=r.description,
            address=r.address,
            block_address=r.block_address,
            publish_at=r.publish_at,
            updated_at=r.updated_at,
            beat=r.beat_code,
            suppressed_reason=r.suppressed_reason,
            retracted_at=r.retracted_at,
            retraction_reason=r.retraction_reason,
            released_at=r.released_at,
            released_by=r.released_by,
        )

    def find_incidents(self, query: str, limit: int = 50) -> list[StaffIncident]:
        """Incidents whose uid or external id is the query, or whose text contains it."""
        i = t.incidents.c
        q = query.strip()
        if not q:
            return []
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        cond = or_(
            i.uid == q.lower(),
            i.external_id == q,
            i.description.ilike(like, escape="\\"),
            i.category_text.ilike(like, escape="\\"),
            i.block_address.ilike(like, escape="\\"),
            i.address.ilike(like, escape="\\"),
        )
        stmt = self._staff_query().where(cond).order_by(i.event_time.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [self._staff_incident(r) for r in conn.execute(stmt)]

    def staff_incident(self, uid: str) -> StaffIncident:
        stmt = self._staff_query().where(t.incidents.c.uid == uid)
        with self.engine.connect() as conn:
            r = conn.execute(stmt).first()
        if r is None:
            raise EntryNotFound(f"No incident with id {uid!r}.")
        return self._staff_incident(r)

    def incidents_for_review(self, prefix: str, limit: int = 200) -> list[StaffIncident]:
        """Incidents held back with a suppression reason starting `prefix` (`needs review`),
        not retracted, newest event first."""
        i = t.incidents.c
        stmt = (
            self._staff_query()
            .where(i.suppressed_reason.startswith(prefix, autoescape=True))
            .where(i.retracted_at.is_(None))
            .order_by(i.event_time.desc(), i.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [self._staff_incident(r) for r in conn.execute(stmt)]

    def count_incidents_for_review(self, prefix: str) -> int:
        """How many incidents `incidents_for_review` would list without a limit."""
        i = t.incidents.c
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count())
                .select_from(t.incidents)
                .where(i.suppressed_reason.startswith(prefix, autoescape=True))
                .where(i.retracted_at.is_(None))
            ).scalar_one()

    def released_digests(self, conn: Connection, ids: list[int]) -> dict[int, str]:
        """{incident id: digest of the texts staff released} for those of `ids` released."""
        i = t.incidents.c
        out: dict[int, str] = {}
        for k in range(0, len(ids), 500):
            out.update(
                (r.id, r.released_digest)
                for r in conn.execute(
                    select(i.id, i.released_digest)
                    .where(i.id.in_(ids[k : k + 500]))
                    .where(i.released_digest.is_not(None))
                )
            )
        return out

    def release_incident(
        self, uid: str, *, held_reason: str, digest: str, actor: str, now: datetime
    ) -> None:
        """Lift a hold: publish the incident as it is, audited in the same transaction.

        Only while it is still held for `held_reason` and not retracted (Conflict otherwise),
        so a release never publishes what the releasing person did not see.
        """
        i = t.incidents.c
        with self.db.begin() as conn:
            row = conn.execute(select(i.id, i.source, i.external_id).where(i.uid == uid)).first()
            if row is None:
                raise EntryNotFound(f"No incident with id {uid!r}.")
            n = conn.execute(
                update(t.incidents)
                .where(i.id == row.id)
                .where(i.suppressed_reason == held_reason)
                .where(i.retracted_at.is_(None))
                .values(
                    suppressed_reason=None,
                    released_at=now,
                    released_by=actor,
                    released_digest=digest,
                    updated_at=now,
                )
            ).rowcount
            if n != 1:
                raise Conflict(
                    f"Entry {uid} changed since it was shown (re-imported, "
                    "released or retracted); look at it again."
                )
            self.accounts.audit(
                actor,
                "incidents.release",
                f"entry:{uid}",
                {"held": held_reason, "source": row.source, "external_id": row.external_id},
                now=now,
                conn=conn,
            )

    def retract_incident(self, uid: str, reason: str, *, actor: str, now: datetime) -> None:
        """Withdraw an incident from every feed and page, audited in the same transaction."""
        i = t.incidents.c
        with self.db.begin() as conn:
            row = conn.execute(
                select(i.id, i.retracted_at, i.source, i.external_id).where(i.uid == uid)
            ).first()
            if row is None:
                raise EntryNotFound(f"No incident with id {uid!r}.")
            if row.retracted_at is not None:
                raise Conflict(f"Entry {uid} was already retracted on {row.retracted_at:%Y-%m-%d}.")
            conn.execute(
                update(t.incidents)
                .where(i.id == row.id)
                .values(retracted_at=now, retraction_reason=reason)
            )
            self.accounts.audit(
                actor,
                "incidents.retract",
                f"entry:{uid}",
                {"reason": reason, "source": row.source, "external_id": row.external_id},
                now=now,
                conn=conn,
            )
