"""SQL for beat-map editing, boundary changes and the incidents a redraw would move."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import shapely
from sqlalchemy import and_, delete, insert, or_, select

from ..errors import Conflict, NotFound
from ..models import Beat, BoundaryChange
from . import schema as t


class BoundaryStoreMixin:
    """Methods SQLStore inherits; `self.engine` and `self._beats_cache` come from SQLStore."""

    def copy_beat_set(self, set_id: int, name: str, *, created_by: str | None,
                      now: datetime) -> int:
        """A new draft holding the same beats as `set_id`; returns its id."""
        beats = self.beats(set_id)
        return self.create_beat_set(name, beats, effective_date=None,
                                    source_filename=f"copy of beat map {set_id}",
                                    created_by=created_by, now=now)

    def replace_beats(self, set_id: int, remove: Sequence[str], add: Sequence[Beat]) -> None:
        """Delete beats by code and insert others, in one transaction; drafts only.

        The draft's incident joins are dropped: they no longer match its polygons, and
        publishing joins every incident that has none.
        """
        with self.engine.begin() as conn:
            status = conn.execute(select(t.beat_sets.c.status)
                                  .where(t.beat_sets.c.id == set_id)).scalar()
            if status is None:
                raise NotFound(f"No beat map with id {set_id}.")
            if status != "draft":
                raise Conflict(f"Beat map {set_id} is {status}; only drafts can be edited.")
            if remove:
                conn.execute(delete(t.beats).where(t.beats.c.beat_set_id == set_id)
                             .where(t.beats.c.code.in_(list(remove))))
            if add:
                conn.execute(insert(t.beats), [
                    {"beat_set_id": set_id, "code": b.code, "sector": b.sector,
                     "precinct": b.precinct, "name": b.name,
                     "geometry_wkb": shapely.to_wkb(b.geometry)} for b in add])
            conn.execute(delete(t.incident_beats).where(t.incident_beats.c.beat_set_id == set_id))
        self._beats_cache.pop(set_id, None)

    def record_boundary_changes(self, set_id: int, previous_id: int | None,
                                changes: Sequence[BoundaryChange], *, now: datetime) -> None:
        if not changes:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(t.boundary_changes), [
                {"beat_set_id": set_id, "previous_set_id": previous_id, "kind": c.kind,
                 "code": c.code, "new_codes": json.dumps(c.new_codes), "share": c.share,
                 "at": now} for c in changes])

    def boundary_changes(self, *, code: str | None = None, set_id: int | None = None,
                         until: datetime | None = None,
                         change_id: int | None = None) -> list[BoundaryChange]:
        """Recorded changes, newest first: those naming `code` (as old or new code)."""
        c = t.boundary_changes.c
        q = select(t.boundary_changes).order_by(c.id.desc())
        if code is not None:
            # new_codes is a JSON list of short codes: a quoted match finds exact members.
            q = q.where(or_(c.code == code, c.new_codes.like(f'%"{code}"%')))
        if set_id is not None:
            q = q.where(c.beat_set_id == set_id)
        if change_id is not None:
            q = q.where(c.id == change_id)
        if until is not None:
            q = q.where(c.at <= until)
        with self.engine.connect() as conn:
            return [BoundaryChange(kind=r.kind, code=r.code,
                                   new_codes=json.loads(r.new_codes or "[]"), share=r.share,
                                   id=r.id, beat_set_id=r.beat_set_id,
                                   previous_set_id=r.previous_set_id, at=r.at)
                    for r in conn.execute(q)]

    def recent_incident_points(self, set_id: int, since: datetime) -> tuple:
        """(ids, lon, lat, beat codes under `set_id`) of located incidents since a time, as
        numpy arrays. Staff-only: coordinates included."""
        i, j = t.incidents.c, t.incident_beats
        q = (select(i.id, i.lon, i.lat, j.c.beat_code)
             .select_from(t.incidents.outerjoin(
                 j, and_(j.c.incident_id == i.id, j.c.beat_set_id == set_id)))
             .where(i.lat.is_not(None)).where(i.event_time >= since))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return (np.array([], dtype="int64"), np.array([]), np.array([]),
                    np.array([], dtype=object))
        ids, lon, lat, codes = zip(*rows, strict=True)
        return (np.array(ids, dtype="int64"), np.array(lon, dtype="float64"),
                np.array(lat, dtype="float64"), np.array(codes, dtype=object))

    def incident_summaries(self, ids) -> list[tuple]:
        """(id, uid, event_time, block_address, category) of incidents, newest first."""
        c = t.incidents.c
        out = []
        ids = [int(x) for x in ids]
        with self.engine.connect() as conn:
            for k in range(0, len(ids), 500):
                out += [tuple(r) for r in conn.execute(
                    select(c.id, c.uid, c.event_time, c.block_address, c.category)
                    .where(c.id.in_(ids[k:k + 500])))]
        return sorted(out, key=lambda r: (r[2], r[1]), reverse=True)
