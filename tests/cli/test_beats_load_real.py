"""`beatfeeds beats load` on the real police-area files of DC, Boston, LA and San Francisco
(../shared/data/README.md), with documented commands only: what loads, what validates,
which problems are reported and why, the parts merged, and sector codes made unique by a
template. Each test prints its figures (beats, sectors, precincts, merged parts, warnings)."""

from __future__ import annotations

import json
import os

import pytest

from beatfeeds.cli import main
from beatfeeds.core.settings import load_settings
from beatfeeds.services import publishing
from beatfeeds.storage import SQLStore
from tests.support.instance import SHARED, need

DATA = SHARED.parent  # the Seattle folder's parent holds the other cities


def city(name: str):
    path = DATA / name
    need(path.exists(), f"{path} not found (../shared/data)")
    return path


def beats_load(runner, path, *args):
    """`beats load` then `beats validate`; (id, load output, validate output, exit code)."""
    runner.invoke(main, ["db", "upgrade"])
    r = runner.invoke(main, ["beats", "load", str(path), *args])
    assert r.exit_code == 0, r.output
    set_id = int(r.output.split()[0])
    v = runner.invoke(main, ["beats", "validate", str(set_id)])
    return set_id, r.output, v.output, v.exit_code


def figures(set_id, name, load_output):
    """The loaded map's figures, printed for the report."""
    store = SQLStore.from_url(load_settings(environ=dict(os.environ)).database_url)
    beats = store.beatmaps.beats(set_id)
    figs = {
        "beats": len(beats),
        "sectors": len({b.sector for b in beats if b.sector}),
        "precincts": len({b.precinct for b in beats if b.precinct}),
        "multipolygon beats": sum(b.geometry.geom_type == "MultiPolygon" for b in beats),
        "merged": load_output.count("parts merged"),
        "warnings": load_output.count("warning:"),
    }
    print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figs.items()))
    print(load_output)
    return figs, {b.code: b for b in beats}


def test_dc_police_service_areas(runner):
    path = city("dc/dc_mpd_police_service_areas.geojson")
    args = ["--code-field", "PSA", "--sector-field", "SECTOR", "--precinct-field", "DISTRICT"]
    set_id, out, valid, code = beats_load(runner, path, *args)
    figs, beats = figures(set_id, "DC PSAs", out)
    assert code == 0 and f"beat map {set_id}: valid" in valid, valid
    assert figs == {
        "beats": 57,
        "sectors": 21,
        "precincts": 7,
        "multipolygon beats": 0,
        "merged": 0,
        "warnings": 0,
    }
    assert "401" in beats and beats["401"].precinct == "4" and beats["401"].sector == "4D1"
    assert not any(c.endswith(".0") for c in beats)  # integer PSAs, never "401.0"
    assert "using sector: field 'SECTOR'" in out


def test_dc_sectors_numbered_within_districts_need_a_template(runner, tmp_path):
    # DC sectors are numbered 1-3 within each district (SECTOR "4D1" is district 4's sector 1).
    # A department whose file holds only the number is emulated by a copy with that number
    # in a property of its own (the geometry and every other property untouched).
    doc = json.loads(city("dc/dc_mpd_police_service_areas.geojson").read_text())
    for f in doc["features"]:
        f["properties"]["SECTOR_NO"] = f["properties"]["SECTOR"][-1]
    path = tmp_path / "psa_sector_numbers.geojson"
    path.write_text(json.dumps(doc))

    plain = ["--code-field", "PSA", "--sector-field", "SECTOR_NO", "--precinct-field", "DISTRICT"]
    set_id, out, _, _ = beats_load(runner, path, *plain)
    figs, _ = figures(set_id, "DC, sector numbers as one field", out)
    assert figs["sectors"] == 3 and figs["warnings"] == 3
    assert (
        "warning: sector 1: beats in precincts 1, 2, 3, 4, 5, 6, 7: use a template such as "
        "'{DISTRICT}-{SECTOR_NO}' for --sector-field" in out
    )

    template = [
        "--code-field",
        "PSA",
        "--sector-field",
        "{DISTRICT}-{SECTOR_NO}",
        "--precinct-field",
        "DISTRICT",
    ]
    r = runner.invoke(main, ["beats", "load", str(path), *template])
    assert r.exit_code == 0, r.output
    figs, beats = figures(int(r.output.split()[0]), "DC, sector template", r.output)
    assert figs["sectors"] == 21 and figs["warnings"] == 0
    assert "using sector: template '{DISTRICT}-{SECTOR_NO}'" in r.output
    assert beats["401"].sector == "4-1"
    sector_precincts = {}
    for b in beats.values():
        sector_precincts.setdefault(b.sector, set()).add(b.precinct)
    assert all(len(p) == 1 for p in sector_precincts.values())


def test_boston_districts_with_their_multipolygons(runner):
    path = city("boston/bpd_police_districts.geojson")
    set_id, out, valid, code = beats_load(
        runner, path, "--code-field", "DISTRICT", "--precinct-field", "BPDGIS_GIS"
    )
    figs, beats = figures(set_id, "Boston", out)
    assert code == 0 and "valid" in valid, valid
    assert figs["beats"] == 12 and figs["precincts"] == 5 and figs["sectors"] == 0
    assert figs["multipolygon beats"] == 3  # A7, A15, C11 are MultiPolygon features already
    assert sorted(c for c, b in beats.items() if b.geometry.geom_type == "MultiPolygon") == [
        "A15",
        "A7",
        "C11",
    ]


