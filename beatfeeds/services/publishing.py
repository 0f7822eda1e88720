"""What the public sees: areas, their entries and feeds, and point-to-beat lookup."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import shapely

from beatfeeds.core import areas
from beatfeeds.core.areas import BEAT_FIELDS, area_label, feed_path, opml_path, page_path
from beatfeeds.core.categories import CATEGORIES
from beatfeeds.core.errors import AreaNotFound, EntryNotFound, InvalidInput, OutsideCoverage
from beatfeeds.core.models import Area, Beat, FeedEntry
from beatfeeds.geo import spatial
from beatfeeds.publish import feeds
from beatfeeds.publish.cache import FeedCache, RenderedFeed
from beatfeeds.publish.feeds import FeedContext, FeedFilter
from beatfeeds.services import announcements, beatmaps

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

STATS_DAYS = 30  # "counts by category for the last 30 days" on area pages
BUSY_WEEKS = 8  # weeks averaged for "how busy is this feed"


@dataclass
class AreaStats:
    """What an area page says about its feed's volume."""

    since: datetime  # start of the category window, naive UTC
    by_category: list[tuple[str, int]]  # (slug, count), most first
    weekly: list[tuple[datetime, int]]  # (week start, count), oldest first
    per_week: float  # average of `weekly`


@dataclass
class Directory:
    """Beats grouped by precinct and sector for the home page."""

    beat_set_id: int
    beat_set_name: str
    precincts: list[tuple[str, str, list[tuple[str, list[Beat]]]]]  # (code, label, sectors)
    counts: dict[str, int]


def resolve_area(store: SQLStore, kind: str, code: str | None) -> Area:
    """The area named in a URL, in the active beat map; AreaNotFound when it is not there."""
    set_id = store.beatmaps.active_beat_set().id
    if kind == "city":
        return Area("city", None, area_label("city", None), set_id)
    beats = store.beatmaps.beats(set_id)
    field = BEAT_FIELDS.get(kind)
    if field is None:
        raise AreaNotFound(f"Unknown kind of area {kind!r}.")
    wanted = (code or "").upper()
    codes = {getattr(b, field) for b in beats if getattr(b, field)}
    canonical = next((c for c in sorted(codes) if c.upper() == wanted), None)
    if canonical is None:
        same_number = _same_number(wanted, codes)
        if len(same_number) > 1:
            raise AreaNotFound(
                f"{kind.capitalize()} {code!r} is ambiguous: it could be "
                f"{' or '.join(sorted(same_number))}."
            )
        canonical = same_number[0] if same_number else None
    if canonical is None:
        gone = (
            beatmaps.retired_beat(store, wanted)
            if kind == "beat"
            else beatmaps.retired_area(store, kind, wanted)
        )
        if gone is not None:  # renamed: the caller redirects; removed: its feed keeps answering
            renamed = "renamed" in (gone.kind, (gone.detail or {}).get("change"))
            now_code = gone.new_codes[0] if renamed else gone.code
            return Area(kind, now_code, area_label(kind, now_code), set_id)
        raise AreaNotFound(f"There is no {kind} {code!r} in the current beat map.")
    return Area(kind, canonical, area_label(kind, canonical), set_id)


def _same_number(wanted: str, codes: set[str]) -> list[str]:
    """The numeric codes that are `wanted` written with more or fewer leading zeros
    (`111` -> `0111`); a map's codes keep their zeros as in its file."""
    if not (wanted.isascii() and wanted.isdigit()):
        return []
    return sorted(
        c for c in codes if c.isascii() and c.isdigit() and c != wanted and int(c) == int(wanted)
    )


def retention_start(settings: Settings, now: datetime) -> datetime | None:
    """Events before this drop out of feeds and pages (None: keep everything)."""
    days = settings.feed_retention_days
    return now - timedelta(days=days) if days else None


