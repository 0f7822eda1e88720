"""Beat-map files: opened safely, read into beats with their problems listed, written back.

GDAL chooses a driver by a file's content, not its name, and some of its drivers read other
files, run SQL or fetch URLs (a `.geojson` that is really a VRT can show `/etc/passwd`). So a
beat-map file is opened only as the format its name declares, after its bytes were checked to
be that format, and only through the drivers of that format:

| name | format | checked | drivers |
|---|---|---|---|
| `.geojson`, `.json` | GeoJSON | a JSON object of type FeatureCollection or Feature | GeoJSON |
| `.zip` | zipped shapefile | one `.shp` with its parts, unpacked within limits | ESRI Shapefile |
| `.shp` | shapefile (command line) | the shapefile magic number | ESRI Shapefile |
| `.gpkg` | GeoPackage | SQLite with the GeoPackage application id, no virtual tables | GPKG |
| `.kml` | KML | XML whose root is `<kml>`, no DOCTYPE or entities | KML, LIBKML |

GDAL's network access is switched off for these reads, no SQL is ever passed to it, and a
path naming one of GDAL's virtual file systems (`/vsicurl/`, `/vsizip/`...) is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import shapely

from beatfeeds.core.errors import UnusableFile
from beatfeeds.core.models import Beat
from beatfeeds.geo import beatfields, checks
from beatfeeds.geo.beatfields import FieldChoice

FORMATS = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".zip": "zip",
    ".shp": "shapefile",
    ".gpkg": "gpkg",
    ".kml": "kml",
}
DRIVERS = {
    "geojson": {"GeoJSON"},
    "zip": {"ESRI Shapefile"},
    "shapefile": {"ESRI Shapefile"},
    "gpkg": {"GPKG"},
    "kml": {"KML", "LIBKML"},
}
# Drivers that read other files, run code or SQL, or go to the network: never registered
# when beatfeeds is the first to load GDAL (the format checks above stand either way).
SKIPPED_DRIVERS = (
    "OGR_VRT",
    "SQLite",
    "CSV",
    "HTTP",
    "WFS",
    "OAPIF",
    "OGCAPI",
    "CSW",
    "Elasticsearch",
    "Carto",
    "AmigoCloud",
    "NGW",
    "PLSCENES",
    "EEDA",
    "ADBC",
    "GDALG",
    "GPSBabel",
    "OGR_PDS",
    "PDS4",
    "VICAR",
    "MBTiles",
    "PMTiles",
    "MVT",
)
GDAL_OPTIONS = {
    # /vsicurl/ only "sees" files with these extensions: none, so nothing is ever fetched.
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".beatfeeds-no-network",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",
    "GDAL_VRT_ENABLE_PYTHON": "NO",
}
ZIP_MAX_MEMBERS = 100
ZIP_MAX_BYTES = 256 * 2**20  # unpacked; a real city's beat shapefile is a few MB
SHAPEFILE_PARTS = {
    ".shp",
    ".shx",
    ".dbf",
    ".prj",
    ".cpg",
    ".qix",
    ".sbn",
    ".sbx",
    ".xml",
    ".qmd",
    ".fix",
}
GPKG_APPLICATION_IDS = {0x47504B47, 0x47503130, 0x47503131}  # "GPKG", "GP10", "GP11"
SUFFIXES = tuple(FORMATS)


def declared_format(path: str | Path) -> str:
    """The format a file's name declares, or UnusableFile naming the ones accepted."""
    name = Path(path).name
    fmt = FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise UnusableFile(
            f"{name}: a beat map must be GeoJSON (.geojson, .json), a zipped "
            "shapefile (.zip), a GeoPackage (.gpkg) or KML (.kml)."
        )
    return fmt


@contextmanager
def readable_beat_file(
    path: str | Path, *, protected: Iterable[str | Path] = ()
) -> Iterator[tuple[Path, str]]:
    """(the path GDAL may open, its format) after the checks above; zips are unpacked into a
    temporary folder that is removed afterwards. `protected` files (the app's own database)
    are refused whatever they are called."""
    raw = str(path)
    if raw.startswith("/vsi") or "/vsi" in raw.replace("\\", "/"):
        raise UnusableFile(f"{Path(raw).name}: GDAL virtual file system paths are not accepted.")
    path = Path(path)
    fmt = declared_format(path)
    if not path.is_file():
        raise UnusableFile(f"{path.name}: not a file.")
    real = path.resolve()
    for p in protected:
        if p and real == Path(p).resolve():
            raise UnusableFile(f"{path.name} is beatfeeds' own database, not a beat map.")
    if fmt == "zip":
        with _unpacked_shapefile(path) as shp:
            yield shp, fmt
        return
    {
        "geojson": _check_geojson,
        "shapefile": _check_shapefile,
        "gpkg": _check_gpkg,
        "kml": _check_kml,
    }[fmt](path)
    yield path, fmt


