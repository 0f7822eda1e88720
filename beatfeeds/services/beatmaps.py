"""Load, validate and publish versioned beat maps."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import shapely
import shapely.geometry

from beatfeeds.core.errors import InvalidBoundary, NotFound, UnusableFile
from beatfeeds.core.models import Beat, BoundaryChange, FeedEntry
from beatfeeds.geo import beatfiles, edits, spatial

log = logging.getLogger(__name__)

CODE_FIELD_GUESSES = ("beat", "BEAT", "Beat", "beat_num", "BEAT_NUM", "name", "NAME", "Name")
SECTOR_FIELD_GUESSES = ("sector", "SECTOR", "Sector")
PRECINCT_FIELD_GUESSES = ("precinct", "PRECINCT", "Precinct", "first_precinct", "FIRST_PRECINCT")
BEAT_CHANGES = ("added", "removed", "renamed", "reshaped")  # kinds of a beat's change
AREA_CHANGES = ("sector", "precinct")  # kinds of the changes recorded for the areas of beats


@dataclass
class LoadedBeatMap:
    beats: list[Beat]
    problems: list[str]
    skipped: list[str]
    code_field: str
    crs: str


def _guess(
    columns, given: str | None, guesses: tuple[str, ...], what: str, required: bool
) -> str | None:
    if given:
        if given not in columns:
            raise UnusableFile(
                f"The file has no {what} field {given!r}; fields are: "
                f"{', '.join(c for c in columns if c != 'geometry')}."
            )
        return given
    for g in guesses:
        if g in columns:
            return g
    if required:
        raise UnusableFile(
            f"Cannot tell which field holds the {what}; pass it explicitly. "
            f"Fields are: {', '.join(c for c in columns if c != 'geometry')}."
        )
    return None


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

    The file is opened only as the format its name declares (`beatfiles`); `protected` files
    (the app's own database) are refused. Features without a beat code are skipped (and
    reported in `skipped`); problems are never fixed silently.
    """
    frame = beatfiles.read_frame(path, protected=protected)
    code_f = _guess(frame.columns, code_field, CODE_FIELD_GUESSES, "beat code", True)
    sector_f = _guess(frame.columns, sector_field, SECTOR_FIELD_GUESSES, "sector", False)
    precinct_f = _guess(frame.columns, precinct_field, PRECINCT_FIELD_GUESSES, "precinct", False)

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

    beats: list[Beat] = []
    problems: list[str] = []
    skipped: list[str] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(frame.itertuples(index=False), start=1):
        raw_code = getattr(row, code_f)
        code = (
            ""
            if raw_code is None or (isinstance(raw_code, float) and np.isnan(raw_code))
            else str(raw_code).strip()
        )
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
        if geom is not None and shapely.has_z(geom):  # KML and some shapefiles carry Z
            geom = shapely.force_2d(geom)
        problems += spatial.geometry_problems(code, geom)
        beats.append(
            Beat(
                code=code,
                sector=_text(row, sector_f),
                precinct=_text(row, precinct_f),
                geometry=geom,
            )
        )
    if not beats:
        problems.append("the file holds no beats")
    return LoadedBeatMap(
        beats=beats, problems=problems, skipped=skipped, code_field=code_f, crs=crs
    )


def _text(row, fieldname: str | None) -> str | None:
    v = getattr(row, fieldname) if fieldname else None
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()


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
    frame = beatfiles.read_frame(path, protected=protected)
    fields = [c for c in frame.columns if c != "geometry"]
    samples = {}
    for f in fields:
        values = [str(v) for v in frame[f].dropna().unique()[:6]]
        samples[f] = values
    guesses = {
        "code": next((g for g in CODE_FIELD_GUESSES if g in fields), None),
        "sector": next((g for g in SECTOR_FIELD_GUESSES if g in fields), None),
        "precinct": next((g for g in PRECINCT_FIELD_GUESSES if g in fields), None),
    }
    crs = frame.crs.to_string() if frame.crs is not None else "none (read as EPSG:4326)"
    return BeatMapPreview(len(frame), crs, fields, samples, guesses)


