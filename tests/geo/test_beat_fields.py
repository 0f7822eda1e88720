"""Which property gives each level: plain fields, templates over the properties, guesses;
codes kept as the file writes them; the warning for sectors spanning precincts; and
`/beats/111` finding `0111`."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import box

from beatfeeds.cli import main
from beatfeeds.core.errors import AreaNotFound, UnusableFile
from beatfeeds.geo import beatfiles
from beatfeeds.services import beatmaps, publishing
from tests.support.boundaries import load, make_client
from tests.support.instance import NOW

X0, Y0, D = -122.40, 47.60, 0.01


def cell(i):
    return box(X0 + i * D, Y0, X0 + (i + 1) * D, Y0 + D)


def write_map(path, props):
    """A row of adjacent square beats, one per properties dict."""
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": p, "geometry": shapely.geometry.mapping(cell(i))}
            for i, p in enumerate(props)
        ],
    }
    path.write_text(json.dumps(doc))
    return path


# Sector numbers that only mean something within their district, as many departments have.
DISTRICTS = [
    {"PSA": 101, "DISTRICT": "01", "SECTOR": 1},
    {"PSA": 102, "DISTRICT": "01", "SECTOR": 1},
    {"PSA": 103, "DISTRICT": "01", "SECTOR": 2},
    {"PSA": 2501, "DISTRICT": "25", "SECTOR": 1},
    {"PSA": 2502, "DISTRICT": "25", "SECTOR": 2},
]


def test_a_template_builds_sector_codes_from_two_properties(tmp_path):
    path = write_map(tmp_path / "d.geojson", DISTRICTS)
    loaded = beatfiles.read_beat_map(
        path, code_field="PSA", sector_field="{DISTRICT}-{SECTOR}", precinct_field="DISTRICT"
    )
    assert loaded.problems == [] and loaded.warnings == []
    assert [(b.code, b.sector, b.precinct) for b in loaded.beats] == [
        ("101", "01-1", "01"),
        ("102", "01-1", "01"),
        ("103", "01-2", "01"),
        ("2501", "25-1", "25"),
        ("2502", "25-2", "25"),
    ]
    assert loaded.notes()[:3] == [
        "using beat code: field 'PSA'",
        "using sector: template '{DISTRICT}-{SECTOR}'",
        "using precinct: field 'DISTRICT'",
    ]


def test_a_sector_in_several_precincts_is_warned_about(tmp_path, runner):
    path = write_map(tmp_path / "d.geojson", DISTRICTS)
    loaded = beatfiles.read_beat_map(
        path, code_field="PSA", sector_field="SECTOR", precinct_field="DISTRICT"
    )
    assert loaded.problems == []  # a warning, not a refusal
    assert loaded.warnings == [
        "sector 1: beats in precincts 01, 25: use a template such as "
        "'{DISTRICT}-{SECTOR}' for --sector-field",
        "sector 2: beats in precincts 01, 25: use a template such as "
        "'{DISTRICT}-{SECTOR}' for --sector-field",
    ]
    runner.invoke(main, ["db", "upgrade"])
    args = ["--code-field", "PSA", "--sector-field", "SECTOR", "--precinct-field", "DISTRICT"]
    r = runner.invoke(main, ["beats", "load", str(path), *args])
    assert r.exit_code == 0, r.output
    assert "  warning: sector 1: beats in precincts 01, 25: use a template such as" in r.output


def test_templates_work_for_the_beat_code_and_the_precinct(tmp_path):
    path = write_map(tmp_path / "d.geojson", DISTRICTS)
    loaded = beatfiles.read_beat_map(
        path, code_field="{DISTRICT}{SECTOR}-{PSA}", precinct_field="D{DISTRICT}"
    )
    assert [b.code for b in loaded.beats][:2] == ["011-101", "011-102"]
    assert {b.precinct for b in loaded.beats} == {"D01", "D25"}
    assert loaded.beats[0].sector == "1"  # SECTOR guessed
    assert "using sector: field 'SECTOR' (guessed)" in loaded.notes()


def test_an_unknown_property_in_a_template_names_the_properties(tmp_path, runner):
    path = write_map(tmp_path / "d.geojson", DISTRICTS)
    with pytest.raises(UnusableFile) as exc:
        beatfiles.read_beat_map(path, code_field="PSA", sector_field="{DIST}-{SECTOR}")
    assert exc.value.message == (
        "The sector template '{DIST}-{SECTOR}' names 'DIST', which the file does not have; "
        "properties are: PSA, DISTRICT, SECTOR."
    )
    for bad in ("{DISTRICT", "{}", "{DISTRICT:>3}", "-"):
        with pytest.raises(UnusableFile):
            beatfiles.read_beat_map(path, code_field="PSA", sector_field=bad)
    runner.invoke(main, ["db", "upgrade"])
    args = ["--code-field", "PSA", "--sector-field", "{DIST}-{SECTOR}"]
    r = runner.invoke(main, ["beats", "load", str(path), *args])
    assert r.exit_code == 1 and "properties are: PSA, DISTRICT, SECTOR" in r.output


def test_a_template_with_a_blank_property_gives_no_value(tmp_path):
    rows = [{"beat": "A", "d": "1", "s": "2"}, {"beat": "B", "d": None, "s": "2"}]
    loaded = beatfiles.read_beat_map(
        write_map(tmp_path / "b.geojson", rows), sector_field="{d}-{s}"
    )
    assert [b.sector for b in loaded.beats] == ["1-2", None]


def test_codes_keep_the_files_text(tmp_path):
    rows = [
        {"beat": "0111", "n": 7},
        {"beat": 112, "n": 8},
        {"beat": "0113", "n": None},
        {"beat": 114.5, "n": 1.0},
    ]
    loaded = beatfiles.read_beat_map(write_map(tmp_path / "z.geojson", rows), sector_field="n")
    assert [(b.code, b.sector) for b in loaded.beats] == [
        ("0111", "7"),
        ("112", "8"),
        ("0113", None),
        ("114.5", "1.0"),  # a decimal as the file writes it
    ]


def test_integer_columns_with_blanks_never_read_as_floats(tmp_path):
    # Outside GeoJSON the values come from GDAL: an integer column with a blank is floats there.
    frame = gpd.GeoDataFrame(
        {"beat": [111.0, 112.0, None, 114.0], "sector": ["01", "01", "02", "02"]},
        geometry=[cell(i) for i in range(4)],
        crs=4326,
    )
    frame.to_file(tmp_path / "m.gpkg", driver="GPKG")
    loaded = beatfiles.read_beat_map(tmp_path / "m.gpkg")
    assert [(b.code, b.sector) for b in loaded.beats] == [
        ("111", "01"),
        ("112", "01"),
        ("114", "02"),
    ]
    assert loaded.skipped == ["feature 3: no beat code"]


def zero_map(tmp_path, store):
    rows = [
        {"beat": "0111", "sector": "01", "precinct": "7"},
        {"beat": "0112", "sector": "01", "precinct": "7"},
        {"beat": "011", "sector": "02", "precinct": "7"},
        {"beat": "0011", "sector": "02", "precinct": "7"},
    ]
    set_id = load(store, write_map(tmp_path / "zeros.geojson", rows))
    beatmaps.publish_beat_map(store, set_id, now=NOW)


def test_a_code_without_its_leading_zeros_finds_the_beat(tmp_path, store):
    zero_map(tmp_path, store)
    assert publishing.resolve_area(store, "beat", "111").code == "0111"
    assert publishing.resolve_area(store, "beat", "00111").code == "0111"
    assert publishing.resolve_area(store, "beat", "011").code == "011"  # exact wins
    assert publishing.resolve_area(store, "sector", "1").code == "01"
    assert publishing.resolve_area(store, "precinct", "07").code == "7"
    with pytest.raises(AreaNotFound, match="ambiguous: it could be 0011 or 011"):
        publishing.resolve_area(store, "beat", "11")
    with pytest.raises(AreaNotFound):
        publishing.resolve_area(store, "beat", "113")


def test_pages_and_feeds_redirect_to_the_code_with_its_zeros(tmp_path, store, settings):
    zero_map(tmp_path, store)
    client = make_client(store, settings)
    r = client.get("/beats/111")
    assert r.status_code == 301 and r.headers["Location"].endswith("/beats/0111")
    r = client.get("/beats/111/feed.atom")
    assert r.status_code == 301 and r.headers["Location"].endswith("/beats/0111/feed.atom")
    r = client.get("/sectors/1")
    assert r.status_code == 301 and r.headers["Location"].endswith("/sectors/01")
    assert client.get("/beats/0111").status_code == 200
    assert client.get("/beats/11").status_code == 404  # 011 or 0011
    assert client.get("/beats/113").status_code == 404
    r = client.get("/find?beat=112")
    assert r.status_code == 302 and r.headers["Location"].endswith("/beats/0112")


def test_the_admin_upload_takes_a_template_and_shows_what_it_used(admin, beats_store, tmp_path):
    import io

    path = write_map(tmp_path / "districts.geojson", DISTRICTS)
    r = admin.post(
        "/admin/beats/upload",
        data={"file": (io.BytesIO(path.read_bytes()), path.name)},
        content_type="multipart/form-data",
    )
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'name="sector_template"' in html
    token = html.split('name="token" value="')[1].split('"')[0]
    form = {"token": token, "filename": path.name, "name": "districts"}
    bad = admin.post(
        "/admin/beats/load",
        data={**form, "code_field": "PSA", "sector_template": "{DIST}-{SECTOR}"},
    )
    assert bad.status_code == 422
    assert "properties are: PSA, DISTRICT, SECTOR" in bad.get_data(as_text=True)
    assert 'value="{DIST}-{SECTOR}"' in bad.get_data(as_text=True)  # kept for correcting
    r = admin.post(
        "/admin/beats/load",
        data={
            **form,
            "code_field": "PSA",
            "sector_field": "SECTOR",
            "sector_template": "{DISTRICT}-{SECTOR}",
            "precinct_field": "DISTRICT",
        },
        follow_redirects=True,
    )
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Loaded beat map 2 as a draft (5 beats)." in page
    assert "using sector: template &#39;{DISTRICT}-{SECTOR}&#39;" in page
    assert {b.sector for b in beats_store.beatmaps.beats(2)} == {"01-1", "01-2", "25-1", "25-2"}
