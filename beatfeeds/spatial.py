"""Point-in-beat assignment and beat-map geometry checks (geopandas/shapely, no SQL)."""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely
from shapely.strtree import STRtree

from .models import Beat


class BeatIndex:
    """A spatial index over one beat map, sorted by code so ties break the same way every run."""

    def __init__(self, beats: Sequence[Beat]):
        ordered = sorted(beats, key=lambda b: b.code)
        self.codes = np.array([b.code for b in ordered], dtype=object)
        geoms = np.array([b.geometry for b in ordered], dtype=object)
        shapely.prepare(geoms)
        self.tree = STRtree(geoms)

    def assign(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Beat code for each point (None outside every beat), in one vectorised query.

        A point on an edge shared by two beats intersects both; it goes to the beat whose
        code sorts first, so every point gets exactly one beat, deterministically.
        """
        lon = np.asarray(lon, dtype="float64")
        lat = np.asarray(lat, dtype="float64")
        out = np.full(len(lon), None, dtype=object)
        ok = np.isfinite(lon) & np.isfinite(lat)
        if not ok.any() or len(self.codes) == 0:
            return out
        idx = np.nonzero(ok)[0]
        points = shapely.points(lon[idx], lat[idx])
        hit_point, hit_beat = self.tree.query(points, predicate="intersects")
        if len(hit_point):
            # Lowest beat index per point: sort by (point, beat) and keep each point's first.
            order = np.lexsort((hit_beat, hit_point))
            hp, hb = hit_point[order], hit_beat[order]
            first = np.ones(len(hp), dtype=bool)
            first[1:] = hp[1:] != hp[:-1]
            out[idx[hp[first]]] = self.codes[hb[first]]
        return out


def assign_beats(points, beats) -> np.ndarray:
    """Beat code for each point, None where a point is outside every beat.

    `points`: a GeoSeries/array of shapely points or an (N, 2) array of lon, lat (EPSG:4326).
    `beats`: a list of Beat, a BeatIndex, or a GeoDataFrame with a `code` column.
    """
    if isinstance(beats, gpd.GeoDataFrame):
        frame = beats.to_crs(4326) if beats.crs is not None else beats
        beats = [Beat(code=str(c), sector=None, precinct=None, geometry=g)
                 for c, g in zip(frame["code"], frame.geometry, strict=True)]
    index = beats if isinstance(beats, BeatIndex) else BeatIndex(beats)
    if isinstance(points, gpd.GeoSeries):
        if points.crs is not None:
            points = points.to_crs(4326)
        xy = np.column_stack([points.x.to_numpy(), points.y.to_numpy()])
    else:
        arr = np.asarray(points)
        if arr.dtype == object:
            xy = shapely.get_coordinates(arr)
        else:
            xy = arr.reshape(-1, 2).astype("float64")
    return index.assign(xy[:, 0], xy[:, 1])


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


def dissolve(beats: Sequence[Beat], key: str) -> dict[str, object]:
    """Union of beat polygons grouped by `sector` or `precinct`."""
    groups: dict[str, list] = {}
    for b in beats:
        k = getattr(b, key)
        if k:
            groups.setdefault(k, []).append(b.geometry)
    return {k: shapely.union_all(v) for k, v in groups.items()}
