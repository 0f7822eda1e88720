"""RSS 2.0, Atom 1.0 (feedgen) and JSON Feed 1.1 for an area; stable `tag:` entry ids."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode
from xml.sax.saxutils import quoteattr

from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from beatfeeds.core.areas import area_label, feed_path, page_path
from beatfeeds.core.identifiers import entry_tag
from beatfeeds.core.models import Area, FeedEntry
from beatfeeds.core.text import single_line, xml_text
from beatfeeds.publish import privacy

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings

FORMATS = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}

ATOM_NS = "http://www.w3.org/2005/Atom"
GEORSS_NS = "http://www.georss.org/georss"
STYLESHEET = "/static/feed.xsl"  # root-relative: a browser applies XSLT only from its origin

# The feed-level time while a feed is built: the body is fingerprinted without its own date
# (which depends on the fingerprint's history), then `date_feed` writes the real one in.
UNDATED = datetime(1901, 2, 3, 4, 5, 6, tzinfo=UTC)


@dataclass(frozen=True)
class FeedFilter:
    """Categories a subscriber keeps (`category`) or drops (`exclude`); lives in the URL."""

    categories: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.categories or self.exclude)

    def query(self) -> str:
        """The canonical query string (sorted, no duplicates), "" without a filter."""
        pairs = [("category", c) for c in sorted(set(self.categories))] + [
            ("exclude", c) for c in sorted(set(self.exclude))
        ]
        return urlencode(pairs)

    def describe(self) -> str:
        parts = []
        if self.categories:
            parts.append(", ".join(privacy.category_label(c) for c in sorted(set(self.categories))))
        if self.exclude:
            parts.append(
                "without " + ", ".join(privacy.category_label(c) for c in sorted(set(self.exclude)))
            )
        return "; ".join(parts)


@dataclass
class FeedContext:
    """Everything about a feed beside its entries: where it is, what it covers, who to ping."""

    area: Area
    polygon: list[tuple[float, float]] | None = None  # (lat, lon) ring of the area, public
    filter: FeedFilter = field(default_factory=FeedFilter)
    hub_url: str = ""


def feed_tag(authority: str, area: Area) -> str:
    return f"tag:{authority}:feed/{area.kind}" + (
        f"/{quote(area.code, safe='')}" if area.code else ""
    )


def _aware(d: datetime) -> datetime:
    return d.replace(tzinfo=UTC)


def feed_updated(entries: list[FeedEntry], fallback: datetime) -> datetime:
    """The newest entry change (an update, or an entry going public after its delay).

    Only a lower bound of a feed's last change: a removal leaves no entry behind to date it,
    so served feeds are dated by their content's high-water mark (publishing.document_mark).
    """
    return max((e.changed_at for e in entries), default=fallback)


def html_text(text: str) -> str:
    """Plain text as HTML that shows it verbatim (the XML layer then escapes it once more).

    RSS readers take `<title>` and `<description>` as HTML, and some take Atom text as HTML
    too, so source text such as `<img src=...>` would be a live element (a tracking pixel) in
    residents' readers; escaped, it shows as the literal characters.
    """
    return html.escape(xml_text(text), quote=False)


def feed_url(settings: Settings, area: Area, fmt: str, filt: FeedFilter | None = None) -> str:
    """The absolute URL of an area's feed, with its filter in the query string."""
    query = filt.query() if filt else ""
    path = feed_path(area.kind, area.code, fmt)
    return f"{settings.base_url}{path}" + (f"?{query}" if query else "")


