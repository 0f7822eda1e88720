"""The spatial join: vectorised, deterministic on shared edges, CRS-normalised, checked on real data."""

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Polygon, box

from beatfeeds.core.errors import InvalidBoundary, UnusableFile
from beatfeeds.core.models import Beat
from beatfeeds.geo import beatfiles, spatial
from beatfeeds.services import beatmaps
from tests.support.instance import DEFAULT_BEATS, NOW, shared


def two_squares():
    # B's left edge is A's right edge (x = 1).
    return [Beat("B", None, None, box(1, 0, 2, 1)), Beat("A", None, None, box(0, 0, 1, 1))]


def test_points_inside_outside_and_missing():
    codes = spatial.assign_beats(
        np.array([[0.5, 0.5], [1.5, 0.5], [5, 5], [np.nan, 0.5], [np.inf, 1]]), two_squares()
    )
    assert list(codes) == ["A", "B", None, None, None]


def test_point_on_shared_edge_gets_exactly_one_beat_deterministically():
    pts = np.array([[1.0, 0.5], [1.0, 0.0], [1.0, 1.0]])
    first = spatial.assign_beats(pts, two_squares())
    again = spatial.assign_beats(pts, list(reversed(two_squares())))
    assert list(first) == ["A", "A", "A"]  # the code that sorts first, whatever the input order
    assert list(again) == list(first)


def test_outer_boundary_points_belong_to_their_beat():
    assert list(spatial.assign_beats(np.array([[0.0, 0.5], [2.0, 0.5]]), two_squares())) == [
        "A",
        "B",
    ]


def test_accepts_geoseries_in_another_crs_and_geodataframe_beats():
    beats = gpd.GeoDataFrame(
        {"code": ["A", "B"]}, geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1)], crs=4326
    )
    pts = gpd.GeoSeries(gpd.points_from_xy([0.5, 1.5], [0.5, 0.5]), crs=4326).to_crs(3857)
    assert list(spatial.assign_beats(pts, beats)) == ["A", "B"]


def test_default_map_is_the_51_land_beats():
    loaded = beatfiles.read_beat_map(DEFAULT_BEATS)
    codes = {b.code for b in loaded.beats}
    assert len(codes) == 51 and not loaded.problems
    assert not codes & {"H1", "H2", "H3", "99"}
    assert {b.precinct for b in loaded.beats} == {"N", "E", "S", "SW", "W"}


def test_projected_map_is_reprojected_to_wgs84(tmp_path):
    frame = gpd.read_file(DEFAULT_BEATS).to_crs(2926)  # Washington State Plane North, US feet
    path = tmp_path / "beats_2926.gpkg"
    frame.to_file(path, driver="GPKG")
    loaded = beatfiles.read_beat_map(path, code_field="beat")
    assert loaded.crs.endswith("2926")
    minx, miny, maxx, maxy = shapely.total_bounds([b.geometry for b in loaded.beats])
    assert -122.5 < minx < maxx < -122.2 and 47.4 < miny < maxy < 47.8
    original = {b.code: b.geometry for b in beatfiles.read_beat_map(DEFAULT_BEATS).beats}
    for b in loaded.beats:
        assert b.geometry.symmetric_difference(original[b.code]).area < 1e-9


def test_projected_geojson_without_crs_is_refused(tmp_path):
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"beat": "A1"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[1270000, 220000], [1271000, 220000], [1271000, 221000], [1270000, 220000]]
                    ],
                },
            }
        ],
    }
    path = tmp_path / "projected.geojson"
    path.write_text(json.dumps(doc))
    with pytest.raises(UnusableFile, match="projected"):
        beatfiles.read_beat_map(path)


def test_invalid_polygon_is_reported_with_code_and_reason_never_fixed(tmp_path, store):
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    frame = gpd.GeoDataFrame({"beat": ["Z9", "A1"]}, geometry=[bowtie, box(2, 0, 3, 1)], crs=4326)
    path = tmp_path / "bad.geojson"
    frame.to_file(path, driver="GeoJSON")
    with pytest.raises(InvalidBoundary) as exc:
        beatmaps.load_beat_map(store, path, code_field="beat", now=NOW)
    assert any("Z9" in p and "Self-intersection" in p for p in exc.value.problems)
    assert store.list_beat_sets() == []


def test_overlapping_features_with_one_code_are_refused_with_where(tmp_path):
    # Issue 16: same-code features that do not overlap are merged (tests/geo/test_multipart.py);
    # overlapping ones are still refused, with where and why.
    frame = gpd.GeoDataFrame(
        {"beat": ["A1", "A1"]}, geometry=[box(0, 0, 1, 1), box(0.5, 0, 2, 1)], crs=4326
    )
    path = tmp_path / "dup.geojson"
    frame.to_file(path, driver="GeoJSON")
    problems = beatfiles.read_beat_map(path).problems
    assert len(problems) == 1 and "features 1 and 2" in problems[0]
    assert "overlap by" in problems[0] and " at 0.4999" in problems[0]  # lat, lon


def _agreement(beats_file, csv_file, beat_column):
    loaded = beatfiles.read_beat_map(shared(beats_file))
    rows = pd.read_csv(shared(csv_file), dtype=str, encoding="utf-8-sig")
    lon = pd.to_numeric(rows["Longitude"])
    lat = pd.to_numeric(rows["Latitude"])
    police = rows[beat_column]
    ok = (lon != 0) & (lat != 0) & police.notna() & ~police.isin(["UNKNOWN", "99"])
    codes = spatial.assign_beats(np.column_stack([lon[ok], lat[ok]]), loaded.beats)
    share = float((codes == police[ok].to_numpy()).mean())
    print(f"\n{csv_file} vs {beats_file}: {share:.1%} of {int(ok.sum())} located rows agree")
    return share


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "beats_file,csv_file,column",
    [
        ("spd_beats_2018_present.geojson", "spd_crime_data_robbery_2008_2021.csv", "Beat"),
        ("spd_beats_2015_2017.geojson", "spd_911_incident_response_2016-03-02.csv", "Zone/Beat"),
        ("spd_beats_2015_2017.geojson", "spd_911_incident_response_2016-03-25.csv", "Zone/Beat"),
    ],
)
def test_join_agrees_with_police_recorded_beat(beats_file, csv_file, column):
    assert _agreement(beats_file, csv_file, column) >= 0.85


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name",
    [
        "spd_beats_2018_present.geojson",
        "spd_beats_2015_2017.geojson",
        "spd_beats_2008_2015.geojson",
    ],
)
def test_real_seattle_layouts_load_clean(name):
    loaded = beatfiles.read_beat_map(shared(name))
    assert not loaded.problems
    assert len(loaded.beats) >= 51
