"""What the public sees: areas, their entries and feeds, and point-to-beat lookup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from . import feeds, spatial
from .errors import AreaNotFound, EntryNotFound, OutsideCoverage
from .models import Area, Beat, FeedEntry

AREA_KINDS = ("city", "precinct", "sector", "beat")


@dataclass
class RenderedFeed:
    body: bytes
    content_type: str
    last_modified: datetime  # naive UTC


@dataclass
class Directory:
    """Beats grouped by precinct and sector for the home page."""

    beat_set_id: int
    beat_set_name: str
    precincts: list[tuple[str, str, list[tuple[str, list[Beat]]]]]  # (code, label, sectors)
    counts: dict[str, int]


def resolve_area(store, kind: str, code: str | None) -> Area:
    """The area named in a URL, in the active beat map; AreaNotFound when it is not there."""
    set_id = store.active_beat_set().id
    if kind == "city":
        return Area("city", None, feeds.area_label("city", None), set_id)
    beats = store.beats(set_id)
    field = {"beat": "code", "sector": "sector", "precinct": "precinct"}.get(kind)
    if field is None:
        raise AreaNotFound(f"Unknown kind of area {kind!r}.")
    wanted = (code or "").upper()
    if not any((getattr(b, field) or "").upper() == wanted for b in beats):
        raise AreaNotFound(f"There is no {kind} {code!r} in the current beat map.")
    canonical = next(getattr(b, field) for b in beats if (getattr(b, field) or "").upper() == wanted)
    return Area(kind, canonical, feeds.area_label(kind, canonical), set_id)


def area_entries(store, settings, area: Area, *, now: datetime, limit: int | None = None,
                 offset: int = 0) -> list[FeedEntry]:
    """Published entries of an area, newest first, with their display titles."""
    kw = {area.kind: area.code} if area.kind != "city" else {}
    entries = store.public_entries(area.beat_set_id, now=now,
                                   limit=limit or settings.feed_max_entries, offset=offset, **kw)
    for e in entries:
        e.title = feeds._title(e, settings)
    return entries


def area_feed(store, settings, area: Area, fmt: str, *, now: datetime) -> RenderedFeed:
    """An area's feed in one format, with the time of its last change."""
    entries = store.public_entries(area.beat_set_id, now=now, limit=settings.feed_max_entries,
                                   **({area.kind: area.code} if area.kind != "city" else {}))
    active = store.active_beat_set()
    fallback = active.published_at or active.created_at
    body = feeds.build_feed(area, entries, fmt, settings, updated_fallback=fallback)
    return RenderedFeed(body, feeds.FORMATS[fmt], feeds.feed_updated(entries, fallback))


def public_entry(store, settings, uid: str, *, now: datetime) -> FeedEntry:
    """One published entry by its opaque id; EntryNotFound for anything not public."""
    set_id = store.active_beat_set().id
    e = store.public_entry(set_id, uid, now=now) if uid.isalnum() and len(uid) <= 32 else None
    if e is None:
        raise EntryNotFound()
    e.title = feeds._title(e, settings)
    return e


def directory(store, *, now: datetime) -> Directory:
    """The active map's beats grouped by precinct, then sector."""
    bs = store.active_beat_set()
    beats = store.beats(bs.id)
    grouped: dict[str, dict[str, list[Beat]]] = {}
    for b in beats:
        grouped.setdefault(b.precinct or "", {}).setdefault(b.sector or "", []).append(b)
    precincts = [
        (p, feeds.area_label("precinct", p) if p else "No precinct",
         [(s, grouped[p][s]) for s in sorted(grouped[p])])
        for p in sorted(grouped)
    ]
    return Directory(bs.id, bs.name, precincts, store.public_counts_by_beat(bs.id, now=now))


def locate(store, lat: float, lon: float) -> dict:
    """The beat, sector and precinct at a point of the active map; OutsideCoverage if none."""
    bs = store.active_beat_set()
    beats = store.beats(bs.id)
    code = spatial.assign_beats(np.array([[lon, lat]]), beats)[0]
    if code is None:
        raise OutsideCoverage()
    beat = next(b for b in beats if b.code == code)
    return {"beat": beat.code, "sector": beat.sector, "precinct": beat.precinct,
            "beatset": bs.id}


def neighbours(store, area: Area) -> list[Beat]:
    """Beats of an area (a beat's own polygon for a beat)."""
    beats = store.beats(area.beat_set_id)
    if area.kind == "city":
        return beats
    field = {"beat": "code", "sector": "sector", "precinct": "precinct"}[area.kind]
    return [b for b in beats if getattr(b, field) == area.code]
