"""Load, validate and publish versioned beat maps."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np

from . import spatial
from .errors import InvalidBoundary, NotFound, UnusableFile
from .models import Beat

log = logging.getLogger(__name__)

CODE_FIELD_GUESSES = ("beat", "BEAT", "Beat", "beat_num", "BEAT_NUM", "name", "NAME", "Name")
SECTOR_FIELD_GUESSES = ("sector", "SECTOR", "Sector")
PRECINCT_FIELD_GUESSES = ("precinct", "PRECINCT", "Precinct", "first_precinct", "FIRST_PRECINCT")


@dataclass
class LoadedBeatMap:
    beats: list[Beat]
    problems: list[str]
    skipped: list[str]
    code_field: str
    crs: str


def _guess(columns, given: str | None, guesses: tuple[str, ...], what: str,
           required: bool) -> str | None:
    if given:
        if given not in columns:
            raise UnusableFile(f"The file has no {what} field {given!r}; fields are: "
                               f"{', '.join(c for c in columns if c != 'geometry')}.")
        return given
    for g in guesses:
        if g in columns:
            return g
    if required:
        raise UnusableFile(f"Cannot tell which field holds the {what}; pass it explicitly. "
                           f"Fields are: {', '.join(c for c in columns if c != 'geometry')}.")
    return None


def read_beat_map(path: str | Path, *, code_field: str | None = None,
                  sector_field: str | None = None, precinct_field: str | None = None,
                  skip_codes: tuple[str, ...] = ()) -> LoadedBeatMap:
    """Read a beat map file in any CRS, reprojected to EPSG:4326, with its problems listed.

    Features without a beat code are skipped (and reported in `skipped`); problems are never
    fixed silently.
    """
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises many types for unreadable files
        raise UnusableFile(f"Cannot read {Path(path).name} as a map: {exc}") from exc
    code_f = _guess(frame.columns, code_field, CODE_FIELD_GUESSES, "beat code", True)
    sector_f = _guess(frame.columns, sector_field, SECTOR_FIELD_GUESSES, "sector", False)
    precinct_f = _guess(frame.columns, precinct_field, PRECINCT_FIELD_GUESSES, "precinct", False)

    # GeoJSON without a `crs` member is read as WGS84; projected numbers there are an error.
    if frame.crs is None or frame.crs.is_geographic:
        minx, miny, maxx, maxy = frame.total_bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise UnusableFile("The coordinates look projected (outside ±180/±90) but the file "
                               "names no projected CRS; export it with its CRS or in EPSG:4326.")
        if frame.crs is None:
            frame = frame.set_crs(4326)
    crs = frame.crs.to_string()
    frame = frame.to_crs(4326)

    beats: list[Beat] = []
    problems: list[str] = []
    skipped: list[str] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(frame.itertuples(index=False), start=1):
        raw_code = getattr(row, code_f)
        code = "" if raw_code is None or (isinstance(raw_code, float) and np.isnan(raw_code)) \
            else str(raw_code).strip()
        if not code:
            skipped.append(f"feature {n}: no beat code")
            continue
        if code in skip_codes:
            skipped.append(f"feature {n}: beat {code} left out")
            continue
        if code in seen:
            problems.append(f"beat {code}: duplicate code (features {seen[code]} and {n})")
            continue
        seen[code] = n
        geom = row.geometry
        problems += spatial.geometry_problems(code, geom)
        beats.append(Beat(code=code, sector=_text(row, sector_f), precinct=_text(row, precinct_f),
                          geometry=geom))
    if not beats:
        problems.append("the file holds no beats")
    return LoadedBeatMap(beats=beats, problems=problems, skipped=skipped, code_field=code_f,
                         crs=crs)


def _text(row, fieldname: str | None) -> str | None:
    v = getattr(row, fieldname) if fieldname else None
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()


def load_beat_map(store, path: str | Path, *, code_field: str | None = None,
                  sector_field: str | None = None, precinct_field: str | None = None,
                  name: str | None = None, effective: date | None = None,
                  actor: str = "cli", now: datetime) -> int:
    """Validate a beat map file and store it as a draft; returns the new map's id."""
    loaded = read_beat_map(path, code_field=code_field, sector_field=sector_field,
                           precinct_field=precinct_field)
    if loaded.problems:
        raise InvalidBoundary(f"{Path(path).name} has {len(loaded.problems)} problem(s)",
                              problems=loaded.problems)
    set_id = store.create_beat_set(name or Path(path).stem, loaded.beats,
                                   effective_date=effective, source_filename=Path(path).name,
                                   created_by=actor, now=now)
    store.audit(actor, "beats.load", f"beat_set:{set_id}",
                {"file": Path(path).name, "beats": len(loaded.beats), "crs": loaded.crs,
                 "skipped": loaded.skipped}, now=now)
    log.info("loaded beat map %s from %s: %d beats", set_id, Path(path).name, len(loaded.beats))
    return set_id


