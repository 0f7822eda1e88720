"""Department announcements: alerts, road closures, missing persons, prevention tips,
community events and department updates, targeted at areas of the active beat map.

They appear in the feeds of the beats they target (and of the sectors, precincts and city
containing them) under their own category, and go out through those areas' outbound
accounts. Like incidents they wait for the publication delay, unless an alert or a
missing-person announcement is marked urgent.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import shapely
from shapely.geometry import shape

from beatfeeds.core import areas
from beatfeeds.core.errors import Conflict, InvalidInput
from beatfeeds.core.models import ANNOUNCEMENT_KINDS, URGENT_KINDS, Announcement, Area, FeedEntry

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

MAX_TITLE = 200
MAX_BODY = 5000
PREFIX = "announcement-"


def category(kind: str) -> str:
    return PREFIX + kind


def _parse_codes(values) -> list[str]:
    if isinstance(values, str):
        values = values.replace(";", ",").replace("\n", ",").split(",")
    return sorted({v.strip().upper() for v in values or () if v and v.strip()})


def parse_polygon(text: str):
    """A shapely (Multi)Polygon from GeoJSON: a geometry, a Feature or a FeatureCollection."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise InvalidInput("The drawn area is not valid GeoJSON.") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in doc.get("features", [])]
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        geoms = [doc.get("geometry")]
    else:
        geoms = [doc]
    try:
        shapes = [shape(g) for g in geoms if g]
    except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.GEOSException):
        raise InvalidInput("The drawn area is not a GeoJSON polygon.") from None
    if not shapes or any(s.geom_type not in ("Polygon", "MultiPolygon") for s in shapes):
        raise InvalidInput("The drawn area must be a polygon.")
    geom = shapely.union_all(shapes)
    if geom.is_empty or not geom.is_valid:
        raise InvalidInput("The drawn area is not a valid polygon (it crosses itself?).")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput("The drawn area must be in longitude/latitude (EPSG:4326).")
    return geom


def resolve_targets(
    store: SQLStore,
    set_id: int,
    *,
    beats=(),
    sectors=(),
    precincts=(),
    city: bool = False,
    polygon: str | None = None,
) -> tuple[list[str], dict]:
    """The beat codes an announcement reaches, and the target as staff chose it."""
    all_beats = store.beatmaps.beats(set_id)
    target: dict = {}
    if city:
        return [b.code for b in all_beats], {"city": True}
    chosen: set[str] = set()
    for kind, values, attr in (
        ("beats", beats, "code"),
        ("sectors", sectors, "sector"),
        ("precincts", precincts, "precinct"),
    ):
        codes = _parse_codes(values)
        if not codes:
            continue
        known = {(getattr(b, attr) or "").upper(): getattr(b, attr) for b in all_beats}
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise InvalidInput(f"Unknown {kind} in the current beat map: {', '.join(unknown)}.")
        target[kind] = [known[c] for c in codes]
        wanted = {known[c] for c in codes}
        chosen |= {b.code for b in all_beats if getattr(b, attr) in wanted}
    if polygon and polygon.strip():
        geom = parse_polygon(polygon)
        tree = shapely.STRtree([b.geometry for b in all_beats])
        hit = {all_beats[i].code for i in tree.query(geom, predicate="intersects")}
        if not hit:
            raise InvalidInput("The drawn area touches no beat of the current beat map.")
        target["polygon"] = shapely.geometry.mapping(geom)
        chosen |= hit
    if not chosen:
        raise InvalidInput(
            "Choose where the announcement applies: beats, sectors, precincts, "
            "the whole city, or an area drawn on the map."
        )
    return sorted(chosen), target


def publish_time(
    settings: Settings, *, starts_at: datetime | None, urgent: bool, now: datetime
) -> datetime:
    """When an announcement becomes public (its `publish_at`, naive UTC): its start, never in
    the past, plus the publication delay; urgent ones skip the delay."""
    start = max(starts_at or now, now)
    return start if urgent else start + timedelta(minutes=settings.publication_delay)


def _check_kind(kind: str) -> None:
    if kind not in ANNOUNCEMENT_KINDS:
        raise InvalidInput(f"Type must be one of {', '.join(ANNOUNCEMENT_KINDS)}.")


def _clean_text(title: str, body: str) -> tuple[str, str]:
    """Title on one line, body trimmed; refused when empty or too long."""
    title = " ".join((title or "").split())
    body = (body or "").strip().replace("\r\n", "\n")
    if not title:
        raise InvalidInput("Give the announcement a title.")
    if len(title) > MAX_TITLE or len(body) > MAX_BODY:
        raise InvalidInput(f"Titles are limited to {MAX_TITLE} characters and texts to {MAX_BODY}.")
    return title, body


def _check_expiry(expires_at: datetime | None, publish_at: datetime) -> None:
    if expires_at is not None and expires_at <= publish_at:
        raise InvalidInput("The announcement would expire before it is published.")


