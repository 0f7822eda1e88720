"""Point-in-beat assignment and beats dissolved into areas (geopandas/shapely, no SQL).

The checks of a beat map's geometry are in `geo.checks`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from beatfeeds.core.models import Beat


class BeatIndex:
    """Beat polygons sorted by code, so ties break the same way every run."""

    def __init__(self, beats: Sequence[Beat]):
        ordered = sorted(beats, key=lambda b: b.code)
        self.codes = np.array([b.code for b in ordered], dtype=object)
        self.geoms = np.array([b.geometry for b in ordered], dtype=object)
        shapely.prepare(self.geoms)
        self.bounds = (
            shapely.bounds(self.geoms) if len(self.geoms) else np.zeros((0, 4), dtype="float64")
        )
        self._union = None

    def assign(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Beat code for each point (None outside every beat), vectorised per beat.

        Each beat tests only the points inside its bounding box that no beat has taken yet,
        with `shapely.intersects_xy` (no Point objects). A point on an edge shared by two
        beats intersects both; it goes to the beat whose code sorts first, so every point
        gets exactly one beat, deterministically.
        """
        lon = np.asarray(lon, dtype="float64")
        lat = np.asarray(lat, dtype="float64")
        out = np.full(len(lon), None, dtype=object)
        todo = np.flatnonzero(np.isfinite(lon) & np.isfinite(lat))
        for k in range(len(self.codes)):
            if not len(todo):
                break
            x, y = lon[todo], lat[todo]
            minx, miny, maxx, maxy = self.bounds[k]
            near = (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)
            if not near.any():
                continue
            cand = np.flatnonzero(near)
            hit = shapely.intersects_xy(self.geoms[k], x[cand], y[cand])
            if hit.any():
                out[todo[cand[hit]]] = self.codes[k]
                keep = np.ones(len(todo), dtype=bool)
                keep[cand[hit]] = False
                todo = todo[keep]
        return out

    def covers(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Whether each point lies in some beat of this map (its edges included)."""
        lon = np.asarray(lon, dtype="float64")
        lat = np.asarray(lat, dtype="float64")
        out = np.zeros(len(lon), dtype=bool)
        if not len(self.geoms):
            return out
        if self._union is None:
            self._union = shapely.union_all(self.geoms)
            shapely.prepare(self._union)
        minx, miny, maxx, maxy = shapely.bounds(self._union)
        ok = (
            np.isfinite(lon)
            & np.isfinite(lat)
            & (lon >= minx)
            & (lon <= maxx)
            & (lat >= miny)
            & (lat <= maxy)
        )
        if ok.any():
            out[ok] = shapely.intersects_xy(self._union, lon[ok], lat[ok])
        return out


def assign_beats(points, beats) -> np.ndarray:
    """Beat code for each point, None where a point is outside every beat.

    `points`: a GeoSeries/array of shapely points or an (N, 2) array of lon, lat (EPSG:4326).
    `beats`: a list of Beat, a BeatIndex, or a GeoDataFrame with a `code` column.
    """
    import geopandas as gpd  # here, not at the top: it adds 0.3 s to every CLI start-up

    if isinstance(beats, gpd.GeoDataFrame):
        frame = beats.to_crs(4326) if beats.crs is not None else beats
        beats = [
            Beat(code=str(c), sector=None, precinct=None, geometry=g)
            for c, g in zip(frame["code"], frame.geometry, strict=True)
        ]
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


def dissolve(beats: Sequence[Beat], key: str) -> dict[str, object]:
    """Union of beat polygons grouped by `sector` or `precinct`."""
    groups: dict[str, list] = {}
    for b in beats:
        k = getattr(b, key)
        if k:
            groups.setdefault(k, []).append(b.geometry)
    return {k: shapely.union_all(v) for k, v in groups.items()}
