"""Issue 13 point 3: markup in source text is never live in a reader.

RSS 2.0 readers take `<title>` and `<description>` as HTML, so a source description carrying
`<img src=http://...>` would be a tracking pixel in residents' readers. Every format carries
text as plain text: HTML-escaped in RSS, `type="text"` in Atom, `content_text` in JSON Feed,
escaped output in the XSL browser view. Checked with feedparser, newsboat and lxml's XSLT.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import termios
import time
from datetime import timedelta

import feedparser
import pytest
from lxml import etree
from lxml import html as lxml_html

from beatfeeds.core import identifiers
from beatfeeds.core.resources import resource_dir
from beatfeeds.services import imports
from beatfeeds.services.imports import ImportOptions
from tests.support.browser import LiveServer
from tests.support.exports import local, spd911_row, write_rows
from tests.support.instance import make_settings, need, utcnow
from tests.support.web import make_app

HOSTILE = (
    '<img src="http://tracker.example/p.gif"> <a href="http://evil.example/">click</a> '
    "<script>alert(1)</script> &lt;b&gt; &amp; THEFT"
)
# What a reader must show, character for character (each of these is markup if live).
LITERALS = [
    '<img src="http://tracker.example/p.gif">',
    '<a href="http://evil.example/">',
    "<script>alert(1)</script>",
    "&lt;b&gt;",
    "&amp; THEFT",
]
FEEDS = [
    "/feed.{fmt}",
    "/beats/{beat}/feed.{fmt}",
    "/feed.{fmt}?category={category}",
    "/sectors/{sector}/feed.{fmt}?exclude=burglary",
]


@pytest.fixture
def hostile(beats_store, settings, tmp_path):
    """One published entry whose source description is markup: (uid, its feed URLs by format)."""
    when = local(utcnow() - timedelta(days=1))
    path = write_rows(
        tmp_path / "export.csv", [spd911_row(701, when, desc=HOSTILE, group="CAR PROWL")]
    )
    # imported two hours ago: public now (the delay counts from the first import too)
    report = imports.import_file(
        beats_store,
        path,
        ImportOptions(preset="spd-911"),
        settings,
        now=utcnow() - timedelta(hours=2),
    )
    assert report.counters["new"] == 1
    uid = identifiers.entry_uid("spd-911-incident-response", "701", beats_store.identifier_key())
    entry = beats_store.staff_incident(uid)
    where = {"beat": entry.beat, "sector": entry.beat[:1], "category": entry.category}
    return uid, {fmt: [u.format(fmt=fmt, **where) for u in FEEDS] for fmt in ("rss", "atom")}


def shown_text(detail) -> str:
    """The text a reader shows for a feedparser text construct; fails on any live element."""
    if detail.type == "text/plain":
        return detail.value
    assert detail.type == "text/html", detail.type
    root = lxml_html.fragment_fromstring(detail.value, create_parent="div")
    live = [e.tag for e in root.iterdescendants()]
    assert not live, f"live HTML elements {live} in {detail.value!r}"
    assert "<img" not in detail.value and "<script" not in detail.value
    return root.text_content()


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_markup_in_a_description_is_literal_text_for_feedparser(client, hostile, fmt):
    uid, urls = hostile
    for url in urls[fmt]:
        check_feedparser(client.get(url).data, uid, fmt)


def check_feedparser(body: bytes, uid: str, fmt: str) -> None:
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    (entry,) = [e for e in parsed.entries if e.link.endswith(uid)]
    title = shown_text(entry.title_detail)
    summary = shown_text(entry.content[0] if fmt == "atom" else entry.summary_detail)
    for literal in LITERALS:
        assert literal in title, (literal, title)
        assert literal in summary, (literal, summary)
    if fmt == "atom":  # Atom says so itself
        assert entry.title_detail.type == "text/plain"
        assert entry.content[0].type == "text/html"
    shown_text(parsed.feed.title_detail)
    shown_text(parsed.feed.subtitle_detail)


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_every_text_element_is_escaped_or_typed_as_text(client, hostile, fmt):
    """No element of a feed holds markup the XML layer would hand to a reader as HTML."""
    root = etree.fromstring(client.get(f"/feed.{fmt}").data)
    atom = "{http://www.w3.org/2005/Atom}"
    if fmt == "rss":
        for elm in root.iter("title", "description"):
            assert "<" not in (elm.text or ""), (elm.tag, elm.text)
        categories = [c.text for c in root.iter("category")]
        assert categories and all(c.replace(" ", "").isalpha() for c in categories)
    else:
        for name in ("title", "subtitle"):
            for elm in root.iter(atom + name):
                assert elm.get("type") == "text", (name, elm.attrib)
        for elm in root.iter(atom + "content", atom + "summary"):
            assert elm.get("type") == "html" and "<" not in elm.text, elm.text


def test_json_feed_has_content_text_only(client, hostile):
    doc = json.loads(client.get("/feed.json").data)
    (item,) = [i for i in doc["items"] if i["url"].endswith(hostile[0])]
    assert "content_html" not in item and "summary" not in item
    assert all("content_html" not in i for i in doc["items"])
    for literal in LITERALS:
        assert literal in item["content_text"] and literal in item["title"]


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_the_browser_view_of_a_feed_shows_markup_as_text(client, hostile, fmt):
    xsl_path = resource_dir("static") / "feed.xsl"
    xsl = etree.parse(str(xsl_path))
    assert not xsl.xpath("//@disable-output-escaping")
    transform = etree.XSLT(xsl)
    page = str(transform(etree.fromstring(client.get(f"/feed.{fmt}").data)))
    doc = lxml_html.fromstring(page)
    assert not doc.xpath("//img | //script"), page
    assert all("evil.example" not in a.get("href", "") for a in doc.xpath("//a"))
    text = doc.text_content()
    for literal in LITERALS:
        assert literal in text, (literal, text)


# ---- newsboat -----------------------------------------------------------------------------------
def newsboat_article(tmp_path, url: str) -> str:
    """The first article of a feed as newsboat renders it (its article view piped to a file).

    newsboat has no command that prints an article, so its interface runs on a pseudo
    terminal with `run-on-startup` opening the feed and the article and piping it out.
    """
    home = tmp_path / "nb"
    home.mkdir(exist_ok=True)
    urls, cache, out = home / "urls", home / "cache.db", home / "article.txt"
    urls.write_text(url + "\n")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "xterm"}
    subprocess.run(
        ["newsboat", "-u", str(urls), "-c", str(cache), "-C", "/dev/null", "-x", "reload"],
        check=True,
        capture_output=True,
        timeout=60,
        env=env,
    )
    config = home / "config"
    config.write_text(f'run-on-startup open ; open ; pipe-to "cat > {out}" ; quit ; quit\n')
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(
        ["newsboat", "-u", str(urls), "-c", str(cache), "-C", str(config)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        close_fds=True,
    )
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.stat().st_size:
                time.sleep(0.3)  # let `cat` finish writing
                break
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    os.read(leader, 65536)  # drain the screen so newsboat never blocks
                except OSError:
                    break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        os.close(leader)
        os.close(follower)
    assert out.exists(), "newsboat did not render the article"
    return out.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_newsboat_shows_markup_in_a_description_as_literal_text(tmp_path, app, hostile, fmt):
    need(shutil.which("newsboat") is not None, "newsboat not installed (apt-get install newsboat)")
    server = LiveServer(app)
    try:
        article = newsboat_article(tmp_path, server.url + hostile[1][fmt][1])
    finally:
        server.stop()
    body = article.split("\n \n", 1)[-1]  # after the Feed/Title/Date/Link header
    flat = " ".join(body.split())
    for literal in LITERALS:
        assert literal in flat, (literal, article)
    assert "[image" not in article and "[link" not in article.lower(), article


def test_opml_outline_texts_are_escaped(tmp_path, beats_store):
    """OPML 2.0 lets outline text hold HTML: a department name with markup stays literal."""
    settings = make_settings(tmp_path, department_name='<img src="http://t.example/p.gif"> & Co')
    client = make_app(settings, beats_store).test_client()
    root = etree.fromstring(client.get("/feeds.opml").data)
    outlines = root.findall(".//outline[@xmlUrl]")
    assert outlines
    for o in outlines:
        for name in ("text", "title"):
            assert "<" not in o.get(name), o.get(name)
            shown = lxml_html.fragment_fromstring(o.get(name), create_parent="div")
            assert not list(shown.iterdescendants())
            assert shown.text_content().startswith('<img src="http://t.example/p.gif"> & Co')