def build_feed(
    area: Area | FeedContext,
    entries: list[FeedEntry],
    fmt: str,
    settings: Settings,
    *,
    updated: datetime | None = None,
    updated_fallback: datetime | None = None,
) -> bytes:
    """Serialise an area's entries (newest first) as RSS, Atom or JSON Feed bytes.

    Given a FeedContext, the feed also carries the area polygon (GeoRSS), the filter (in its
    self link, id and title) and the WebSub hub. Entry ids never depend on the filter.
    The feed-level time is `updated`, else the newest entry change (or `updated_fallback`).
    Markup in any text shows as its characters in every format: HTML-escaped (`html_text`)
    in RSS and in Atom entry content (`type="html"`), `type="text"` for the other Atom
    texts, `content_text` in JSON Feed.
    """
    ctx = area if isinstance(area, FeedContext) else FeedContext(area)
    area = ctx.area
    base = settings.base_url
    authority = settings.tag_authority
    page = base + page_path(area.kind, area.code)
    self_url = feed_url(settings, area, fmt, ctx.filter)
    query = ctx.filter.query()
    title = f"{settings.department_name}: {area.label}" + (
        f" ({ctx.filter.describe()})" if ctx.filter else ""
    )
    subtitle = (
        f"Police incidents in {area.label}, published {settings.publication_delay} "
        f"minutes after they are reported, located to the hundred block. Not monitored: "
        f"in an emergency call 911."
    )
    if updated is None:
        if updated_fallback is None:
            raise TypeError("build_feed needs `updated` or `updated_fallback`")
        updated = feed_updated(entries, updated_fallback)
    updated = updated if updated.tzinfo else _aware(updated)
    items = [
        (
            e,
            _title(e, settings),
            entry_tag(authority, e.source, e.external_id, e.uid),
            base + (e.link or f"/entries/{e.uid}"),
        )
        for e in entries
    ]
    if fmt == "json":
        return _json_feed(title, subtitle, page, self_url, items, ctx)

    # feedgen.util needs lxml.etree imported before its extension modules are
    from feedgen.ext.geo_entry import GeoEntryExtension

    class _EntryExtension(GeoEntryExtension):
        """The GeoRSS point, and Atom entry titles marked as plain text."""

        def extend_atom(self, entry):
            _mark_plain_text(entry)
            return super().extend_atom(entry)

    text = html_text if fmt == "rss" else xml_text
    fg = FeedGenerator()
    fg.register_extension("geo", _AreaExtension, _EntryExtension)
    fg.geo.context = ctx
    fg.geo.self_url = self_url
    fg.id(feed_tag(authority, area) + (f"?{query}" if query else ""))
    fg.title(text(title))
    fg.subtitle(text(subtitle))  # RSS <description>, Atom <subtitle>
    # feedgen takes RSS <link> from the last link given, so the page comes last.
    fg.link(href=self_url, rel="self", type=FORMATS[fmt].split(";")[0])
    fg.link(href=page, rel="alternate", type="text/html")
    fg.language("en")
    fg.author({"name": settings.department_name})
    fg.generator("beatfeeds")
    fg.updated(updated)
    fg.lastBuildDate(updated)
    for e, entry_title, tag, link in items:
        fe = fg.add_entry(order="append")
        fe.id(tag)
        fe.guid(tag, permalink=False)
        fe.title(text(entry_title))
        fe.link(href=link, rel="alternate", type="text/html")
        fe.published(_aware(e.event_time))
        fe.updated(_aware(e.changed_at))
        # Category terms and labels come from the category registry: plain words, and RSS
        # readers take <category> as plain text.
        fe.category(term=e.category, label=privacy.category_label(e.category))
        if fmt == "atom":
            # Escaped HTML, not type="text": newsboat renders a text <content> as HTML.
            fe.content(html_text(_summary(e, entry_title)), type="html")
        else:
            fe.description(text(_summary(e, entry_title)))
        if e.point is not None:
            fe.geo.point(f"{e.point[0]} {e.point[1]}")
    if fmt == "rss":
        return _with_stylesheet(fg.rss_str(pretty=True))
    if fmt == "atom":
        return _with_stylesheet(fg.atom_str(pretty=True))
    raise ValueError(f"unknown feed format {fmt!r}")


class _AreaExtension(BaseExtension):
    """Feed-level GeoRSS polygon of the area and the WebSub hub link (feedgen has neither)."""

    context: FeedContext | None = None
    self_url: str = ""

    def extend_ns(self):
        return {"georss": GEORSS_NS}

    def _add(self, parent, atom_prefix: str) -> None:
        ctx = self.context
        if ctx is None:
            return
        if ctx.hub_url:
            etree.SubElement(parent, f"{atom_prefix}link", rel="hub", href=ctx.hub_url)
        if ctx.polygon:
            poly = etree.SubElement(parent, f"{{{GEORSS_NS}}}polygon")
            poly.text = " ".join(f"{lat} {lon}" for lat, lon in ctx.polygon)

    def extend_rss(self, rss_feed):
        self._add(rss_feed[0], f"{{{ATOM_NS}}}")
        return rss_feed

    def extend_atom(self, atom_feed):
        _mark_plain_text(atom_feed)
        self._add(atom_feed, f"{{{ATOM_NS}}}")
        return atom_feed


_ATOM_TEXT = {"title", "subtitle", "summary", "content", "rights"}


