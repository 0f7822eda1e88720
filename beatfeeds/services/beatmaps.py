"""Beat maps with the store: load as a draft, validate, edit, diff, publish, schedule, roll back.

The geometry lives in `geo` (files in `beatfiles`, checks in `checks`, the diff in `diff`,
edits in `edits`); this module is the workflow that stores, audits and announces it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import shapely
import shapely.geometry

from beatfeeds.core.areas import area_label
from beatfeeds.core.errors import Conflict, InvalidBoundary, NotFound
from beatfeeds.core.models import Beat, BoundaryChange, FeedEntry
from beatfeeds.geo import beatfiles, edits, spatial
from beatfeeds.geo.checks import BoundaryProblem, Tolerances, blocking, check_beats
from beatfeeds.geo.diff import (
    AREA_CHANGES,
    BEAT_CHANGES,
    BeatMapDiff,
    IncidentMove,
    area_changes,
    beat_changes,
    change_of,
    city_change,
    diff_beats,
    moved_incidents,
)
from beatfeeds.publish import boundary_entries

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)


@dataclass
class BeatMapLoad:
    """A beat map stored as a draft, with what the loader has to say about it."""

    set_id: int
    beats: int
    notes: list[str]  # fields used, parts merged, warnings (`LoadedBeatMap.notes`)


def load_beat_map(store: SQLStore, path: str | Path, **options) -> int:
    """Validate a beat map file and store it as a draft; returns the new map's id."""
    return load_beat_map_report(store, path, **options).set_id


def load_beat_map_report(
    store: SQLStore,
    path: str | Path,
    *,
    code_field: str | None = None,
    sector_field: str | None = None,
    precinct_field: str | None = None,
    name: str | None = None,
    effective: date | None = None,
    actor: str = "cli",
    now: datetime,
) -> BeatMapLoad:
    """Store a beat map file as a draft (each `*_field` a property or a template such as
    `'{DISTRICT}-{SECTOR}'`): its id and the loader's notes; InvalidBoundary lists problems."""
    loaded = beatfiles.read_beat_map(
        path,
        code_field=code_field,
        sector_field=sector_field,
        precinct_field=precinct_field,
        protected=store.db.database_files(),
    )
    if loaded.problems:
        raise InvalidBoundary(
            f"{Path(path).name} has {len(loaded.problems)} problem(s)", problems=loaded.problems
        )
    set_id = store.beatmaps.create_beat_set(
        name or Path(path).stem,
        loaded.beats,
        effective_date=effective,
        source_filename=Path(path).name,
        created_by=actor,
        now=now,
    )
    store.accounts.audit(
        actor,
        "beats.load",
        f"beat_set:{set_id}",
        {"file": Path(path).name, "beats": len(loaded.beats), "crs": loaded.crs}
        | {"skipped": loaded.skipped, "fields": {c.level: c.spec for c in loaded.fields}}
        | {"merged": loaded.merged, "warnings": loaded.warnings},
        now=now,
    )
    log.info("loaded beat map %s from %s: %d beats", set_id, Path(path).name, len(loaded.beats))
    return BeatMapLoad(set_id, len(loaded.beats), loaded.notes())


