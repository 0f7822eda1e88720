"""What the privacy audit looks for in a public document. Each check returns findings
(short strings naming what leaked); an empty list means the document is clean."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable

import feedparser
import lxml.html
from lxml import etree

# A house number before a street: "1234 5TH AVE", "607 1 / 2 N 50 ST", "1234-B PINE ST". The
# hundred-block form ("12XX BLOCK OF 5TH AVE") and numbered streets ("8TH AVE NE", "N 50 ST")
# do not match: a digit run must stand alone before the street name and its type.
STREET_TYPE = (
    r"(?:ST|STREET|AVE?|AVENUE|WAY|PL|PLACE|BLVD|DR|DRIVE|RD|ROAD|CT|COURT|LN|LANE"
    r"|PKWY|TER|TERRACE|HWY|CIR|LOOP|SQ)"
)
HOUSE_NUMBER = re.compile(
    r"(?<![\w.#/:-])\d{1,6}(?:-?[A-Z](?![A-Z])|\s*-\s*\d+|\s+1\s*/\s*2)?\s+"
    r"(?:(?:(?:[NSEW]{1,2}|[A-Z0-9][A-Z0-9'.-]*)\s+){1,3}"
    + STREET_TYPE
    + r"|(?:[NSEW]{1,2}\s+)?BROADWAY)\b"
)
COORDINATE = re.compile(r"(?<![\w.])-?\d{1,3}\.\d{4,}(?![\w.])")
TAG_LIKE = re.compile(r"<\s*[A-Za-z/!?]")
MARKER = re.compile(r"ZQ[A-Z]\d\d")
WINDOW = 1200  # characters around a marker that belong to its entry


def plain(doc_text: str) -> str:
    """The text with markup entities decoded (twice: RSS text is escaped HTML in XML)."""
    return html.unescape(html.unescape(doc_text))


def house_numbers(doc_text: str) -> list[str]:
    return [f"house number {m.group(0)!r}" for m in HOUSE_NUMBER.finditer(plain(doc_text))]


def forbidden_near_markers(doc_text: str, forbidden: dict[str, list[str]]) -> list[str]:
    """Strings a hostile row must never show, looked for around each of its markers."""
    text_ = plain(doc_text)
    found = []
    for m in MARKER.finditer(text_):
        words = forbidden.get(m.group(0), ())
        if not words:
            continue
        window = text_[max(0, m.start() - WINDOW) : m.end() + WINDOW]
        for w in words:
            if re.search(r"(?<![\w.])" + re.escape(w) + r"(?![\w.])", window):
                found.append(f"{m.group(0)} shows {w!r}")
    return found


def without_outlines(doc_text: str, kind: str) -> str:
    """The document minus the published outlines of areas (beat-map vertices are public)."""
    if kind in ("rss", "atom"):
        return re.sub(r"<georss:polygon>.*?</georss:polygon>", "", doc_text, flags=re.S)
    if kind in ("json", "geojson"):
        try:
            doc = json.loads(doc_text)
        except ValueError:
            return doc_text
        if isinstance(doc, dict):
            if doc.get("_geo", {}).get("type") != "Point":
                doc.pop("_geo", None)
            for f in doc.get("features", ()):
                f.pop("geometry", None)
        return json.dumps(doc)
    return doc_text


def coordinates(doc_text: str, kind: str, private: dict[int, set[str]]) -> list[str]:
    """Numbers that are an incident's stored coordinate at 4 or more decimals."""
    found = []
    for m in COORDINATE.finditer(without_outlines(doc_text, kind)):
        token = m.group(0)
        decimals = len(token.split(".")[1])
        if token in private.get(decimals, ()):
            found.append(f"coordinate {token}")
    return found


def private_coordinates(values: Iterable[float]) -> dict[int, set[str]]:
    """Each stored value written with 4 to 8 decimals, rounded and truncated."""
    out: dict[int, set[str]] = {d: set() for d in range(4, 9)}
    for v in values:
        if v is None:
            continue
        for d in range(4, 9):
            out[d].add(f"{v:.{d}f}")
            whole, _, frac = f"{v:.12f}".partition(".")
            out[d].add(f"{whole}.{frac[:d]}")
    return out