def _mark_plain_text(parent) -> None:
    """Say `type="text"` on Atom text constructs without a type (the default, said out loud
    for readers that guess): their content shows as typed, markup included."""
    for elm in parent:  # feedgen writes them unqualified, under the default namespace
        if (
            isinstance(elm.tag, str)
            and etree.QName(elm).localname in _ATOM_TEXT
            and elm.get("src") is None
        ):
            elm.set("type", elm.get("type") or "text")


def date_feed(body: bytes, fmt: str, updated: datetime) -> bytes:
    """A feed built with `updated=UNDATED`, with its real feed-level time written in."""
    when = updated if updated.tzinfo else _aware(updated)
    if fmt == "rss":
        old, new = (format_datetime(UNDATED), format_datetime(when.astimezone(UTC)))
    elif fmt == "atom":
        old, new = UNDATED.isoformat(), when.astimezone(UTC).isoformat()
    else:
        return body  # JSON Feed has no feed-level time
    return body.replace(f">{old}<".encode(), f">{new}<".encode())


def _with_stylesheet(xml: bytes) -> bytes:
    """Add the XSL stylesheet that lets a browser show the feed as a page (readers ignore it)."""
    decl, sep, rest = xml.partition(b"?>")
    pi = f'\n<?xml-stylesheet type="text/xsl" href={quoteattr(STYLESHEET)}?>'.encode()
    return decl + sep + pi + rest


def _opml_date(when: datetime) -> str:
    return (
        (when if when.tzinfo else _aware(when))
        .astimezone(UTC)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
    )


def date_opml(body: bytes, created: datetime) -> bytes:
    """An OPML list built with `created=UNDATED`, with its real date written in."""
    return body.replace(f">{_opml_date(UNDATED)}<".encode(), f">{_opml_date(created)}<".encode())


def build_opml(
    title: str,
    groups: list[tuple[str, list[tuple[str, str, str]]]],
    *,
    created: datetime,
    owner: str,
) -> bytes:
    """An OPML 2.0 subscription list: groups of (text, feed URL, page URL) outlines.

    A group with an empty name puts its outlines at the top level. Outline `text` and
    `title` may hold HTML by the OPML 2.0 spec, so they are HTML-escaped like RSS texts.
    """
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = _opml_date(created)
    etree.SubElement(head, "ownerName").text = owner
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(root, "body")
    for name, outlines in groups:
        parent = etree.SubElement(body, "outline", text=html_text(name)) if name else body
        for text, xml_url, html_url in outlines:
            etree.SubElement(
                parent,
                "outline",
                type="rss",
                version="RSS2",
                text=html_text(text),
                title=html_text(text),
                xmlUrl=xml_url,
                htmlUrl=html_url,
            )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _title(e: FeedEntry, settings: Settings) -> str:
    if e.title:  # boundary-change entries come with their own title
        return single_line(e.title)
    return privacy.entry_title(e.description, e.block_address, e.event_time, settings.tz, e.beat)


def _summary(e: FeedEntry, text: str) -> str:
    if e.source == "announcement":  # the department's own text, for the areas it targets
        return f"{text}. {e.description}" if e.description else text
    where = (
        f"Beat {e.beat}"
        + (f", sector {e.sector}" if e.sector else "")
        + (f", {area_label('precinct', e.precinct)}" if e.precinct else "")
    )
    return f"{text}. {privacy.category_label(e.category)}. {where}."


def _json_feed(title, subtitle, page, feed_url, items, ctx: FeedContext) -> bytes:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "home_page_url": page,
        "feed_url": feed_url,
        "description": subtitle,
        "language": "en",
    }
    if ctx.hub_url:
        doc["hubs"] = [{"type": "WebSub", "url": ctx.hub_url}]
    if ctx.polygon:  # JSON Feed extensions start with "_"; GeoJSON order is lon, lat
        doc["_geo"] = {"type": "Polygon", "coordinates": [[[lon, lat] for lat, lon in ctx.polygon]]}
    doc["items"] = [_json_item(e, text, tag, link) for e, text, tag, link in items]
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")


def _json_item(e: FeedEntry, text: str, tag: str, link: str) -> dict:
    item = {
        "id": tag,
        "url": link,
        "title": xml_text(text),  # the same text in every format
        "content_text": xml_text(_summary(e, text)),
        "date_published": _aware(e.event_time).isoformat(),
        "date_modified": _aware(e.changed_at).isoformat(),
        "tags": [e.category],
    }
    if e.point is not None:
        item["_geo"] = {"type": "Point", "coordinates": [e.point[1], e.point[0]]}
    return item
