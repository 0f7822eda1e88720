"""Area kinds, paths and labels: one home, and the web routes read every path it makes."""

from __future__ import annotations

from urllib.parse import unquote

from flask import url_for

from beatfeeds.core import areas

EXAMPLES = (("city", None), ("precinct", "W"), ("sector", "K"), ("beat", "K3"))


def test_every_kind_has_a_page_a_feed_and_a_label():
    assert areas.KINDS == tuple(kind for kind, _ in EXAMPLES)
    assert [
        (areas.page_path(k, c), areas.feed_path(k, c, "atom"), areas.area_label(k, c))
        for k, c in EXAMPLES
    ] == [
        ("/", "/feed.atom", "Citywide"),
        ("/precincts/W", "/precincts/W/feed.atom", "West Precinct"),
        ("/sectors/K", "/sectors/K/feed.atom", "Sector K"),
        ("/beats/K3", "/beats/K3/feed.atom", "Beat K3"),
    ]
    assert areas.area_path("city", None) == ""  # a prefix: "" + "/feed.rss"
    assert areas.opml_path() == "/feeds.opml"
    assert areas.opml_path("W") == "/precincts/W/feeds.opml"
    assert areas.area_label("precinct", "X9") == "X9 Precinct"  # no name known: the code


def test_a_code_is_one_escaped_path_segment():
    assert areas.page_path("beat", "K 3/x?") == "/beats/K%203%2Fx%3F"
    assert areas.feed_path("sector", "K#", "rss") == "/sectors/K%23/feed.rss"


def test_the_web_routes_read_every_area_path_back(app):
    routes = app.url_map.bind("localhost")

    def route(path: str):
        return routes.match(unquote(path))  # WSGI hands the routes the decoded path

    assert set(areas.SEGMENTS) == set(areas.KINDS) - {"city"}
    assert areas.KIND_OF_SEGMENT == {v: k for k, v in areas.SEGMENTS.items()}
    for kind, segment in areas.SEGMENTS.items():
        for code in ("K3", "K 3"):
            assert route(areas.page_path(kind, code)) == (
                "public.area_page",
                {"kinds": segment, "code": code},
            )
            assert route(areas.feed_path(kind, code, "rss")) == (
                "public.area_feed",
                {"kinds": segment, "code": code, "fmt": "rss"},
            )
    assert route(areas.page_path("city", None)) == ("public.index", {})
    assert route(areas.feed_path("city", None, "json")) == ("public.city_feed", {"fmt": "json"})
    assert route(areas.opml_path()) == ("public.opml_all", {})
    assert route(areas.opml_path("W")) == ("public.opml_precinct", {"code": "W"})
    with app.test_request_context():
        for kind, code in EXAMPLES[1:]:
            segment = areas.SEGMENTS[kind]
            assert url_for("public.area_page", kinds=segment, code=code) == areas.page_path(
                kind, code
            )


def test_pages_and_feeds_link_areas_by_their_paths(client):
    home = client.get("/").get_data(as_text=True)
    for kind, code in EXAMPLES:
        assert f'href="{areas.feed_path(kind, code, "rss")}"' in home
    page = client.get(areas.page_path("sector", "K")).get_data(as_text=True)
    assert f'href="{areas.feed_path("sector", "K", "atom")}"' in page
    geojson = client.get("/beats.geojson").get_json()
    assert {f["properties"]["url"] for f in geojson["features"]} == {
        areas.page_path("beat", f["properties"]["beat"]) for f in geojson["features"]
    }
