"""Feed conformance checks written from the specifications' text, not from any validator.

- RSS 2.0: https://www.rssboard.org/rss-specification (channel and item elements, RFC 822 dates)
- Atom 1.0: RFC 4287 (atom:feed and atom:entry cardinality, IRIs, RFC 3339 dates, text
  constructs)
- JSON Feed 1.1: https://www.jsonfeed.org/version/1.1/ (top-level and item keys)

Plus the rules beatfeeds sets itself: every link absolute, ids unique, guids present.
Each check returns a list of Problem(code, detail); an empty list means the feed conforms.
tests/test_feedcheck.py proves each code fires on a hand-made invalid feed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from lxml import etree

ATOM = "http://www.w3.org/2005/Atom"
A = f"{{{ATOM}}}"


@dataclass(frozen=True)
class Problem:
    code: str
    detail: str = ""


# ---- shared rules -------------------------------------------------------------------------------
# RFC 822 section 5 date-time, with the four-digit year the RSS spec recommends.
_RFC822 = re.compile(
    r"^(?:(?P<dow>Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(?P<day>\d{1,2}) "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d\d:\d\d(?::\d\d)? (?:UT|GMT|EST|EDT|CST|CDT|MST|MDT|PST|PDT|[A-IK-Z]|[+-]\d{4})$"
)
# RFC 3339 section 5.6 date-time.
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)$")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def rfc822_ok(text: str | None) -> bool:
    """A valid RFC 822 date-time whose day of the week, if given, matches the date."""
    m = _RFC822.match(text or "")
    if not m:
        return False
    try:
        d = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return False
    return m.group("dow") is None or _DAYS[d.weekday()] == m.group("dow")


def rfc3339_ok(text: str | None) -> bool:
    if not _RFC3339.match(text or ""):
        return False
    try:
        datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def absolute_url(text: str | None) -> bool:
    parts = urlsplit(text or "")
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in text


def iri(text: str | None) -> bool:
    """An absolute IRI (RFC 3987): a scheme, a colon, something after it; no spaces."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", text or ""))


def _parse_xml(body: bytes) -> tuple[etree._Element | None, list[Problem]]:
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        return etree.fromstring(body, parser), []
    except etree.XMLSyntaxError as exc:
        return None, [Problem("xml-not-well-formed", str(exc))]


def _text_only(el, code: str, where: str) -> list[Problem]:
    """Markup in plain-text fields must arrive escaped: no child elements."""
    if el is not None and len(el):
        return [
            Problem(code, f"{where} contains unescaped markup <{etree.QName(el[0]).localname}>")
        ]
    return []


def _unique(values: list[str], code: str) -> list[Problem]:
    seen, dup = set(), set()
    for v in values:
        (dup if v in seen else seen).add(v)
    return [Problem(code, v) for v in sorted(dup)]


# ---- RSS 2.0 ------------------------------------------------------------------------------------
def check_rss(body: bytes) -> list[Problem]:
    root, problems = _parse_xml(body)
    if root is None:
        return problems
    if root.tag != "rss" or root.get("version") != "2.0":
        return [Problem("rss-root", f"root <{root.tag}> version={root.get('version')!r}")]
    channels = root.findall("channel")
    if len(channels) != 1:
        return [Problem("rss-channel-count", str(len(channels)))]
    ch = channels[0]
    for name in ("title", "link", "description"):  # required channel elements
        if not (ch.findtext(name) or "").strip():
            problems.append(Problem("rss-channel-missing", name))
        problems += _text_only(ch.find(name), "rss-unescaped-markup", f"channel/{name}")
    if ch.findtext("link") and not absolute_url(ch.findtext("link")):
        problems.append(Problem("rss-relative-url", f"channel/link {ch.findtext('link')}"))
    for name in ("pubDate", "lastBuildDate"):
        value = ch.findtext(name)
        if value is not None and not rfc822_ok(value):
            problems.append(Problem("rss-bad-date", f"channel/{name} {value!r}"))
    for link in ch.findall(f"{A}link"):
        if not absolute_url(link.get("href")):
            problems.append(Problem("rss-relative-url", f"atom:link {link.get('href')}"))
    guids = []
    for n, item in enumerate(ch.findall("item"), 1):
        where = f"item {n}"
        if item.find("title") is None and item.find("description") is None:
            problems.append(
                Problem("rss-item-empty", where)
            )  # "at least one of title or description"
        for name in ("title", "description", "link", "guid", "category", "pubDate"):
            problems += _text_only(item.find(name), "rss-unescaped-markup", f"{where}/{name}")
        link = item.findtext("link")
        if link is not None and not absolute_url(link):
            problems.append(Problem("rss-relative-url", f"{where}/link {link}"))
        guid = item.find("guid")
        if guid is None or not (guid.text or "").strip():
            problems.append(Problem("rss-guid-missing", where))
        else:
            guids.append(guid.text.strip())
            if guid.get("isPermaLink", "true") == "true" and not absolute_url(guid.text):
                problems.append(Problem("rss-guid-permalink", f"{where}: {guid.text}"))
        date = item.findtext("pubDate")
        if date is not None and not rfc822_ok(date):
            problems.append(Problem("rss-bad-date", f"{where}/pubDate {date!r}"))
    problems += _unique(guids, "rss-guid-duplicate")
    return problems


