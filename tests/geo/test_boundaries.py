"""Beat maps: loading every real layout and format, validation, diff, publish and feeds."""

from __future__ import annotations

import json
import zipfile
from datetime import datetime

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import Polygon

from beatfeeds.cli import main
from beatfeeds.core.errors import InvalidBoundary, UnusableFile
from beatfeeds.core.models import Beat
from beatfeeds.geo import beatfiles, checks
from beatfeeds.services import beatmaps
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.boundaries import draft, load, make_client
from tests.support.instance import DEFAULT_BEATS, NOW, SAMPLE, shared

LAYOUTS = {  # file -> (code field, beats kept)
    "spd_beats_2008_2015.geojson": ("beat", 54),  # the null-beat outside polygon is skipped
    "spd_beats_2008_2015_with_precinct.geojson": ("BEAT", 54),
    "spd_beats_2015_2017.geojson": ("name", 51),
    "spd_beats_2018_present.geojson": ("beat", 55),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_each_real_layout_loads_and_validates_clean(store, name):
    field, count = LAYOUTS[name]
    set_id = load(store, shared(name))  # the code field is guessed
    assert store.get_beat_set(set_id).beat_count == count
    assert beatfiles.read_beat_map(shared(name)).code_field == field
    assert beatmaps.validate_beat_set(store, set_id) == []


def test_the_2018_map_validates_clean_against_the_2015_map_it_replaces(store):
    old = load(store, shared("spd_beats_2015_2017.geojson"))
    beatmaps.publish_beat_map(store, old, now=NOW)
    new = load(store, DEFAULT_BEATS)
    assert beatmaps.validate_beat_set(store, new) == []


def projected(tmp_path):
    return gpd.read_file(shared("spd_beats_2015_2017.geojson")).to_crs(2926)


def test_zipped_shapefile_geopackage_and_kml_load_in_wgs84(store, tmp_path):
    frame = projected(tmp_path)
    frame.to_file(tmp_path / "beats.shp")
    with zipfile.ZipFile(tmp_path / "beats.zip", "w") as z:
        for ext in ("shp", "shx", "dbf", "prj", "cpg"):
            if (tmp_path / f"beats.{ext}").exists():
                z.write(tmp_path / f"beats.{ext}", f"beats.{ext}")
    frame.to_file(tmp_path / "beats.gpkg", driver="GPKG")
    frame.to_crs(4326).to_file(tmp_path / "beats.kml", driver="KML")
    k3 = None
    for name in ("beats.zip", "beats.gpkg", "beats.kml"):
        loaded = beatfiles.read_beat_map(tmp_path / name)
        assert len(loaded.beats) == 51 and not loaded.problems, name
        geom = next(b.geometry for b in loaded.beats if b.code == "K3")
        assert not shapely.has_z(geom)
        minx, miny, maxx, maxy = geom.bounds
        assert -122.5 < minx < maxx < -122.2 and 47.4 < miny < maxy < 47.8, name
        k3 = k3 or geom
        assert k3.symmetric_difference(geom).area / k3.area < 1e-6, name


def test_projected_geojson_without_crs_is_refused_with_the_reason(tmp_path):
    doc = json.loads(projected(tmp_path).to_json())
    doc.pop("crs", None)
    path = tmp_path / "no_crs.geojson"
    path.write_text(json.dumps(doc))
    with pytest.raises(UnusableFile, match="look projected"):
        beatfiles.read_beat_map(path)


def test_field_guesses_and_samples_for_confirmation():
    p = beatfiles.inspect_beat_map(shared("spd_beats_2018_present.geojson"))
    assert p.features == 55
    assert p.guesses == {"code": "beat", "sector": "sector", "precinct": "first_precinct"}
    assert p.samples["beat"][:2] == ["99", "B1"] and "OBJECTID" in p.fields


# ---- validation cases built from real polygons ----------------------------------------------
def active_2018(store) -> list[Beat]:
    set_id = load(store, DEFAULT_BEATS)
    beatmaps.publish_beat_map(store, set_id, now=NOW)
    return store.beats(set_id)


def shared_vertex(beats, code):
    """A vertex of `code` that lies on the boundary of a neighbouring beat, and that beat."""
    me = next(b for b in beats if b.code == code)
    for x, y in shapely.get_coordinates(me.geometry):
        p = shapely.Point(x, y)
        for other in beats:
            if other.code != code and other.geometry.distance(p) < 1e-9:
                return me, (x, y), other
    raise AssertionError("no shared vertex")


def moved(geom, vertex, dx, dy):
    coords = shapely.get_coordinates(geom)
    hit = (abs(coords[:, 0] - vertex[0]) < 1e-12) & (abs(coords[:, 1] - vertex[1]) < 1e-12)
    coords[hit] += (dx, dy)
    return shapely.set_coordinates(geom, coords)


def test_shifting_a_shared_vertex_into_the_neighbour_is_an_overlap(store, runner):
    beats = active_2018(store)
    me, vertex, other = shared_vertex(beats, "K2")
    # push the vertex 150 m towards the inside of the neighbour
    c = other.geometry.representative_point()
    d = shapely.Point(c.x - vertex[0], c.y - vertex[1])
    scale = 0.0015 / (d.x**2 + d.y**2) ** 0.5
    geom = moved(me.geometry, vertex, d.x * scale, d.y * scale)
    edited = [b if b.code != "K2" else Beat("K2", b.sector, b.precinct, geom) for b in beats]
    set_id = draft(store, edited)
    problems = checks.blocking(beatmaps.validate_beat_set(store, set_id))
    overlaps = [p for p in problems if p.kind == "overlap"]
    assert len(overlaps) == 1 and sorted(overlaps[0].codes) == sorted(["K2", other.code])
    assert other.geometry.contains(shapely.Point(overlaps[0].lon, overlaps[0].lat))
    with pytest.raises(InvalidBoundary):
        beatmaps.publish_beat_map(store, set_id, now=NOW)


def test_deleting_a_beat_leaves_a_gap_in_the_map_it_replaces(store):
    beats = active_2018(store)
    set_id = draft(store, [b for b in beats if b.code != "M2"])
    gaps = [p for p in beatmaps.validate_beat_set(store, set_id) if p.kind == "gap"]
    assert len(gaps) == 1 and gaps[0].severity == "error"
    m2 = next(b for b in beats if b.code == "M2").geometry
    assert m2.contains(shapely.Point(gaps[0].lon, gaps[0].lat))
    assert {"M1", "M3"} <= set(gaps[0].codes) and "M2" not in gaps[0].codes


def test_duplicate_codes_ignore_case(store):
    beats = active_2018(store)
    edited = [b if b.code != "K3" else Beat("k2", b.sector, b.precinct, b.geometry) for b in beats]
    problems = beatmaps.validate_beat_set(store, draft(store, edited))
    assert [(p.kind, sorted(p.codes)) for p in problems] == [("duplicate", ["K2", "k2"])]


def test_invalid_geometry_and_slivers(store):
    beats = active_2018(store)
    k1 = next(b for b in beats if b.code == "K1")
    x, y = k1.geometry.representative_point().coords[0]
    bowtie = Polygon([(x, y), (x + 0.01, y + 0.01), (x + 0.01, y), (x, y + 0.01)])
    edited = [b for b in beats if b.code != "K1"] + [
        Beat(
            "K1",
            "K",
            "W",
            shapely.MultiPolygon([k1.geometry, shapely.box(-122.2, 47.0, -122.19995, 47.00005)]),
        ),
        Beat("Z9", "Z", "W", bowtie),
    ]
    problems = beatmaps.validate_beat_set(store, draft(store, edited))
    invalid = next(p for p in problems if p.kind == "invalid")
    assert invalid.codes == ["Z9"] and "Self-intersection" in invalid.message
    assert invalid.lon == pytest.approx(x + 0.005) and invalid.lat == pytest.approx(y + 0.005)
    sliver = next(p for p in problems if p.kind == "sliver")
    assert sliver.severity == "warning" and sliver.codes == ["K1"]


def test_cli_validate_exits_1_with_the_reasons(runner, tmp_path):
    invoke = lambda *a: runner.invoke(main, [str(x) for x in a])  # noqa: E731
    invoke("db", "upgrade")
    invoke("beats", "load", DEFAULT_BEATS)
    invoke("beats", "publish", "1")
    r = invoke("beats", "validate", "1")
    assert r.exit_code == 0 and "beat map 1: valid" in r.output
    doc = json.loads(DEFAULT_BEATS.read_text())
    doc["features"] = [f for f in doc["features"] if f["properties"]["beat"] != "M2"]
    (tmp_path / "no_m2.geojson").write_text(json.dumps(doc))
    assert invoke("beats", "load", tmp_path / "no_m2.geojson").exit_code == 0
    r = invoke("beats", "validate", "2")
    assert r.exit_code == 1
    assert "error:" in r.output and "in no beat (next to" in r.output and "M1" in r.output
    r = invoke("beats", "publish", "2")
    assert r.exit_code == 1 and "does not validate" in r.output


# ---- diff, publish, feeds -------------------------------------------------------------------
@pytest.fixture
def redraw(store, settings):
    """The 2015-2017 map active with the sample incidents imported; the 2018 map a draft."""
    old = load(store, shared("spd_beats_2015_2017.geojson"), name="2015-2017")
    beatmaps.publish_beat_map(store, old, now=NOW)
    import_file(store, SAMPLE, ImportOptions(preset="spd-911"), settings, now=NOW)
    new = load(store, DEFAULT_BEATS, name="2018")
    return old, new


def test_diff_lists_reshaped_beats_and_the_incidents_that_move(store, redraw):
    old, new = redraw
    d = beatmaps.diff_beat_sets(store, new, since=datetime(2000, 1, 1))
    assert [c for c, _ in d.reshaped] == ["G1", "G3", "K2", "K3"]
    assert d.added == d.removed == d.renamed == []
    assert d.moves, "the sample has incidents near the K2/K3 line"
    pairs = {(a, b) for a, b, _ in d.move_counts}
    assert pairs <= {
        ("K2", "K3"),
        ("K3", "K2"),
        ("G1", "G3"),
        ("G3", "G1"),
        ("K3", "G1"),
        ("G1", "K3"),
        ("K2", "G1"),
        ("G1", "K2"),
        ("G3", "K3"),
        ("K3", "G3"),
        ("G3", "K2"),
        ("K2", "G3"),
    }
    assert sum(n for *_, n in d.move_counts) == len(d.moves)


def test_renamed_beats_are_recognised(store, redraw):
    old, _ = redraw
    beats = store.beats(old)
    renamed = [b if b.code != "B1" else Beat("B7", b.sector, b.precinct, b.geometry) for b in beats]
    d = beatmaps.diff_beat_sets(store, draft(store, renamed))
    assert d.renamed == [("B1", "B7")] and d.added == d.removed == []


def entry_ids(client, codes):
    import feedparser

    ids = set()
    for code in codes:
        feed = feedparser.parse(client.get(f"/beats/{code}/feed.atom").data)
        ids |= {e.id for e in feed.entries if "incident/" in e.id and "beat-map" not in e.id}
    return ids


def all_beat_entry_ids(client, store):
    return entry_ids(client, [b.code for b in store.beats(store.active_beat_set_id())])


def test_publishing_the_redraw_keeps_every_entry_id_and_announces_the_change(
    store, settings, redraw
):
    old, new = redraw
    client = make_client(store, settings)
    before = all_beat_entry_ids(client, store)
    assert before
    beatmaps.publish_beat_map(store, new, now=datetime(2026, 1, 1, 12, 30))
    after = all_beat_entry_ids(client, store)
    assert after == before  # incidents moved between beats; no entry id changed
    import feedparser

    k3 = feedparser.parse(client.get("/beats/K3/feed.atom").data)
    change = [e for e in k3.entries if "beat-map/" in e.id]
    assert len(change) == 1 and "boundary of beat K3 changed" in change[0].title
    assert client.get(change[0].link.replace("http://feeds.example.test", "")).status_code == 200
    b1 = feedparser.parse(client.get("/beats/B1/feed.atom").data)
    assert not [e for e in b1.entries if "beat-map/" in e.id]  # unchanged beats say nothing
    # rolling back announces the change back, and ids still do not change
    beatmaps.rollback_beat_map(store, now=datetime(2026, 1, 1, 13, 0))
    assert all_beat_entry_ids(client, store) == before
    k3 = feedparser.parse(client.get("/beats/K3/feed.atom").data)
    assert len([e for e in k3.entries if "beat-map/" in e.id]) == 2


def test_renamed_beat_redirects_and_removed_beat_names_its_successors(store, settings, redraw):
    old, _ = redraw
    beats = store.beats(old)
    b2 = next(b for b in beats if b.code == "B2").geometry
    edited = [
        Beat("B7", b.sector, b.precinct, b.geometry) if b.code == "B1" else b
        for b in beats
        if b.code != "B2"
    ]
    edited = [
        Beat("B3", b.sector, b.precinct, b.geometry.union(b2)) if b.code == "B3" else b
        for b in edited
    ]
    new = draft(store, edited)
    assert checks.blocking(beatmaps.validate_beat_set(store, new)) == []
    beatmaps.publish_beat_map(store, new, now=datetime(2026, 1, 1, 12, 30))
    client = make_client(store, settings)
    r = client.get("/beats/B1/feed.rss")
    assert r.status_code == 301 and r.headers["Location"].endswith("/beats/B7/feed.rss")
    r = client.get("/beats/b1")
    assert r.status_code == 301 and r.headers["Location"].endswith("/beats/B7")
    import feedparser

    r = client.get("/beats/B2/feed.atom")
    assert r.status_code == 200
    final = feedparser.parse(r.data).entries[0]
    assert "no longer exists" in final.title and "B3" in final.title
    assert client.get("/beats/B2").status_code == 200
    assert client.get("/beats/B9/feed.atom").status_code == 404
    # after a rollback B1 is a beat again and B7 the one that redirects... nowhere: it is gone
    beatmaps.rollback_beat_map(store, now=datetime(2026, 1, 1, 13, 0))
    assert client.get("/beats/B1/feed.rss").status_code == 200
    assert client.get("/beats/B7/feed.rss").status_code == 301


def test_a_draft_edited_elsewhere_is_not_served_from_a_stale_cache(store, settings):
    from beatfeeds.storage import SQLStore

    other = SQLStore.from_url(settings.database_url)  # another process, e.g. the scheduler
    set_id = load(store, DEFAULT_BEATS)
    assert len(other.beats(set_id)) == 51
    beatmaps.edit_beat_map(
        store, set_id, {"op": "merge", "code": "K2", "other": "K3"}, actor="test", now=NOW
    )
    assert len(other.beats(set_id)) == 50 and "K3" not in {b.code for b in other.beats(set_id)}
