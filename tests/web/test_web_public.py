"""Public pages and feeds over HTTP: the real app, a real SQLite file, the bundled sample."""

from __future__ import annotations

import json
import re
from datetime import UTC, timedelta

import feedparser
import pytest
from lxml import html
from werkzeug.http import http_date, parse_date

from beatfeeds.core.identifiers import entry_uid
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
from tests.support.web import fresh_row, make_app, sample_rows, write_incidents

SOURCE = "spd-911-incident-response"
FORMATS = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}
AREA_PREFIXES = ["", "/beats/K3", "/sectors/K", "/precincts/W"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The default beats, the bundled sample (imported at NOW) and two incidents from today:
    one past its publication delay, one still held back."""
    tmp = tmp_path_factory.mktemp("site")
    settings = make_settings(tmp, feed_max_entries=1000)
    store = make_store(settings)
    load_default_beats(store)
    report = import_file(store, SAMPLE, ImportOptions(preset="spd-911"), settings, now=NOW)
    assert report.counters["rejected"] == 0 and report.counters["new"] > 300
    _, rows = sample_rows()
    k3 = next(r for r in rows if r["Zone/Beat"] == "K3")
    now = utcnow()
    # Each imported as it happened: the delay counts from the import too.
    for cad_id, event in (
        ("900000001", now - timedelta(hours=3)),
        ("900000002", now - timedelta(minutes=5)),
    ):
        fresh = tmp / f"fresh-{cad_id}.csv"
        write_incidents(fresh, [fresh_row(k3, cad_id, event)])
        report = import_file(store, fresh, ImportOptions(preset="spd-911"), settings, now=event)
        assert report.counters["new"] == 1
    app = make_app(settings, store)
    return {"app": app, "client": app.test_client(), "store": store, "settings": settings}


@pytest.fixture
def client(site):
    return site["client"]


def beats_geojson() -> list[dict]:
    return [f["properties"] for f in json.loads(DEFAULT_BEATS.read_text())["features"]]


# ---- index and area pages -----------------------------------------------------------------------
def test_index_lists_every_beat_under_its_precinct_and_sector_with_feed_links(client):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    doc = html.fromstring(r.data)
    beats = beats_geojson()
    assert len(beats) == 51
    for b in beats:
        code, sector, precinct = b["beat"], b["sector"], b["precinct"]
        section = doc.xpath(f'//section[@aria-labelledby="precinct-{precinct}"]')
        assert len(section) == 1, precinct
        assert section[0].xpath(f'.//a[@href="/precincts/{precinct}/feed.atom"]')
        cards = [
            c
            for c in section[0].xpath('.//div[@class="card"]')
            if c.xpath(f'.//a[@href="/sectors/{sector}"]')
        ]
        assert len(cards) == 1, (precinct, sector)
        card = cards[0]
        assert card.xpath(f'.//a[@href="/sectors/{sector}/feed.rss"]')
        items = card.xpath(f'.//li[a[@href="/beats/{code}"]]')
        assert len(items) == 1, code
        hrefs = set(items[0].xpath(".//a/@href"))
        assert {f"/beats/{code}/feed.{fmt}" for fmt in FORMATS} <= hrefs
    # The citywide feeds are linked and advertised too.
    assert set(doc.xpath('//link[@rel="alternate"]/@href')) == {f"/feed.{f}" for f in FORMATS}


def test_beat_page_has_autodiscovery_links_and_the_emergency_notice(client):
    r = client.get("/beats/K3")
    assert r.status_code == 200
    doc = html.fromstring(r.data)
    links = {
        (el.get("type"), el.get("href")) for el in doc.xpath('/html/head/link[@rel="alternate"]')
    }
    assert links == {(mime, f"/beats/K3/feed.{fmt}") for fmt, mime in FORMATS.items()}
    for el in doc.xpath('/html/head/link[@rel="alternate"]'):
        assert "K3" in el.get("title")
    text = doc.text_content()
    assert "call 911" in text
    assert "Beat K3" in text
    # Entries of the beat are listed with links to their entry pages.
    assert doc.xpath('//ul[@class="entries"]/li/a[starts-with(@href, "/entries/")]')


@pytest.mark.parametrize("path", ["/sectors/K", "/precincts/W", "/precincts/SW"])
def test_sector_and_precinct_pages_have_feed_links(client, path):
    r = client.get(path)
    assert r.status_code == 200
    doc = html.fromstring(r.data)
    hrefs = set(doc.xpath('/html/head/link[@rel="alternate"]/@href'))
    assert hrefs == {f"{path}/feed.{fmt}" for fmt in FORMATS}
    assert "call 911" in doc.text_content()


@pytest.mark.parametrize(
    "path,canonical",
    [
        ("/beats/k3", "/beats/K3"),
        ("/sectors/k", "/sectors/K"),
        ("/precincts/sw", "/precincts/SW"),
        ("/beats/k3/feed.rss", "/beats/K3/feed.rss"),
        ("/sectors/k/feed.atom", "/sectors/K/feed.atom"),
        ("/precincts/w/feed.json", "/precincts/W/feed.json"),
    ],
)
def test_lower_case_codes_redirect_permanently_to_the_canonical_url(client, path, canonical):
    r = client.get(path)
    assert r.status_code == 301
    assert r.headers["Location"] == canonical
    assert client.get(canonical).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/beats/ZZ9",
        "/sectors/ZZ",
        "/precincts/XX",
        "/beats/ZZ9/feed.rss",
        "/sectors/ZZ/feed.atom",
        "/precincts/XX/feed.json",
        "/beats/H1",
        "/beats/99",
    ],
)
def test_unknown_areas_get_a_helpful_404_page(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert r.mimetype == "text/html"
    doc = html.fromstring(r.data)
    text = doc.text_content()
    assert "Not found" in text
    assert "K3" in text  # what a beat code looks like
    assert doc.xpath('//main//a[@href="/"]')  # the way back to every beat


# ---- entry pages --------------------------------------------------------------------------------
def test_entry_page_shows_the_hundred_block(client, site):
    # SHOPLIFT, 92XX BLOCK OF RAINIER AV S, beat S3
    uid = entry_uid(SOURCE, "1701857", site["store"].identifier_key())
    r = client.get(f"/entries/{uid}")
    assert r.status_code == 200
    text = html.fromstring(r.data).text_content()
    assert "SHOPLIFT at 92XX BLOCK OF RAINIER AV S, 3/25/2016 11:57 PM" in text
    assert "call 911" in text
    # The entry is in its beat's feed, linked by the same opaque id.
    items = json.loads(client.get("/beats/S3/feed.json").data)["items"]
    assert f"http://feeds.example.test/entries/{uid}" in [i["url"] for i in items]


def test_entry_ids_in_urls_are_not_database_row_numbers(client, site):
    store = site["store"]
    row = store.incident_private(SOURCE, "1701857")
    uid = row["uid"]
    assert uid != str(row["id"]) and not uid.isdigit() and len(uid) >= 16
    assert client.get(f"/entries/{uid}").status_code == 200
    assert client.get(f"/entries/{row['id']}").status_code == 404
    for n in range(1, 6):
        assert client.get(f"/entries/{n}").status_code == 404
    # Every link in a feed uses the opaque id, never a row number.
    items = json.loads(client.get("/feed.json").data)["items"]
    ids = [i["url"].rsplit("/", 1)[1] for i in items]
    assert ids and not any(i.isdigit() for i in ids)


@pytest.mark.parametrize("external_id", ["1701167", "1684577"])  # MISSING - CHILD, CHILD - LURING
def test_suppressed_entries_are_not_found(client, site, external_id):
    private = site["store"].incident_private(SOURCE, external_id)
    assert private["suppressed_reason"]  # stored, never published
    uid = private["uid"]
    assert client.get(f"/entries/{uid}").status_code == 404
    assert uid not in client.get("/feed.json").get_data(as_text=True)


def test_entry_held_back_until_its_delay_passes(client, site):
    store = site["store"]
    due = store.incident_private(SOURCE, "900000001")  # 3 hours old: published
    held = store.incident_private(SOURCE, "900000002")  # 5 minutes old: not yet
    assert held["publish_at"] > utcnow() > due["publish_at"]
    assert client.get(f"/entries/{due['uid']}").status_code == 200
    r = client.get(f"/entries/{held['uid']}")
    assert r.status_code == 404 and r.mimetype == "text/html"
    for prefix in ("", "/beats/K3"):
        body = client.get(f"{prefix}/feed.json").get_data(as_text=True)
        assert due["uid"] in body and held["uid"] not in body
    assert held["uid"] not in client.get("/beats/K3").get_data(as_text=True)


@pytest.mark.parametrize("uid", ["nope", "0" * 20, "../etc", "a" * 200, "%00"])
def test_unknown_entry_ids_are_not_found(client, uid):
    assert client.get(f"/entries/{uid}").status_code == 404


# ---- feeds over HTTP ----------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", AREA_PREFIXES)
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_feed_headers_and_conditional_requests(client, prefix, fmt):
    url = f"{prefix}/feed.{fmt}"
    r = client.get(url)
    assert r.status_code == 200
    assert r.mimetype == FORMATS[fmt]
    assert r.mimetype_params.get("charset") == "utf-8"
    etag = r.headers["ETag"]
    last_modified = r.headers["Last-Modified"]
    assert etag and parse_date(last_modified) is not None
    if fmt == "json":
        doc = json.loads(r.data)
        assert doc["version"] == "https://jsonfeed.org/version/1.1" and doc["items"]
    else:
        parsed = feedparser.parse(r.data)
        assert not parsed.bozo and parsed.entries
    # The same feed again: same validators.
    again = client.get(url)
    assert again.headers["ETag"] == etag and again.headers["Last-Modified"] == last_modified

    for headers in (
        {"If-None-Match": etag},
        {"If-Modified-Since": last_modified},
        {"If-None-Match": etag, "If-Modified-Since": last_modified},
    ):
        r304 = client.get(url, headers=headers)
        assert r304.status_code == 304, headers
        assert r304.data == b""
        assert r304.headers["ETag"] == etag

    # Stale validators get the full feed.
    assert client.get(url, headers={"If-None-Match": '"stale"'}).status_code == 200
    older = http_date(parse_date(last_modified) - timedelta(days=1))
    stale = client.get(url, headers={"If-Modified-Since": older})
    assert stale.status_code == 200 and stale.data == r.data


@pytest.mark.parametrize(
    "path",
    [
        "/feed.xml",
        "/feed.html",
        "/beats/K3/feed.xml",
        "/sectors/K/feed.rdf",
        "/precincts/W/feed.txt",
        "/beats/K3/feed.",
    ],
)
def test_unknown_feed_format_is_not_found(client, path):
    assert client.get(path).status_code == 404


def test_feed_titles_name_the_department_and_area(client):
    for prefix, label in [
        ("", "Citywide"),
        ("/beats/K3", "Beat K3"),
        ("/sectors/K", "Sector K"),
        ("/precincts/W", "West Precinct"),
    ]:
        parsed = feedparser.parse(client.get(f"{prefix}/feed.atom").data)
        assert parsed.feed.title == f"Seattle Police Department: {label}"


def test_last_modified_moves_when_a_held_entry_is_published(tmp_path):
    """A reader that revalidates with If-Modified-Since alone must still see an entry that
    became public after its last fetch, even though the incident itself did not change."""
    settings = make_settings(tmp_path)
    store = make_store(settings)
    load_default_beats(store)
    _, rows = sample_rows()
    k3 = next(r for r in rows if r["Zone/Beat"] == "K3")
    now = utcnow()
    imported_at = now - timedelta(minutes=65)  # as incident 2 happened
    path = tmp_path / "today.csv"
    write_incidents(
        path,
        [
            fresh_row(k3, "1", now - timedelta(hours=3)),
            fresh_row(k3, "2", now - timedelta(minutes=65)),
        ],
    )
    import_file(store, path, ImportOptions(preset="spd-911"), settings, now=imported_at)
    # Incident 2 became public 5 minutes ago; a reader last fetched before that, when the
    # feed's newest change was the import itself.
    client = make_app(settings, store).test_client()
    r = client.get("/beats/K3/feed.json")
    assert len(json.loads(r.data)["items"]) == 2
    assert parse_date(r.headers["Last-Modified"]) >= (
        now - timedelta(minutes=5, seconds=1)
    ).replace(tzinfo=UTC)
    seen_before = http_date(imported_at.replace(tzinfo=UTC))
    assert (
        client.get("/beats/K3/feed.json", headers={"If-Modified-Since": seen_before}).status_code
        == 200
    )


# ---- privacy: no raw coordinates anywhere -------------------------------------------------------
def coordinate_strings() -> set[str]:
    _, rows = sample_rows()
    out = set()
    for r in rows:
        for col in ("Latitude", "Longitude"):
            if r[col].strip():
                out.add(r[col].strip())
    return out


def test_no_published_output_contains_raw_coordinates(client, site):
    coords = coordinate_strings()
    assert {"47.598347", "-122.32245"} <= coords
    beats = beats_geojson()
    sectors = sorted({b["sector"] for b in beats})
    precincts = sorted({b["precinct"] for b in beats})
    pages = ["/", "/healthz", "/beats/ZZ9", "/entries/nope", "/api/locate?lat=x&lon=y"]
    for kind, codes in (
        ("beats", [b["beat"] for b in beats]),
        ("sectors", sectors),
        ("precincts", precincts),
    ):
        for code in codes:
            pages.append(f"/{kind}/{code}")
            pages.append(f"/{kind}/{code}?page=2")
            pages += [f"/{kind}/{code}/feed.{fmt}" for fmt in FORMATS]
    pages += [f"/feed.{fmt}" for fmt in FORMATS]
    city = json.loads(client.get("/feed.json").data)["items"]
    assert len(city) > 250  # feed_max_entries=1000: every published entry
    pages += [i["url"].removeprefix("http://feeds.example.test") for i in city]

    bodies = []
    for path in pages:
        r = client.get(path)
        assert r.status_code in (200, 400, 404), path
        bodies.append((path, r.get_data(as_text=True)))
    # The API answers for every incident's own point without echoing it.
    _, rows = sample_rows()
    for row in rows[:40]:
        r = client.get(f"/api/locate?lat={row['Latitude']}&lon={row['Longitude']}")
        assert r.status_code == 200, row["CAD CDW ID"]
        bodies.append((r.request.path, r.get_data(as_text=True)))
        r = client.post(
            "/api/locate", json={"lat": float(row["Latitude"]), "lon": float(row["Longitude"])}
        )
        bodies.append((r.request.path, r.get_data(as_text=True)))

    # Feeds carry the area outline (public map data) and grid-snapped points (GeoRSS): drop
    # the outlines, then look for each raw coordinate as a whole number. A raw value that is
    # itself a grid node (the source was that coarse) reveals nothing beyond the grid.
    grid = 0.001
    raw = {c for c in coords if abs(float(c) / grid - round(float(c) / grid)) > 1e-9}
    leaks = []
    for path, body in bodies:
        body = re.sub(r"<georss:polygon>[^<]*</georss:polygon>", "", body)
        if path.endswith(".json") and body.lstrip().startswith("{"):
            doc = json.loads(body)
            doc.pop("_geo", None)
            body = json.dumps(doc)
        numbers = set(re.findall(r"-?\d+\.\d+", body))
        leaks += [(path, c) for c in raw if c in numbers]
    assert leaks == []


# ---- health -------------------------------------------------------------------------------------
def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.is_json
    assert r.json["status"] == "ok"
    assert r.json["database"] == "sqlite"
    assert isinstance(r.json["active_beat_map"], int)


def test_feeds_do_not_vary_on_cookies(client):
    for url in ("/feed.atom", "/beats/K3/feed.rss", "/api/locate?lat=47.6&lon=-122.33"):
        r = client.get(url)
        assert "Cookie" not in r.headers.get("Vary", ""), url


def test_healthz_answers_json_when_the_database_is_unreachable(tmp_path):
    from beatfeeds.app import create_app

    app = create_app(
        {
            "TESTING": True,
            "instance_path": str(tmp_path),
            "database_url": "postgresql+psycopg://nobody:x@127.0.0.1:1/none",
            "secret_key": "k",
        }
    )
    r = app.test_client().get("/healthz")
    assert r.status_code == 503 and r.json["status"] == "database unreachable"
