"""Beat maps: drafts, publication, the beats of a map (cached per process), boundary edits."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime

import numpy as np
import shapely
from sqlalchemy import (
    Connection,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from beatfeeds.core.errors import BeatNotFound, Conflict, NoActiveBeatMap, NotFound
from beatfeeds.core.models import (
    Beat,
    BeatSet,
    BoundaryChange,
)
from beatfeeds.storage import schema as t
from beatfeeds.storage.engine import Database, Repository


class BeatMapRepository(Repository):
    """The beat_sets, beats and boundary_changes tables."""

    def __init__(self, db: Database):
        super().__init__(db)
        self._beats_cache: dict[int, list[Beat]] = {}
        self._beats_stamp: dict[int, tuple] = {}

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
        with self.db.begin() as conn:
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
        with self.db.begin() as conn:
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
        with self.db.begin() as conn:
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

    def beat_sets_exist(self, conn: Connection, ids: Iterable[int]) -> bool:
        ids = set(ids)
        found = conn.execute(select(t.beat_sets.c.id).where(t.beat_sets.c.id.in_(ids))).scalars()
        return set(found) == ids

    def copy_beat_set(
        self, set_id: int, name: str, *, created_by: str | None, now: datetime
    ) -> int:
        """A new draft holding the same beats as `set_id`; returns its id."""
        beats = self.beats(set_id)
        return self.create_beat_set(
            name,
            beats,
            effective_date=None,
            source_filename=f"copy of beat map {set_id}",
            created_by=created_by,
            now=now,
        )

    def replace_beats(self, set_id: int, remove: Sequence[str], add: Sequence[Beat]) -> None:
        """Delete beats by code and insert others, in one transaction; drafts only.

        The draft's incident joins are dropped: they no longer match its polygons, and
        publishing joins every incident that has none.
        """
        with self.db.begin() as conn:
            status = conn.execute(
                select(t.beat_sets.c.status).where(t.beat_sets.c.id == set_id)
            ).scalar()
            if status is None:
                raise NotFound(f"No beat map with id {set_id}.")
            if status != "draft":
                raise Conflict(f"Beat map {set_id} is {status}; only drafts can be edited.")
            if remove:
                conn.execute(
                    delete(t.beats)
                    .where(t.beats.c.beat_set_id == set_id)
                    .where(t.beats.c.code.in_(list(remove)))
                )
            if add:
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
                        for b in add
                    ],
                )
            conn.execute(delete(t.incident_beats).where(t.incident_beats.c.beat_set_id == set_id))
        self._beats_cache.pop(set_id, None)

    def record_boundary_changes(
        self,
        set_id: int,
        previous_id: int | None,
        changes: Sequence[BoundaryChange],
        *,
        now: datetime,
    ) -> None:
        """Store what a publication changed. Idempotent: a change already recorded for the
        same publication (map, previous map, time, kind and code) is not stored twice."""
        if not changes:
            return
        c = t.boundary_changes.c
        with self.db.begin() as conn:
            done = {
                (r.kind, r.code)
                for r in conn.execute(
                    select(c.kind, c.code)
                    .where(c.beat_set_id == set_id)
                    .where(c.at == now)
                    .where(
                        c.previous_set_id == previous_id
                        if previous_id is not None
                        else c.previous_set_id.is_(None)
                    )
                )
            }
            rows = [
                {
                    "beat_set_id": set_id,
                    "previous_set_id": previous_id,
                    "kind": ch.kind,
                    "code": ch.code,
                    "new_codes": _codes_json(ch),
                    "share": ch.share,
                    "at": now,
                }
                for ch in changes
                if (ch.kind, ch.code) not in done
            ]
            if rows:
                conn.execute(insert(t.boundary_changes), rows)

    def boundary_changes(
        self,
        *,
        code: str | None = None,
        set_id: int | None = None,
        until: datetime | None = None,
        change_id: int | None = None,
        kinds: Sequence[str] | None = None,
    ) -> list[BoundaryChange]:
        """Recorded changes, newest first: those naming `code` (as old or new code), of
        `kinds` when given (beat changes, or the sector, precinct and city ones)."""
        c = t.boundary_changes.c
        q = select(t.boundary_changes).order_by(c.id.desc())
        if code is not None:
            # new_codes is JSON holding short codes: a quoted match finds exact members.
            q = q.where(or_(c.code == code, c.new_codes.like(f'%"{code}"%')))
        if set_id is not None:
            q = q.where(c.beat_set_id == set_id)
        if change_id is not None:
            q = q.where(c.id == change_id)
        if until is not None:
            q = q.where(c.at <= until)
        if kinds is not None:
            q = q.where(c.kind.in_(list(kinds)))
        with self.engine.connect() as conn:
            return [_change(r) for r in conn.execute(q)]

    def recent_incident_points(self, set_id: int, since: datetime) -> tuple:
        """(ids, lon, lat, beat codes under `set_id`) of located incidents since a time, as
        numpy arrays. Staff-only: coordinates included."""
        i, j = t.incidents.c, t.incident_beats
        q = (
            select(i.id, i.lon, i.lat, j.c.beat_code)
            .select_from(
                t.incidents.outerjoin(j, and_(j.c.incident_id == i.id, j.c.beat_set_id == set_id))
            )
            .where(i.lat.is_not(None))
            .where(i.event_time >= since)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return (
                np.array([], dtype="int64"),
                np.array([]),
                np.array([]),
                np.array([], dtype=object),
            )
        ids, lon, lat, codes = zip(*rows, strict=True)
        return (
            np.array(ids, dtype="int64"),
            np.array(lon, dtype="float64"),
            np.array(lat, dtype="float64"),
            np.array(codes, dtype=object),
        )

    def incident_summaries(self, ids) -> list[tuple]:
        """(id, uid, event_time, block_address, category) of incidents, newest first."""
        c = t.incidents.c
        out = []
        ids = [int(x) for x in ids]
        with self.engine.connect() as conn:
            for k in range(0, len(ids), 500):
                out += [
                    tuple(r)
                    for r in conn.execute(
                        select(c.id, c.uid, c.event_time, c.block_address, c.category).where(
                            c.id.in_(ids[k : k + 500])
                        )
                    )
                ]
        return sorted(out, key=lambda r: (r[2], r[1]), reverse=True)


def _codes_json(c: BoundaryChange) -> str:
    """The new_codes column: a JSON list for beat changes; for an area's change, an object
    with that list under "codes" and the change's detail beside it."""
    if c.detail is None:
        return json.dumps(c.new_codes)
    return json.dumps({"codes": c.new_codes, **c.detail}, sort_keys=True)


def _change(r) -> BoundaryChange:
    codes = json.loads(r.new_codes or "[]")
    detail = None
    if isinstance(codes, dict):
        detail = {k: v for k, v in codes.items() if k != "codes"}
        codes = codes.get("codes", [])
    return BoundaryChange(
        kind=r.kind,
        code=r.code,
        new_codes=codes,
        share=r.share,
        id=r.id,
        beat_set_id=r.beat_set_id,
        previous_set_id=r.previous_set_id,
        at=r.at,
        detail=detail,
    )
