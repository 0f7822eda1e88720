"""Sectors, precincts and the city after a redraw: boundary-change entries in their feeds,
and the addresses of renamed sectors and precincts redirecting (301) to the new code."""

from __future__ import annotations

import json
from datetime import datetime

import feedparser
import pytest
import shapely

from beatfeeds.core.models import Beat
from beatfeeds.geo import checks
from beatfeeds.services import beatmaps
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.boundaries import draft, load, make_client
from tests.support.instance import DEFAULT_BEATS, NOW, SAMPLE, shared

PUBLISHED = datetime(2026, 1, 1, 12, 30)
ROLLED_BACK = datetime(2026, 1, 1, 13, 0)
BASE = "http://feeds.example.test"


def changes_in(client, path: str) -> list:
    """The boundary-change entries of a feed, parsed by feedparser (Atom and RSS)."""
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code)
    return [e for e in feedparser.parse(r.data).entries if "beat-map/" in e.id]


# ---- the real 2015-2017 -> 2018 redraw -------------------------------------------------------
@pytest.fixture
def redraw(store, settings, tmp_path):
    """The 2015-2017 map active, with its sectors (the letter of each beat code) and its
    precincts (the real 2015-2017 precinct polygon holding most of each beat); the 2018 map a
    draft."""
    import geopandas as gpd

    beats = gpd.read_file(shared("spd_beats_2015_2017.geojson"))
    precincts = gpd.read_file(shared("spd_precincts_2015_2017.geojson"))
    beats["sector"] = beats["name"].str[:-1]
    beats["precinct"] = [
        max(precincts.itertuples(), key=lambda p, g=g: g.intersection(p.geometry).area).name
        for g in beats.geometry
    ]
    beats.to_file(tmp_path / "beats_2015.geojson", driver="GeoJSON")
    old = load(store, tmp_path / "beats_2015.geojson", code_field="name", name="2015-2017")
    beatmaps.publish_beat_map(store, old, now=NOW)
    import_file(store, SAMPLE, ImportOptions(preset="spd-911"), settings, now=NOW)
    return old, load(store, DEFAULT_BEATS, name="2018")


def test_the_2018_redraw_announces_itself_to_the_sectors_precincts_and_city(
    store, settings, redraw
):
    old, new = redraw
    client = make_client(store, settings)
    beatmaps.publish_beat_map(store, new, now=PUBLISHED)
    # G1, G3, K2 and K3 were reshaped: sectors G and K, and their precincts, hear of it
    (k,) = changes_in(client, "/sectors/K/feed.atom")
    assert k.title == "Sector K: beats K2, K3 were reshaped."
    assert k.link == f"{BASE}/sectors/K"
    (g,) = changes_in(client, "/sectors/G/feed.rss")
    assert g.title == "Sector G: beats G1, G3 were reshaped."
    (w,) = changes_in(client, "/precincts/W/feed.atom")
    assert (
        w.title == "West Precinct: beats K2, K3 were reshaped." and w.link == f"{BASE}/precincts/W"
    )
    (e,) = changes_in(client, "/precincts/E/feed.atom")
    assert e.title == "East Precinct: beats G1, G3 were reshaped."
    for quiet in ("/sectors/B/feed.atom", "/sectors/M/feed.atom", "/precincts/N/feed.atom"):
        assert changes_in(client, quiet) == [], quiet
    (city,) = changes_in(client, "/feed.atom")
    assert city.title.startswith(f"A new beat map was published: beat map {new} (2018)")
    assert "beats G1, G3, K2, K3 were reshaped" in city.title
    # the entry ids are tag: ids like every other entry's, and the entry pages answer
    tags = {x.id for x in (k, g, w, e, city)}
    assert len(tags) == 5 and all(t.startswith("tag:") for t in tags)
    for x in (k, city):
        page = client.get(f"/entries/boundary{x.id.rsplit('%2F', 1)[1]}")
        assert page.status_code == 200 and x.title in page.get_data(as_text=True)

    beatmaps.rollback_beat_map(store, now=ROLLED_BACK)
    k_after = changes_in(client, "/sectors/K/feed.atom")
    assert len(k_after) == 2 and k.id in {x.id for x in k_after}  # ids do not change
    city_after = changes_in(client, "/feed.atom")
    assert len(city_after) == 2 and "is in effect again (a rollback)" in city_after[0].title
    assert changes_in(client, "/sectors/B/feed.atom") == []


