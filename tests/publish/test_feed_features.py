"""Feeds for residents: GeoRSS on a grid, category filters, OPML, the in-memory cache and its
invalidation, the browser view (XSL), WebSub pings and retention."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import feedparser
import pytest
import shapely
from lxml import etree

from beatfeeds import jobs
from beatfeeds.publish import privacy
from beatfeeds.publish.feeds import FeedFilter
from beatfeeds.services import beatmaps, publishing
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.instance import (
    DEFAULT_BEATS,
    NOW,
    SAMPLE,
    load_default_beats,
    make_settings,
    make_store,
    utcnow,
)
from tests.support.web import (
    add_incident,
    build_site,
    fresh_row,
    make_app,
    sample_rows,
    write_incidents,
)

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
READER_ACCEPT = (
    "application/atom+xml,application/rdf+xml,application/rss+xml,"
    "application/xml;q=0.9,text/xml;q=0.2,*/*;q=0.1"
)  # feedparser's
GEORSS = "{http://www.georss.org/georss}"
ATOM = "{http://www.w3.org/2005/Atom}"
STATIC = Path(__file__).resolve().parents[2] / "beatfeeds" / "static"


@pytest.fixture
def site(tmp_path):
    return build_site(tmp_path)


# ---- GeoRSS -----------------------------------------------------------------------------------
def test_points_are_snapped_to_the_grid_never_raw(site):
    app, store, settings = site
    _, rows = sample_rows()
    raw = {
        r["CAD CDW ID"]: (float(r["Latitude"]), float(r["Longitude"]))
        for r in rows
        if r["Latitude"].strip()
    }
    root = etree.fromstring(app.test_client().get("/beats/K3/feed.rss").data)
    items = root.findall("channel/item")
    assert items
    for item in items:
        lat, lon = map(float, item.findtext(f"{GEORSS}point").split())
        cad = item.findtext("guid").rsplit("/", 1)[1]
        assert (lat, lon) == privacy.snap_point(*raw[cad], 0.001)
        for value in (lat, lon):  # on the 0.001 grid
            assert abs(value * 1000 - round(value * 1000)) < 1e-6
    atom = etree.fromstring(app.test_client().get("/beats/K3/feed.atom").data)
    assert all(e.find(f"{GEORSS}point") is not None for e in atom.findall(f"{ATOM}entry"))
    doc = json.loads(app.test_client().get("/beats/K3/feed.json").data)
    assert all(i["_geo"]["type"] == "Point" for i in doc["items"])


def test_geo_precision_setting_coarsens_the_grid(tmp_path):
    app, _, _ = build_site(tmp_path, geo_precision=0.01)
    root = etree.fromstring(app.test_client().get("/beats/K3/feed.rss").data)
    for p in root.iter(f"{GEORSS}point"):
        for value in map(float, p.text.split()):
            assert abs(value * 100 - round(value * 100)) < 1e-6


def test_feed_carries_the_area_polygon(site):
    app, store, _ = site
    k3 = store.beat(store.active_beat_set().id, "K3").geometry
    for path in ("/beats/K3/feed.rss", "/beats/K3/feed.atom"):
        root = etree.fromstring(app.test_client().get(path).data)
        text = root.findtext(f".//{GEORSS}polygon")
        numbers = list(map(float, text.split()))
        ring = shapely.Polygon(list(zip(numbers[1::2], numbers[0::2], strict=True)))
        assert ring.is_valid and ring.intersection(k3).area / k3.area > 0.97
    doc = json.loads(app.test_client().get("/precincts/W/feed.json").data)
    assert doc["_geo"]["type"] == "Polygon" and len(doc["_geo"]["coordinates"][0]) > 4


# ---- category filters -------------------------------------------------------------------------
def test_category_filter_keeps_only_those_categories_with_the_same_ids(site):
    app, _, _ = site
    c = app.test_client()
    full = feedparser.parse(c.get("/feed.atom").data).entries
    cats = {e.id: e.tags[0].term for e in full}
    labels = {"car-prowl", "theft"}  # Atom category terms are the slugs
    filtered = feedparser.parse(c.get("/feed.atom?category=car-prowl&category=theft").data)
    assert not filtered.bozo and filtered.entries
    assert {e.tags[0].term for e in filtered.entries} <= labels
    expected = [e.id for e in full if cats[e.id] in labels]
    assert [e.id for e in filtered.entries] == expected  # same ids, same order
    # The comma form is the same filter; the self link names it canonically.
    again = feedparser.parse(c.get("/feed.atom?category=theft,car-prowl").data)
    assert [e.id for e in again.entries] == expected
    self_link = next(link.href for link in again.feed.links if link.rel == "self")
    assert self_link == "http://feeds.example.test/feed.atom?category=car-prowl&category=theft"


def test_exclude_filter_drops_categories(site):
    app, _, _ = site
    c = app.test_client()
    full = json.loads(c.get("/feed.json").data)["items"]
    kept = json.loads(c.get("/feed.json?exclude=theft&exclude=car-prowl").data)["items"]
    assert kept and len(kept) < len(full)
    assert not {"theft", "car-prowl"} & {t for i in kept for t in i["tags"]}
    assert [i["id"] for i in kept] == [
        i["id"] for i in full if not {"theft", "car-prowl"} & set(i["tags"])
    ]


def test_unknown_category_is_a_clear_400(site):
    app, _, _ = site
    r = app.test_client().get("/beats/K3/feed.rss?category=burglery")
    assert r.status_code == 400
    assert b"burglery" in r.data and b"burglary" in r.data


# ---- OPML -------------------------------------------------------------------------------------
def test_opml_lists_every_beat_feed(site):
    app, store, _ = site
    r = app.test_client().get("/feeds.opml")
    assert r.status_code == 200 and r.mimetype == "text/x-opml"
    root = etree.fromstring(r.data)
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") and root.findtext("head/dateCreated")
    feeds = [o for o in root.iter("outline") if o.get("xmlUrl")]
    codes = sorted(b.code for b in store.beats(store.active_beat_set().id))
    assert sorted(o.get("xmlUrl").split("/")[4] for o in feeds) == codes
    for o in feeds:
        assert o.get("type") == "rss" and o.get("text")
        assert o.get("xmlUrl").startswith("http://feeds.example.test/beats/")
        assert o.get("htmlUrl").startswith("http://feeds.example.test/beats/")
    # Grouped in one folder per precinct.
    assert [o.get("text") for o in root.find("body")] == sorted(
        [o.get("text") for o in root.find("body")], key=lambda t: t
    )  # stable order
    assert all(len(folder) > 0 for folder in root.find("body"))


def test_precinct_opml_lists_its_beats_only(site):
    app, store, _ = site
    root = etree.fromstring(app.test_client().get("/precincts/W/feeds.opml").data)
    urls = [o.get("xmlUrl") for o in root.iter("outline") if o.get("xmlUrl")]
    west = sorted(b.code for b in store.beats(store.active_beat_set().id) if b.precinct == "W")
    assert sorted(u.split("/")[4] for u in urls) == west
    assert app.test_client().get("/precincts/ZZ/feeds.opml").status_code == 404
    assert app.test_client().get("/precincts/w/feeds.opml").status_code == 301


# ---- cache and invalidation -------------------------------------------------------------------
def test_cached_feed_is_reused_until_an_import_changes_it(site, tmp_path):
    app, store, settings = site
    c = app.test_client()
    cache = app.extensions["beatfeeds.feed_cache"]
    first = c.get("/beats/K3/feed.atom")
    builds = cache.builds
    second = c.get("/beats/K3/feed.atom")
    assert second.data == first.data and cache.builds == builds and cache.hits >= 1
    assert first.headers["Cache-Control"] == "public, max-age=300"
    add_incident(tmp_path, store, settings, "910000001")
    third = c.get("/beats/K3/feed.atom")
    assert cache.builds == builds + 1
    assert third.headers["ETag"] != first.headers["ETag"]
    assert any(e.id.endswith("/910000001") for e in feedparser.parse(third.data).entries)


def test_publication_after_the_delay_invalidates_the_cache(site, tmp_path):
    """No write happens when an entry's delay runs out; the version stamp still moves."""
    app, store, settings = site
    cache = app.extensions["beatfeeds.feed_cache"]
    _, rows = sample_rows()
    k3 = next(r for r in rows if r["Zone/Beat"] == "K3")
    now = utcnow()
    path = tmp_path / "held.csv"
    event = now - timedelta(minutes=30)
    write_incidents(path, [fresh_row(k3, "920000001", event)])
    # imported as it happened: public the delay (60 minutes) after the import
    import_file(store, path, ImportOptions(preset="spd-911"), settings, now=event)

    def served(at):
        return publishing.serve_area_feed(
            store, settings, "beat", "K3", "json", now=at, filt=FeedFilter(), cache=cache
        )[1].body

    assert b"920000001" not in served(now)
    builds = cache.builds
    assert b"920000001" not in served(now + timedelta(minutes=1))  # still held: from the cache
    assert cache.builds == builds
    assert b"920000001" in served(now + timedelta(minutes=31))  # public now: rebuilt
    assert cache.builds == builds + 1


