"""RSS 2.0, Atom 1.0 (feedgen) and JSON Feed 1.1 for an area; stable `tag:` entry ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import quote

from feedgen.feed import FeedGenerator

from . import privacy
from .models import Area, FeedEntry

FORMATS = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}

PRECINCT_NAMES = {"N": "North", "E": "East", "S": "South", "SW": "Southwest", "W": "West"}


def area_label(kind: str, code: str | None) -> str:
    if kind == "city":
        return "Citywide"
    if kind == "precinct":
        return f"{PRECINCT_NAMES.get(code, code)} Precinct"
    return f"{kind.capitalize()} {code}"


def entry_tag(authority: str, source: str, external_id: str) -> str:
    """The entry id: depends only on the tag authority and the incident identity."""
    return f"tag:{authority}:incident/{quote(source, safe='')}/{quote(external_id, safe='')}"


def feed_tag(authority: str, area: Area) -> str:
    return f"tag:{authority}:feed/{area.kind}" + (f"/{quote(area.code, safe='')}" if area.code else "")


def area_path(area: Area) -> str:
    """The site path of an area's page ("" for the city)."""
    return {"city": "", "precinct": "/precincts/", "sector": "/sectors/", "beat": "/beats/"}[
        area.kind] + (quote(area.code, safe="") if area.code else "")


def _aware(d: datetime) -> datetime:
    return d.replace(tzinfo=UTC)


def feed_updated(entries: list[FeedEntry], fallback: datetime) -> datetime:
    """Feed-level updated time: the newest entry change (an update, or an entry going public
    after its delay), so readers revalidating with If-Modified-Since see new entries and
    unchanged feeds keep their ETag."""
    return max((e.changed_at for e in entries), default=fallback)


def build_feed(area: Area, entries: list[FeedEntry], fmt: str, settings, *,
               updated_fallback: datetime) -> bytes:
    """Serialise an area's entries (newest first) as RSS, Atom or JSON Feed bytes."""
    base = settings.base_url
    authority = settings.tag_authority
    page = base + (area_path(area) or "/")
    feed_url = f"{base}{area_path(area)}/feed.{fmt}"
    title = f"{settings.department_name}: {area.label}"
    subtitle = (f"Police incidents in {area.label}, published {settings.publication_delay} "
                f"minutes after they happen, located to the hundred block. Not monitored: "
                f"in an emergency call 911.")
    updated = _aware(feed_updated(entries, updated_fallback))
    items = [(e, _title(e, settings), entry_tag(authority, e.source, e.external_id),
              f"{base}/entries/{e.uid}") for e in entries]
    if fmt == "json":
        return _json_feed(title, subtitle, page, feed_url, items)

    fg = FeedGenerator()
    fg.id(feed_tag(authority, area))
    fg.title(title)
    fg.subtitle(subtitle)  # RSS <description>, Atom <subtitle>
    # feedgen takes RSS <link> from the last link given, so the page comes last.
    fg.link(href=feed_url, rel="self", type=FORMATS[fmt].split(";")[0])
    fg.link(href=page, rel="alternate", type="text/html")
    fg.language("en")
    fg.author({"name": settings.department_name})
    fg.generator("beatfeeds")
    fg.updated(updated)
    fg.lastBuildDate(updated)
    for e, text, tag, link in items:
        fe = fg.add_entry(order="append")
        fe.id(tag)
        fe.guid(tag, permalink=False)
        fe.title(text)
        fe.link(href=link, rel="alternate", type="text/html")
        fe.published(_aware(e.event_time))
        fe.updated(_aware(e.updated_at))
        fe.category(term=e.category, label=privacy.category_label(e.category))
        fe.description(_summary(e, text))
    if fmt == "rss":
        return fg.rss_str(pretty=True)
    if fmt == "atom":
        return fg.atom_str(pretty=True)
    raise ValueError(f"unknown feed format {fmt!r}")


def _title(e: FeedEntry, settings) -> str:
    return privacy.entry_title(e.description, e.block_address, e.event_time, settings.tz, e.beat)


def _summary(e: FeedEntry, text: str) -> str:
    where = f"Beat {e.beat}" + (f", sector {e.sector}" if e.sector else "") + (
        f", {area_label('precinct', e.precinct)}" if e.precinct else "")
    return f"{text}. {privacy.category_label(e.category)}. {where}."


def _json_feed(title, subtitle, page, feed_url, items) -> bytes:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "home_page_url": page,
        "feed_url": feed_url,
        "description": subtitle,
        "language": "en",
        "items": [
            {
                "id": tag,
                "url": link,
                "title": text,
                "content_text": _summary(e, text),
                "date_published": _aware(e.event_time).isoformat(),
                "date_modified": _aware(e.updated_at).isoformat(),
                "tags": [e.category],
            }
            for e, text, tag, link in items
        ],
    }
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")
