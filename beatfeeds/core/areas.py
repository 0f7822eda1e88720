"""Areas with feeds: their kinds, where their codes live on a beat, their addresses and labels.

A resident follows the whole city, a precinct, a sector or a beat. Each has a page, feeds in
three formats and a label, and every place that writes one (the public pages, feeds, OPML
lists, the map's GeoJSON, posts, emails, boundary-change entries) takes it from here:

| kind | code | page | feed | label |
|---|---|---|---|---|
| city | none | `/` | `/feed.atom` | Citywide |
| precinct | `W` | `/precincts/W` | `/precincts/W/feed.atom` | West Precinct |
| sector | `K` | `/sectors/K` | `/sectors/K/feed.atom` | Sector K |
| beat | `K3` | `/beats/K3` | `/beats/K3/feed.atom` | Beat K3 |

Codes are percent-escaped in paths (`quote(code, safe="")`), so any code a map file holds
gives one path segment that the web routes read back as that code.
"""

from __future__ import annotations

from urllib.parse import quote

KINDS = ("city", "precinct", "sector", "beat")  # widest first
SEGMENTS = {"precinct": "precincts", "sector": "sectors", "beat": "beats"}  # kind -> URL segment
KIND_OF_SEGMENT = {segment: kind for kind, segment in SEGMENTS.items()}
BEAT_FIELDS = {"precinct": "precinct", "sector": "sector", "beat": "code"}  # kind -> Beat field
PRECINCT_NAMES = {"N": "North", "E": "East", "S": "South", "SW": "Southwest", "W": "West"}


def area_label(kind: str, code: str | None) -> str:
    """How pages, feeds, posts and emails name an area ("Citywide", "West Precinct", "Beat K3")."""
    if kind == "city":
        return "Citywide"
    if kind == "precinct":
        return f"{PRECINCT_NAMES.get(code, code)} Precinct"
    return f"{kind.capitalize()} {code}"


def area_path(kind: str, code: str | None) -> str:
    """The site path of an area, without a trailing slash: "" for the city, "/beats/K3"."""
    prefix = "" if kind == "city" else f"/{SEGMENTS[kind]}/"
    return prefix + (quote(code, safe="") if code else "")


def page_path(kind: str, code: str | None) -> str:
    """The path of an area's page: "/" for the city, "/beats/K3"."""
    return area_path(kind, code) or "/"


def feed_path(kind: str, code: str | None, fmt: str) -> str:
    """The path of an area's feed in one format ("/feed.atom", "/beats/K3/feed.rss")."""
    return f"{area_path(kind, code)}/feed.{fmt}"


def opml_path(precinct: str | None = None) -> str:
    """The path of the OPML list of every beat feed, or of one precinct's beats."""
    return f"{area_path('precinct', precinct)}/feeds.opml" if precinct else "/feeds.opml"


def area_keywords(kind: str, code: str | None) -> dict[str, str]:
    """The keyword that narrows a query to an area ({"beat": "K3"}); none for the city."""
    return {kind: code} if kind != "city" else {}
