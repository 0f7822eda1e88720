"""Beat-map geometry checks: each beat's polygon, duplicate codes, overlaps, gaps and slivers.

Every check of a beat map's geometry lives here, with where (a point to show it at) and why
(a sentence naming the beats). Problems are reported, never fixed silently; errors block
publishing, warnings do not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely

from beatfeeds.core.models import Beat

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings


ENCLAVE_WIDTH = 50.0  # metres of mean width (2A/P): a hole this broad is no digitising gap


@dataclass(frozen=True)
class Tolerances:
    """Validation and diff thresholds (areas in square metres)."""

    overlap: float = 100.0
    gap: float = 100.0
    sliver: float = 2000.0
    reshape: float = 0.001

    @classmethod
    def from_settings(cls, settings: Settings) -> Tolerances:
        """The thresholds an instance is configured with (the `beat_*` settings)."""
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
    kind: str  # invalid / duplicate / overlap / gap / enclave / sliver / empty
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


def geometry_problems(code: str, geom) -> list[str]:
    """Why a beat polygon cannot be used, as user-readable sentences (empty when fine)."""
    if geom is None:
        return [f"beat {code}: no geometry"]
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        return [f"beat {code}: geometry is a {geom.geom_type}, not a Polygon or MultiPolygon"]
    if geom.is_empty:
        return [f"beat {code}: geometry is empty"]
    if not shapely.is_valid(geom):
        return [f"beat {code}: invalid geometry: {shapely.is_valid_reason(geom)}"]
    return []


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
        reasons = geometry_problems(b.code, b.geometry)
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
            if not outline and (len(near) == 1 or 2 * gap.area / gap.length >= ENCLAVE_WIDTH):
                # A hole inside one beat, or a broad one, in a department's first map is drawn
                # on purpose: another city, a park or a lake it does not police (LA has
                # Beverly Hills inside, SF's Richmond has three holes); a thin one between
                # beats is a digitising gap.
                out.append(
                    BoundaryProblem(
                        "warning",
                        "enclave",
                        near,
                        f"{gap.area:,.0f} m² inside the map's outline is in no beat"
                        + (f" (surrounded by {', '.join(near)})" if near else "")
                        + ": an enclave the department does not cover? Incidents there get "
                        "no beat",
                        *at(gap),
                    )
                )
                continue
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


def blocking(problems: list[BoundaryProblem]) -> list[BoundaryProblem]:
    """The problems that stop a map from being published or scheduled (its errors)."""
    return [p for p in problems if p.severity == "error"]


def merge_parts(
    code: str, parts: list[tuple[int, object]], tol: Tolerances | None = None
) -> tuple[object | None, list[str]]:
    """Several features with one beat code as one (Multi)Polygon, or the reasons they cannot
    be: parts that overlap by more than the overlap tolerance (with where), measured in
    metres in the map's UTM zone. `parts` are (feature number, valid geometry)."""
    import geopandas as gpd  # imported where used: it adds 0.3 s to every CLI start-up
    import pyproj

    tol = tol or Tolerances()
    wgs = gpd.GeoSeries([g for _, g in parts], crs=4326)
    utm = wgs.estimate_utm_crs()
    back = pyproj.Transformer.from_crs(utm, 4326, always_xy=True)
    geoms = list(wgs.to_crs(utm).values)
    problems = []
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            inter = geoms[i].intersection(geoms[j])
            if inter.area > tol.overlap:
                p = inter.representative_point()
                lon, lat = back.transform(p.x, p.y)
                problems.append(
                    f"beat {code}: features {parts[i][0]} and {parts[j][0]} have the same code "
                    f"but overlap by {inter.area:,.0f} m² at {lat:.5f}, {lon:.5f}; the parts "
                    "of one beat must not overlap (give them different codes or fix the file)"
                )
    if problems:
        return None, problems
    merged = shapely.union_all([g for _, g in parts])
    if merged.geom_type == "GeometryCollection":  # parts touching along a line
        merged = shapely.MultiPolygon(
            [p for g in merged.geoms for p in getattr(g, "geoms", [g]) if p.geom_type == "Polygon"]
        )
    return merged, []
