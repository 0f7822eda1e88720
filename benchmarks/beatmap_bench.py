"""Beat-map operations against floors measured in the same run.

    python benchmarks/beatmap_bench.py [--rows N]

Imports N synthetic incidents (the import benchmark's generator) under the 2018 beats, makes
a draft by splitting K1 and reshaping K2 (beatedit, as the admin editor does), then times:
  validate  `validate_beat_set` of the draft against the active map, next to the floor
            shapely.union_all of both maps' polygons (the least a gap check must do);
  diff      `diff_beat_sets` with every incident that would move, next to the floor
            geopandas.sjoin of the incident points to the draft (the least a move count needs);
  publish   `publish_beat_map` (re-join every incident in bulk and switch), next to the same
            sjoin floor;
  rollback  `rollback_beat_map` (the old map's joins are kept, so nothing is re-joined).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import shapely

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from import_bench import generate  # noqa: E402

from beatfeeds.core.settings import load_settings  # noqa: E402
from beatfeeds.geo import edits  # noqa: E402
from beatfeeds.services import beatmaps  # noqa: E402
from beatfeeds.services.imports import ImportOptions, import_file  # noqa: E402
from beatfeeds.storage import SQLStore  # noqa: E402

NOW = datetime(2026, 1, 1)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"instance_path": tmp, "secret_key": "bench"}, environ={})
        store = SQLStore.from_url(settings.database_url)
        store.upgrade()
        active = beatmaps.load_beat_map(store, REPO / "data" / "beats.geojson", now=NOW)
        beatmaps.publish_beat_map(store, active, now=NOW)
        csv = Path(tmp) / "incidents.csv"
        generate(csv, args.rows)
        import_file(store, csv, ImportOptions(preset="spd-crime"), settings, now=NOW)

        beats = store.beats(active)
        k1 = next(b for b in beats if b.code == "K1").geometry
        y = k1.representative_point().y
        line = {
            "type": "LineString",
            "coordinates": [[k1.bounds[0] - 0.01, y], [k1.bounds[2] + 0.01, y]],
        }
        draft = store.copy_beat_set(active, "draft", created_by="bench", now=NOW)
        edit = edits.split_beat(store.beats(draft), "K1", line, "K9")
        store.replace_beats(draft, edit.remove, edit.add)
        new = store.beats(draft)
        _, lon, lat, _ = store.recent_incident_points(active, datetime(1900, 1, 1))
        print(f"{len(lon):,} located incidents; draft splits K1 into K1 and K9")

        floor_union, _ = timed(
            lambda: (
                shapely.union_all([b.geometry for b in beats]),
                shapely.union_all([b.geometry for b in new]),
            )
        )
        t_validate, problems = timed(lambda: beatmaps.validate_beat_set(store, draft))
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
        polys = gpd.GeoDataFrame(
            {"code": [b.code for b in new]}, geometry=[b.geometry for b in new], crs=4326
        )
        floor_join, _ = timed(lambda: gpd.sjoin(points, polys, predicate="within"))
        t_diff, d = timed(lambda: beatmaps.diff_beat_sets(store, draft, since=datetime(1900, 1, 1)))
        t_publish, joined = timed(lambda: beatmaps.publish_beat_map(store, draft, now=NOW))
        t_rollback, _ = timed(lambda: beatmaps.rollback_beat_map(store, now=NOW))
        print(
            f"validate  {t_validate:7.3f} s  ({len(problems)} problems)   "
            f"floor union_all of both maps {floor_union:.3f} s  x{t_validate / floor_union:.1f}"
        )
        print(
            f"diff      {t_diff:7.3f} s  ({len(d.moves):,} incidents move)   "
            f"floor sjoin {floor_join:.3f} s  x{t_diff / floor_join:.1f}"
        )
        print(
            f"publish   {t_publish:7.3f} s  ({joined:,} re-joined)   "
            f"floor sjoin {floor_join:.3f} s  x{t_publish / floor_join:.1f}"
        )
        print(f"rollback  {t_rollback:7.3f} s")


if __name__ == "__main__":
    main()
