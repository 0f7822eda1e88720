"""Each conformance check in tests/feedcheck.py fails on a hand-made feed that breaks its rule
(and the hand-made valid feeds pass), so a passing check means something."""

from __future__ import annotations

import json

import pytest

from tests.support.feedcheck import check_atom, check_json_feed, check_rss, rfc822_ok, rfc3339_ok

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">
<channel>
  <title>Beat K3</title>
  <link>https://feeds.example.org/beats/K3</link>
  <description>Incidents in beat K3</description>
  <atom:link href="https://feeds.example.org/beats/K3/feed.rss" rel="self" type="application/rss+xml"/>
  <lastBuildDate>Thu, 26 Nov 2026 12:00:00 +0000</lastBuildDate>
  <item>
    <title>THEFT at 1XX BLOCK OF PIKE ST &amp; more &lt;b&gt;</title>
    <link>https://feeds.example.org/entries/abc</link>
    <description>Theft. Beat K3.</description>
    <guid isPermaLink="false">tag:example.org,2026:incident/a/1</guid>
    <category>Theft</category>
    <pubDate>Wed, 25 Nov 2026 20:09:00 +0000</pubDate>
  </item>
  <item>
    <title>BURGLARY at 2XX BLOCK OF PINE ST</title>
    <guid isPermaLink="false">tag:example.org,2026:incident/a/2</guid>
    <pubDate>Wed, 25 Nov 2026 19:00:00 GMT</pubDate>
  </item>
</channel>
</rss>"""

ATOM = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>tag:example.org,2026:feed/beat/K3</id>
  <title>Beat K3</title>
  <updated>2026-11-26T12:00:00+00:00</updated>
  <author><name>Police</name></author>
  <link href="https://feeds.example.org/beats/K3/feed.atom" rel="self"/>
  <link href="https://feeds.example.org/beats/K3" rel="alternate" type="text/html"/>
  <entry>
    <id>tag:example.org,2026:incident/a/1</id>
    <title type="text">THEFT &amp; more &lt;b&gt;</title>
    <updated>2026-11-25T20:09:00Z</updated>
    <published>2026-11-25T20:09:00-08:00</published>
    <link href="https://feeds.example.org/entries/abc" rel="alternate" type="text/html"/>
    <category term="theft" label="Theft"/>
    <summary type="html">&lt;p&gt;Theft&lt;/p&gt;</summary>
  </entry>
</feed>"""

JSON = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Beat K3",
    "home_page_url": "https://feeds.example.org/beats/K3",
    "feed_url": "https://feeds.example.org/beats/K3/feed.json",
    "hubs": [{"type": "WebSub", "url": "https://hub.example.org/"}],
    "_geo": {"type": "Polygon"},
    "items": [
        {
            "id": "tag:example.org,2026:incident/a/1",
            "url": "https://feeds.example.org/entries/abc",
            "title": "THEFT",
            "content_text": "Theft & more",
            "date_published": "2026-11-25T20:09:00Z",
            "date_modified": "2026-11-25T20:09:00.5+00:00",
            "tags": ["theft"],
            "_geo": {},
        },
    ],
}


def codes(problems) -> set[str]:
    return {p.code for p in problems}


def test_hand_made_valid_feeds_pass():
    assert check_rss(RSS.encode()) == []
    assert check_atom(ATOM.encode()) == []
    assert check_json_feed(json.dumps(JSON).encode()) == []