def uid_tokens(doc_text: str, length: int) -> set[str]:
    pattern = r"(?<![0-9a-zA-Z])[0-9a-f]{" + str(length) + r"}(?![0-9a-zA-Z])"
    return set(re.findall(pattern, doc_text))


def live_html(doc_text: str, kind: str) -> list[str]:
    """Markup a reader or browser would render from entry text instead of showing it."""
    if kind == "rss":
        return _rss_html(doc_text) + _feedparser_html(doc_text)
    if kind == "atom":
        return _atom_html(doc_text) + _feedparser_html(doc_text)
    if kind == "json":
        return _json_html(doc_text)
    if kind in ("html", "mail"):
        return _page_html(doc_text)
    if kind == "opml":
        root = etree.fromstring(doc_text.encode("utf-8"))
        return [
            f"OPML outline {v!r}"
            for el in root.iter("outline")
            for v in (el.get("text", ""), el.get("title", ""))
            if TAG_LIKE.search(v)
        ]
    return []


def _xml(doc_text: str):
    return etree.fromstring(doc_text.encode("utf-8"))


def _rss_html(doc_text: str) -> list[str]:
    root = _xml(doc_text)
    found = []
    for el in root.iter("title", "description", "category"):
        value = el.text or ""
        if TAG_LIKE.search(value):  # read as HTML, this text holds elements
            found.append(f"RSS <{el.tag}> renders {value[:80]!r}")
    return found


def _atom_html(doc_text: str) -> list[str]:
    found = []
    for el in _xml(doc_text).iter():
        if not isinstance(el.tag, str):
            continue
        kind = el.get("type", "text")
        name = etree.QName(el).localname
        if name in ("title", "summary", "content", "subtitle", "rights"):
            if kind == "html" and TAG_LIKE.search(el.text or ""):
                found.append(f"Atom <{name} type=html> renders {(el.text or '')[:80]!r}")
            if kind == "xhtml" and len(el):
                found.append(f"Atom <{name} type=xhtml> carries elements")
    return found


def _feedparser_html(doc_text: str) -> list[str]:
    parsed = feedparser.parse(doc_text)
    found = []
    for e in parsed.entries:
        for key in ("title_detail", "summary_detail"):
            d = e.get(key)
            if (
                d
                and d.get("type") == "text/html"
                and re.search(r"<\s*(img|a|script|iframe)\b", d.get("value", ""), re.I)
            ):
                found.append(f"feedparser {key} is live HTML: {d['value'][:80]!r}")
        for c in e.get("content", ()):
            if c.get("type") == "text/html" and re.search(
                r"<\s*(img|a|script|iframe)\b", c.get("value", ""), re.I
            ):
                found.append(f"feedparser content is live HTML: {c['value'][:80]!r}")
    return found


def _json_html(doc_text: str) -> list[str]:
    doc = json.loads(doc_text)
    found = []
    for item in doc.get("items", ()) if isinstance(doc, dict) else ():
        value = item.get("content_html") or ""
        if TAG_LIKE.search(value):
            found.append(f"JSON Feed content_html renders {value[:80]!r}")
    return found


def _page_html(doc_text: str) -> list[str]:
    try:
        root = lxml.html.document_fromstring(doc_text)
    except (etree.ParserError, ValueError):
        return []
    found = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        for attr, value in el.attrib.items():
            if "evil.example" in value:
                found.append(f"<{el.tag} {attr}={value!r}>")
        if el.tag == "script" and MARKER.search(el.text or ""):
            found.append(f"<script> from entry text: {(el.text or '')[:80]!r}")
        if el.tag in ("img", "iframe", "object", "embed") and MARKER.search(
            lxml.html.tostring(el, encoding="unicode")
        ):
            found.append(f"<{el.tag}> from entry text")
    return found