# ---- a synthetic redraw of the default map ---------------------------------------------------
@pytest.fixture
def redrawn(store):
    """The default (2018) map active, then a redraw that moves G3 from sector G (East) to
    sector K (West), renames beat K1 K7, merges M2 into M3, renames sector B to Z and the
    South Precinct S to SE."""
    active = load(store, DEFAULT_BEATS, name="2018")
    beatmaps.publish_beat_map(store, active, now=NOW)
    beats = store.beats(active)
    m2 = next(b.geometry for b in beats if b.code == "M2")
    edited = []
    for b in beats:
        code, sector, precinct, geom = b.code, b.sector, b.precinct, b.geometry
        if code == "M2":
            continue
        if code == "M3":
            geom = shapely.union_all([geom, m2])
        if code == "G3":
            sector, precinct = "K", "W"
        if code == "K1":
            code = "K7"
        if sector == "B":
            sector = "Z"
        if precinct == "S":
            precinct = "SE"
        edited.append(Beat(code, sector, precinct, geom))
    new = draft(store, edited)
    assert checks.blocking(beatmaps.validate_beat_set(store, new)) == []
    beatmaps.publish_beat_map(store, new, now=PUBLISHED)
    return active, new


def test_sectors_and_precincts_say_what_they_gained_lost_and_what_changed(store, settings, redrawn):
    client = make_client(store, settings)
    (k,) = changes_in(client, "/sectors/K/feed.atom")
    assert k.title == ("Sector K now includes beat G3; beat K1 was renamed K7.")
    assert k.link == f"{BASE}/sectors/K"
    (g,) = changes_in(client, "/sectors/G/feed.atom")
    assert g.title == "Sector G: beat G3 moved to Sector K."
    (m,) = changes_in(client, "/sectors/M/feed.rss")
    assert m.title == (
        "Sector M: beat M2 was removed (its area now belongs to beat M3); beat M3 was reshaped."
    )
    (west,) = changes_in(client, "/precincts/W/feed.atom")
    assert west.title == (
        "West Precinct now includes beat G3; beat M2 was removed (its area "
        "now belongs to beat M3); beat K1 was renamed K7; beat M3 was reshaped."
    )
    assert west.link == f"{BASE}/precincts/W"
    (east,) = changes_in(client, "/precincts/E/feed.atom")
    assert east.title == "East Precinct: beat G3 moved to West Precinct."
    # JSON Feed too, with the area page as the item's url
    doc = json.loads(client.get("/sectors/K/feed.json").data)
    (item,) = [i for i in doc["items"] if "beat-map/" in i["id"]]
    assert item["title"] == k.title and item["url"] == f"{BASE}/sectors/K" and item["id"] == k.id
    # untouched areas say nothing; a filtered feed carries incidents only
    assert changes_in(client, "/sectors/D/feed.atom") == []
    assert changes_in(client, "/precincts/N/feed.atom") == []
    assert changes_in(client, "/sectors/K/feed.atom?category=theft") == []
    # the city: one entry for the whole publication
    (city,) = changes_in(client, "/feed.atom")
    assert "beat M2 was removed" in city.title and "beat K1 was renamed K7" in city.title
    # the area pages list the entry
    assert "Sector K now includes beat G3" in client.get("/sectors/K").get_data(as_text=True)