def test_boundary_change_and_retraction_invalidate_the_cache(site):
    app, store, _ = site
    c = app.test_client()
    before = c.get("/feed.atom")
    uid = feedparser.parse(before.data).entries[0].link.rsplit("/", 1)[1]
    store.retract_incident(uid, "entered in error", actor="records@example.test", now=utcnow())
    after = c.get("/feed.atom")
    assert uid.encode() not in after.data and after.headers["ETag"] != before.headers["ETag"]
    # A new beat map: the same beats, published; feeds are rebuilt under the new map.
    set_id = beatmaps.load_beat_map(
        store,
        DEFAULT_BEATS,
        code_field="beat",
        sector_field="sector",
        precinct_field="precinct",
        name="again",
        now=utcnow(),
    )
    c.get("/feed.atom")
    builds = app.extensions["beatfeeds.feed_cache"].builds
    beatmaps.publish_beat_map(store, set_id, now=utcnow())
    c.get("/feed.atom")
    assert app.extensions["beatfeeds.feed_cache"].builds == builds + 1


def test_cache_control_comes_from_the_setting(tmp_path):
    app, _, _ = build_site(tmp_path, feed_cache_seconds=42)
    r = app.test_client().get("/sectors/K/feed.rss")
    assert r.headers["Cache-Control"] == "public, max-age=42"


