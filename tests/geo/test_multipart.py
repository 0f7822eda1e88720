"""Multi-part beats: features sharing a code merge into one MultiPolygon when they do not
overlap, and the rest of the pipeline (validation, spatial join, diff, edits, export, pages,
the map's GeoJSON) works with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from shapely.geometry import box, shape

from beatfeeds.cli import main
from beatfeeds.core.errors import InvalidBoundary
from beatfeeds.geo import beatfiles, checks, spatial
from beatfeeds.services import beatmaps
from tests.support.boundaries import load, make_client
from tests.support.instance import NOW

X0, Y0, D = -122.40, 47.60, 0.01  # a small map in Seattle, cells of about 750 x 1100 m


def cell(x0, y0, x1, y1):
    return box(X0 + x0 * D, Y0 + y0 * D, X0 + x1 * D, Y0 + y1 * D)


def write_map(path, features):
    """A GeoJSON file of (properties, shapely geometry) features."""
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": p, "geometry": shapely.geometry.mapping(g)}
            for p, g in features
        ],
    }
    path.write_text(json.dumps(doc))
    return path


def island_map(tmp_path, name="islands.geojson"):
    """Beat 3100 drawn as three features (the mainland part and two islands), 3200 as one."""
    return write_map(
        tmp_path / name,
        [
            ({"beat": "3100", "sector": "31", "precinct": "3"}, cell(0, 0, 1, 1)),
            ({"beat": "3200", "sector": "31", "precinct": "3"}, cell(1, 0, 3, 1)),
            ({"beat": "3100", "sector": "31", "precinct": "3"}, cell(4, 0, 5, 1)),
            ({"beat": "3100", "sector": "31", "precinct": "3"}, cell(0, 2, 1, 3)),
        ],
    )


def test_features_sharing_a_code_merge_into_one_multipolygon(tmp_path):
    loaded = beatfiles.read_beat_map(island_map(tmp_path))
    assert loaded.problems == []
    assert loaded.merged == ["beat 3100: 3 parts merged (features 1, 3, 4)"]
    beats = {b.code: b for b in loaded.beats}
    assert list(beats) == ["3100", "3200"]
    assert beats["3100"].geometry.geom_type == "MultiPolygon"
    assert len(beats["3100"].geometry.geoms) == 3
    assert beats["3100"].sector == "31" and beats["3100"].precinct == "3"


def test_parts_that_touch_become_one_polygon(tmp_path):
    path = write_map(
        tmp_path / "touching.geojson",
        [({"beat": "A"}, cell(0, 0, 1, 1)), ({"beat": "A"}, cell(1, 0, 2, 1))],
    )
    loaded = beatfiles.read_beat_map(path)
    assert loaded.problems == [] and loaded.merged == ["beat A: 2 parts merged (features 1, 2)"]
    geom = loaded.beats[0].geometry
    assert geom.is_valid and abs(geom.area - cell(0, 0, 2, 1).area) < 1e-12


def test_overlapping_parts_are_refused_with_where_and_why(tmp_path, store):
    path = write_map(
        tmp_path / "overlap.geojson",
        [
            ({"beat": "3100"}, cell(0, 0, 1, 1)),
            ({"beat": "3200"}, cell(1, 0, 2, 1)),
            ({"beat": "3100"}, cell(0.5, 0, 1, 2)),
        ],
    )
    with pytest.raises(InvalidBoundary) as exc:
        load(store, path)
    [problem] = exc.value.problems
    assert problem.startswith("beat 3100: features 1 and 3 have the same code but overlap by")
    assert "m² at 47.605" in problem and "must not overlap" in problem
    assert store.beatmaps.list_beat_sets() == []


def test_parts_naming_different_sectors_are_refused(tmp_path):
    path = write_map(
        tmp_path / "two_sectors.geojson",
        [
            ({"beat": "A", "sector": "1"}, cell(0, 0, 1, 1)),
            ({"beat": "A", "sector": "2"}, cell(3, 0, 4, 1)),
        ],
    )
    problems = beatfiles.read_beat_map(path).problems
    assert problems == [
        "beat A: features with this code name different sectors (1, 2); one beat has one"
    ]


def test_an_invalid_part_is_named_with_the_features_of_its_code(tmp_path):
    bowtie = shapely.Polygon([(X0, Y0), (X0 + D, Y0 + D), (X0 + D, Y0), (X0, Y0 + D), (X0, Y0)])
    path = write_map(
        tmp_path / "bad.geojson", [({"beat": "A"}, cell(3, 0, 4, 1)), ({"beat": "A"}, bowtie)]
    )
    [problem] = beatfiles.read_beat_map(path).problems
    assert "Self-intersection" in problem and "(features 1, 2 have this code)" in problem


def test_the_cli_reports_the_merge(runner, tmp_path):
    runner.invoke(main, ["db", "upgrade"])
    r = runner.invoke(main, ["beats", "load", str(island_map(tmp_path))])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split("\t")[:3] == ["1", "draft", "2 beats"]
    assert "  beat 3100: 3 parts merged (features 1, 3, 4)" in lines
    assert "  using beat code: field 'beat' (guessed)" in lines


def test_a_multipolygon_beat_goes_through_the_whole_pipeline(tmp_path, store, settings):
    set_id = load(store, island_map(tmp_path), name="islands")
    assert checks.blocking(beatmaps.validate_beat_set(store, set_id)) == []
    beatmaps.publish_beat_map(store, set_id, now=NOW)

    # spatial join: a point on each island is in 3100
    beats = store.beatmaps.beats(set_id)
    index = spatial.BeatIndex(beats)
    lon = np.array([X0 + 0.5 * D, X0 + 4.5 * D, X0 + 0.5 * D, X0 + 2 * D, X0 + 3.5 * D])
    lat = np.array([Y0 + 0.5 * D, Y0 + 0.5 * D, Y0 + 2.5 * D, Y0 + 0.5 * D, Y0 + 0.5 * D])
    assert list(index.assign(lon, lat)) == ["3100", "3100", "3100", "3200", None]

    # export and reload: the MultiPolygon survives, nothing left to merge
    out = tmp_path / "export.geojson"
    assert beatmaps.export_beat_set(store, set_id, out) == 2
    doc = json.loads(out.read_text())
    kinds = {f["properties"]["beat"]: f["geometry"]["type"] for f in doc["features"]}
    assert kinds == {"3100": "MultiPolygon", "3200": "Polygon"}
    again = beatfiles.read_beat_map(out)
    assert again.problems == [] and again.merged == []
    original = next(b.geometry for b in beats if b.code == "3100")
    reloaded = next(b.geometry for b in again.beats if b.code == "3100")
    assert original.symmetric_difference(reloaded).area < 1e-12

    # diff: dropping one island reshapes 3100 and moves nothing else
    fewer = write_map(
        tmp_path / "fewer.geojson",
        [
            ({"beat": "3100", "sector": "31", "precinct": "3"}, cell(0, 0, 1, 1)),
            ({"beat": "3200", "sector": "31", "precinct": "3"}, cell(1, 0, 3, 1)),
            ({"beat": "3100", "sector": "31", "precinct": "3"}, cell(0, 2, 1, 3)),
        ],
    )
    new_id = load(store, fewer, name="fewer")
    d = beatmaps.diff_beat_sets(store, new_id)
    assert [c for c, _ in d.reshaped] == ["3100"] and d.added == [] and d.removed == []

    # edits: renaming and merging keep a valid (Multi)Polygon
    draft = beatmaps.edit_beat_map(
        store, set_id, {"op": "rename", "code": "3100", "new_code": "3300"}, actor="t", now=NOW
    )
    renamed = {b.code: b.geometry for b in store.beatmaps.beats(draft)}
    assert renamed["3300"].geom_type == "MultiPolygon"
    beatmaps.edit_beat_map(
        store, draft, {"op": "merge", "code": "3300", "other": "3200"}, actor="t", now=NOW
    )
    [merged] = store.beatmaps.beats(draft)
    assert merged.geometry.is_valid and merged.geometry.geom_type == "MultiPolygon"
    assert checks.blocking(beatmaps.validate_beat_set(store, draft, replacing_active=False)) == []

    # pages, feeds and the map's GeoJSON
    client = make_client(store, settings)
    for path in ("/beats/3100", "/sectors/31", "/precincts/3", "/beats/3100/feed.atom"):
        assert client.get(path).status_code == 200, path
    geo = client.get("/beats.geojson").get_json()
    island = next(f for f in geo["features"] if f["properties"].get("beat") == "3100")
    assert shape(island["geometry"]).geom_type == "MultiPolygon"
    sectors = beatmaps.area_geojson(store, set_id, "sectors")
    assert shape(sectors["features"][0]["geometry"]).geom_type == "MultiPolygon"
