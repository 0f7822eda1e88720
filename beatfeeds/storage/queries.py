"""Query pieces more than one repository builds on: public entries, area filters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    and_,
    select,
)

from beatfeeds.core import areas
from beatfeeds.storage import schema as t

AREA_COLUMN = areas.BEAT_FIELDS  # kind -> beats column


def public_entries_query(set_id: int, now: datetime):
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


def area_filter(q, beat: str | None, sector: str | None, precinct: str | None):
    if beat is not None:
        q = q.where(t.incident_beats.c.beat_code == beat)
    if sector is not None:
        q = q.where(t.beats.c.sector == sector)
    if precinct is not None:
        q = q.where(t.beats.c.precinct == precinct)
    return q


def beats_of_area(set_id: int, kind: str, code: str | None):
    """A subquery of the beat codes of an area in a beat map (None for the city)."""
    if kind == "city":
        return None
    col = getattr(t.beats.c, AREA_COLUMN[kind])
    return select(t.beats.c.code).where(t.beats.c.beat_set_id == set_id).where(col == code)