# ---- browsers get a page, readers get the feed -------------------------------------------------
@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_browsers_get_xml_with_a_stylesheet_readers_get_the_feed_type(site, fmt):
    app, _, _ = site
    c = app.test_client()
    page = c.get(f"/beats/K3/feed.{fmt}", headers={"Accept": BROWSER_ACCEPT})
    reader = c.get(f"/beats/K3/feed.{fmt}", headers={"Accept": READER_ACCEPT})
    bare = c.get(f"/beats/K3/feed.{fmt}")
    assert page.mimetype == "application/xml"
    assert reader.mimetype == bare.mimetype == f"application/{fmt}+xml"
    for r in (page, reader, bare):
        assert "Accept" in r.headers["Vary"]
    assert page.data == reader.data and page.headers["ETag"] != reader.headers["ETag"]
    assert b'<?xml-stylesheet type="text/xsl" href="/static/feed.xsl"?>' in page.data
    # The stylesheet is ours, served, and turns the feed into a page listing the entries.
    xsl = c.get("/static/feed.xsl")
    assert xsl.status_code == 200
    transform = etree.XSLT(etree.fromstring((STATIC / "feed.xsl").read_bytes()))
    html = transform(etree.fromstring(page.data))
    text = etree.tostring(html, method="text", encoding="unicode")
    titles = [e.title for e in feedparser.parse(reader.data).entries]
    assert titles and all(t in text for t in titles)
    assert "not monitored" in text and f"feed.{fmt}" in text