@pytest.mark.parametrize(
    "old,new,code",
    [
        ("<title>Beat K3</title>", "<title>Beat K3", "xml-not-well-formed"),
        ('version="2.0"', 'version="0.91"', "rss-root"),
        ("<description>Incidents in beat K3</description>", "", "rss-channel-missing"),
        (
            "<link>https://feeds.example.org/beats/K3</link>",
            "<link>/beats/K3</link>",
            "rss-relative-url",
        ),
        (
            'href="https://feeds.example.org/beats/K3/feed.rss"',
            'href="feed.rss"',
            "rss-relative-url",
        ),
        (
            "<link>https://feeds.example.org/entries/abc</link>",
            "<link>entries/abc</link>",
            "rss-relative-url",
        ),
        ("Thu, 26 Nov 2026 12:00:00 +0000", "2026-11-26T12:00:00Z", "rss-bad-date"),
        ("Wed, 25 Nov 2026 20:09:00 +0000", "Mon, 25 Nov 2026 20:09:00 +0000", "rss-bad-date"),
        ("Wed, 25 Nov 2026 19:00:00 GMT", "Wed, 31 Nov 2026 19:00:00 GMT", "rss-bad-date"),
        (
            "tag:example.org,2026:incident/a/2",
            "tag:example.org,2026:incident/a/1",
            "rss-guid-duplicate",
        ),
        (
            '<guid isPermaLink="false">tag:example.org,2026:incident/a/2</guid>',
            "",
            "rss-guid-missing",
        ),
        (
            '<guid isPermaLink="false">tag:example.org,2026:incident/a/2</guid>',
            "<guid>tag:example.org,2026:incident/a/2</guid>",
            "rss-guid-permalink",
        ),
        ("&amp; more &lt;b&gt;", "&amp; more <b>bold</b>", "rss-unescaped-markup"),
        # An item needs a title or a description, not both.
        ("<title>THEFT at 1XX BLOCK OF PIKE ST &amp; more &lt;b&gt;</title>", "", None),
    ],
)
def test_each_rss_check_fails_on_a_broken_feed(old, new, code):
    assert old in RSS
    problems = check_rss(RSS.replace(old, new, 1).encode())
    if code is None:
        assert problems == []
    else:
        assert code in codes(problems), problems


def test_rss_item_needs_a_title_or_a_description():
    broken = RSS.replace("<title>BURGLARY at 2XX BLOCK OF PINE ST</title>", "")
    broken = broken.replace("<description>Theft. Beat K3.</description>", "")
    broken = broken.replace("<title>THEFT at 1XX BLOCK OF PIKE ST &amp; more &lt;b&gt;</title>", "")
    assert "rss-item-empty" in codes(check_rss(broken.encode()))


@pytest.mark.parametrize(
    "old,new,code",
    [
        ('xmlns="http://www.w3.org/2005/Atom"', 'xmlns="http://purl.org/atom/ns#"', "atom-root"),
        ("<id>tag:example.org,2026:feed/beat/K3</id>", "", "atom-cardinality"),
        (
            "<title>Beat K3</title>",
            "<title>Beat K3</title><title>Again</title>",
            "atom-cardinality",
        ),
        ("<id>tag:example.org,2026:feed/beat/K3</id>", "<id>feed K3</id>", "atom-id-not-iri"),
        (
            "<updated>2026-11-26T12:00:00+00:00</updated>",
            "<updated>Thu, 26 Nov 2026</updated>",
            "atom-bad-date",
        ),
        ("2026-11-25T20:09:00Z", "2026-11-25 20:09:00", "atom-bad-date"),
        ("2026-11-25T20:09:00-08:00", "2026-11-25T20:09:00", "atom-bad-date"),
        ("2026-11-25T20:09:00Z", "2026-13-25T20:09:00Z", "atom-bad-date"),
        (
            '<link href="https://feeds.example.org/beats/K3/feed.atom" rel="self"/>',
            "",
            "atom-self-missing",
        ),
        (
            'href="https://feeds.example.org/entries/abc"',
            'href="/entries/abc"',
            "atom-relative-url",
        ),
        ("<author><name>Police</name></author>", "", "atom-author-missing"),
        (
            '<link href="https://feeds.example.org/entries/abc" rel="alternate" type="text/html"/>',
            "",
            "atom-entry-no-content-or-link",
        ),
        (
            '<link href="https://feeds.example.org/beats/K3" rel="alternate" type="text/html"/>',
            '<link href="https://feeds.example.org/beats/K3" rel="alternate" type="text/html"/>'
            '<link href="https://feeds.example.org/beats/K3b" type="text/html"/>',
            "atom-alternate-duplicate",
        ),
        (
            '<title type="text">THEFT &amp; more &lt;b&gt;</title>',
            '<title type="text">THEFT <b>bold</b></title>',
            "atom-unescaped-markup",
        ),
        (
            '<summary type="html">&lt;p&gt;Theft&lt;/p&gt;</summary>',
            '<summary type="html"><p>Theft</p></summary>',
            "atom-unescaped-markup",
        ),
        ('<title type="text">', '<title type="markdown">', "atom-text-type"),
        (
            '<category term="theft" label="Theft"/>',
            '<category label="Theft"/>',
            "atom-category-term",
        ),
    ],
)
def test_each_atom_check_fails_on_a_broken_feed(old, new, code):
    assert old in ATOM
    assert code in codes(check_atom(ATOM.replace(old, new, 1).encode()))