def load_beat_map(
    store,
    path: str | Path,
    *,
    code_field: str | None = None,
    sector_field: str | None = None,
    precinct_field: str | None = None,
    name: str | None = None,
    effective: date | None = None,
    actor: str = "cli",
    now: datetime,
) -> int:
    """Validate a beat map file and store it as a draft; returns the new map's id."""
    loaded = read_beat_map(
        path,
        code_field=code_field,
        sector_field=sector_field,
        precinct_field=precinct_field,
        protected=store.database_files(),
    )
    if loaded.problems:
        raise InvalidBoundary(
            f"{Path(path).name} has {len(loaded.problems)} problem(s)", problems=loaded.problems
        )
    set_id = store.create_beat_set(
        name or Path(path).stem,
        loaded.beats,
        effective_date=effective,
        source_filename=Path(path).name,
        created_by=actor,
        now=now,
    )
    store.audit(
        actor,
        "beats.load",
        f"beat_set:{set_id}",
        {
            "file": Path(path).name,
            "beats": len(loaded.beats),
            "crs": loaded.crs,
            "skipped": loaded.skipped,
        },
        now=now,
    )
    log.info("loaded beat map %s from %s: %d beats", set_id, Path(path).name, len(loaded.beats))
    return set_id


def publish_beat_map(
    store,
    set_id: int,
    *,
    actor: str = "cli",
    now: datetime,
    tolerances: Tolerances | None = None,
    rollback: bool = False,
) -> int:
    """Make a beat map active: join every located incident to it, then switch. Returns joined."""
    # A rollback restores a map that was in use: its outline is not checked against the
    # map being undone, or an undo could be refused for the very gap it should restore.
    problems = blocking(validate_beat_set(store, set_id, tolerances, replacing_active=not rollback))
    if problems:
        raise InvalidBoundary(
            f"beat map {set_id} does not validate", problems=[str(p) for p in problems]
        )
    before = store.active_beat_set_id()
    changes = (
        boundary_changes(store, before, set_id, tolerances or Tolerances())
        if before is not None
        else []
    )
    # Sectors, precincts and the city hear of the redraw too (stored with the beat changes).
    announced = (
        area_changes(store.beats(before), store.beats(set_id), changes)
        + [city_change(store.get_beat_set(set_id), changes, rollback=rollback)]
        if before is not None
        else []
    )
    index = spatial.BeatIndex(store.beats(set_id))
    joined = 0
    for batch in store.located_incidents_missing_join(set_id):
        ids = [b[0] for b in batch]
        codes = index.assign(np.array([b[1] for b in batch]), np.array([b[2] for b in batch]))
        store.save_incident_beats(set_id, zip(ids, codes, strict=True))
        joined += len(batch)
    previous = store.publish_beat_set(set_id, now=now)
    store.record_boundary_changes(set_id, previous, changes + announced, now=now)
    store.audit(
        actor,
        "beats.publish",
        f"beat_set:{set_id}",
        {
            "previous": previous,
            "joined": joined,
            "changes": {k: [c.code for c in changes if c.kind == k] for k in BEAT_CHANGES},
        },
        now=now,
    )
    log.info("published beat map %s (previous %s); joined %d incidents", set_id, previous, joined)
    return joined


@dataclass(frozen=True)
class Tolerances:
    """Validation and diff thresholds (areas in square metres)."""

    overlap: float = 100.0
    gap: float = 100.0
    sliver: float = 2000.0
    reshape: float = 0.001

    @classmethod
    def from_settings(cls, settings) -> Tolerances:
        return cls(
            settings.beat_overlap_tolerance,
            settings.beat_gap_tolerance,
            settings.beat_sliver_area,
            settings.beat_reshape_tolerance,
        )


@dataclass
class BoundaryProblem:
    """One validation finding: errors block publishing, warnings do not."""

    severity: str  # error / warning
    kind: str  # invalid / duplicate / overlap / gap / sliver / empty
    codes: list[str]
    message: str
    lon: float | None = None
    lat: float | None = None

    def __str__(self) -> str:
        where = f" at {self.lat:.5f}, {self.lon:.5f}" if self.lon is not None else ""
        return f"{self.severity}: {self.message}{where}"

    def as_dict(self) -> dict:
        return {
            "severity": self.severity,
            "kind": self.kind,
            "codes": self.codes,
            "message": self.message,
            "lon": self.lon,
            "lat": self.lat,
        }


def _parts(geom) -> list:
    return [g for g in getattr(geom, "geoms", [geom]) if not g.is_empty and g.area > 0]