# ---- WebSub -----------------------------------------------------------------------------------
class Hub:
    """A loopback WebSub hub that records publish pings."""

    def __init__(self, status: int = 204):
        self.pings: list[dict] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                hub.pings.append(parse_qs(body))
                self.send_response(hub.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.status = status
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hub"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def topics(self) -> set[str]:
        return {p["hub.url"][0] for p in self.pings}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub():
    h = Hub()
    yield h
    h.close()


def test_feeds_advertise_the_hub(tmp_path, hub):
    app, _, _ = build_site(tmp_path, hub_url=hub.url)
    c = app.test_client()
    r = c.get("/beats/K3/feed.atom")
    assert r.headers["Link"] == (
        f'<{hub.url}>; rel="hub", <http://feeds.example.test/beats/K3/feed.atom>; rel="self"'
    )
    links = {link.rel: link.href for link in feedparser.parse(r.data).feed.links}
    assert links["hub"] == hub.url
    rss = etree.fromstring(c.get("/beats/K3/feed.rss").data)
    assert rss.find(f"channel/{ATOM}link[@rel='hub']").get("href") == hub.url
    doc = json.loads(c.get("/beats/K3/feed.json").data)
    assert doc["hubs"] == [{"type": "WebSub", "url": hub.url}]


def test_without_a_hub_only_self_is_advertised(site):
    app, _, _ = site
    r = app.test_client().get("/beats/K3/feed.rss")
    assert r.headers["Link"] == '<http://feeds.example.test/beats/K3/feed.rss>; rel="self"'
    assert b'rel="hub"' not in r.data


def test_scheduler_job_pings_the_hub_for_changed_feeds_only(tmp_path, hub):
    _, store, settings = build_site(tmp_path, hub_url=hub.url)
    first = jobs.run_job("ping-websub-hub", store, settings, utcnow())
    n_areas = 1 + 5 + len({b.sector for b in store.beats(store.active_beat_set().id)}) + 51
    assert first["pinged"] == len(hub.pings) == 3 * n_areas and first["failed"] == 0
    assert all(p["hub.mode"] == ["publish"] for p in hub.pings)
    hub.pings.clear()
    assert jobs.run_job("ping-websub-hub", store, settings, utcnow())["pinged"] == 0
    assert hub.pings == []
    add_incident(tmp_path, store, settings, "930000001", beat="K3")
    jobs.run_job("ping-websub-hub", store, settings, utcnow())
    base = "http://feeds.example.test"
    assert hub.topics() == {
        f"{base}{prefix}/feed.{fmt}"
        for prefix in ("", "/precincts/W", "/sectors/K", "/beats/K3")
        for fmt in ("rss", "atom", "json")
    }


def test_failed_pings_are_retried(tmp_path):
    hub = Hub(status=503)
    try:
        _, store, settings = build_site(tmp_path, hub_url=hub.url)
        summary = jobs.run_job("ping-websub-hub", store, settings, utcnow())
        assert summary["pinged"] == 0 and summary["failed"] > 0
        hub.status = 202
        hub.pings.clear()
        summary = jobs.run_job("ping-websub-hub", store, settings, utcnow())
        assert summary["failed"] == 0 and summary["pinged"] == len(hub.pings) > 0
    finally:
        hub.close()


def test_no_hub_no_pings(site):
    _, store, settings = site
    assert jobs.run_job("ping-websub-hub", store, settings, utcnow())["pinged"] == 0


# ---- retention --------------------------------------------------------------------------------
def test_entries_older_than_the_retention_drop_out(tmp_path):
    settings = make_settings(tmp_path, feed_retention_days=30)
    store = make_store(settings)
    load_default_beats(store)
    import_file(store, SAMPLE, ImportOptions(preset="spd-911"), settings, now=NOW)  # 2016
    add_incident(tmp_path, store, settings, "940000001", hours_ago=3)
    c = make_app(settings, store).test_client()
    items = json.loads(c.get("/feed.json").data)["items"]
    assert [i["id"].rsplit("/", 1)[1] for i in items] == ["940000001"]
    page = c.get("/beats/K3").get_data(as_text=True)
    assert "3/25/2016" not in page