def parse_filter(categories: Iterable[str], exclude: Iterable[str]) -> FeedFilter:
    """A feed filter from the query string's `category` and `exclude` values.

    Values may also be comma-separated. Unknown categories are an InvalidInput naming them,
    so a typo does not silently give an empty (or unfiltered) feed.
    """

    def split(values: Iterable[str]) -> tuple[str, ...]:
        out = [v.strip().lower() for raw in values for v in raw.split(",") if v.strip()]
        unknown = sorted({v for v in out if v not in CATEGORIES})
        if unknown:
            raise InvalidInput(
                f"Unknown categor{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(unknown)}. Categories are: {', '.join(CATEGORIES)}."
            )
        return tuple(sorted(set(out)))

    return FeedFilter(split(categories), split(exclude))


def area_entries(
    store: SQLStore,
    settings: Settings,
    area: Area,
    *,
    now: datetime,
    limit: int | None = None,
    offset: int = 0,
) -> list[FeedEntry]:
    """Published entries of an area, newest first, with their display titles."""
    entries = store.public.public_entries(
        area.beat_set_id,
        now=now,
        limit=limit or settings.feed_max_entries,
        offset=offset,
        since=retention_start(settings, now),
        **areas.area_keywords(area.kind, area.code),
    )
    if offset == 0:  # boundary changes of the area: its beats', its own, the city's maps
        entries = beatmaps.with_system_entries(
            store, entries, area.kind, area.code, now=now, limit=limit or settings.feed_max_entries
        )
    if offset == 0:
        entries = announcements.with_announcements(
            store, area, entries, now=now, limit=limit or settings.feed_max_entries
        )
    for e in entries:
        e.title = feeds._title(e, settings)
    return entries


def area_polygon(store: SQLStore, area: Area) -> list[tuple[float, float]] | None:
    """The outline of an area as a (lat, lon) ring for GeoRSS: the beat, or the union of the
    sector's or precinct's beats; the largest part when it is in pieces, simplified."""
    beats = neighbours(store, area)
    if not beats:
        return None
    geom = shapely.union_all([b.geometry for b in beats]) if len(beats) > 1 else beats[0].geometry
    tolerance = 0.0001 if area.kind == "beat" else 0.0005
    geom = geom.simplify(tolerance, preserve_topology=True)
    if geom.geom_type == "MultiPolygon":
        geom = max(geom.geoms, key=lambda g: g.area)
    if geom.geom_type != "Polygon" or geom.is_empty:
        return None
    return [(round(y, 5), round(x, 5)) for x, y in geom.exterior.coords]


def feed_context(
    store: SQLStore, settings: Settings, area: Area, filt: FeedFilter | None = None
) -> FeedContext:
    """Everything a feed carries beside its entries."""
    return FeedContext(
        area,
        polygon=area_polygon(store, area),
        filter=filt or FeedFilter(),
        hub_url=settings.hub_url,
    )


def feed_version(store: SQLStore, settings: Settings, *, now: datetime) -> str:
    """The stamp under which built feeds stay valid (see SQLStore.feed_version)."""
    stamp = store.public.feed_version(now=now, since=retention_start(settings, now))
    return f"{stamp}|{store.outbox.announcements_version(now)}"  # announcements start and end too


def area_feed_stamps(
    store: SQLStore, settings: Settings, *, now: datetime
) -> dict[str | None, str]:
    """The stamps area_version combines (see SQLStore.area_feed_stamps), announcements
    included: read once per feed_version, shared by every feed."""
    stamps = store.public.area_feed_stamps(
        store.beatmaps.active_beat_set().id, now=now, since=retention_start(settings, now)
    )
    stamps[None] += repr(store.outbox.announcements_version(now))
    return stamps