def check_beats(
    beats: list[Beat], outline: list[Beat] | None, tol: Tolerances
) -> list[BoundaryProblem]:
    """Validate beat polygons: geometry, duplicate codes, overlaps, gaps and slivers.

    Areas are measured in metres in the UTM zone of the map. Gaps are pieces of the
    `outline` beats' union (or, without one, of this map's own outer boundary) that no beat
    covers. Each problem names the beats involved and a point to show it at.
    """
    import geopandas as gpd  # imported where used: it adds 0.3 s to every CLI start-up
    import pyproj

    out: list[BoundaryProblem] = []
    if not beats:
        return [BoundaryProblem("error", "empty", [], "the beat map has no beats")]
    good: list[Beat] = []
    for b in beats:
        reasons = spatial.geometry_problems(b.code, b.geometry)
        if not reasons:
            good.append(b)
            continue
        lon = lat = None
        m = re.search(r"\[(-?[\d.e+-]+) (-?[\d.e+-]+)\]", reasons[0])
        if m:
            lon, lat = float(m.group(1)), float(m.group(2))
        elif b.geometry is not None and not b.geometry.is_empty:
            c = b.geometry.representative_point() if b.geometry.is_valid else b.geometry.centroid
            lon, lat = c.x, c.y
        out.append(BoundaryProblem("error", "invalid", [b.code], reasons[0], lon, lat))
    seen: dict[str, str] = {}
    for b in beats:
        key = b.code.strip().upper()
        if key in seen:
            p = b.geometry.representative_point() if b.code in {g.code for g in good} else None
            out.append(
                BoundaryProblem(
                    "error",
                    "duplicate",
                    [seen[key], b.code],
                    f"beats {seen[key]} and {b.code}: the same code (codes are not case-sensitive "
                    f"in addresses)",
                    p.x if p else None,
                    p.y if p else None,
                )
            )
        seen.setdefault(key, b.code)
    if not good:
        return out

    wgs = gpd.GeoSeries([b.geometry for b in good], crs=4326)
    utm = wgs.estimate_utm_crs()
    back = pyproj.Transformer.from_crs(utm, 4326, always_xy=True)
    geoms = np.array(wgs.to_crs(utm).values, dtype=object)
    codes = [b.code for b in good]

    def at(geom) -> tuple[float, float]:
        p = geom.representative_point()
        return back.transform(p.x, p.y)

    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    for i, j in zip(left, right, strict=True):
        if i >= j:
            continue
        inter = geoms[i].intersection(geoms[j])
        if inter.area > tol.overlap:
            out.append(
                BoundaryProblem(
                    "error",
                    "overlap",
                    [codes[i], codes[j]],
                    f"beats {codes[i]} and {codes[j]} overlap by {inter.area:,.0f} m²",
                    *at(inter),
                )
            )

    union = shapely.union_all(geoms)
    if outline:
        ref = gpd.GeoSeries(
            [b.geometry for b in outline if b.geometry is not None], crs=4326
        ).to_crs(utm)
        ref = shapely.union_all(ref.make_valid().values)
    else:
        ref = shapely.union_all([shapely.Polygon(p.exterior) for p in _parts(union)])
    for gap in _parts(ref.difference(union)):
        if gap.area > tol.gap:
            near = sorted({codes[k] for k in tree.query(gap.buffer(1.0), predicate="intersects")})
            out.append(
                BoundaryProblem(
                    "error",
                    "gap",
                    near,
                    f"{gap.area:,.0f} m² inside the map's outline is in no beat"
                    + (f" (next to {', '.join(near)})" if near else ""),
                    *at(gap),
                )
            )

    for code, geom in zip(codes, geoms, strict=True):
        for part in _parts(geom):
            # Mean width 2A/P: a long thin strip is a sliver even when its area is not tiny.
            if part.area < tol.sliver or 2 * part.area / part.length < 5.0:
                out.append(
                    BoundaryProblem(
                        "warning",
                        "sliver",
                        [code],
                        f"beat {code} has a sliver of {part.area:,.0f} m²",
                        *at(part),
                    )
                )
    return sorted(out, key=lambda p: (p.severity != "error", p.kind, p.codes))


def validate_beat_set(
    store, set_id: int, tolerances: Tolerances | None = None, *, replacing_active: bool = True
) -> list[BoundaryProblem]:
    """Problems of a stored beat map, errors first; NotFound for an unknown id.

    Gaps are looked for inside the outline of the map it would replace (the active one);
    the active map itself, or the first map loaded, is checked against its own outline.
    """
    store.get_beat_set(set_id)
    active = store.active_beat_set_id()
    outline = (
        store.beats(active)
        if replacing_active and active is not None and active != set_id
        else None
    )
    return check_beats(store.beats(set_id), outline, tolerances or Tolerances())


def blocking(problems: list[BoundaryProblem]) -> list[BoundaryProblem]:
    return [p for p in problems if p.severity == "error"]


