"""Geometry edits of a beat map with shapely: reshape, split, merge, rename (no SQL, no Flask).

Every edit keeps the map seamless: a beat that grows takes the area from its neighbours, and
area a beat gives up goes to the neighbour that shares the longest border with it, so an edit
never opens a gap or an overlap between beats.
"""

from __future__ import annotations

from dataclasses import dataclass

import shapely
from shapely.geometry import shape
from shapely.ops import split as split_polygon

from beatfeeds.core.errors import InvalidInput
from beatfeeds.core.models import Beat

SNAP_DEGREES = 0.00003  # about 3 m: vertices dropped this close to a neighbour's snap onto it
_DUST = 1e-12  # square degrees (~0.01 m²): pieces left by floating-point noise


@dataclass
class Edit:
    """The beats an edit removes (by code) and the beats it writes (new or replaced)."""

    remove: list[str]
    add: list[Beat]
    summary: str


def _polygonal(geom):
    """Only the polygon parts of a geometry, without floating-point dust; None when empty."""
    parts = []
    for g in getattr(geom, "geoms", [geom]):
        if g.geom_type == "Polygon" and g.area > _DUST:
            parts.append(g)
        elif g.geom_type in ("MultiPolygon", "GeometryCollection"):
            p = _polygonal(g)
            if p is not None:
                parts.extend(getattr(p, "geoms", [p]))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _geometry(geojson, kinds: tuple[str, ...], what: str):
    try:
        geom = shape(geojson)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise InvalidInput(f"The {what} is not valid GeoJSON: {exc}") from None
    if geom.geom_type not in kinds or geom.is_empty:
        raise InvalidInput(f"The {what} must be a {' or '.join(kinds)}.")
    return geom


def _find(beats: list[Beat], code: str) -> Beat:
    for b in beats:
        if b.code == code:
            return b
    raise InvalidInput(f"There is no beat {code!r} in this map.")


def _new_code(beats: list[Beat], code: str | None) -> str:
    code = (code or "").strip()
    if not code or len(code) > 32 or any(c in code for c in "/?#% "):
        raise InvalidInput("Give a beat code: up to 32 characters, no spaces or / ? # %.")
    if any(b.code.upper() == code.upper() for b in beats):
        raise InvalidInput(f"Beat {code} already exists in this map.")
    return code


def reshape_beat(beats: list[Beat], code: str, geojson) -> Edit:
    """Give a beat a new polygon (moved vertices or redrawn), taking area from neighbours and
    giving area it lost to the neighbour sharing the longest border with each piece."""
    me = _find(beats, code)
    others = [b for b in beats if b.code != code]
    new = _geometry(geojson, ("Polygon", "MultiPolygon"), "new shape")
    if others:
        new = shapely.snap(new, shapely.union_all([b.geometry for b in others]), SNAP_DEGREES)
    new = shapely.make_valid(new) if not new.is_valid else new
    new = _polygonal(new)
    if new is None:
        raise InvalidInput("The new shape has no area.")
    freed = _polygonal(me.geometry.difference(new))
    changed: dict[str, object] = {}
    for b in others:
        if b.geometry.intersects(new):
            changed[b.code] = _polygonal(b.geometry.difference(new))
    for piece in getattr(freed, "geoms", [freed]) if freed is not None else []:
        best, shared = None, 0.0
        for b in others:
            geom = changed.get(b.code, b.geometry)
            if geom is None:
                continue
            border = geom.boundary.intersection(piece.buffer(SNAP_DEGREES / 10)).length
            if border > shared:
                best, shared = b.code, border
        if best is not None:  # on the outer edge of the map nobody takes it
            base = changed.get(best, next(b.geometry for b in others if b.code == best))
            changed[best] = _polygonal(shapely.union_all([base, piece]))
    originals = {b.code: b.geometry for b in others}
    changed = {
        c: g
        for c, g in changed.items()
        if g is None or g.symmetric_difference(originals[c]).area > _DUST
    }
    remove = [code]
    add = [Beat(code, me.sector, me.precinct, new, me.name)]
    for b in others:
        if b.code in changed:
            remove.append(b.code)
            if changed[b.code] is not None:
                add.append(Beat(b.code, b.sector, b.precinct, changed[b.code], b.name))
    gone = sorted(c for c in changed if changed[c] is None)
    note = f"; {', '.join(gone)} covered entirely and removed" if gone else ""
    touched = sorted(c for c in changed if changed[c] is not None)
    return Edit(
        remove, add, f"reshaped {code}" + (f" (and {', '.join(touched)})" if touched else "") + note
    )


def split_beat(beats: list[Beat], code: str, line_geojson, new_code: str) -> Edit:
    """Cut a beat in two along a line drawn across it; the larger part keeps the code."""
    me = _find(beats, code)
    new_code = _new_code(beats, new_code)
    line = _geometry(line_geojson, ("LineString",), "cut line")
    pieces = [p for p in split_polygon(me.geometry, line).geoms if p.area > _DUST]
    if len(pieces) < 2:
        raise InvalidInput(f"The line must cross beat {code} from one edge to another.")
    pieces.sort(key=lambda p: p.area, reverse=True)
    keep = _polygonal(pieces[0])
    rest = _polygonal(shapely.union_all(pieces[1:]))
    return Edit(
        [code],
        [
            Beat(code, me.sector, me.precinct, keep, me.name),
            Beat(new_code, me.sector, me.precinct, rest),
        ],
        f"split {code} into {code} and {new_code}",
    )


def merge_beats(beats: list[Beat], code: str, other: str) -> Edit:
    """Join a neighbouring beat into a beat; the first beat keeps its code and attributes."""
    me, them = _find(beats, code), _find(beats, other)
    if code == other:
        raise InvalidInput("Choose two different beats to merge.")
    if me.geometry.distance(them.geometry) > SNAP_DEGREES:
        raise InvalidInput(f"Beats {code} and {other} do not touch; only neighbours merge.")
    merged = _polygonal(shapely.union_all([me.geometry, them.geometry]))
    return Edit(
        [code, other],
        [Beat(code, me.sector, me.precinct, merged, me.name)],
        f"merged {other} into {code}",
    )


def rename_beat(
    beats: list[Beat], code: str, new_code: str | None, sector: str | None, precinct: str | None
) -> Edit:
    """Change a beat's code, sector or precinct."""
    me = _find(beats, code)
    target = code if not new_code or new_code.strip() == code else _new_code(beats, new_code)
    sector = (sector or "").strip() or None
    precinct = (precinct or "").strip() or None
    return Edit(
        [code],
        [Beat(target, sector, precinct, me.geometry, me.name)],
        f"renamed {code} to {target}"
        if target != code
        else f"set sector {sector or '-'} and precinct {precinct or '-'} of {code}",
    )


def apply_edit(beats: list[Beat], op: dict) -> Edit:
    """One edit described as JSON: {"op": "reshape"|"split"|"merge"|"rename", ...}."""
    if not isinstance(op, dict):
        raise InvalidInput("Send the edit as a JSON object.")
    kind = op.get("op")
    code = str(op.get("code") or "")
    if kind == "reshape":
        return reshape_beat(beats, code, op.get("geometry"))
    if kind == "split":
        return split_beat(beats, code, op.get("line"), str(op.get("new_code") or ""))
    if kind == "merge":
        return merge_beats(beats, code, str(op.get("other") or ""))
    if kind == "rename":
        return rename_beat(beats, code, op.get("new_code"), op.get("sector"), op.get("precinct"))
    raise InvalidInput("Unknown edit; use reshape, split, merge or rename.")
