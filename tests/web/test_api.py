"""/api/locate: point -> beat, sector, precinct of the active beat map; coordinates never logged."""

from __future__ import annotations

import json
import logging

import pytest
import shapely
from shapely.geometry import shape

from beatfeeds.app import create_app
from tests.support.instance import DEFAULT_BEATS


def beat_points() -> list[tuple[dict, float, float]]:
    """(properties, lat, lon) of a point inside each beat of the default map."""
    out = []
    for f in json.loads(DEFAULT_BEATS.read_text())["features"]:
        p = shape(f["geometry"]).representative_point()
        out.append((f["properties"], round(p.y, 6), round(p.x, 6)))
    return out


POINTS = beat_points()
K3 = next(pt for pt in POINTS if pt[0]["beat"] == "K3")


def expected(props: dict, beatset: int) -> dict:
    return {
        "beat": props["beat"],
        "sector": props["sector"],
        "precinct": props["precinct"],
        "beatset": beatset,
    }


@pytest.fixture
def beatset(beats_store):
    return beats_store.active_beat_set_id()


def test_representative_points_are_inside_their_beats():
    geoms = {
        f["properties"]["beat"]: shape(f["geometry"])
        for f in json.loads(DEFAULT_BEATS.read_text())["features"]
    }
    for props, lat, lon in POINTS:
        assert shapely.contains_xy(geoms[props["beat"]], lon, lat), props["beat"]


def test_get_every_beat(client, beatset):
    for props, lat, lon in POINTS:
        r = client.get("/api/locate", query_string={"lat": lat, "lon": lon})
        assert r.status_code == 200, props
        assert r.is_json
        assert r.json == expected(props, beatset)


def test_post_form_and_json(client, beatset):
    props, lat, lon = K3
    want = expected(props, beatset)
    r = client.post("/api/locate", data={"lat": str(lat), "lon": str(lon)})
    assert r.status_code == 200 and r.json == want
    r = client.post("/api/locate", json={"lat": lat, "lon": lon})
    assert r.status_code == 200 and r.json == want
    r = client.post("/api/locate", json={"lat": str(lat), "lon": str(lon)})
    assert r.status_code == 200 and r.json == want
    # Query-string values are accepted on POST too.
    r = client.post(f"/api/locate?lat={lat}&lon={lon}")
    assert r.status_code == 200 and r.json == want


def test_api_needs_no_csrf_token(tmp_path, beats_store, settings):
    app = create_app(
        {"TESTING": True, "WTF_CSRF_ENABLED": True, "store": beats_store, **settings.as_dict()}
    )
    props, lat, lon = K3
    r = app.test_client().post("/api/locate", data={"lat": lat, "lon": lon})
    assert r.status_code == 200 and r.json["beat"] == "K3"


@pytest.mark.parametrize(
    "lat,lon",
    [
        (0, 0),
        (47.62, -122.45),  # the middle of Puget Sound, west of Elliott Bay
        (47.6062, -122.5),  # Bainbridge Island side of the Sound
        (40.7128, -74.006),  # New York
        (-47.6, 122.33),  # Seattle's antipode-ish mirror
    ],
)
def test_outside_coverage_is_404_json(client, lat, lon):
    for r in (
        client.get("/api/locate", query_string={"lat": lat, "lon": lon}),
        client.post("/api/locate", data={"lat": lat, "lon": lon}),
        client.post("/api/locate", json={"lat": lat, "lon": lon}),
    ):
        assert r.status_code == 404
        assert r.is_json
        assert r.json["status"] == 404 and "outside" in r.json["error"]


BAD_QUERIES = [
    {},
    {"lat": "47.6"},
    {"lon": "-122.33"},
    {"lat": "", "lon": "-122.33"},
    {"lat": "   ", "lon": "-122.33"},
    {"lat": "abc", "lon": "-122.33"},
    {"lat": "47.6", "lon": "west"},
    {"lat": "47,6", "lon": "-122.33"},
    {"lat": "nan", "lon": "-122.33"},
    {"lat": "NaN", "lon": "-122.33"},
    {"lat": "47.6", "lon": "nan"},
    {"lat": "inf", "lon": "-122.33"},
    {"lat": "47.6", "lon": "-Infinity"},
    {"lat": "90.0001", "lon": "-122.33"},
    {"lat": "-91", "lon": "-122.33"},
    {"lat": "47.6", "lon": "180.5"},
    {"lat": "47.6", "lon": "-181"},
    {"lat": "1e400", "lon": "-122.33"},
]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_input_is_400_json(client, query):
    for r in (
        client.get("/api/locate", query_string=query),
        client.post("/api/locate", data=query),
    ):
        assert r.status_code == 400, query
        assert r.is_json
        assert r.json["status"] == 400 and r.json["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"lat": None, "lon": -122.33},
        {"lat": "x", "lon": -122.33},
        {"lat": [47.6], "lon": -122.33},
        {"lat": {"v": 47.6}, "lon": -122.33},
        {"lat": True, "lon": True},
        {"lat": 47.6, "lon": False},
        {"lat": 91, "lon": -122.33},
        [47.6, -122.33],
        "47.6,-122.33",
        5,
    ],
)
def test_bad_json_is_400_json(client, body):
    r = client.post("/api/locate", json=body)
    assert r.status_code == 400, body
    assert r.is_json and r.json["status"] == 400


def test_malformed_json_body_is_400(client):
    r = client.post("/api/locate", data="{lat: 47.6", content_type="application/json")
    assert r.status_code == 400 and r.is_json


def test_boundary_values_are_accepted(client):
    # In range (but outside coverage): the edges of the valid domain are not errors.
    for lat, lon in [(90, 180), (-90, -180), ("90.0", "-180.0")]:
        r = client.get("/api/locate", query_string={"lat": lat, "lon": lon})
        assert r.status_code == 404, (lat, lon)


def test_coordinates_are_never_logged(app, client, caplog):
    props, lat, lon = K3
    lat_s, lon_s = f"{lat}", f"{lon}"
    requests = [
        lambda: client.get(f"/api/locate?lat={lat_s}&lon={lon_s}"),
        lambda: client.post("/api/locate", data={"lat": lat_s, "lon": lon_s}),
        lambda: client.post("/api/locate", json={"lat": lat, "lon": lon}),
        lambda: client.get("/api/locate?lat=47.620417&lon=-122.451234"),  # outside
        lambda: client.get(f"/api/locate?lat=95.123457&lon={lon_s}"),  # out of range
        lambda: client.get(f"/api/locate?lat={lat_s}"),  # missing lon
    ]
    caplog.set_level(logging.DEBUG)
    app.logger.setLevel(logging.DEBUG)
    for send in requests:
        send()
    assert logging.getLogger("beatfeeds.web.api").isEnabledFor(logging.DEBUG)
    secrets = [lat_s, lon_s, "47.620417", "-122.451234", "95.123457"]
    for record in caplog.records:
        text = record.getMessage() + " " + (record.exc_text or "") + " " + repr(record.args)
        for s in secrets:
            assert s not in text, (record.name, record.getMessage())
    assert not any(s in caplog.text for s in secrets)