# ---- Atom 1.0 (RFC 4287) ------------------------------------------------------------------------
def _atom_text(el, where: str) -> list[Problem]:
    """RFC 4287 3.1: text constructs are text, html (escaped) or xhtml (one div child)."""
    if el is None:
        return []
    kind = el.get("type", "text")
    if kind not in ("text", "html", "xhtml"):
        return [Problem("atom-text-type", f"{where} type={kind!r}")]
    if kind in ("text", "html"):
        return _text_only(el, "atom-unescaped-markup", where)
    return []


def _atom_links(parent, where: str) -> list[Problem]:
    problems, alternates = [], set()
    for link in parent.findall(f"{A}link"):
        if not absolute_url(link.get("href")):
            problems.append(Problem("atom-relative-url", f"{where} link {link.get('href')!r}"))
        if link.get("rel", "alternate") == "alternate":
            key = (link.get("type"), link.get("hreflang"))
            if key in alternates:  # RFC 4287 4.1.1: one alternate per type and hreflang
                problems.append(Problem("atom-alternate-duplicate", where))
            alternates.add(key)
    return problems


def _exactly_one(parent, name: str, where: str) -> list[Problem]:
    n = len(parent.findall(f"{A}{name}"))
    return [] if n == 1 else [Problem("atom-cardinality", f"{where} has {n} atom:{name}")]


def check_atom(body: bytes) -> list[Problem]:
    root, problems = _parse_xml(body)
    if root is None:
        return problems
    if root.tag != f"{A}feed":
        return [Problem("atom-root", root.tag)]
    for name in ("id", "title", "updated"):  # RFC 4287 4.1.1
        problems += _exactly_one(root, name, "feed")
    problems += _atom_text(root.find(f"{A}title"), "feed/title")
    problems += _atom_text(root.find(f"{A}subtitle"), "feed/subtitle")
    if not iri(root.findtext(f"{A}id")):
        problems.append(Problem("atom-id-not-iri", f"feed/id {root.findtext(f'{A}id')!r}"))
    if not rfc3339_ok(root.findtext(f"{A}updated")):
        problems.append(Problem("atom-bad-date", f"feed/updated {root.findtext(f'{A}updated')!r}"))
    if not any(link.get("rel") == "self" for link in root.findall(f"{A}link")):
        problems.append(Problem("atom-self-missing"))  # 4.1.1: feeds SHOULD have a self link
    problems += _atom_links(root, "feed")
    feed_author = root.find(f"{A}author") is not None
    ids = []
    for n, entry in enumerate(root.findall(f"{A}entry"), 1):
        where = f"entry {n}"
        for name in ("id", "title", "updated"):  # RFC 4287 4.1.2
            problems += _exactly_one(entry, name, where)
        entry_id = entry.findtext(f"{A}id")
        if not iri(entry_id):
            problems.append(Problem("atom-id-not-iri", f"{where}/id {entry_id!r}"))
        ids.append(entry_id)
        for name in ("updated", "published"):
            value = entry.findtext(f"{A}{name}")
            if (name == "updated" or value is not None) and not rfc3339_ok(value):
                problems.append(Problem("atom-bad-date", f"{where}/{name} {value!r}"))
        if not feed_author and entry.find(f"{A}author") is None:
            problems.append(Problem("atom-author-missing", where))
        has_alt = any(
            link.get("rel", "alternate") == "alternate" for link in entry.findall(f"{A}link")
        )
        if entry.find(f"{A}content") is None and not has_alt:
            problems.append(Problem("atom-entry-no-content-or-link", where))
        for name in ("title", "summary", "content", "rights"):
            problems += _atom_text(entry.find(f"{A}{name}"), f"{where}/{name}")
        for cat in entry.findall(f"{A}category"):
            if not cat.get("term"):
                problems.append(Problem("atom-category-term", where))
        problems += _atom_links(entry, where)
    problems += _unique([i for i in ids if i], "atom-id-duplicate")
    return problems