def publish_beat_map(
    store: SQLStore,
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
    before = store.beatmaps.active_beat_set_id()
    changes = (
        boundary_changes(store, before, set_id, tolerances or Tolerances())
        if before is not None
        else []
    )
    # Sectors, precincts and the city hear of the redraw too (stored with the beat changes).
    announced = (
        area_changes(store.beatmaps.beats(before), store.beatmaps.beats(set_id), changes)
        + [city_change(store.beatmaps.get_beat_set(set_id), changes, rollback=rollback)]
        if before is not None
        else []
    )
    index = spatial.BeatIndex(store.beatmaps.beats(set_id))
    joined = 0
    for batch in store.incidents.located_incidents_missing_join(set_id):
        ids = [b[0] for b in batch]
        codes = index.assign(np.array([b[1] for b in batch]), np.array([b[2] for b in batch]))
        store.incidents.save_incident_beats(set_id, zip(ids, codes, strict=True))
        joined += len(batch)
    # The switch, the boundary-change entries and the audit are one unit: a crash or an
    # error between them leaves the old map active with nothing recorded.
    with store.db.unit_of_work():
        previous = store.beatmaps.publish_beat_set(set_id, now=now)
        if previous != before:
            raise Conflict(
                "Another beat map was published while this one was being prepared; "
                "review the current map and publish again."
            )
        store.beatmaps.record_boundary_changes(set_id, previous, changes + announced, now=now)
        store.accounts.audit(
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
        if rollback:
            store.accounts.audit(actor, "beats.rollback", f"beat_set:{set_id}", now=now)
    log.info("published beat map %s (previous %s); joined %d incidents", set_id, previous, joined)
    return joined


def validate_beat_set(
    store: SQLStore,
    set_id: int,
    tolerances: Tolerances | None = None,
    *,
    replacing_active: bool = True,
) -> list[BoundaryProblem]:
    """Problems of a stored beat map, errors first; NotFound for an unknown id.

    Gaps are looked for inside the outline of the map it would replace (the active one);
    the active map itself, or the first map loaded, is checked against its own outline.
    """
    store.beatmaps.get_beat_set(set_id)
    active = store.beatmaps.active_beat_set_id()
    outline = (
        store.beatmaps.beats(active)
        if replacing_active and active is not None and active != set_id
        else None
    )
    return check_beats(store.beatmaps.beats(set_id), outline, tolerances or Tolerances())


def edit_beat_map(store: SQLStore, set_id: int, op: dict, *, actor: str, now: datetime) -> int:
    """Apply one map edit to a draft; editing the active (or any non-draft) map first copies
    it into a new draft. Returns the id of the draft that was edited."""
    bs = store.beatmaps.get_beat_set(set_id)
    if bs.status != "draft":
        set_id = store.beatmaps.copy_beat_set(
            set_id, f"{bs.name} (edited)", created_by=actor, now=now
        )
        store.accounts.audit(actor, "beats.copy", f"beat_set:{set_id}", {"from": bs.id}, now=now)
    edit = edits.apply_edit(store.beatmaps.beats(set_id), op)
    store.beatmaps.replace_beats(set_id, edit.remove, edit.add)
    store.accounts.audit(
        actor,
        "beats.edit",
        f"beat_set:{set_id}",
        {"op": op.get("op"), "summary": edit.summary},
        now=now,
    )
    log.info("beat map %s: %s", set_id, edit.summary)
    return set_id


def export_beat_set(store: SQLStore, set_id: int | None, path: str | Path) -> int:
    """Write a beat map (default: the active one) as GeoJSON in EPSG:4326; returns beats."""
    set_id = set_id if set_id is not None else store.beatmaps.active_beat_set().id
    store.beatmaps.get_beat_set(set_id)  # NotFound for an unknown id
    beats = store.beatmaps.beats(set_id)
    beatfiles.write_geojson(beats, path)
    return len(beats)


def review_diff(
    store: SQLStore,
    settings: Settings,
    new_id: int,
    old_id: int | None = None,
    *,
    now: datetime,
    tolerance: float | None = None,
) -> BeatMapDiff:
    """The diff an admin reviews before publishing (the admin page and `beats diff`): beats
    reshaped beyond the configured tolerance, and the incidents of the last
    `BEATFEEDS_BEAT_DIFF_DAYS` days that would change beat."""
    return diff_beat_sets(
        store,
        new_id,
        old_id,
        tolerance=tolerance if tolerance is not None else settings.beat_reshape_tolerance,
        since=now - timedelta(days=settings.beat_diff_days),
    )


def diff_beat_sets(
    store: SQLStore,
    new_id: int,
    old_id: int | None = None,
    *,
    tolerance: float = 0.001,
    since: datetime | None = None,
) -> BeatMapDiff:
    """Beats added, removed, renamed and reshaped (area changed above `tolerance`) against
    the active map; with `since`, also the incidents from then on that would change beat."""
    old_id = old_id if old_id is not None else store.beatmaps.active_beat_set().id
    store.beatmaps.get_beat_set(new_id)
    store.beatmaps.get_beat_set(old_id)
    old, new = store.beatmaps.beats(old_id), store.beatmaps.beats(new_id)
    added, removed, reshaped, unchanged, renamed = diff_beats(old, new, tolerance)
    moves: list[IncidentMove] = []
    if since is not None:
        ids, lon, lat, before = store.beatmaps.recent_incident_points(old_id, since)
        if len(ids):
            moved, code_of = moved_incidents(old, new, renamed, ids, lon, lat, before)
            for i, uid, when, block, category in store.beatmaps.incident_summaries(moved):
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
            old, new, new_id, beat_changes(old, new, added, removed, reshaped, renamed)
        ),
    )


def _area_preview(
    old: list[Beat], new: list[Beat], new_id: int, changes: list[BoundaryChange]
) -> list[tuple[str, str]]:
    """The entries sector and precinct feeds would carry if `new_id` were published."""
    out = []
    for c in area_changes(old, new, changes):
        c = replace(c, beat_set_id=new_id)
        code = c.new_codes[0] if change_of(c) == "renamed" else c.code
        text = boundary_entries.area_change_text(c, code)
        if text:
            out.append((area_label(c.kind, code), text))
    return out


def boundary_changes(
    store: SQLStore, old_id: int, new_id: int, tolerances: Tolerances
) -> list[BoundaryChange]:
    """The per-beat changes publishing `new_id` in place of `old_id` makes."""
    old, new = store.beatmaps.beats(old_id), store.beatmaps.beats(new_id)
    added, removed, reshaped, _, renamed = diff_beats(old, new, tolerances.reshape)
    return beat_changes(old, new, added, removed, reshaped, renamed)