def edit_beat_map(store, set_id: int, op: dict, *, actor: str, now: datetime) -> int:
    """Apply one map edit to a draft; editing the active (or any non-draft) map first copies
    it into a new draft. Returns the id of the draft that was edited."""
    bs = store.get_beat_set(set_id)
    if bs.status != "draft":
        set_id = store.copy_beat_set(set_id, f"{bs.name} (edited)", created_by=actor, now=now)
        store.audit(actor, "beats.copy", f"beat_set:{set_id}", {"from": bs.id}, now=now)
    edit = edits.apply_edit(store.beats(set_id), op)
    store.replace_beats(set_id, edit.remove, edit.add)
    store.audit(
        actor,
        "beats.edit",
        f"beat_set:{set_id}",
        {"op": op.get("op"), "summary": edit.summary},
        now=now,
    )
    log.info("beat map %s: %s", set_id, edit.summary)
    return set_id


def export_beat_set(store, set_id: int | None, path: str | Path) -> int:
    """Write a beat map (default: the active one) as GeoJSON in EPSG:4326; returns beats."""
    set_id = set_id if set_id is not None else store.active_beat_set().id
    store.get_beat_set(set_id)  # NotFound for an unknown id
    beats = store.beats(set_id)
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
    return len(beats)


@dataclass
class IncidentMove:
    """A recent incident that would change beat (staff-only: no coordinates kept here)."""

    uid: str
    event_time: datetime
    block_address: str
    category: str
    old: str | None
    new: str | None


@dataclass
class BeatMapDiff:
    """What changes between two beat maps (`old` -> `new`)."""

    old_id: int
    new_id: int
    added: list[str]
    removed: list[str]
    reshaped: list[tuple[str, float]]  # (code, share of area changed)
    unchanged: list[str]
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (old code, new code)
    moves: list[IncidentMove] = field(default_factory=list)
    since: datetime | None = None
    # What sector and precinct feeds would announce on publication: (area label, text).
    areas: list[tuple[str, str]] = field(default_factory=list)

    @property
    def move_counts(self) -> list[tuple[str | None, str | None, int]]:
        """(old beat, new beat, incidents), most first."""
        counts: dict[tuple, int] = {}
        for m in self.moves:
            counts[(m.old, m.new)] = counts.get((m.old, m.new), 0) + 1
        return sorted(
            ((a, b, n) for (a, b), n in counts.items()),
            key=lambda x: (-x[2], x[0] or "", x[1] or ""),
        )


def _changed_share(a, b) -> float:
    return a.symmetric_difference(b).area / max(a.area, b.area)


def diff_beats(old: list[Beat], new: list[Beat], tolerance: float) -> tuple:
    """(added, removed, reshaped, unchanged, renamed) between two lists of beats.

    A removed beat whose polygon is (within `tolerance`) the polygon of an added one was
    renamed, not removed.
    """
    o = {b.code: b.geometry for b in old}
    n = {b.code: b.geometry for b in new}
    reshaped, unchanged = [], []
    for code in sorted(o.keys() & n.keys()):
        changed = _changed_share(o[code], n[code])
        (reshaped.append((code, changed)) if changed > tolerance else unchanged.append(code))
    added, removed = sorted(n.keys() - o.keys()), sorted(o.keys() - n.keys())
    renamed = []
    for code in list(removed):
        for other in added:
            if o[code].intersects(n[other]) and _changed_share(o[code], n[other]) <= tolerance:
                renamed.append((code, other))
                removed.remove(code)
                added.remove(other)
                break
    return added, removed, reshaped, unchanged, renamed


def diff_beat_sets(
    store,
    new_id: int,
    old_id: int | None = None,
    *,
    tolerance: float = 0.001,
    since: datetime | None = None,
) -> BeatMapDiff:
    """Beats added, removed, renamed and reshaped (area changed above `tolerance`) against
    the active map; with `since`, also the incidents from then on that would change beat."""
    old_id = old_id if old_id is not None else store.active_beat_set().id
    store.get_beat_set(new_id)
    store.get_beat_set(old_id)
    old, new = store.beats(old_id), store.beats(new_id)
    added, removed, reshaped, unchanged, renamed = diff_beats(old, new, tolerance)
    moves: list[IncidentMove] = []
    if since is not None:
        ids, lon, lat, before = store.recent_incident_points(old_id, since)
        if len(ids):
            unjoined = np.array([c is None for c in before])
            if unjoined.any():  # not joined to the old map (it was a draft then): join now
                before[unjoined] = spatial.BeatIndex(old).assign(lon[unjoined], lat[unjoined])
            after = spatial.BeatIndex(new).assign(lon, lat)
            renames = dict(renamed)
            moved = np.array(
                [a != b and renames.get(a) != b for a, b in zip(before, after, strict=True)],
                dtype=bool,
            )
            code_of = {
                int(i): (a, b)
                for i, a, b in zip(ids[moved], before[moved], after[moved], strict=True)
            }
            for i, uid, when, block, category in store.incident_summaries(ids[moved]):
                moves.append(IncidentMove(uid, when, block, category, *code_of[i]))
    return BeatMapDiff(
        old_id,
        new_id,
        added=added,
        removed=removed,
        reshaped=reshaped,
        unchanged=unchanged,
        renamed=renamed,
        moves=moves,
        since=since,
        areas=_area_preview(
            old, new, new_id, _beat_changes(old, new, added, removed, reshaped, renamed)
        ),
    )


