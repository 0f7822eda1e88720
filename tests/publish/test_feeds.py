"""Feeds: RSS 2.0 / Atom 1.0 / JSON Feed that parse cleanly, with stable ids across rebuilds."""

import json
from datetime import timedelta

import feedparser
import pytest
from lxml import etree

from beatfeeds.app import create_app
from beatfeeds.services import publishing
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.instance import NOW, SAMPLE, load_default_beats, make_settings, make_store

LATER = NOW + timedelta(days=4000)  # the 2016 sample is long past its publication delay
ATOM = "{http://www.w3.org/2005/Atom}"


def sample_store(tmp_path, **settings_overrides):
    settings = make_settings(tmp_path, **settings_overrides)
    store = make_store(settings)
    load_default_beats(store)
    import_file(store, SAMPLE, ImportOptions(preset="spd-911"), settings, now=NOW)
    return store, settings


def feed(store, settings, kind, code, fmt, now=LATER):
    area = publishing.resolve_area(store, kind, code)
    return publishing.area_feed(store, settings, area, fmt, now=now).body


@pytest.fixture
def sample(tmp_path):
    return sample_store(tmp_path / "a")


@pytest.mark.parametrize(
    "kind,code", [("beat", "K3"), ("sector", "K"), ("precinct", "W"), ("city", None)]
)
def test_rss_and_atom_parse_cleanly_and_agree(sample, kind, code):
    store, settings = sample
    rss = feedparser.parse(feed(store, settings, kind, code, "rss"))
    atom = feedparser.parse(feed(store, settings, kind, code, "atom"))
    assert not rss.bozo and not atom.bozo
    assert rss.version == "rss20" and atom.version == "atom10"
    assert settings.department_name in atom.feed.title
    assert len(rss.entries) == len(atom.entries) > 0
    assert [e.id for e in rss.entries] == [e.id for e in atom.entries]
    times = [e.published_parsed for e in atom.entries]
    assert times == sorted(times, reverse=True)  # newest first
    for e in atom.entries:
        assert e.id.startswith("tag:example.test,2026:incident/")
        assert e.link.startswith("http://feeds.example.test/entries/")
        assert e.tags and e.updated_parsed and e.published_parsed


def test_atom_has_required_elements(sample):
    store, settings = sample
    root = etree.fromstring(feed(store, settings, "beat", "K3", "atom"))
    for name in ("id", "title", "updated"):
        assert root.find(ATOM + name) is not None
    links = {link.get("rel"): link.get("href") for link in root.findall(ATOM + "link")}
    assert links["self"] == "http://feeds.example.test/beats/K3/feed.atom"
    assert links["alternate"] == "http://feeds.example.test/beats/K3"
    for entry in root.findall(ATOM + "entry"):
        for name in ("id", "title", "updated", "link"):
            assert entry.find(ATOM + name) is not None


def test_rss_channel_link_is_the_page(sample):
    store, settings = sample
    root = etree.fromstring(feed(store, settings, "beat", "K3", "rss"))
    assert root.findtext("channel/link") == "http://feeds.example.test/beats/K3"
    assert all(g.get("isPermaLink") == "false" for g in root.iter("guid"))


def test_json_feed(sample):
    store, settings = sample
    doc = json.loads(feed(store, settings, "beat", "K3", "json"))
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["feed_url"] == "http://feeds.example.test/beats/K3/feed.json"
    ids = [i["id"] for i in doc["items"]]
    assert len(ids) == len(set(ids)) > 0


def test_entry_text_in_tweets_by_beat_form(sample):
    store, settings = sample
    entries = feedparser.parse(feed(store, settings, "beat", "K3", "atom")).entries
    first = next(e for e in entries if e.id.endswith("/1701856"))
    assert first.title == "THEFT - CAR PROWL at S KING ST / 8 AV S, 3/25/2016 11:58 PM"


def test_max_entries_setting(tmp_path):
    store, settings = sample_store(tmp_path, feed_max_entries=7)
    assert len(feedparser.parse(feed(store, settings, "city", None, "rss")).entries) == 7


def test_ids_are_stable_across_reimport_rebuild_and_host(sample, tmp_path):
    store, settings = sample
    before = [e.id for e in feedparser.parse(feed(store, settings, "city", None, "atom")).entries]
    import_file(store, SAMPLE, ImportOptions(preset="spd-911"), settings, now=NOW + timedelta(1))
    after = [e.id for e in feedparser.parse(feed(store, settings, "city", None, "atom")).entries]
    assert after == before
    # A database rebuilt from scratch, served under another base URL, gives the same ids.
    other_store, other_settings = sample_store(tmp_path / "b", base_url="https://other.example")
    rebuilt = feedparser.parse(feed(other_store, other_settings, "city", None, "atom")).entries
    assert [e.id for e in rebuilt] == before
    assert all(e.link.startswith("https://other.example/entries/") for e in rebuilt)
    # The request's Host header plays no part either.
    app = create_app({"TESTING": True, "store": store, **settings.as_dict()})
    body = app.test_client().get("/feed.atom", headers={"Host": "evil.example"}).data
    assert b"evil.example" not in body


def test_no_coordinates_in_any_feed(sample):
    store, settings = sample
    for kind, code in [("beat", "K3"), ("city", None)]:
        for fmt in ("rss", "atom", "json"):
            body = feed(store, settings, kind, code, fmt)
            assert b"47.598347" not in body and b"-122.32245" not in body
