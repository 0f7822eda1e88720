"""The audit's checks find what they look for, and pass what is safe to publish (so that a
clean audit means something)."""

from __future__ import annotations

import json

import pytest

from tests.privacy import scan


@pytest.mark.parametrize(
    "leak",
    [
        "THEFT at 1234 5TH AVE, 1/1/2026",
        "at 607 1 / 2 N 50 ST",
        "at 1234-B 5TH AVE",
        "at 1200-1210 3RD AVE",
        "at 1517 E PIKE ST",
        "1000 BLOCK OF RAINIER AVE S",
        "at 1433 BROADWAY E",
        "&lt;b&gt;1234 5TH AVE",
    ],
)
def test_house_numbers_are_found(leak):
    assert scan.house_numbers(leak)


@pytest.mark.parametrize(
    "safe",
    [
        "THEFT - CAR PROWL at 110XX BLOCK OF 8TH AVE NE, 3/25/2016 8:09 PM",
        "at S KING ST / 8 AV S",
        "at 1XX BLOCK OF 1 AV S",
        "at XX BLOCK OF N 50 ST",
        "in beat K3, 12/4/2026 5:08 AM",
        "HAZARDS at 2 AV S / S JACKSON ST, 12/3/2026 2:50 PM",
        "published 60 minutes after they happen; in an emergency call 911.",
    ],
)
def test_safe_forms_are_not_house_numbers(safe):
    assert scan.house_numbers(safe) == []


def test_forbidden_strings_are_found_only_near_their_marker():
    forbidden = {"ZQA10": ["98101", "STE"]}
    assert scan.forbidden_near_markers("ZQA10 at 15XX BLOCK OF PINE ST STE 300", forbidden) == [
        "ZQA10 shows 'STE'"
    ]
    assert scan.forbidden_near_markers("ZQA10 at 15XX BLOCK OF PINE ST", forbidden) == []
    far = "ZQA10 at 15XX BLOCK OF PINE ST" + " " * (scan.WINDOW + 10) + "zip 98101"
    assert scan.forbidden_near_markers(far, forbidden) == []


def test_stored_coordinates_are_found_at_four_decimals_or_more_but_not_snapped_points():
    private = scan.private_coordinates([47.5983471, -122.3224519])
    assert scan.coordinates('{"lat": 47.5983}', "json", private) == ["coordinate 47.5983"]
    assert scan.coordinates(
        "<georss:point>47.598347 -122.32245</georss:point>", "rss", private
    ) == ["coordinate 47.598347", "coordinate -122.32245"]
    assert scan.coordinates("<georss:point>47.598 -122.322</georss:point>", "rss", private) == []
    outline = "<georss:polygon>47.5983471 -122.3224519</georss:polygon>"
    assert scan.coordinates(outline, "rss", private) == []  # area outlines are public
    geo = {
        "type": "FeatureCollection",
        "features": [{"geometry": {"coordinates": [-122.3224519, 47.5983471]}, "properties": {}}],
    }
    assert scan.coordinates(json.dumps(geo), "geojson", private) == []
    item = {"items": [{"_geo": {"type": "Point", "coordinates": [-122.3224519, 47.5983471]}}]}
    assert len(scan.coordinates(json.dumps(item), "json", private)) == 2


RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>http://x/</link>
<description>d</description><item><title>{title}</title><description>{desc}</description>
<guid>g</guid></item></channel></rss>"""


def test_markup_a_reader_would_render_is_found_in_rss_atom_json_and_pages():
    live = RSS.format(title="x", desc="&lt;img src=http://evil.example/p.gif&gt; ZQH01")
    assert scan.live_html(live, "rss")
    shown = RSS.format(title="x", desc="&amp;lt;img src=http://evil.example/p.gif&amp;gt;")
    assert scan.live_html(shown, "rss") == []
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><summary type="html">'
        "&lt;script&gt;x&lt;/script&gt;</summary></entry></feed>"
    )
    assert scan.live_html(atom, "atom")
    assert scan.live_html(atom.replace('type="html"', 'type="text"'), "atom") == []
    assert scan.live_html(json.dumps({"items": [{"content_html": "<a href=x>y</a>"}]}), "json")
    assert (
        scan.live_html(json.dumps({"items": [{"content_text": "<a href=x>y</a>"}]}), "json") == []
    )
    page = '<html><body><p>ZQH01 <img src="http://evil.example/p.gif"></p></body></html>'
    assert scan.live_html(page, "html")
    assert scan.live_html(page.replace("<img", "&lt;img"), "html") == []


def test_uid_tokens_are_whole_words():
    assert scan.uid_tokens("/entries/0123456789abcdef0123 x", 20) == {"0123456789abcdef0123"}
    assert scan.uid_tokens("/entries/0123456789abcdef01234", 20) == set()
