"""The public side: entry lists, the feed version stamp, and the counts area pages show."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import (
    DateTime,
    and_,
    bindparam,
    case,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from beatfeeds.core.models import (
    FeedEntry,
)
from beatfeeds.publish.privacy import snap_point
from beatfeeds.storage import schema as t
from beatfeeds.storage.engine import Repository, unavailable_reason, write_wait
from beatfeeds.storage.queries import area_filter, public_entries_query

_META_IGNORED = "websub.%"


_MARK_WAIT = 0.05


class PublicRepository(Repository):
    """Reads of what is public now (and the marks feed caches keep)."""

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
        q = area_filter(public_entries_query(set_id, now), beat, sector, precinct)
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
        q = public_entries_query(set_id, now).where(t.incidents.c.uid == uid)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _entry(row) if row else None

    def public_counts_by_beat(self, set_id: int, *, now: datetime) -> dict[str, int]:
        q = public_entries_query(set_id, now).subquery()
        with self.engine.connect() as conn:
            return {
                r[0]: r[1]
                for r in conn.execute(select(q.c.beat_code, func.count()).group_by(q.c.beat_code))
            }

    def feed_version(self, *, now: datetime, since: datetime | None = None) -> str:
        """A stamp that changes whenever any feed's content may have changed.

        It is made of index lookups and small tables only, so it can be read on every feed
        request: the active beat map and when it was published (boundary changes), the last
        import run (imports), the newest entry that has become public by `now` (publication
        after the delay), the oldest entry still inside the retention window, and the meta
        table (policy changes, staff actions that may change feeds, and any writer that calls
        `touch_feeds`). Sign-ins and other audit rows a stranger can cause are not part of it.
        When it moves, `area_feed_stamps` tells which feeds really changed.
        """
        stamp, meta_q = self._feed_version_statements(since is not None)
        with self.engine.connect() as conn:
            row = conn.execute(stamp, {"now": now, "since": since}).one()
            meta = conn.execute(meta_q).all()
        return "|".join(str(v) for v in row) + "|" + repr([tuple(m) for m in meta])

    def area_feed_stamps(
        self, set_id: int, *, now: datetime, since: datetime | None = None
    ) -> dict[str | None, str]:
        """What each beat's feeds are made of under the map `set_id`: per beat code, a stamp
        of its public entries (how many, which, their newest change and publication, the
        oldest and newest still retained); under None, the active beat map and the meta table.

        One pass over the public entries for all beats at once, so it is read once each time
        `feed_version` moves, not per feed: an area's feeds changed when the stamps of its
        beats did (an import into one beat rebuilds that beat's, sector's, precinct's and the
        city's feeds, and no other).
        """
        i, j = t.incidents.c, t.incident_beats.c
        q = public_entries_query(set_id, now)
        if since is not None:
            q = q.where(i.event_time >= since)
        q = q.with_only_columns(
            j.beat_code,
            func.count(),
            func.sum(i.id),
            func.max(i.updated_at),
            func.max(i.publish_at),
            func.min(i.event_time),
            func.max(i.event_time),
        ).group_by(j.beat_code)
        bs = t.beat_sets.c
        with self.engine.connect() as conn:
            stamps: dict[str | None, str] = {
                r[0]: "|".join(str(v) for v in r[1:]) for r in conn.execute(q)
            }
            active = conn.execute(select(bs.id, bs.published_at).where(bs.status == "active")).all()
            meta = conn.execute(self._feed_version_statements(False)[1]).all()
        stamps[None] = repr([tuple(a) for a in active]) + repr([tuple(m) for m in meta])
        return stamps

    def _feed_version_statements(self, with_since: bool):
        """The stamp's two statements, built once per store: feed requests read them all the
        time, and building SQLAlchemy statements costs more than running these."""
        cache = self.__dict__.setdefault("_feed_version_sql", {})
        if with_since not in cache:
            i, bs = t.incidents.c, t.beat_sets.c
            now = bindparam("now", type_=DateTime())
            parts = [
                select(bs.id).where(bs.status == "active").scalar_subquery(),
                select(bs.published_at).where(bs.status == "active").scalar_subquery(),
                select(func.max(t.import_runs.c.id)).scalar_subquery(),
                select(func.max(t.import_runs.c.finished_at)).scalar_subquery(),
                select(func.max(i.publish_at)).where(i.publish_at <= now).scalar_subquery(),
            ]
            if with_since:
                since = bindparam("since", type_=DateTime())
                parts.append(
                    select(func.min(i.event_time)).where(i.event_time >= since).scalar_subquery()
                )
            meta = (
                select(t.meta.c.key, t.meta.c.value)
                .where(t.meta.c.key.not_like(_META_IGNORED))
                .order_by(t.meta.c.key)
            )
            cache[with_since] = (select(*parts), meta)
        return cache[with_since]

    def content_mark(
        self, key: str, fingerprint: str, *, first: datetime, now: datetime
    ) -> datetime:
        """The time the document `key` last changed, given its current content fingerprint.

        A document seen for the first time is dated `first` (its newest entry change). When
        the fingerprint differs from the stored one, the mark moves to `now`, and always at
        least one whole second past the old mark (HTTP dates have one-second resolution), so
        it never decreases and a validator from before the change never matches again.
        Concurrent writers are settled by compare-and-set; times are whole seconds.

        Readers call this, so it never waits for another writer: while one holds the lock
        (a long import), the mark is worked out as above and returned without being stored;
        it is stored by the first build after the lock is released, at a time no earlier.
        """
        try:
            with write_wait(_MARK_WAIT):
                return self._store_content_mark(key, fingerprint, first=first, now=now)
        except DBAPIError as exc:
            if unavailable_reason(exc) is None:
                raise
        c = t.content_marks.c
        with self.engine.connect() as conn:
            found = conn.execute(select(c.fingerprint, c.changed_at).where(c.key == key)).first()
        first, now = first.replace(microsecond=0), now.replace(microsecond=0)
        if found is None:
            return first
        if found.fingerprint == fingerprint:
            return found.changed_at
        return max(now, first, found.changed_at.replace(microsecond=0) + timedelta(seconds=1))

    def _store_content_mark(
        self, key: str, fingerprint: str, *, first: datetime, now: datetime
    ) -> datetime:
        c = t.content_marks.c
        first, now = first.replace(microsecond=0), now.replace(microsecond=0)
        for _attempt in range(5):
            with self.engine.begin() as conn:
                found = conn.execute(
                    select(c.fingerprint, c.changed_at).where(c.key == key)
                ).first()
                if found is None:
                    ins = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(
                        t.content_marks
                    )
                    if conn.execute(
                        ins.values(
                            key=key, fingerprint=fingerprint, changed_at=first
                        ).on_conflict_do_nothing(index_elements=["key"])
                    ).rowcount:
                        return first
                    continue  # another writer stored it first: read theirs
                if found.fingerprint == fingerprint:
                    return found.changed_at
                changed = max(
                    now, first, found.changed_at.replace(microsecond=0) + timedelta(seconds=1)
                )
                moved = conn.execute(
                    update(t.content_marks)
                    .where(
                        c.key == key,
                        c.fingerprint == found.fingerprint,
                        c.changed_at == found.changed_at,
                    )
                    .values(fingerprint=fingerprint, changed_at=changed)
                ).rowcount
                if moved:
                    return changed
        raise RuntimeError(f"content mark {key!r} kept changing under concurrent writers")

    def touch_feeds(self, now: datetime) -> None:
        """Mark every built feed as stale (for writers the version stamp does not see)."""
        self.db.set_meta("feeds.touched_at", now.isoformat())

    def public_category_counts(
        self,
        set_id: int,
        *,
        now: datetime,
        since: datetime,
        beat: str | None = None,
        sector: str | None = None,
        precinct: str | None = None,
    ) -> dict[str, int]:
        """Published entries of an area per category, for events since `since`."""
        q = area_filter(public_entries_query(set_id, now), beat, sector, precinct)
        q = q.where(t.incidents.c.event_time >= since).subquery()
        with self.engine.connect() as conn:
            return {
                r[0]: r[1]
                for r in conn.execute(select(q.c.category, func.count()).group_by(q.c.category))
            }

    def public_counts_between(
        self,
        set_id: int,
        bounds: Sequence[datetime],
        *,
        now: datetime,
        beat: str | None = None,
        sector: str | None = None,
        precinct: str | None = None,
    ) -> list[int]:
        """Published entries of an area whose event falls in each [bounds[k], bounds[k+1])."""
        if len(bounds) < 2:
            return []
        q = area_filter(public_entries_query(set_id, now), beat, sector, precinct)
        q = q.where(t.incidents.c.event_time >= min(bounds)).subquery()
        sums = [
            func.coalesce(
                func.sum(case((and_(q.c.event_time >= lo, q.c.event_time < hi), 1), else_=0)), 0
            )
            for lo, hi in zip(bounds, bounds[1:], strict=False)
        ]
        with self.engine.connect() as conn:
            return [int(v) for v in conn.execute(select(*sums)).one()]


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
