"""Beat-map admin pages and APIs: upload with field confirmation, editing, publish, rollback,
GeoJSON layers, audit, and refusal of anonymous users and the records role."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import shapely
from argon2 import PasswordHasher
from shapely.geometry import shape

from beatfeeds.geo import checks
from beatfeeds.services import beatmaps
from tests.support.instance import DEFAULT_BEATS, NOW, shared

ADMIN, CLERK, PW = "admin@example.test", "clerk@example.test", "a long enough password 1"


@pytest.fixture(scope="module")
def pw_hash() -> str:
    """One argon2 hash for every account here: hashing is slow on purpose."""
    return PasswordHasher().hash(PW)


@pytest.fixture
def staff(beats_store, pw_hash):
    beats_store.add_user(ADMIN, "admin", pw_hash, NOW)
    beats_store.add_user(CLERK, "records", pw_hash, NOW)
    return beats_store


def sign_in(client, email):
    r = client.post("/login", data={"email": email, "password": PW})
    assert r.status_code == 302


@pytest.fixture
def admin(client, staff):
    sign_in(client, ADMIN)
    return client


def upload(client, path, **fields):
    r = client.post(
        "/admin/beats/upload",
        data={"file": (io.BytesIO(path.read_bytes()), path.name)},
        content_type="multipart/form-data",
    )
    assert r.status_code == 200, r.data
    html = r.get_data(as_text=True)
    token = html.split('name="token" value="')[1].split('"')[0]
    return html, {"token": token, "filename": path.name, **fields}


GUARDED = [
    ("get", "/admin/beats"),
    ("get", "/admin/beats/1"),
    ("get", "/admin/beats/1/map.json"),
    ("post", "/admin/beats/1/edit"),
    ("post", "/admin/beats/1/publish"),
    ("post", "/admin/beats/rollback"),
    ("post", "/admin/beats/upload"),
    ("post", "/admin/beats/load"),
    ("get", "/admin/beats/1/export.geojson"),
]


@pytest.mark.parametrize("method,path", GUARDED)
def test_anonymous_users_and_the_records_role_are_refused(client, staff, method, path):
    r = getattr(client, method)(
        path,
        json={"op": "rename", "code": "K1", "new_code": "K9"} if path.endswith("/edit") else None,
    )
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    sign_in(client, CLERK)
    r = getattr(client, method)(path)
    assert r.status_code == 403
    assert [b.code for b in staff.beats(1)][:1] == ["B1"] and len(staff.list_beat_sets()) == 1


def test_upload_shows_field_guesses_then_loads_a_draft(admin, staff, settings):
    html, form = upload(admin, shared("spd_beats_2008_2015_with_precinct.geojson"))
    assert '<option value="BEAT" selected>' in html and '<option value="PRECINCT" selected>' in html
    assert "54 features" in html
    r = admin.post(
        "/admin/beats/load",
        data={
            **form,
            "code_field": "BEAT",
            "sector_field": "",
            "precinct_field": "PRECINCT",
            "name": "2008",
        },
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/beats/2")
    bs = staff.get_beat_set(2)
    assert (bs.status, bs.beat_count, bs.name, bs.created_by) == ("draft", 54, "2008", ADMIN)
    uploads = Path(settings.instance_path) / "beat-map-uploads"
    assert list(uploads.iterdir()) == []  # the uploaded file is not kept once loaded
    page = admin.get("/admin/beats/2").get_data(as_text=True)
    assert "What changes against the active map" in page and "Removed" in page
    assert ("admin@example.test", "beats.load") in [
        (a["actor"], a["action"]) for a in staff.audit_log()
    ]


def test_a_file_with_problems_loads_nothing_and_says_why(admin, staff, tmp_path):
    # Issue 16: features sharing a code are merged unless they overlap; these two do.
    doc = json.loads(DEFAULT_BEATS.read_text())
    doc["features"][1] = json.loads(json.dumps(doc["features"][0]))
    path = tmp_path / "dup.geojson"
    path.write_text(json.dumps(doc))
    _, form = upload(admin, path)
    r = admin.post("/admin/beats/load", data={**form, "code_field": "beat", "name": "dup"})
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and "have the same code but overlap by" in page
    assert len(staff.list_beat_sets()) == 1


def test_editing_the_active_map_makes_a_draft_and_validates_as_you_go(admin, staff):
    data = admin.get("/admin/beats/1/map.json").get_json()
    k2 = next(f for f in data["beats"]["features"] if f["id"] == "K2")
    geom = shape(k2["geometry"])
    vertex = None
    for x, y in shapely.get_coordinates(geom):
        if any(
            b.code != "K2" and b.geometry.distance(shapely.Point(x, y)) < 1e-9
            for b in staff.beats(1)
        ):
            vertex = (x, y)
            break
    coords = shapely.get_coordinates(geom)
    hit = (coords[:, 0] == vertex[0]) & (coords[:, 1] == vertex[1])
    coords[hit] += (0.0015, 0.0006)
    moved = shapely.set_coordinates(geom, coords)
    r = admin.post(
        "/admin/beats/1/edit",
        json={"op": "reshape", "code": "K2", "geometry": shapely.geometry.mapping(moved)},
    )
    assert r.status_code == 200, r.data
    body = r.get_json()
    assert body["set_id"] == 2 and body["url"] == "/admin/beats/2"
    assert [p for p in body["problems"] if p["severity"] == "error"] == []
    changes = {f["id"]: f["properties"]["change"] for f in body["beats"]["features"]}
    assert changes["K2"] == "reshaped"
    assert staff.get_beat_set(1).status == "active"  # the active map is never edited in place
    # a second edit goes to the same draft; a bad one is refused as JSON
    r = admin.post(
        "/admin/beats/2/edit",
        json={
            "op": "split",
            "code": "K2",
            "new_code": "K9",
            "line": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
        },
    )
    assert r.status_code == 400 and "must cross beat K2" in r.get_json()["error"]
    r = admin.post("/admin/beats/2/edit", json={"op": "merge", "code": "K2", "other": "B1"})
    assert r.status_code == 400 and "do not touch" in r.get_json()["error"]
    r = admin.post("/admin/beats/2/edit", json={"op": "rename", "code": "K3", "new_code": "K4"})
    assert r.status_code == 200 and r.get_json()["set_id"] == 2
    assert len(staff.list_beat_sets()) == 2
    edits = [a for a in staff.audit_log() if a["action"] == "beats.edit"]
    assert len(edits) == 2 and all(a["actor"] == ADMIN for a in edits)


def test_split_and_merge_keep_the_map_seamless(admin, staff):
    k1 = next(b for b in staff.beats(1) if b.code == "K1").geometry
    minx, miny, maxx, maxy = k1.bounds
    y = k1.representative_point().y
    line = {"type": "LineString", "coordinates": [[minx - 0.01, y], [maxx + 0.01, y]]}
    r = admin.post(
        "/admin/beats/1/edit", json={"op": "split", "code": "K1", "new_code": "K4", "line": line}
    )
    assert r.status_code == 200, r.data
    draft = r.get_json()["set_id"]
    assert {"K1", "K4"} <= {b.code for b in staff.beats(draft)}
    assert checks.blocking(beatmaps.validate_beat_set(staff, draft)) == []
    r = admin.post(f"/admin/beats/{draft}/edit", json={"op": "merge", "code": "K1", "other": "K4"})
    assert r.status_code == 200
    merged = next(b for b in staff.beats(draft) if b.code == "K1").geometry
    assert merged.symmetric_difference(k1).area / k1.area < 1e-9


def test_publish_and_rollback_from_the_web(admin, staff):
    r = admin.post("/admin/beats/1/edit", json={"op": "rename", "code": "B1", "new_code": "B7"})
    draft = r.get_json()["set_id"]
    page = admin.get(f"/admin/beats/{draft}").get_data(as_text=True)
    assert "B1 → B7" in page
    r = admin.post(f"/admin/beats/{draft}/publish", data={"at": ""})
    assert r.status_code == 302
    assert staff.active_beat_set_id() == draft
    assert admin.get("/beats/B1/feed.atom").status_code == 301
    r = admin.post("/admin/beats/rollback")
    assert r.status_code == 302 and staff.active_beat_set_id() == 1
    r = admin.post(f"/admin/beats/{draft}/publish", data={"at": "2099-01-01"})
    assert "only drafts can be scheduled" in admin.get(r.headers["Location"]).get_data(True)
    later = admin.post(
        "/admin/beats/1/edit", json={"op": "rename", "code": "B2", "new_code": "B8"}
    ).get_json()["set_id"]
    admin.post(f"/admin/beats/{later}/publish", data={"at": "2099-01-01"})
    assert staff.get_beat_set(later).status == "scheduled"
    actions = [a["action"] for a in reversed(staff.audit_log())]
    assert (
        actions[-7:]
        == [
            "beats.copy",
            "beats.edit",
            "beats.publish",
            "beats.publish",
            "beats.rollback",
            "beats.copy",
            "beats.edit",
            "beats.schedule",
        ][-7:]
    )


def test_geojson_layers_of_a_beat_map(client, staff):
    beats = client.get("/api/beatsets/1/beats.geojson")
    assert beats.status_code == 200 and beats.content_type == "application/geo+json"
    assert len(beats.get_json()["features"]) == 51
    sectors = client.get("/api/beatsets/1/sectors.geojson").get_json()["features"]
    assert len(sectors) == 17 and {"sector", "precinct"} == set(sectors[0]["properties"])
    precincts = client.get("/api/beatsets/1/precincts.geojson").get_json()["features"]
    assert sorted(f["properties"]["precinct"] for f in precincts) == ["E", "N", "S", "SW", "W"]
    union = shapely.union_all([shape(f["geometry"]) for f in precincts])
    assert abs(union.area - shapely.union_all([b.geometry for b in staff.beats(1)]).area) < 1e-9
    assert client.get("/api/beatsets/9/beats.geojson").status_code == 404
    staff.copy_beat_set(1, "draft", created_by="t", now=NOW)
    assert client.get("/api/beatsets/2/beats.geojson").status_code == 404  # drafts are private
    sign_in(client, ADMIN)
    assert client.get("/api/beatsets/2/beats.geojson").status_code == 200


def test_the_2015_map_to_the_2018_map_through_the_web(store, settings, pw_hash):
    """The issue's acceptance path: load 2015-2017, publish; load 2018, see exactly G1, G3,
    K2, K3 reshaped, publish, roll back."""
    store.add_user(ADMIN, "admin", pw_hash, NOW)
    from beatfeeds.app import create_app

    web = create_app(
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "store": store, **settings.as_dict()}
    ).test_client()
    sign_in(web, ADMIN)
    _, form = upload(web, shared("spd_beats_2015_2017.geojson"))
    r = web.post("/admin/beats/load", data={**form, "code_field": "name", "name": "2015-2017"})
    assert r.status_code == 302
    assert [b.status for b in store.list_beat_sets()] == ["draft"]
    web.post("/admin/beats/1/publish", data={"at": ""})
    assert store.active_beat_set_id() == 1
    _, form = upload(web, DEFAULT_BEATS)
    web.post(
        "/admin/beats/load",
        data={
            **form,
            "code_field": "beat",
            "sector_field": "sector",
            "precinct_field": "precinct",
            "name": "2018",
        },
    )
    page = web.get("/admin/beats/2").get_data(as_text=True)
    reshaped = page.split('<td id="reshaped">')[1].split("</td>")[0]
    assert [c.split(" ")[0] for c in reshaped.split(", ")] == ["G1", "G3", "K2", "K3"]
    assert "No problems" in page
    # the 2015-2017 file has no sectors: publishing creates them, and the page says so
    areas = page.split('<ul id="area-changes">')[1].split("</ul>")[0]
    assert "Sector K was created with beat map 2; it includes beats K1, K2, K3." in areas
    web.post("/admin/beats/2/publish", data={"at": ""})
    assert store.active_beat_set_id() == 2
    assert web.get("/beats/K3/feed.atom").status_code == 200
    web.post("/admin/beats/rollback")
    assert store.active_beat_set_id() == 1