def _area_preview(
    old: list[Beat], new: list[Beat], new_id: int, changes: list[BoundaryChange]
) -> list[tuple[str, str]]:
    """The entries sector and precinct feeds would carry if `new_id` were published."""
    from beatfeeds.publish.feeds import area_label  # feeds does not import this module

    out = []
    for c in area_changes(old, new, changes):
        c = replace(c, beat_set_id=new_id)
        code = c.new_codes[0] if _change_of(c) == "renamed" else c.code
        text = _area_change_text(c, code)
        if text:
            out.append((area_label(c.kind, code), text))
    return out


def successors(old_geom, new: list[Beat]) -> list[str]:
    """Beats of a new map that took over a meaningful part (over 1%) of an old polygon."""
    out = []
    for b in new:
        if b.geometry.intersects(old_geom):
            share = b.geometry.intersection(old_geom).area / old_geom.area
            if share > 0.01:
                out.append((share, b.code))
    return [c for _, c in sorted(out, key=lambda x: (-x[0], x[1]))]


def boundary_changes(
    store, old_id: int, new_id: int, tolerances: Tolerances
) -> list[BoundaryChange]:
    """The per-beat changes publishing `new_id` in place of `old_id` makes."""
    old, new = store.beats(old_id), store.beats(new_id)
    added, removed, reshaped, _, renamed = diff_beats(old, new, tolerances.reshape)
    return _beat_changes(old, new, added, removed, reshaped, renamed)


def _beat_changes(
    old: list[Beat], new: list[Beat], added, removed, reshaped, renamed
) -> list[BoundaryChange]:
    by_code = {b.code: b.geometry for b in old}
    return (
        [BoundaryChange("added", c) for c in added]
        + [BoundaryChange("removed", c, successors(by_code[c], new)) for c in removed]
        + [BoundaryChange("renamed", a, [b]) for a, b in renamed]
        + [BoundaryChange("reshaped", c, share=share) for c, share in reshaped]
    )


def retired_beat(store, code: str) -> BoundaryChange | None:
    """Why a beat code that is not in the active map once was: its last rename or removal.

    Returns None when the code never existed or came back since.
    """
    wanted = code.upper()
    for change in store.boundary_changes(code=code, kinds=BEAT_CHANGES) or store.boundary_changes(
        code=wanted, kinds=BEAT_CHANGES
    ):
        if change.code.upper() == wanted and change.kind in ("renamed", "removed"):
            return change
        if change.kind in ("added", "renamed") and wanted in (
            x.upper() for x in change.new_codes + [change.code]
        ):
            return None
    return None


def beat_system_entries(store, code: str, *, now: datetime) -> list[FeedEntry]:
    """Entries a beat's feed carries about its own boundary: each change published for it."""
    out = []
    for c in store.boundary_changes(code=code, until=now, kinds=BEAT_CHANGES):
        text = _change_text(c, code)
        if text is None:
            continue
        out.append(
            FeedEntry(
                uid=f"boundary{c.id}",
                title=text,
                category="boundary-change",
                category_text="Beat boundary change",
                description=text,
                block_address="",
                event_time=c.at,
                updated_at=c.at,
                publish_at=c.at,
                beat=code,
                source="beat-map",
                external_id=f"change/{c.id}",
            )
        )
    return out


def with_beat_system_entries(
    store, entries: list[FeedEntry], code: str, *, now: datetime, limit: int
) -> list[FeedEntry]:
    """A beat's incident entries merged with its boundary-change entries, newest first."""
    system = beat_system_entries(store, code, now=now)
    if not system:
        return entries
    merged = sorted(entries + system, key=lambda e: e.event_time, reverse=True)
    return merged[:limit]