def read_frame(path: str | Path, *, protected: Iterable[str | Path] = ()):
    """The features of a beat-map file as a GeoDataFrame, opened as described above."""
    with readable_beat_file(path, protected=protected) as (readable, fmt):
        pyogrio = _gdal()
        import geopandas as gpd

        try:
            info = pyogrio.read_info(readable)
        except Exception as exc:  # pyogrio raises many types for unreadable files
            raise UnusableFile(f"Cannot read {Path(path).name} as a map: {exc}") from exc
        if info.get("driver") not in DRIVERS[fmt]:
            raise UnusableFile(
                f"{Path(path).name} is not a {fmt} file (GDAL reads it as {info.get('driver')})."
            )
        try:
            with warnings.catch_warnings():
                # A property mixing numbers and text: read as text, which is what we keep.
                warnings.filterwarnings("ignore", "Could not parse column", UserWarning)
                return gpd.read_file(readable, engine="pyogrio")
        except Exception as exc:  # pyogrio raises many types for unreadable files
            raise UnusableFile(f"Cannot read {Path(path).name} as a map: {exc}") from exc


# ---- a beat-map file as beats, and beats as a file ------------------------------------------
@dataclass
class LoadedBeatMap:
    """A beat-map file read into beats, with what would keep them from being used as is."""

    beats: list[Beat]
    problems: list[str]
    skipped: list[str]
    code_field: str
    crs: str
    fields: list[FieldChoice] = field(default_factory=list)  # code, sector, precinct
    merged: list[str] = field(default_factory=list)  # "beat 3100: 3 parts merged"
    warnings: list[str] = field(default_factory=list)  # loadable, but worth a look

    def notes(self) -> list[str]:
        """What the loader tells its user: the fields used, parts merged, warnings."""
        return (
            [f"using {c.describe()}" for c in self.fields]
            + self.merged
            + [f"warning: {w}" for w in self.warnings]
        )


def read_beat_map(
    path: str | Path,
    *,
    code_field: str | None = None,
    sector_field: str | None = None,
    precinct_field: str | None = None,
    skip_codes: tuple[str, ...] = (),
    protected: tuple[str | Path, ...] = (),
) -> LoadedBeatMap:
    """Read a beat map file in any CRS, reprojected to EPSG:4326, with its problems listed.

    The file is opened only as the format its name declares (`read_frame`); `protected` files
    (the app's own database) are refused. Each level is read from a field or built by a
    template (`beatfields`). Features without a beat code are skipped (and reported in
    `skipped`); features sharing a code are merged when they do not overlap. Problems are
    never fixed silently.
    """
    frame = read_frame(path, protected=protected)
    fields = [c for c in frame.columns if c != "geometry"]
    code_c = beatfields.choose_field("code", code_field, fields)
    sector_c = beatfields.choose_field("sector", sector_field, fields)
    precinct_c = beatfields.choose_field("precinct", precinct_field, fields)

    # GeoJSON without a `crs` member is read as WGS84; projected numbers there are an error.
    if frame.crs is None or frame.crs.is_geographic:
        minx, miny, maxx, maxy = frame.total_bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise UnusableFile(
                "The coordinates look projected (outside ±180/±90) but the file "
                "names no projected CRS; export it with its CRS or in EPSG:4326."
            )
        if frame.crs is None:
            frame = frame.set_crs(4326)
    crs = frame.crs.to_string()
    frame = frame.to_crs(4326)

    # The properties as the file writes them (GeoJSON), or as GDAL read them (other formats).
    texts = None
    if declared_format(path) == "geojson":
        texts = beatfields.geojson_properties(path, len(frame))
    if texts is None:
        texts = [
            {f: beatfields.as_text(v) for f, v in zip(fields, values, strict=True)}
            for values in frame[fields].itertuples(index=False, name=None)
        ]

    problems: list[str] = []
    skipped: list[str] = []
    groups: dict[str, list[tuple[int, dict, object]]] = {}
    for n, (props, geom) in enumerate(zip(texts, frame.geometry, strict=True), start=1):
        code = code_c.value(props)
        if not code:
            skipped.append(f"feature {n}: no beat code")
            continue
        if code in skip_codes:
            skipped.append(f"feature {n}: beat {code} left out")
            continue
        if geom is not None and shapely.has_z(geom):  # KML and some shapefiles carry Z
            geom = shapely.force_2d(geom)
        groups.setdefault(code, []).append((n, props, geom))

    beats: list[Beat] = []
    merged: list[str] = []
    for code, parts in groups.items():
        found = [p for n, _, g in parts for p in checks.geometry_problems(code, g)]
        if len(parts) > 1:
            numbers = ", ".join(str(n) for n, _, _ in parts)
            if found:
                problems += [f"{p} (features {numbers} have this code)" for p in found]
                continue
            geom, why = checks.merge_parts(code, [(n, g) for n, _, g in parts])
            problems += why
            disagree = _disagreement(code, parts, sector_c, precinct_c)
            problems += disagree
            if why or disagree:
                continue
            merged.append(f"beat {code}: {len(parts)} parts merged (features {numbers})")
        else:
            problems += found
            geom = parts[0][2]
        props = parts[0][1]
        beats.append(
            Beat(
                code=code,
                sector=sector_c.value(props),
                precinct=precinct_c.value(props),
                geometry=geom,
            )
        )
    if not beats and not problems:
        problems.append("the file holds no beats")
    return LoadedBeatMap(
        beats=beats,
        problems=problems,
        skipped=skipped,
        code_field=code_c.spec,
        crs=crs,
        fields=[code_c, sector_c, precinct_c],
        merged=merged,
        warnings=beatfields.sectors_in_several_precincts(beats, sector_c, precinct_c),
    )