@pytest.mark.parametrize("old, new, kinds", [("B", "Z", "sectors"), ("S", "SE", "precincts")])
def test_renamed_sectors_and_precincts_redirect_every_address(
    store, settings, redrawn, old, new, kinds
):
    client = make_client(store, settings)
    for suffix in ("", "/feed.atom", "/feed.rss", "/feed.json"):
        r = client.get(f"/{kinds}/{old}{suffix}")
        assert r.status_code == 301, suffix
        assert r.headers["Location"].endswith(f"/{kinds}/{new}{suffix}")
    r = client.get(f"/{kinds}/{old.lower()}/feed.json?category=theft")
    assert r.status_code == 301
    assert r.headers["Location"].endswith(f"/{kinds}/{new}/feed.json?category=theft")
    (moved,) = changes_in(client, f"/{kinds}/{new}/feed.atom")
    label = {"B": "Sector B", "S": "South Precinct"}[old]
    assert moved.title.startswith(f"{label} is now ") and "feeds moved here" in moved.title
    if kinds == "precincts":
        r = client.get(f"/precincts/{old}/feeds.opml")
        assert r.status_code == 301 and r.headers["Location"].endswith(
            f"/precincts/{new}/feeds.opml"
        )
    # after a rollback the old code is back and the new one redirects to it
    beatmaps.rollback_beat_map(store, now=ROLLED_BACK)
    assert client.get(f"/{kinds}/{old}/feed.atom").status_code == 200
    r = client.get(f"/{kinds}/{new}/feed.rss")
    assert r.status_code == 301 and r.headers["Location"].endswith(f"/{kinds}/{old}/feed.rss")
    assert client.get(f"/{kinds}/NOPE/feed.atom").status_code == 404


def test_a_sector_whose_beats_went_to_several_sectors_keeps_a_final_entry(store, settings):
    active = load(store, DEFAULT_BEATS, name="2018")
    beatmaps.publish_beat_map(store, active, now=NOW)
    moved = {"B1": ("J", "N"), "B2": ("J", "N"), "B3": ("L", "N")}
    edited = [
        Beat(b.code, *moved.get(b.code, (b.sector, b.precinct)), b.geometry)
        for b in store.beats(active)
    ]
    beatmaps.publish_beat_map(store, draft(store, edited), now=PUBLISHED)
    client = make_client(store, settings)
    r = client.get("/sectors/B/feed.atom")  # not a rename: B's beats went two ways
    assert r.status_code == 200
    final = feedparser.parse(r.data).entries[0]
    assert final.title.startswith("Sector B no longer exists")
    assert "Sector J, Sector L" in final.title
    page = client.get("/sectors/B")
    assert page.status_code == 200 and "Sector B no longer exists" in page.get_data(as_text=True)
    (j,) = changes_in(client, "/sectors/J/feed.atom")
    assert j.title == "Sector J now includes beats B1, B2."


def test_recording_a_publication_twice_adds_no_entry(store, settings, redrawn):
    active, new = redrawn
    recorded = store.boundary_changes(set_id=new)
    assert {c.kind for c in recorded} == {
        "removed",
        "renamed",
        "reshaped",
        "sector",
        "precinct",
        "city",
    }
    assert len([c for c in recorded if c.kind == "city"]) == 1
    store.record_boundary_changes(new, active, recorded, now=PUBLISHED)  # e.g. a retried job
    assert len(store.boundary_changes(set_id=new)) == len(recorded)
    client = make_client(store, settings)
    assert len(changes_in(client, "/sectors/K/feed.atom")) == 1
    assert len(changes_in(client, "/feed.atom")) == 1


def test_the_diff_previews_what_sector_and_precinct_feeds_will_announce(
    store, settings, redraw, runner
):
    old, new = redraw
    d = beatmaps.diff_beat_sets(store, new)
    texts = [t for _, t in d.areas]
    assert "Sector K: beats K2, K3 were reshaped." in texts
    assert "East Precinct: beats G1, G3 were reshaped." in texts
    assert not any("Sector B" in t for t in texts)
    # the same in the CLI, and nothing published by looking
    from beatfeeds.cli import main

    result = runner.invoke(main, ["beats", "diff", str(new)])
    assert result.exit_code == 0, result.output
    assert "sector and precinct feeds would announce: 4" in result.output
    assert "  Sector G: beats G1, G3 were reshaped." in result.output
    client = make_client(store, settings)
    assert changes_in(client, "/sectors/K/feed.atom") == []