def test_boston_districts_drawn_one_feature_per_part_are_merged(runner, tmp_path):
    # The same layer as a department that exports one feature per part (islands apart).
    doc = json.loads(city("boston/bpd_police_districts.geojson").read_text())
    features = []
    for f in doc["features"]:
        g = f["geometry"]
        parts = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
        for rings in parts:
            geometry = {"type": "Polygon", "coordinates": rings}
            features.append(
                {"type": "Feature", "properties": f["properties"], "geometry": geometry}
            )
    path = tmp_path / "boston_parts.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    set_id, out, valid, code = beats_load(runner, path, "--code-field", "DISTRICT")
    figs, beats = figures(set_id, "Boston, one feature per part", out)
    assert code == 0 and "valid" in valid, valid
    assert figs["beats"] == 12 and figs["merged"] == 3 and figs["multipolygon beats"] == 3
    for district in ("A7", "A15", "C11"):
        assert f"beat {district}: 2 parts merged" in out


def test_boston_codes_keep_their_leading_zeros_and_find_without_them(runner):
    path = city("boston/bpd_police_districts.geojson")
    set_id, out, _, _ = beats_load(runner, path, "--code-field", "DISTRICT__")
    _, beats = figures(set_id, "Boston by DISTRICT__", out)
    assert sorted(beats)[:3] == ["01", "02", "03"]  # the file's "01", not 1


def test_la_divisions_with_integer_codes(runner):
    path = city("la/lapd_divisions.geojson")
    set_id, out, valid, code = beats_load(runner, path, "--code-field", "PREC")
    figs, beats = figures(set_id, "LA", out)
    # Its two ~1 m² overlaps are within tolerance. The holes are the other cities inside LA
    # (Beverly Hills, West Hollywood, Culver City, San Fernando...) and the 7 holes of the
    # file: enclaves, reported as warnings, which do not block publishing.
    print("LA validate:", valid)
    assert code == 0 and f"beat map {set_id}: valid (10 warning(s))" in valid, valid
    assert valid.count("warning: ") == 10 and "an enclave the department does not cover" in valid
    assert "error" not in valid
    assert figs["beats"] == 21 and figs["precincts"] == 0 and figs["merged"] == 0
    assert sorted(beats, key=int) == [str(n) for n in range(1, 22)]  # "1", never "1.0"
    # The incident file writes AREA "01": that finds division 1 once the map is active.
    assert runner.invoke(main, ["beats", "publish", str(set_id)]).exit_code == 0
    store = SQLStore.from_url(load_settings(environ=dict(os.environ)).database_url)
    assert publishing.resolve_area(store, "beat", "01").code == "1"


def test_la_without_a_code_field_says_which_fields_there_are(runner):
    runner.invoke(main, ["db", "upgrade"])
    r = runner.invoke(main, ["beats", "load", str(city("la/lapd_divisions.geojson"))])
    assert r.exit_code == 1
    assert "Cannot tell which field holds the beat code" in r.output and "PREC" in r.output


def test_sf_current_districts(runner):
    path = city("sf/sfpd_police_districts_2015_current.geojson")
    set_id, out, valid, code = beats_load(runner, path, "--code-field", "district")
    figs, beats = figures(set_id, "SF 2015", out)
    print("SF 2015 validate:", valid)
    # RICHMOND's 3 holes are drawn in the file: enclaves (warnings), not gaps between beats.
    assert code == 0 and f"beat map {set_id}: valid (3 warning(s))" in valid, valid
    assert valid.count("(surrounded by RICHMOND): an enclave") == 3
    assert figs["beats"] == 10 and figs["merged"] == 0
    assert len(beats["SOUTHERN"].geometry.geoms) == 2  # mainland and Treasure Island


def test_sf_current_districts_with_a_code_template(runner):
    path = city("sf/sfpd_police_districts_2015_current.geojson")
    set_id, out, _, _ = beats_load(runner, path, "--code-field", "{company} {district}")
    _, beats = figures(set_id, "SF 2015, template code", out)
    assert "B SOUTHERN" in beats and "using beat code: template '{company} {district}'" in out


@pytest.mark.parametrize("extra", [(), ("--precinct-field", "COMPANY")])
def test_sf_pre2015_invalid_polygons_are_refused_with_the_reason(runner, extra):
    runner.invoke(main, ["db", "upgrade"])
    path = city("sf/sfpd_police_districts_pre2015.geojson")
    r = runner.invoke(main, ["beats", "load", str(path), "--code-field", "DISTRICT", *extra])
    print("SF pre-2015:", r.output)
    assert r.exit_code == 1 and "2 problem(s)" in r.output
    assert "beat NORTHERN: invalid geometry: " in r.output
    assert "beat RICHMOND: invalid geometry: " in r.output
    assert "Self-intersection" in r.output or "Ring Self-intersection" in r.output