def _disagreement(code: str, parts, *choices: FieldChoice) -> list[str]:
    """Parts of one beat that name different sectors or precincts cannot be merged."""
    out = []
    for c in choices:
        values = sorted({c.value(props) or "(none)" for _, props, _ in parts})
        if c.spec is not None and len(values) > 1:
            out.append(
                f"beat {code}: features with this code name different "
                f"{beatfields.LEVELS[c.level][0]}s ({', '.join(values)}); one beat has one"
            )
    return out


@dataclass
class BeatMapPreview:
    """What a map file holds, to confirm the fields before loading it."""

    features: int
    crs: str
    fields: list[str]
    samples: dict[str, list[str]]  # field -> a few distinct values
    guesses: dict[str, str | None]  # "code" / "sector" / "precinct" -> field


def inspect_beat_map(path: str | Path, *, protected: tuple[str | Path, ...] = ()) -> BeatMapPreview:
    """The fields of a map file with sample values and the guessed code/sector/precinct fields."""
    frame = read_frame(path, protected=protected)
    fields = [c for c in frame.columns if c != "geometry"]
    samples = {}
    for f in fields:
        values = [beatfields.as_text(v) for v in frame[f].dropna().unique()[:6]]
        samples[f] = values
    guesses = {
        level: beatfields.choose_field(level, None, fields).spec for level in ("sector", "precinct")
    }
    guesses["code"] = next((g for g in beatfields.CODE_FIELD_GUESSES if g in fields), None)
    crs = frame.crs.to_string() if frame.crs is not None else "none (read as EPSG:4326)"
    return BeatMapPreview(len(frame), crs, fields, samples, guesses)


def write_geojson(beats: list[Beat], path: str | Path) -> None:
    """Write beats as a GeoJSON FeatureCollection in EPSG:4326 (fields beat, sector,
    precinct), the format `read_beat_map` reads back."""
    import geopandas as gpd  # imported where used: it adds 0.3 s to every CLI start-up

    frame = gpd.GeoDataFrame(
        {
            "beat": [b.code for b in beats],
            "sector": [b.sector for b in beats],
            "precinct": [b.precinct for b in beats],
        },
        geometry=[b.geometry for b in beats],
        crs=4326,
    )
    Path(path).write_text(frame.to_json(drop_id=True))


# ---- opening a file safely --------------------------------------------------------------------
def _gdal():
    """pyogrio with the risky drivers left out (if it is loaded here first) and GDAL's
    network access off."""
    skip = set(filter(None, os.environ.get("OGR_SKIP", "").split(",")))
    os.environ["OGR_SKIP"] = ",".join(sorted(skip | set(SKIPPED_DRIVERS)))
    import pyogrio

    pyogrio.set_gdal_config_options(GDAL_OPTIONS)
    return pyogrio


def _head(path: Path, n: int = 4096) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _check_geojson(path: Path) -> None:
    head = _head(path).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"{"):
        raise UnusableFile(f"{path.name} is not GeoJSON: it does not start with a JSON object.")
    try:
        with open(path, encoding="utf-8-sig") as fh:
            doc = json.load(fh)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise UnusableFile(f"{path.name} is not valid JSON: {exc}"[:300]) from None
    if not isinstance(doc, dict) or doc.get("type") not in ("FeatureCollection", "Feature"):
        raise UnusableFile(f"{path.name} is JSON but not a GeoJSON FeatureCollection or Feature.")