def create_announcement(
    store: SQLStore,
    settings: Settings,
    *,
    kind: str,
    title: str,
    body: str,
    beats=(),
    sectors=(),
    precincts=(),
    city: bool = False,
    polygon: str | None = None,
    urgent: bool = False,
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
    actor: str,
    now: datetime,
) -> Announcement:
    """Store an announcement for its areas. Times are naive UTC."""
    _check_kind(kind)
    title, body = _clean_text(title, body)
    if urgent and kind not in URGENT_KINDS:
        raise InvalidInput("Only alerts and missing-person announcements can be urgent.")
    publish_at = publish_time(settings, starts_at=starts_at, urgent=urgent, now=now)
    _check_expiry(expires_at, publish_at)
    set_id = store.beatmaps.active_beat_set().id
    codes, target = resolve_targets(
        store, set_id, beats=beats, sectors=sectors, precincts=precincts, city=city, polygon=polygon
    )
    uid = "a" + secrets.token_hex(9)
    with store.db.unit_of_work():  # the announcement and its audit entry, or neither
        store.outbox.add_announcement(
            uid=uid,
            kind=kind,
            title=title,
            body=body,
            urgent=urgent,
            citywide=bool(city),
            target=json.dumps(target),
            beat_set_id=set_id,
            publish_at=publish_at,
            expires_at=expires_at,
            created_at=now,
            updated_at=now,
            created_by=actor,
            beats=[] if city else codes,
        )
        store.accounts.audit(
            actor,
            "announcements.add",
            f"announcement:{uid}",
            {
                "kind": kind,
                "title": title,
                "urgent": urgent,
                "beats": len(codes),
                "publish_at": publish_at.isoformat(),
            },
            now=now,
        )
    return store.outbox.announcement(uid)


def edit_announcement(
    store: SQLStore,
    settings: Settings,
    uid: str,
    *,
    kind: str,
    title: str,
    body: str,
    expires_at: datetime | None,
    actor: str,
    now: datetime,
) -> Announcement:
    """Correct an announcement's type, title, text or expiry (its areas and start stay).

    Feeds show the new text at once. Posts already made stay as they are, unless the type
    changes: that is a new category, posted again (the old post is superseded)."""
    ann = store.outbox.announcement(uid)
    if ann.withdrawn_at is not None:
        raise Conflict("A withdrawn announcement cannot be edited.")
    _check_kind(kind)
    if ann.urgent and kind not in URGENT_KINDS:
        raise InvalidInput(
            "This announcement is urgent: only an alert or a missing-person "
            "announcement can be urgent."
        )
    title, body = _clean_text(title, body)
    _check_expiry(expires_at, ann.publish_at)
    with store.db.unit_of_work():
        store.outbox.update_announcement(
            uid, kind=kind, title=title, body=body, expires_at=expires_at, updated_at=now
        )
        store.accounts.audit(
            actor,
            "announcements.edit",
            f"announcement:{uid}",
            {"kind": kind, "title": title, "kind_changed": kind != ann.kind},
            now=now,
        )
    return store.outbox.announcement(uid)


def withdraw_announcement(store: SQLStore, uid: str, *, actor: str, now: datetime) -> None:
    """Take an announcement out of every feed; its posts are deleted by `retract-posts`."""
    ann = store.outbox.announcement(uid)
    if ann.withdrawn_at is not None:
        raise Conflict("That announcement was already withdrawn.")
    with store.db.unit_of_work():
        store.outbox.update_announcement(uid, withdrawn_at=now, updated_at=now)
        store.accounts.audit(actor, "announcements.withdraw", f"announcement:{uid}", now=now)


def entry_title(kind: str, title: str, urgent: bool = False) -> str:
    return ("URGENT " if urgent else "") + f"{ANNOUNCEMENT_KINDS.get(kind, kind)}: {title}"


def _titled(store: SQLStore, entries: list[FeedEntry]) -> list[FeedEntry]:
    for e in entries:
        e.title = entry_title(e.category_text, e.title)
    return entries


def area_announcements(
    store: SQLStore, area: Area, *, now: datetime, limit: int, categories=(), exclude=()
) -> list[FeedEntry]:
    """Announcements public now in an area, as feed entries (filtered like incidents).

    "Public now" is `Announcement.status(now) == "published"` (started, not expired, not
    withdrawn); storage's `public_announcements` writes the same condition in SQL, and a
    test checks that the two agree."""
    kw = areas.area_keywords(area.kind, area.code)
    entries = store.outbox.public_announcements(area.beat_set_id, now=now, limit=limit, **kw)
    entries = [
        e
        for e in entries
        if (not categories or e.category in categories) and e.category not in exclude
    ]
    return _titled(store, entries)


def with_announcements(
    store: SQLStore,
    area: Area,
    entries: list[FeedEntry],
    *,
    now: datetime,
    limit: int,
    categories=(),
    exclude=(),
) -> list[FeedEntry]:
    """An area's entries merged with its announcements, newest first."""
    extra = area_announcements(
        store, area, now=now, limit=limit, categories=categories, exclude=exclude
    )
    if not extra:
        return entries
    return sorted(entries + extra, key=lambda e: e.event_time, reverse=True)[:limit]


def public_announcement(store: SQLStore, uid: str, *, now: datetime) -> FeedEntry | None:
    """An announcement's entry for its page, if it is public."""
    if not uid.startswith("a"):
        return None
    set_id = store.beatmaps.active_beat_set_id()
    found = store.outbox.public_announcements(set_id, now=now, uid=uid, limit=1) if set_id else []
    return _titled(store, found)[0] if found else None
