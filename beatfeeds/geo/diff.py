"""What changes between two beat maps: beats added, removed, renamed and reshaped, what that
means for each sector and precinct and for the city, and the incidents that would move."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from beatfeeds.core.models import Beat, BeatSet, BoundaryChange
from beatfeeds.geo import spatial

BEAT_CHANGES = ("added", "removed", "renamed", "reshaped")  # kinds of a beat's change
AREA_CHANGES = ("sector", "precinct")  # kinds of the changes recorded for the areas of beats


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


def moved_incidents(
    old: list[Beat],
    new: list[Beat],
    renamed: list[tuple[str, str]],
    ids: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    before: np.ndarray,
) -> tuple[np.ndarray, dict[int, tuple[str | None, str | None]]]:
    """The incidents (`ids` at `lon`, `lat`, in beats `before` of the old map, None where not
    joined) that publishing `new` would move to another beat, a rename aside: (their ids,
    id -> (old beat, new beat))."""
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
        int(i): (a, b) for i, a, b in zip(ids[moved], before[moved], after[moved], strict=True)
    }
    return ids[moved], code_of


def successors(old_geom, new: list[Beat]) -> list[str]:
    """Beats of a new map that took over a meaningful part (over 1%) of an old polygon."""
    out = []
    for b in new:
        if b.geometry.intersects(old_geom):
            share = b.geometry.intersection(old_geom).area / old_geom.area
            if share > 0.01:
                out.append((share, b.code))
    return [c for _, c in sorted(out, key=lambda x: (-x[0], x[1]))]


def beat_changes(
    old: list[Beat], new: list[Beat], added, removed, reshaped, renamed
) -> list[BoundaryChange]:
    """The per-beat changes of a diff (`diff_beats`' lists) as they are recorded; a removed
    beat names the beats that took over its area."""
    by_code = {b.code: b.geometry for b in old}
    return (
        [BoundaryChange("added", c) for c in added]
        + [BoundaryChange("removed", c, successors(by_code[c], new)) for c in removed]
        + [BoundaryChange("renamed", a, [b]) for a, b in renamed]
        + [BoundaryChange("reshaped", c, share=share) for c, share in reshaped]
    )


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


def city_change(
    new_set: BeatSet, changes: list[BoundaryChange], *, rollback: bool
) -> BoundaryChange:
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


def change_of(c: BoundaryChange) -> str:
    """What a recorded sector or precinct change did: added, removed, renamed or changed."""
    return (c.detail or {}).get("change", "")