def retired_beat(store: SQLStore, code: str) -> BoundaryChange | None:
    """Why a beat code that is not in the active map once was: its last rename or removal.

    Returns None when the code never existed or came back since.
    """
    wanted = code.upper()
    for change in store.beatmaps.boundary_changes(
        code=code, kinds=BEAT_CHANGES
    ) or store.beatmaps.boundary_changes(code=wanted, kinds=BEAT_CHANGES):
        if change.code.upper() == wanted and change.kind in ("renamed", "removed"):
            return change
        if change.kind in ("added", "renamed") and wanted in (
            x.upper() for x in change.new_codes + [change.code]
        ):
            return None
    return None


def beat_system_entries(store: SQLStore, code: str, *, now: datetime) -> list[FeedEntry]:
    """Entries a beat's feed carries about its own boundary: each change published for it."""
    found = (
        boundary_entries.beat_entry(c, code)
        for c in store.beatmaps.boundary_changes(code=code, until=now, kinds=BEAT_CHANGES)
    )
    return [e for e in found if e is not None]


def system_entry(store: SQLStore, uid: str) -> FeedEntry | None:
    """A boundary-change entry by its uid (`boundary<N>`), for its page."""
    if not uid.startswith("boundary") or not uid[8:].isdigit():
        return None
    for c in store.beatmaps.boundary_changes(change_id=int(uid[8:])):
        if c.kind in AREA_CHANGES:
            return boundary_entries.area_entry(
                c, c.new_codes[0] if change_of(c) == "renamed" else c.code
            )
        if c.kind == "city":
            return boundary_entries.city_entry(c)
        code = c.new_codes[0] if c.kind == "renamed" else c.code
        return next((e for e in beat_system_entries(store, code, now=c.at) if e.uid == uid), None)
    return None


def retired_area(store: SQLStore, kind: str, code: str) -> BoundaryChange | None:
    """Why a sector or precinct code that is not in the active map once was: its last
    rename or removal; None when it never existed or came back since."""
    wanted = code.upper()
    for c in store.beatmaps.boundary_changes(kinds=(kind,)):  # newest first
        change = change_of(c)
        if c.code.upper() == wanted and change in ("renamed", "removed"):
            return c
        if (change == "added" and c.code.upper() == wanted) or (
            change == "renamed" and wanted in (x.upper() for x in c.new_codes)
        ):
            return None
    return None


def area_system_entries(
    store: SQLStore, kind: str, code: str | None, *, now: datetime
) -> list[FeedEntry]:
    """The boundary-change entries of any area's feed, newest first: a beat's changes; the
    redraws that changed a sector or precinct; every publication for the city."""
    if kind == "beat":
        return beat_system_entries(store, code, now=now)
    if kind == "city":
        return [
            boundary_entries.city_entry(c)
            for c in store.beatmaps.boundary_changes(kinds=("city",), until=now)
        ]
    found = (
        boundary_entries.area_entry(c, code)
        for c in store.beatmaps.boundary_changes(code=code, until=now, kinds=(kind,))
    )
    return [e for e in found if e is not None]


def with_system_entries(
    store: SQLStore,
    entries: list[FeedEntry],
    kind: str,
    code: str | None,
    *,
    now: datetime,
    limit: int,
) -> list[FeedEntry]:
    """An area's entries merged with its boundary-change entries, newest first."""
    system = area_system_entries(store, kind, code, now=now)
    if not system:
        return entries
    merged = sorted(entries + system, key=lambda e: e.event_time, reverse=True)
    return merged[:limit]


def editor_geojson(store: SQLStore, set_id: int, tolerances: Tolerances) -> dict:
    """A map for the editor: its beats, each with its change against the active map, the
    active map's beats it removes, and its validation problems."""
    bs = store.beatmaps.get_beat_set(set_id)
    beats = store.beatmaps.beats(set_id)
    active = store.beatmaps.active_beat_set_id()
    change: dict[str, str] = {}
    removed: list[Beat] = []
    if active is not None and active != set_id:
        old = store.beatmaps.beats(active)
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


def area_geojson(store: SQLStore, set_id: int, kind: str) -> dict:
    """A beat map's beats, or its sectors or precincts dissolved from them, as GeoJSON."""
    store.beatmaps.get_beat_set(set_id)
    beats = store.beatmaps.beats(set_id)
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
    store: SQLStore,
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
    store.beatmaps.schedule_beat_set(set_id, effective)
    store.accounts.audit(
        actor, "beats.schedule", f"beat_set:{set_id}", {"effective": effective}, now=now
    )


def rollback_beat_map(
    store: SQLStore, *, actor: str = "cli", now: datetime, tolerances: Tolerances | None = None
) -> int:
    """Republish the most recently retired beat map; returns its id."""
    previous = store.beatmaps.last_retired_beat_set_id()
    if previous is None:
        raise NotFound("No retired beat map to roll back to.")
    publish_beat_map(store, previous, actor=actor, now=now, tolerances=tolerances, rollback=True)
    return previous