def publish_beat_map(store, set_id: int, *, actor: str = "cli", now: datetime) -> int:
    """Make a beat map active: join every located incident to it, then switch. Returns joined."""
    problems = validate_beat_set(store, set_id)
    if problems:
        raise InvalidBoundary(f"beat map {set_id} does not validate", problems=problems)
    index = spatial.BeatIndex(store.beats(set_id))
    joined = 0
    for batch in store.located_incidents_missing_join(set_id):
        ids = [b[0] for b in batch]
        codes = index.assign(np.array([b[1] for b in batch]), np.array([b[2] for b in batch]))
        store.save_incident_beats(set_id, zip(ids, codes, strict=True))
        joined += len(batch)
    previous = store.publish_beat_set(set_id, now=now)
    store.audit(actor, "beats.publish", f"beat_set:{set_id}",
                {"previous": previous, "joined": joined}, now=now)
    log.info("published beat map %s (previous %s); joined %d incidents", set_id, previous, joined)
    return joined


def validate_beat_set(store, set_id: int) -> list[str]:
    """Problems of a stored beat map (empty when it is valid); NotFound for an unknown id."""
    store.get_beat_set(set_id)
    problems: list[str] = []
    beats = store.beats(set_id)
    if not beats:
        problems.append(f"beat map {set_id} has no beats")
    for b in beats:
        problems += spatial.geometry_problems(b.code, b.geometry)
    return problems


def export_beat_set(store, set_id: int | None, path: str | Path) -> int:
    """Write a beat map (default: the active one) as GeoJSON in EPSG:4326; returns beats."""
    set_id = set_id if set_id is not None else store.active_beat_set().id
    store.get_beat_set(set_id)  # NotFound for an unknown id
    beats = store.beats(set_id)
    frame = gpd.GeoDataFrame(
        {"beat": [b.code for b in beats], "sector": [b.sector for b in beats],
         "precinct": [b.precinct for b in beats]},
        geometry=[b.geometry for b in beats], crs=4326)
    Path(path).write_text(frame.to_json(drop_id=True))
    return len(beats)


@dataclass
class BeatMapDiff:
    """What changes between two beat maps (`old` -> `new`)."""

    old_id: int
    new_id: int
    added: list[str]
    removed: list[str]
    reshaped: list[tuple[str, float]]  # (code, share of area changed)
    unchanged: list[str]


def diff_beat_sets(store, new_id: int, old_id: int | None = None, *,
                   tolerance: float = 0.001) -> BeatMapDiff:
    """Beats added, removed and reshaped (area changed above `tolerance`) against the active map."""
    old_id = old_id if old_id is not None else store.active_beat_set().id
    store.get_beat_set(new_id)
    old = {b.code: b.geometry for b in store.beats(old_id)}
    new = {b.code: b.geometry for b in store.beats(new_id)}
    reshaped, unchanged = [], []
    for code in sorted(old.keys() & new.keys()):
        a, b = old[code], new[code]
        changed = a.symmetric_difference(b).area / max(a.area, b.area)
        (reshaped.append((code, changed)) if changed > tolerance else unchanged.append(code))
    return BeatMapDiff(old_id, new_id, added=sorted(new.keys() - old.keys()),
                       removed=sorted(old.keys() - new.keys()), reshaped=reshaped,
                       unchanged=unchanged)


def schedule_beat_map(store, set_id: int, effective: date, *, actor: str = "cli",
                      now: datetime) -> None:
    """Publish a draft on a date: the scheduler activates it when the date comes."""
    problems = validate_beat_set(store, set_id)
    if problems:
        raise InvalidBoundary(f"beat map {set_id} does not validate", problems=problems)
    store.schedule_beat_set(set_id, effective)
    store.audit(actor, "beats.schedule", f"beat_set:{set_id}", {"effective": effective}, now=now)


def rollback_beat_map(store, *, actor: str = "cli", now: datetime) -> int:
    """Republish the most recently retired beat map; returns its id."""
    previous = store.last_retired_beat_set_id()
    if previous is None:
        raise NotFound("No retired beat map to roll back to.")
    publish_beat_map(store, previous, actor=actor, now=now)
    store.audit(actor, "beats.rollback", f"beat_set:{previous}", now=now)
    return previous