def system_entry(store, uid: str) -> FeedEntry | None:
    """A boundary-change entry by its uid (`boundary<N>`), for its page."""
    if not uid.startswith("boundary") or not uid[8:].isdigit():
        return None
    for c in store.boundary_changes(change_id=int(uid[8:])):
        if c.kind in AREA_CHANGES:
            return _area_entry(c, c.new_codes[0] if _change_of(c) == "renamed" else c.code)
        if c.kind == "city":
            return _city_entry(c)
        code = c.new_codes[0] if c.kind == "renamed" else c.code
        return next((e for e in beat_system_entries(store, code, now=c.at) if e.uid == uid), None)
    return None


def _change_text(c: BoundaryChange, code: str) -> str | None:
    if c.kind == "reshaped" and c.code == code:
        return (
            f"The boundary of beat {code} changed ({c.share:.1%} of its area) with beat "
            f"map {c.beat_set_id}."
        )
    if c.kind == "added" and c.code == code:
        return f"Beat {code} was created with beat map {c.beat_set_id}."
    if c.kind == "renamed" and c.code == code:
        return f"Beat {code} is now beat {c.new_codes[0]}; its feed moved there."
    if c.kind == "renamed" and code in c.new_codes:
        return f"Beat {c.code} was renamed {code} with beat map {c.beat_set_id}."
    if c.kind == "removed" and c.code == code:
        names = ", ".join(c.new_codes) or "no beat"
        return (
            f"Beat {code} no longer exists since beat map {c.beat_set_id}. Its area now "
            f"belongs to {names}: subscribe to their feeds instead."
        )
    return None


