"""Beat-map files from outside are opened only as the format their name declares (issue 14,
point 1): no server file is read, no SQL run, no URL fetched, and zips unpack within limits.
Each hostile file is tried through the admin upload and through `beatfeeds beats load`."""

from __future__ import annotations

import io
import json
import sqlite3
import struct
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import text

from beatfeeds.cli import main
from beatfeeds.core.errors import UnusableFile
from beatfeeds.geo import beatfiles
from tests.support.instance import DEFAULT_BEATS


def vrt(source: str, layer: str = "secret") -> str:
    return (
        f'<OGRVRTDataSource><OGRVRTLayer name="{layer}"><SrcDataSource>{source}'
        f"</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>"
    )


def upload(client, name: str, data: bytes):
    return client.post(
        "/admin/beats/upload",
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        follow_redirects=True,
    )


def secret_file(tmp_path: Path) -> Path:
    p = tmp_path / "secret.csv"
    p.write_text("user,password\nroot,TOP-SECRET-VALUE\n")
    return p


def test_a_vrt_named_geojson_never_shows_the_files_it_points_at(admin, tmp_path):
    secret = secret_file(tmp_path)
    for source in (str(secret), f"CSV:{secret}"):
        r = upload(admin, "beats.geojson", vrt(source).encode())
        page = r.get_data(as_text=True)
        assert "TOP-SECRET-VALUE" not in page and "root:" not in page
        assert "is not GeoJSON" in page
    path = tmp_path / "beats.geojson"
    path.write_text(vrt(str(secret)))
    with pytest.raises(UnusableFile, match="not GeoJSON"):
        beatfiles.inspect_beat_map(path)


def test_a_vrt_aimed_at_the_app_database_changes_nothing(admin, app, tmp_path):
    store = app.extensions["beatfeeds.store"]
    db = store.database_files()[0]
    sql = (
        f'<OGRVRTDataSource><OGRVRTLayer name="u"><SrcDataSource>{db}</SrcDataSource>'
        '<SrcSQL dialect="SQLite">SELECT email, password_hash FROM users</SrcSQL>'
        "</OGRVRTLayer></OGRVRTDataSource>"
    )
    for name in ("beats.geojson", "beats.kml", "beats.json"):
        page = upload(admin, name, sql.encode()).get_data(as_text=True)
        assert "argon2" not in page
        assert "is not GeoJSON" in page or "is not KML" in page
    store.set_meta("after-the-attempt", "written")  # writes still land and stay
    fresh = type(store).from_url(str(store.engine.url))
    assert fresh.get_meta("after-the-attempt") == "written"


def test_no_url_is_fetched_through_gdal(admin, tmp_path, httpserver):
    httpserver.expect_request("/beats.geojson").respond_with_data(
        DEFAULT_BEATS.read_bytes(), content_type="application/geo+json"
    )
    url = httpserver.url_for("/beats.geojson")
    for body in (vrt(f"/vsicurl/{url}"), vrt(url)):
        page = upload(admin, "beats.geojson", body.encode()).get_data(as_text=True)
        assert "is not GeoJSON" in page
    path = tmp_path / "beats.geojson"
    path.write_text(DEFAULT_BEATS.read_text())
    with pytest.raises(UnusableFile, match="virtual file system"):
        beatfiles.read_frame(f"/vsicurl/{url}")
    assert httpserver.log == []


def test_the_app_database_is_refused_even_named_as_a_geopackage(tmp_path, runner):
    db = tmp_path / "instance" / "beats.gpkg"
    env = {"BEATFEEDS_DATABASE_URL": f"sqlite:///{db}"}
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    r = runner.invoke(main, ["beats", "load", str(db)], env=env)
    assert r.exit_code != 0 and "own database" in r.output, r.output
    copy = tmp_path / "copy.gpkg"
    copy.write_bytes(db.read_bytes())
    r = runner.invoke(main, ["beats", "load", str(copy)], env=env)
    assert r.exit_code != 0 and "not a GeoPackage" in r.output, r.output


def _geopackage(path: Path, extra_sql: str = "") -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA application_id = {0x47504B47}")
        conn.execute("CREATE TABLE gpkg_contents (table_name TEXT)")
        if extra_sql:
            conn.execute(extra_sql)
    conn.close()
    return path


