"""Every feed we serve passes our own conformance checks and parses cleanly in two independent
parsers: feedparser (no bozo) and atoma (strict; RSS, Atom and JSON Feed)."""

from __future__ import annotations

import json

import atoma
import feedparser
import pytest

from beatfeeds.core.areas import area_path
from beatfeeds.services import publishing
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.feedcheck import check_feed
from tests.support.instance import NOW, SAMPLE, load_default_beats, make_settings, make_store
from tests.support.web import make_app

FILTERS = ["", "?category=car-prowl&category=theft", "?exclude=theft"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conformance")
    settings = make_settings(tmp, hub_url="https://hub.example.test/")
    store = make_store(settings)
    load_default_beats(store)
    import_file(store, SAMPLE, ImportOptions(preset="spd-911"), settings, now=NOW)
    return make_app(settings, store).test_client(), store


def feed_paths(store) -> list[str]:
    paths = []
    for area in publishing.all_areas(store):
        prefix = area_path(area.kind, area.code)
        paths += [f"{prefix}/feed.{fmt}" for fmt in ("rss", "atom", "json")]
    return paths


def test_every_feed_conforms_and_parses_in_both_parsers(site):
    client, store = site
    paths = feed_paths(store)
    assert len(paths) == 3 * (1 + 5 + 17 + 51)
    checked = 0
    for path in paths:
        for query in FILTERS if "/beats/" not in path else [""]:
            body = client.get(path + query).data
            fmt = path.rsplit(".", 1)[1]
            assert check_feed(fmt, body) == [], path + query
            if fmt == "json":
                parsed = atoma.parse_json_feed_bytes(body)
                ids = [i.id_ for i in parsed.items]
                assert ids == [i["id"] for i in json.loads(body)["items"]]
                continue
            fp = feedparser.parse(body)
            assert not fp.bozo, (path + query, fp.get("bozo_exception"))
            assert fp.version == {"rss": "rss20", "atom": "atom10"}[fmt]
            if fmt == "rss":
                ids = [i.guid for i in atoma.parse_rss_bytes(body).items]
            else:
                ids = [e.id_ for e in atoma.parse_atom_bytes(body).entries]
            assert ids == [e.id for e in fp.entries], path + query
            checked += 1
    assert checked > 2 * 74


def test_the_demo_feeds_have_entries_to_check(site):
    client, _ = site
    doc = json.loads(client.get("/feed.json").data)
    assert len(doc["items"]) >= 50  # the checks above ran over real entries
    assert any("&" in i["title"] or "/" in i["title"] for i in doc["items"])