# ---- JSON Feed 1.1 ------------------------------------------------------------------------------
JSONFEED_TOP = {
    "version",
    "title",
    "home_page_url",
    "feed_url",
    "description",
    "user_comment",
    "next_url",
    "icon",
    "favicon",
    "authors",
    "author",
    "language",
    "expired",
    "hubs",
    "items",
}
JSONFEED_ITEM = {
    "id",
    "url",
    "external_url",
    "title",
    "content_html",
    "content_text",
    "summary",
    "image",
    "banner_image",
    "date_published",
    "date_modified",
    "authors",
    "author",
    "tags",
    "language",
    "attachments",
}
_TAG = re.compile(r"<[A-Za-z/!][^>]*>")


def check_json_feed(body: bytes) -> list[Problem]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return [Problem("json-invalid", str(exc))]
    if not isinstance(doc, dict):
        return [Problem("json-not-object")]
    problems = []
    if doc.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append(Problem("json-version", repr(doc.get("version"))))
    if not isinstance(doc.get("title"), str) or not doc["title"]:
        problems.append(Problem("json-missing", "title"))
    if not isinstance(doc.get("items"), list):
        return problems + [Problem("json-missing", "items")]
    for key in sorted(set(doc) - JSONFEED_TOP):
        if not key.startswith("_"):  # extensions must start with an underscore
            problems.append(Problem("json-unknown-key", key))
    for key in ("home_page_url", "feed_url", "next_url", "icon", "favicon"):
        if key in doc and not absolute_url(doc[key]):
            problems.append(Problem("json-relative-url", f"{key} {doc[key]!r}"))
    for hub in doc.get("hubs", []):
        if not (
            isinstance(hub, dict)
            and isinstance(hub.get("type"), str)
            and absolute_url(hub.get("url"))
        ):
            problems.append(Problem("json-hub", repr(hub)))
    ids = []
    for n, item in enumerate(doc["items"], 1):
        where = f"item {n}"
        if not isinstance(item, dict):
            problems.append(Problem("json-item-not-object", where))
            continue
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(Problem("json-item-id", where))  # required; strings in 1.1
        else:
            ids.append(item["id"])
        if "content_html" not in item and "content_text" not in item:
            problems.append(Problem("json-item-no-content", where))
        if isinstance(item.get("content_text"), str) and _TAG.search(item["content_text"]):
            problems.append(Problem("json-markup-in-text", where))
        for key in sorted(set(item) - JSONFEED_ITEM):
            if not key.startswith("_"):
                problems.append(Problem("json-unknown-key", f"{where}: {key}"))
        for key in ("url", "external_url", "image", "banner_image"):
            if key in item and not absolute_url(item[key]):
                problems.append(Problem("json-relative-url", f"{where}/{key} {item[key]!r}"))
        for key in ("date_published", "date_modified"):
            if key in item and not rfc3339_ok(item[key]):
                problems.append(Problem("json-bad-date", f"{where}/{key} {item[key]!r}"))
        tags = item.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            problems.append(Problem("json-tags", where))
    problems += _unique(ids, "json-item-id-duplicate")
    return problems


CHECKS = {"rss": check_rss, "atom": check_atom, "json": check_json_feed}


def check_feed(fmt: str, body: bytes) -> list[Problem]:
    return CHECKS[fmt](body)