def test_a_geopackage_with_virtual_tables_is_refused(tmp_path):
    plain = _geopackage(tmp_path / "plain.gpkg")
    beatfiles._check_gpkg(plain)  # shaped like a GeoPackage: passes the format check
    evil = _geopackage(
        tmp_path / "evil.gpkg", "CREATE VIRTUAL TABLE evil USING rtree(id, minx, maxx)"
    )
    with pytest.raises(UnusableFile, match="virtual table"):
        beatfiles._check_gpkg(evil)
    header = bytearray(plain.read_bytes())
    header[68:72] = struct.pack(">I", 0)
    (tmp_path / "sqlite.gpkg").write_bytes(bytes(header))
    with pytest.raises(UnusableFile, match="not a GeoPackage"):
        beatfiles._check_gpkg(tmp_path / "sqlite.gpkg")


def test_kml_with_entities_is_refused(admin, tmp_path):
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>&x;</name>'
        "</Placemark></kml>"
    )
    page = upload(admin, "beats.kml", xxe.encode()).get_data(as_text=True)
    assert "DOCTYPE" in page and "root:" not in page


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _shapefile_parts(tmp_path: Path) -> dict[str, bytes]:
    import geopandas as gpd

    frame = gpd.read_file(DEFAULT_BEATS).head(3)
    frame.to_file(tmp_path / "beats.shp")
    return {
        f"beats{s}": (tmp_path / f"beats{s}").read_bytes() for s in (".shp", ".shx", ".dbf", ".prj")
    }


def test_zips_unpack_only_a_shapefile_within_limits(admin, tmp_path, monkeypatch):
    parts = _shapefile_parts(tmp_path)
    ok = upload(admin, "beats.zip", _zip(parts)).get_data(as_text=True)
    assert "Confirm" in ok or "code" in ok.lower()  # the field confirmation page
    for entries, why in (
        ({**parts, "../../evil.dbf": b"x"}, "unsafe path"),
        ({**parts, "/etc/evil.shp": b"x"}, "unsafe path"),
        ({**{f"f{i}.txt": b"" for i in range(150)}, **parts}, "at most"),
        ({"a.shp": parts["beats.shp"], "b.shp": parts["beats.shp"]}, "exactly one .shp"),
        ({"beats.shp": b"not a shapefile" * 10}, "not a shapefile"),
    ):
        path = tmp_path / "bad.zip"
        path.write_bytes(_zip(entries))
        with pytest.raises(UnusableFile, match=why):
            beatfiles.inspect_beat_map(path)
    monkeypatch.setattr(beatfiles, "ZIP_MAX_BYTES", 2**20)
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_zip({**parts, "beats.dbf": b"\0" * (3 * 2**20)}))
    assert bomb.stat().st_size < 50_000
    with pytest.raises(UnusableFile, match="unpacks to more than"):
        beatfiles.inspect_beat_map(bomb)
    assert not list(Path(beatfiles.tempfile.gettempdir()).glob("beatfeeds-map-*"))


def test_a_symbolic_link_in_a_zip_is_refused(tmp_path):
    parts = _shapefile_parts(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("beats.cpg")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    (tmp_path / "link.zip").write_bytes(buf.getvalue())
    with pytest.raises(UnusableFile, match="symbolic link"):
        beatfiles.inspect_beat_map(tmp_path / "link.zip")


def test_geojson_that_is_not_a_feature_collection_is_refused(tmp_path):
    for body, why in (
        ("[1, 2]", "not GeoJSON"),
        ('{"type": "Topology"}', "not a GeoJSON"),
        ("[" * 100_000, "not GeoJSON"),
        ('{"a": ' * 50_000, "not valid JSON"),
    ):
        path = tmp_path / "x.geojson"
        path.write_text(body)
        with pytest.raises(UnusableFile, match=why):
            beatfiles.inspect_beat_map(path)


def test_real_maps_still_load_in_every_accepted_format(tmp_path, store):
    import geopandas as gpd

    frame = gpd.read_file(DEFAULT_BEATS)
    frame.to_file(tmp_path / "beats.gpkg", driver="GPKG")
    frame.to_file(tmp_path / "beats.kml", driver="KML")
    paths = [DEFAULT_BEATS, tmp_path / "beats.gpkg", tmp_path / "beats.kml"]
    zipped = tmp_path / "beats.zip"
    zipped.write_bytes(_zip(_shapefile_parts(tmp_path)))
    for path in paths:
        assert len(beatfiles.read_beat_map(path, code_field="beat").beats) == len(frame)
    assert len(beatfiles.read_beat_map(zipped, code_field="beat").beats) == 3
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    assert json.loads(DEFAULT_BEATS.read_text())["type"] == "FeatureCollection"