def test_atom_duplicate_entry_ids_are_found():
    entry = ATOM[ATOM.index("<entry>") : ATOM.index("</entry>") + len("</entry>")]
    doubled = ATOM.replace("</feed>", entry + "</feed>")
    assert "atom-id-duplicate" in codes(check_atom(doubled.encode()))


def _json_with(change) -> bytes:
    doc = json.loads(json.dumps(JSON))
    change(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "change,code",
    [
        (lambda d: d.update(version="https://jsonfeed.org/version/1"), "json-version"),
        (lambda d: d.pop("title"), "json-missing"),
        (lambda d: d.pop("items"), "json-missing"),
        (lambda d: d.update(geo={}), "json-unknown-key"),
        (lambda d: d.update(feed_url="/beats/K3/feed.json"), "json-relative-url"),
        (lambda d: d.update(hubs=[{"type": "WebSub"}]), "json-hub"),
        (lambda d: d["items"][0].pop("id"), "json-item-id"),
        (lambda d: d["items"][0].update(id=42), "json-item-id"),
        (lambda d: d["items"][0].pop("content_text"), "json-item-no-content"),
        (lambda d: d["items"][0].update(content_text="<b>Theft</b>"), "json-markup-in-text"),
        (lambda d: d["items"][0].update(url="entries/abc"), "json-relative-url"),
        (lambda d: d["items"][0].update(date_published="2026-11-25"), "json-bad-date"),
        (
            lambda d: d["items"][0].update(date_modified="Wed, 25 Nov 2026 20:09:00 +0000"),
            "json-bad-date",
        ),
        (lambda d: d["items"][0].update(tags="theft"), "json-tags"),
        (lambda d: d["items"][0].update(category="theft"), "json-unknown-key"),
        (lambda d: d["items"].append(dict(d["items"][0])), "json-item-id-duplicate"),
    ],
)
def test_each_json_feed_check_fails_on_a_broken_feed(change, code):
    assert code in codes(check_json_feed(_json_with(change)))


def test_json_that_is_not_json_fails():
    assert codes(check_json_feed(b"{'version': 1}")) == {"json-invalid"}


@pytest.mark.parametrize(
    "text,ok",
    [
        ("Thu, 26 Nov 2026 12:00:00 +0000", True),
        ("26 Nov 2026 12:00 GMT", True),
        ("Thu, 26 Nov 2026 12:00:00 PST", True),
        ("Fri, 26 Nov 2026 12:00:00 +0000", False),  # 26 Nov 2026 is a Thursday
        ("Thu, 26 Nov 26 12:00:00 +0000", False),
        ("Thu, 26 November 2026 12:00:00 +0000", False),
        ("2026-11-26T12:00:00Z", False),
    ],
)
def test_rfc822_dates(text, ok):
    assert rfc822_ok(text) is ok


@pytest.mark.parametrize(
    "text,ok",
    [
        ("2026-11-26T12:00:00Z", True),
        ("2026-11-26T12:00:00.123+01:00", True),
        ("2026-11-26T12:00:00", False),
        ("2026-11-26 12:00:00Z", False),
        ("2026-02-30T12:00:00Z", False),
    ],
)
def test_rfc3339_dates(text, ok):
    assert rfc3339_ok(text) is ok
