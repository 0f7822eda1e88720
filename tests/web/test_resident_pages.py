"""Pages residents use to find their beat and subscribe, without a browser (their JavaScript
behaviour is in test_browser_residents.py)."""

from __future__ import annotations

import json

import pytest
from lxml import html

from beatfeeds.core.errors import ConfigurationError
from beatfeeds.core.profile import contrast_on_white
from tests.support.instance import make_settings
from tests.support.web import add_incident, build_site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(tmp_path_factory.mktemp("pages"))


def page(client, path):
    r = client.get(path)
    assert r.status_code == 200, path
    return html.fromstring(r.data)


def test_home_page_has_the_map_the_finders_and_the_lists(site):
    app, _, _ = site
    doc = page(app.test_client(), "/")
    m = doc.get_element_by_id("beat-map")
    assert m.get("data-geojson") == "/beats.geojson" and m.get("aria-label")
    assert doc.xpath("//script[contains(@src, '/static/vendor/leaflet/leaflet.js')]")
    assert doc.xpath("//script[@src='/static/beatmap.js']")
    form = doc.xpath("//form[@action='/find']")[0]
    assert form.xpath(".//label[@for='beat-code']") and form.xpath(".//input[@name='beat']")
    assert doc.get_element_by_id("use-location").get("hidden") is not None  # JS reveals it
    # No geocoder configured: no address box at all.
    assert not doc.xpath("//*[@id='address-search']")
    assert doc.xpath("//a[@href='/feeds.opml']") and doc.xpath(
        "//a[@href='/precincts/W/feeds.opml']"
    )
    # The map is never the only way: every beat is a link in the lists.
    assert (
        len(doc.xpath("//a[starts-with(@href, '/beats/') and not(contains(@href, 'feed'))]")) >= 51
    )


def test_address_box_appears_when_a_geocoder_is_set(tmp_path):
    app, _, _ = build_site(tmp_path, geocoder_url="https://geocoder.example.test/")
    doc = page(app.test_client(), "/")
    form = doc.get_element_by_id("address-search")
    assert form.get("data-geocoder") == "https://geocoder.example.test/"
    assert form.xpath(".//label[@for='address']") and form.xpath(".//input[@name='q']")


def test_search_by_beat_code_without_javascript(site):
    app, _, _ = site
    c = app.test_client()
    r = c.get("/find?beat=+k3+")
    assert r.status_code == 302 and r.headers["Location"].endswith("/beats/K3")
    r = c.get("/find?beat=ZZ9")
    assert r.status_code == 404
    doc = html.fromstring(r.data)
    assert "no beat 'ZZ9'" in doc.get_element_by_id("find-error").text_content()
    assert doc.get_element_by_id("beat-code").get("value") == "ZZ9"
    assert c.get("/find?beat=").status_code == 404


def test_beats_geojson(site):
    app, store, _ = site
    r = app.test_client().get("/beats.geojson")
    assert r.mimetype == "application/geo+json" and r.headers.get("ETag")
    doc = json.loads(r.data)
    assert doc["type"] == "FeatureCollection" and doc["beat_map"] == store.active_beat_set().id
    codes = sorted(f["properties"]["beat"] for f in doc["features"])
    assert codes == sorted(b.code for b in store.beats(store.active_beat_set().id))
    k3 = next(f for f in doc["features"] if f["properties"]["beat"] == "K3")
    assert (
        k3["properties"].items()
        >= {
            "sector": "K",
            "precinct": "W",
            "url": "/beats/K3",
            "precinct_label": "West Precinct",
        }.items()
    )
    assert k3["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert len(r.data) < 300_000  # simplified for phones


def test_beat_page_has_everything_a_subscriber_needs(site):
    app, _, _ = site
    doc = page(app.test_client(), "/beats/K3")
    text = doc.text_content()
    assert "not monitored" in text and "911" in text
    hrefs = {a.get("href") for a in doc.xpath("//a")}
    assert {
        "/beats/K3/feed.rss",
        "/beats/K3/feed.atom",
        "/beats/K3/feed.json",
        "/precincts/W/feeds.opml",
    } <= hrefs
    assert (
        doc.get_element_by_id("feed-url").get("value")
        == "http://feeds.example.test/beats/K3/feed.atom"
    )
    assert doc.xpath("//label[@for='feed-url']") and doc.xpath("//button[@data-copy='feed-url']")
    m = doc.get_element_by_id("area-map")
    assert m.get("data-highlight") == "K3"
    neighbours = m.get("data-neighbours").split(",")
    assert {"K1", "K2", "G1"} <= set(neighbours) and "K3" not in neighbours
    for code in neighbours:  # the neighbours are links too
        assert f"/beats/{code}" in hrefs
    assert "entries a week" in text
    captions = [c.text_content() for c in doc.xpath("//table/caption")]
    assert captions == ["Entries per week", "By category, last 30 days"]
    # The filter form builds a filtered feed URL, without JavaScript.
    form = doc.xpath("//form[@action='/beats/K3/feed.atom']")[0]
    values = form.xpath(".//input[@name='category']/@value")
    assert "burglary" in values and "sexual-offense" not in values  # suppressed: not offered


def test_beat_page_counts_by_category_and_week(tmp_path):
    app, store, settings = build_site(tmp_path)
    add_incident(tmp_path, store, settings, "950000001", beat="K3", hours_ago=3)
    add_incident(tmp_path, store, settings, "950000002", beat="K3", hours_ago=24 * 9)
    doc = page(app.test_client(), "/beats/K3")
    weeks, cats = doc.xpath("//table")
    week_counts = [int(td.text_content().split()[0]) for td in weeks.xpath(".//tbody/tr/td[2]")]
    assert len(week_counts) == 8 and week_counts[0] == 1 and week_counts[1] == 1
    assert sum(week_counts) == 2  # the 2016 sample is long past
    cat_rows = [
        tuple(td.text_content() for td in tr.xpath("td")) for tr in cats.xpath(".//tbody/tr")
    ]
    assert sum(int(n) for _label, n in cat_rows) == 2
    assert "0.2 entries a week" in doc.text_content()  # 2 in 8 weeks


def test_sector_and_precinct_pages_show_their_beats_on_a_map(site):
    app, _, _ = site
    doc = page(app.test_client(), "/precincts/W")
    assert set(doc.get_element_by_id("area-map").get("data-highlight").split(",")) >= {"K3", "D1"}
    assert doc.xpath("//a[@href='/precincts/W/feeds.opml']")


def test_department_logo_and_colour_are_settings(tmp_path):
    app, _, _ = build_site(
        tmp_path,
        department_name="Metro Police",
        department_logo_url="/static/logo.png",
        department_color="#7a1f5c",
    )
    r = app.test_client().get("/")
    doc = html.fromstring(r.data)
    assert doc.xpath("//header//img[@src='/static/logo.png']")
    assert "Metro Police" in doc.xpath("//header")[0].text_content()
    assert b"--accent:#7a1f5c" in r.data


@pytest.mark.parametrize("color", ["#7fb3ff", "#ffcc00", "red", "#12345"])
def test_colours_that_fail_contrast_or_form_are_refused(tmp_path, color):
    with pytest.raises(ConfigurationError, match="department_color"):
        make_settings(tmp_path, department_color=color)


def test_contrast_ratio_matches_wcag_examples():
    assert round(contrast_on_white("#000000"), 1) == 21.0
    assert round(contrast_on_white("#767676"), 1) == 4.5  # the lightest grey that passes AA
    assert contrast_on_white("#0b4f8a") > 7