# ---- sectors, precincts and the city after a redraw ------------------------------------------
def _members(beats: list[Beat], kind: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for b in beats:
        if getattr(b, kind):
            out.setdefault(getattr(b, kind), set()).add(b.code)
    return out


def area_changes(
    old: list[Beat], new: list[Beat], changes: list[BoundaryChange]
) -> list[BoundaryChange]:
    """What a publication changes for each sector and precinct, from its beats' changes.

    An area changed when it gained or lost a beat or one of its beats was renamed or
    reshaped. An area whose code is gone and whose beats all went to a single area code that
    the old map did not have was renamed (its addresses redirect there); gone otherwise, it
    was removed, naming the areas its beats went to.
    """
    renames = {c.code: c.new_codes[0] for c in changes if c.kind == "renamed"}
    reshaped = {c.code for c in changes if c.kind == "reshaped"}
    gone_to = {c.code: list(c.new_codes) for c in changes if c.kind == "removed"}
    out = []
    for kind in AREA_CHANGES:
        before, after = _members(old, kind), _members(new, kind)
        area_of = {b.code: getattr(b, kind) for b in new if getattr(b, kind)}

        def destinations(beat: str, area_of=area_of) -> set[str]:
            """Areas of the new map holding what was `beat` (its successors' if removed)."""
            now = renames.get(beat, beat)
            if now in area_of:
                return {area_of[now]}
            return {area_of[s] for s in gone_to.get(beat, []) if s in area_of}

        renamed_to = {}
        for code, was in before.items():
            if code not in after:
                dest = set().union(*(destinations(b) for b in was))
                if len(dest) == 1 and next(iter(dest)) not in before:
                    renamed_to[code] = next(iter(dest))
        for code in sorted(before.keys() | after.keys()):
            if code not in before and code in renamed_to.values():
                continue  # announced as the rename
            was = before.get(code, set())
            now_code = renamed_to.get(code, code)
            now = after.get(now_code, set())
            carried = {renames.get(b, b) for b in was}
            lost = sorted(b for b in was if renames.get(b, b) not in now)
            detail = {
                "gained": sorted(now - carried),
                "moved": {b: sorted(destinations(b)) for b in lost if b not in gone_to},
                "removed": {b: gone_to[b] for b in lost if b in gone_to},
                "renamed": sorted([a, renames[a]] for a in was if renames.get(a) in now),
                "reshaped": sorted(b for b in was & now if b in reshaped),
            }
            if code in renamed_to:
                change, codes = "renamed", [now_code]
            elif not was:
                change, codes = "added", []
            elif not now:
                change, codes = "removed", sorted(set().union(*(destinations(b) for b in was)))
            elif any(detail.values()):
                change, codes = "changed", []
            else:
                continue
            out.append(BoundaryChange(kind, code, codes, detail={"change": change, **detail}))
    return out


def city_change(new_set, changes: list[BoundaryChange], *, rollback: bool) -> BoundaryChange:
    """The city feed's one entry about a publication: which map, and what changed."""
    detail = {
        "map": new_set.name,
        "rollback": rollback,
        **{
            k: sorted(c.code for c in changes if c.kind == k)
            for k in ("added", "removed", "reshaped")
        },
        "renamed": sorted([c.code, c.new_codes[0]] for c in changes if c.kind == "renamed"),
    }
    return BoundaryChange("city", "city", [], detail=detail)


def _change_of(c: BoundaryChange) -> str:
    return (c.detail or {}).get("change", "")


def retired_area(store, kind: str, code: str) -> BoundaryChange | None:
    """Why a sector or precinct code that is not in the active map once was: its last
    rename or removal; None when it never existed or came back since."""
    wanted = code.upper()
    for c in store.boundary_changes(kinds=(kind,)):  # newest first
        change = _change_of(c)
        if c.code.upper() == wanted and change in ("renamed", "removed"):
            return c
        if (change == "added" and c.code.upper() == wanted) or (
            change == "renamed" and wanted in (x.upper() for x in c.new_codes)
        ):
            return None
    return None


def _beats(codes) -> str:
    codes = list(codes)
    return ("beat " if len(codes) == 1 else "beats ") + ", ".join(codes)


def _area_change_text(c: BoundaryChange, code: str) -> str | None:
    """The entry an area's feed carries about a change, or None when it is not about it."""
    from beatfeeds.publish.feeds import area_label  # feeds does not import this module

    d = c.detail or {}
    change = _change_of(c)
    label = area_label(c.kind, code)
    if change == "removed" and c.code == code:
        where = ", ".join(area_label(c.kind, x) for x in c.new_codes) or "no " + c.kind
        return (
            f"{label} no longer exists since beat map {c.beat_set_id}. Its beats now "
            f"belong to {where}: subscribe to their feeds instead."
        )
    parts = []
    if change == "renamed" and code in c.new_codes:
        parts.append(
            f"{area_label(c.kind, c.code)} is now {label} (beat map {c.beat_set_id}); "
            f"its pages and feeds moved here"
        )
    elif change == "added" and c.code == code:
        members = d.get("gained", [])
        return f"{label} was created with beat map {c.beat_set_id}" + (
            f"; it includes {_beats(members)}." if members else "."
        )
    elif not (change == "changed" and c.code == code):
        return None
    if d.get("gained"):
        parts.append(f"{label} now includes {_beats(d['gained'])}")
    for beat, areas in sorted(d.get("moved", {}).items()):
        parts.append(
            f"beat {beat} moved to "
            + (" and ".join(area_label(c.kind, a) for a in areas) or "no " + c.kind)
        )
    for beat, heirs in sorted(d.get("removed", {}).items()):
        parts.append(
            f"beat {beat} was removed"
            + (f" (its area now belongs to {_beats(heirs)})" if heirs else "")
        )
    for a, b in d.get("renamed", []):
        parts.append(f"beat {a} was renamed {b}")
    if d.get("reshaped"):
        verb = "was" if len(d["reshaped"]) == 1 else "were"
        parts.append(f"{_beats(d['reshaped'])} {verb} reshaped")
    if not parts:
        return None
    text = "; ".join(parts) + "."
    return text if change == "renamed" or text.startswith(label) else f"{label}: {text}"


def _city_text(c: BoundaryChange) -> str:
    d = c.detail or {}
    name = f" ({d['map']})" if d.get("map") else ""
    head = (
        f"Beat map {c.beat_set_id}{name} is in effect again (a rollback)"
        if d.get("rollback")
        else f"A new beat map was published: beat map {c.beat_set_id}{name}"
    )
    parts = [
        f"{_beats(d[k])} {'was' if len(d[k]) == 1 else 'were'} {k}"
        for k in ("added", "removed", "reshaped")
        if d.get(k)
    ]
    parts += [f"beat {a} was renamed {b}" for a, b in d.get("renamed", [])]
    return head + (": " + "; ".join(parts) if parts else "; no beat changed") + "."


def _system_entry(c: BoundaryChange, text: str, **where) -> FeedEntry:
    return FeedEntry(
        uid=f"boundary{c.id}",
        title=text,
        category="boundary-change",
        category_text="Beat boundary change",
        description=text,
        block_address="",
        event_time=c.at,
        updated_at=c.at,
        publish_at=c.at,
        source="beat-map",
        external_id=f"change/{c.id}",
        **where,
    )


def _area_entry(c: BoundaryChange, code: str) -> FeedEntry | None:
    text = _area_change_text(c, code)
    if text is None:
        return None
    path = {"sector": "/sectors/", "precinct": "/precincts/"}[c.kind] + quote(code, safe="")
    return _system_entry(c, text, link=path, **{c.kind: code})


def _city_entry(c: BoundaryChange) -> FeedEntry:
    return _system_entry(c, _city_text(c), link="/")


def area_system_entries(store, kind: str, code: str | None, *, now: datetime) -> list[FeedEntry]:
    """The boundary-change entries of any area's feed, newest first: a beat's changes; the
    redraws that changed a sector or precinct; every publication for the city."""
    if kind == "beat":
        return beat_system_entries(store, code, now=now)
    if kind == "city":
        return [_city_entry(c) for c in store.boundary_changes(kinds=("city",), until=now)]
    found = (
        _area_entry(c, code) for c in store.boundary_changes(code=code, until=now, kinds=(kind,))
    )
    return [e for e in found if e is not None]


def with_system_entries(
    store, entries: list[FeedEntry], kind: str, code: str | None, *, now: datetime, limit: int
) -> list[FeedEntry]:
    """An area's entries merged with its boundary-change entries, newest first."""
    system = area_system_entries(store, kind, code, now=now)
    if not system:
        return entries
    merged = sorted(entries + system, key=lambda e: e.event_time, reverse=True)
    return merged[:limit]


def editor_geojson(store, set_id: int, tolerances: Tolerances) -> dict:
    """A map for the editor: its beats, each with its change against the active map, the
    active map's beats it removes, and its validation problems."""
    bs = store.get_beat_set(set_id)
    beats = store.beats(set_id)
    active = store.active_beat_set_id()
    change: dict[str, str] = {}
    removed: list[Beat] = []
    if active is not None and active != set_id:
        old = store.beats(active)
        added, gone, reshaped, _, renamed = diff_beats(old, beats, tolerances.reshape)
        change = (
            {c: "added" for c in added}
            | {c: "reshaped" for c, _ in reshaped}
            | {b: "renamed" for _, b in renamed}
        )
        removed = [b for b in old if b.code in gone]
    problems = validate_beat_set(store, set_id, tolerances)

    def feature(b: Beat, kind: str) -> dict:
        return {
            "type": "Feature",
            "id": b.code,
            "properties": {
                "code": b.code,
                "sector": b.sector,
                "precinct": b.precinct,
                "change": kind,
            },
            "geometry": shapely.geometry.mapping(b.geometry),
        }

    return {
        "beat_set": {"id": bs.id, "name": bs.name, "status": bs.status, "active": active},
        "beats": {
            "type": "FeatureCollection",
            "features": [feature(b, change.get(b.code, "unchanged")) for b in beats],
        },
        "removed": {
            "type": "FeatureCollection",
            "features": [feature(b, "removed") for b in removed],
        },
        "problems": [p.as_dict() for p in problems],
    }


def area_geojson(store, set_id: int, kind: str) -> dict:
    """A beat map's beats, or its sectors or precincts dissolved from them, as GeoJSON."""
    store.get_beat_set(set_id)
    beats = store.beats(set_id)
    if kind == "beats":
        feats = [
            ({"beat": b.code, "sector": b.sector, "precinct": b.precinct}, b.geometry)
            for b in beats
        ]
    elif kind in ("sectors", "precincts"):
        key = kind[:-1]
        groups = spatial.dissolve(beats, key)
        precinct_of = {b.sector: b.precinct for b in beats}
        feats = [
            (
                (
                    {"sector": k, "precinct": precinct_of.get(k)}
                    if key == "sector"
                    else {"precinct": k}
                ),
                g,
            )
            for k, g in sorted(groups.items())
        ]
    else:
        raise NotFound(f"No such layer {kind!r}.")
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(g)}
            for props, g in feats
        ],
    }


def schedule_beat_map(
    store,
    set_id: int,
    effective: date,
    *,
    actor: str = "cli",
    now: datetime,
    tolerances: Tolerances | None = None,
) -> None:
    """Publish a draft on a date: the scheduler activates it when the date comes."""
    problems = blocking(validate_beat_set(store, set_id, tolerances))
    if problems:
        raise InvalidBoundary(
            f"beat map {set_id} does not validate", problems=[str(p) for p in problems]
        )
    store.schedule_beat_set(set_id, effective)
    store.audit(actor, "beats.schedule", f"beat_set:{set_id}", {"effective": effective}, now=now)


def rollback_beat_map(
    store, *, actor: str = "cli", now: datetime, tolerances: Tolerances | None = None
) -> int:
    """Republish the most recently retired beat map; returns its id."""
    previous = store.last_retired_beat_set_id()
    if previous is None:
        raise NotFound("No retired beat map to roll back to.")
    publish_beat_map(store, previous, actor=actor, now=now, tolerances=tolerances, rollback=True)
    store.audit(actor, "beats.rollback", f"beat_set:{previous}", now=now)
    return previous