def area_version(store: SQLStore, area: Area, stamps: dict[str | None, str]) -> str:
    """The stamp of what one area's feeds show: its beats' stamps from `stamps`
    (area_feed_stamps), the beat map, the meta table and the announcements."""
    if area.kind == "city":
        codes = sorted(k for k in stamps if k is not None)
    else:
        field = BEAT_FIELDS[area.kind]
        codes = sorted(
            b.code for b in store.beatmaps.beats(area.beat_set_id) if getattr(b, field) == area.code
        )
    parts = [stamps[None], str(area.beat_set_id), *(f"{c}={stamps.get(c)}" for c in codes)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def area_feed(
    store: SQLStore,
    settings: Settings,
    area: Area,
    fmt: str,
    *,
    now: datetime,
    filt: FeedFilter | None = None,
) -> RenderedFeed:
    """Build an area's feed in one format, with the time of its last change (uncached: the
    web app goes through serve_area_feed)."""
    filt = filt or FeedFilter()
    entries = store.public.public_entries(
        area.beat_set_id,
        now=now,
        limit=settings.feed_max_entries,
        categories=filt.categories,
        exclude=filt.exclude,
        since=retention_start(settings, now),
        geo_precision=settings.geo_precision,
        **areas.area_keywords(area.kind, area.code),
    )
    if not filt:
        entries = beatmaps.with_system_entries(
            store, entries, area.kind, area.code, now=now, limit=settings.feed_max_entries
        )
    entries = announcements.with_announcements(
        store,
        area,
        entries,
        now=now,
        limit=settings.feed_max_entries,
        categories=filt.categories,
        exclude=filt.exclude,
    )
    active = store.beatmaps.active_beat_set()
    fallback = active.published_at or active.created_at
    ctx = feed_context(store, settings, area, filt)
    draft = feeds.build_feed(ctx, entries, fmt, settings, updated=feeds.UNDATED)
    changed = document_mark(
        store,
        ("feed", area.kind, area.code or "", fmt, filt.query()),
        draft,
        first=feeds.feed_updated(entries, fallback),
        now=now,
    )
    return RenderedFeed(feeds.date_feed(draft, fmt, changed), feeds.FORMATS[fmt], changed)


def document_mark(
    store: SQLStore, name: tuple[str, ...], content: bytes, *, first: datetime, now: datetime
) -> datetime:
    """When a public document last changed (naive UTC, whole seconds): never earlier than
    before, and later whenever its content differs from the last time it was built.

    `name` says which document (a feed in one format with one filter, a page, an OPML list);
    `content` is all it shows, without its own date; `first` dates a document never seen.
    Removals (retractions, suppression by a policy change, retention, a beat-map change)
    change the content like additions do, so they move the mark too.
    """
    key = hashlib.sha256("\x1f".join(name).encode()).hexdigest()
    return store.public.content_mark(key, hashlib.sha256(content).hexdigest(), first=first, now=now)


def serve_area_feed(
    store: SQLStore,
    settings: Settings,
    kind: str,
    code: str | None,
    fmt: str,
    *,
    now: datetime,
    filt: FeedFilter,
    cache: FeedCache,
) -> tuple[Area, RenderedFeed | None]:
    """The feed a URL names, from the cache when the version stamp has not moved.

    On a hit nothing but the stamp is read: the area was resolved when the feed was built, and
    the stamp covers the active beat map. When the stamp moved, the area's own stamp decides
    whether to rebuild (see FeedCache). Returns (area, None) when the URL's code is not the
    canonical one (the caller redirects); AreaNotFound when there is no such area.
    """
    key = ("served", kind, code, fmt, filt.query())
    version = feed_version(store, settings, now=now)
    found = cache.get(key, version)
    if found is not None:
        return found
    area = resolve_area(store, kind, code)
    if kind != "city" and area.code != code:
        return area, None

    def own_version(built_area: Area) -> str:
        stamps = cache.per_version(version, lambda: area_feed_stamps(store, settings, now=now))
        return area_version(store, built_area, stamps)

    def build():
        # The area's stamp is read before the build: a write in between rebuilds next time.
        own = own_version(area)
        return (area, area_feed(store, settings, area, fmt, now=now, filt=filt)), own

    return cache.fetch(key, version, build, lambda built: own_version(built[0]))


def area_stats(store: SQLStore, settings: Settings, area: Area, *, now: datetime) -> AreaStats:
    """Counts by category over the last STATS_DAYS days and entries per week over the last
    BUSY_WEEKS weeks: how busy a subscriber's reader would be."""
    since = now - timedelta(days=STATS_DAYS)
    counts = store.public.public_category_counts(
        area.beat_set_id, now=now, since=since, **areas.area_keywords(area.kind, area.code)
    )
    by_category = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    bounds = [now - timedelta(weeks=BUSY_WEEKS - k) for k in range(BUSY_WEEKS + 1)]
    weekly = store.public.public_counts_between(
        area.beat_set_id, bounds, now=now, **areas.area_keywords(area.kind, area.code)
    )
    return AreaStats(
        since, by_category, list(zip(bounds, weekly, strict=False)), sum(weekly) / BUSY_WEEKS
    )


def area_page_info(store: SQLStore, settings: Settings, area: Area, *, now: datetime) -> dict:
    """What an area page shows beside its entries: its beats and their neighbours, feed
    statistics, the feed address to copy, the OPML list that holds it, and the categories a
    subscriber may filter on."""
    beats = neighbours(store, area)
    precinct = (
        area.code
        if area.kind == "precinct"
        else beats[0].precinct
        if beats and area.kind != "city"
        else None
    )
    if precinct:
        opml = {
            "url": opml_path(precinct),
            "label": f"Every beat of the {area_label('precinct', precinct)}",
        }
    else:
        opml = {"url": opml_path(), "label": "Every beat"}
    suppressed = set(settings.suppressed_categories)
    return {
        "beats": beats,
        "adjacent": adjacent_beats(store, area),
        "stats": area_stats(store, settings, area, now=now),
        "feed_url": feeds.feed_url(settings, area, "atom"),
        "opml": opml,
        "categories": [
            (slug, label) for slug, label in CATEGORIES.items() if slug not in suppressed
        ],
    }


def adjacent_beats(store: SQLStore, area: Area) -> list[Beat]:
    """Beats that share a border with a beat (or lie within a few metres of it)."""
    if area.kind != "beat":
        return []
    beats = store.beatmaps.beats(area.beat_set_id)
    own = next((b for b in beats if b.code == area.code), None)
    if own is None:  # a beat removed by a redraw: its page still answers
        return []
    near = own.geometry.buffer(0.0002)  # about 20 m: digitised borders rarely meet exactly
    return [b for b in beats if b.code != own.code and b.geometry.intersects(near)]


def beats_geojson(store: SQLStore, settings: Settings) -> dict:
    """The active map's beats as a GeoJSON FeatureCollection for the public maps."""
    bs = store.beatmaps.active_beat_set()
    features = []
    for b in store.beatmaps.beats(bs.id):
        geom = b.geometry.simplify(0.00005, preserve_topology=True)
        features.append(
            {
                "type": "Feature",
                "id": b.code,
                "properties": {
                    "beat": b.code,
                    "sector": b.sector,
                    "precinct": b.precinct,
                    "precinct_label": area_label("precinct", b.precinct) if b.precinct else "",
                    "url": page_path("beat", b.code),
                },
                "geometry": shapely.geometry.mapping(shapely.set_precision(geom, 0.00001)),
            }
        )
    return {"type": "FeatureCollection", "name": bs.name, "beat_map": bs.id, "features": features}


def opml(
    store: SQLStore, settings: Settings, *, now: datetime, precinct: str | None = None
) -> RenderedFeed:
    """OPML 2.0 list of every beat feed (of one precinct when given), grouped by precinct,
    dated (`dateCreated`, Last-Modified) by its last change."""
    base = settings.base_url
    d = directory(store, now=now)
    if precinct is not None:
        area = resolve_area(store, "precinct", precinct)
        groups = [g for g in d.precincts if g[0] == area.code]
        title = f"{settings.department_name}: beats of the {area.label}"
    else:
        groups = d.precincts
        title = f"{settings.department_name}: every beat"
    outlines = []
    for _code, label, sectors in groups:
        items = [
            (
                f"{settings.department_name}: Beat {b.code}",
                base + feed_path("beat", b.code, "rss"),
                base + page_path("beat", b.code),
            )
            for _s, beats in sectors
            for b in beats
        ]
        outlines.append(("" if precinct is not None else label, items))
    draft = feeds.build_opml(title, outlines, created=feeds.UNDATED, owner=settings.department_name)
    active = store.beatmaps.active_beat_set()
    changed = document_mark(
        store,
        ("opml", precinct or ""),
        draft,
        first=active.published_at or active.created_at,
        now=now,
    )
    return RenderedFeed(feeds.date_opml(draft, changed), "text/x-opml; charset=utf-8", changed)


def all_areas(store: SQLStore) -> list[Area]:
    """Every area with feeds in the active map: the city, precincts, sectors and beats."""
    set_id = store.beatmaps.active_beat_set().id
    beats = store.beatmaps.beats(set_id)
    areas = [Area("city", None, area_label("city", None), set_id)]
    for kind, field in BEAT_FIELDS.items():  # precincts, then sectors, then beats
        for code in sorted({getattr(b, field) for b in beats if getattr(b, field)}):
            areas.append(Area(kind, code, area_label(kind, code), set_id))
    return areas


def find_beat(store: SQLStore, code: str) -> str:
    """The canonical code of a beat typed by a resident ("k3 " -> "K3"); AreaNotFound."""
    return resolve_area(store, "beat", code.strip()).code


def public_entry(store: SQLStore, settings: Settings, uid: str, *, now: datetime) -> FeedEntry:
    """One published entry by its opaque id; EntryNotFound for anything not public."""
    set_id = store.beatmaps.active_beat_set().id
    e = (
        store.public.public_entry(set_id, uid, now=now)
        if uid.isalnum() and len(uid) <= 32
        else None
    )
    e = e or beatmaps.system_entry(store, uid)
    e = e or announcements.public_announcement(store, uid, now=now)
    if e is None:
        raise EntryNotFound()
    e.title = feeds._title(e, settings)
    return e


def directory(store: SQLStore, *, now: datetime) -> Directory:
    """The active map's beats grouped by precinct, then sector."""
    bs = store.beatmaps.active_beat_set()
    beats = store.beatmaps.beats(bs.id)
    grouped: dict[str, dict[str, list[Beat]]] = {}
    for b in beats:
        grouped.setdefault(b.precinct or "", {}).setdefault(b.sector or "", []).append(b)
    precincts = [
        (
            p,
            area_label("precinct", p) if p else "No precinct",
            [(s, grouped[p][s]) for s in sorted(grouped[p])],
        )
        for p in sorted(grouped)
    ]
    return Directory(bs.id, bs.name, precincts, store.public.public_counts_by_beat(bs.id, now=now))


def locate(store: SQLStore, lat: float, lon: float) -> dict:
    """The beat, sector and precinct at a point of the active map; OutsideCoverage if none."""
    bs = store.beatmaps.active_beat_set()
    beats = store.beatmaps.beats(bs.id)
    code = spatial.assign_beats(np.array([[lon, lat]]), beats)[0]
    if code is None:
        raise OutsideCoverage()
    beat = next(b for b in beats if b.code == code)
    return {"beat": beat.code, "sector": beat.sector, "precinct": beat.precinct, "beatset": bs.id}


def neighbours(store: SQLStore, area: Area) -> list[Beat]:
    """Beats of an area (a beat's own polygon for a beat)."""
    beats = store.beatmaps.beats(area.beat_set_id)
    if area.kind == "city":
        return beats
    field = BEAT_FIELDS[area.kind]
    return [b for b in beats if getattr(b, field) == area.code]