def _check_shapefile(path: Path) -> None:
    head = _head(path, 100)
    if len(head) < 100 or struct.unpack(">i", head[:4])[0] != 9994:
        raise UnusableFile(f"{path.name} is not a shapefile (.shp).")


def _check_gpkg(path: Path) -> None:
    head = _head(path, 100)
    if not head.startswith(b"SQLite format 3\x00") or len(head) < 72:
        raise UnusableFile(f"{path.name} is not a GeoPackage (not an SQLite file).")
    if struct.unpack(">I", head[68:72])[0] not in GPKG_APPLICATION_IDS:
        raise UnusableFile(f"{path.name} is an SQLite database but not a GeoPackage.")
    try:  # read-only and immutable: nothing, not even a journal, is written beside it
        uri = f"file:{path.resolve().as_posix()}?mode=ro&immutable=1"
        with sqlite3.connect(uri, uri=True) as conn:
            rows = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        conn.close()
    except sqlite3.Error as exc:
        raise UnusableFile(f"{path.name} is not a readable GeoPackage: {exc}") from None
    names = {name for _, name, _ in rows}
    if "gpkg_contents" not in names:
        raise UnusableFile(f"{path.name} has no gpkg_contents table: not a GeoPackage.")
    for _kind, name, sql in rows:
        if re.search(r"CREATE\s+VIRTUAL\s+TABLE", sql or "", re.I) and not name.startswith(
            "rtree_"
        ):
            raise UnusableFile(
                f"{path.name} defines a virtual table ({name}); beat maps "
                "are plain GeoPackage tables."
            )


def _check_kml(path: Path) -> None:
    text = _head(path, 2**16).decode("utf-8", errors="replace")
    if "OGRVRTDataSource" in text:
        raise UnusableFile(f"{path.name} is not KML: it is a GDAL virtual data source.")
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.I):
        raise UnusableFile(f"{path.name}: KML with a DOCTYPE or entities is not accepted.")
    body = re.sub(r"^\ufeff?\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*", "", text, flags=re.S)
    if not re.match(r"<(\w+:)?kml[\s>]", body):
        raise UnusableFile(f"{path.name} is not KML: its root element is not <kml>.")


@contextmanager
def _unpacked_shapefile(path: Path) -> Iterator[Path]:
    """The .shp of a zipped shapefile, unpacked with limits on members, size and names."""
    if not zipfile.is_zipfile(path):
        raise UnusableFile(f"{path.name} is not a zip file.")
    with zipfile.ZipFile(path) as zf:
        members = zf.infolist()
        if len(members) > ZIP_MAX_MEMBERS:
            raise UnusableFile(
                f"{path.name} holds {len(members)} files; a zipped shapefile "
                f"holds at most {ZIP_MAX_MEMBERS}."
            )
        parts = []
        for m in members:
            name = PurePosixPath(m.filename.replace("\\", "/"))
            if m.is_dir() or name.name.startswith("._") or "__MACOSX" in name.parts:
                continue
            if name.is_absolute() or ".." in name.parts or ":" in m.filename:
                raise UnusableFile(f"{path.name}: member {m.filename!r} has an unsafe path.")
            if (m.external_attr >> 16) & 0o170000 == 0o120000:
                raise UnusableFile(f"{path.name}: member {m.filename!r} is a symbolic link.")
            if name.suffix.lower() in SHAPEFILE_PARTS:
                parts.append((m, name))
        shps = [n for _, n in parts if n.suffix.lower() == ".shp"]
        if len(shps) != 1:
            raise UnusableFile(f"{path.name} must hold exactly one .shp file (found {len(shps)}).")
        stem = shps[0].with_suffix("")
        folder = Path(tempfile.mkdtemp(prefix="beatfeeds-map-"))
        try:
            total = 0
            for m, name in parts:
                if name.with_suffix("") != stem:
                    continue  # another shapefile's parts, never read
                target = folder / ("map" + name.suffix.lower())
                with zf.open(m) as src, open(target, "wb") as dst:
                    while chunk := src.read(2**20):
                        total += len(chunk)  # counted as unpacked, whatever the header says
                        if total > ZIP_MAX_BYTES:
                            raise UnusableFile(
                                f"{path.name} unpacks to more than "
                                f"{ZIP_MAX_BYTES // 2**20} MB; a beat map is far smaller."
                            )
                        dst.write(chunk)
            shp = folder / "map.shp"
            _check_shapefile(shp)
            yield shp
        finally:
            shutil.rmtree(folder, ignore_errors=True)
