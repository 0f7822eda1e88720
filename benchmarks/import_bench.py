"""Import throughput: `beatfeeds incidents import` end to end vs a pandas + geopandas floor.

    python benchmarks/import_bench.py [--rows N] [--keep DIR]
    python benchmarks/import_bench.py --file PATH [--preset NAME]

Generates N synthetic incidents over the 2018 beats in the `spd-crime` layout (or takes a
real file), then times, on the same file in the same run:
  (a) the floor: pandas.read_csv (C engine, the same columns) + geopandas.points_from_xy +
      sjoin(predicate="within") against the beats;
  (b) `beatfeeds incidents import` end to end into a fresh SQLite database (a subprocess).
Prints rows/s for both, the ratio b/a, and the peak RSS of (b) (and of the child process that
parses big files while (b) writes).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEATS = REPO / "data" / "beats.geojson"
COLUMNS = [
    "Report Number",
    "Offense ID",
    "Offense Start DateTime",
    "Offense End DateTime",
    "Report DateTime",
    "Group A B",
    "Crime Against Category",
    "Offense Parent Group",
    "Offense",
    "Offense Code",
    "Precinct",
    "Sector",
    "Beat",
    "MCPP",
    "100 Block Address",
    "Longitude",
    "Latitude",
]
OFFENSES = [
    ("LARCENY-THEFT", "Theft From Motor Vehicle", "23F"),
    ("BURGLARY/BREAKING&ENTERING", "Burglary/Breaking & Entering", "220"),
    ("ROBBERY", "Robbery", "120"),
    ("ASSAULT OFFENSES", "Simple Assault", "13B"),
    ("MOTOR VEHICLE THEFT", "Motor Vehicle Theft", "240"),
    ("DESTRUCTION/DAMAGE/VANDALISM OF PROPERTY", "Destruction/Damage/Vandalism of Property", "290"),
]
STREETS = ["PINE ST", "PIKE ST", "E JEFFERSON ST", "8TH AVE NE", "RAINIER AVE S", "AURORA AVE N"]


def generate(path: Path, rows: int, seed: int = 2018) -> None:
    import geopandas as gpd
    import numpy as np
    import shapely

    rng = np.random.default_rng(seed)
    beats = gpd.read_file(BEATS)
    minx, miny, maxx, maxy = beats.total_bounds
    union = shapely.union_all(beats.geometry.to_numpy())
    shapely.prepare(union)
    xs, ys = [], []
    while sum(map(len, xs)) < rows:  # rejection-sample points inside the beats
        x = rng.uniform(minx, maxx, rows)
        y = rng.uniform(miny, maxy, rows)
        keep = shapely.contains_xy(union, x, y)
        xs.append(x[keep])
        ys.append(y[keep])
    lon = np.concatenate(xs)[:rows]
    lat = np.concatenate(ys)[:rows]
    r = random.Random(seed)
    start = datetime(2008, 1, 1)
    fmt = "%m/%d/%Y %I:%M:%S %p"
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for i in range(rows):
            t = start + timedelta(minutes=r.randrange(0, 60 * 24 * 365 * 13))
            group, offense, code = OFFENSES[i % len(OFFENSES)]
            w.writerow(
                [
                    f"{t.year}-{i:06d}",
                    str(10_000_000_000 + i),
                    t.strftime(fmt),
                    "",
                    (t + timedelta(hours=2)).strftime(fmt),
                    "A",
                    "PROPERTY",
                    group,
                    offense,
                    code,
                    "W",
                    "K",
                    "K3",
                    "DOWNTOWN COMMERCIAL",
                    f"{r.randrange(1, 120)}XX BLOCK OF {STREETS[i % len(STREETS)]}",
                    f"{lon[i]:.9f}",
                    f"{lat[i]:.9f}",
                ]
            )


def floor(path: Path) -> tuple[float, float]:
    import geopandas as gpd
    import pandas as pd

    beats = gpd.read_file(BEATS)[["beat", "geometry"]]
    t, cpu = time.perf_counter(), time.process_time()
    frame = pd.read_csv(path, engine="c", usecols=COLUMNS, dtype=str, encoding="utf-8-sig")
    points = gpd.GeoDataFrame(
        frame,
        geometry=gpd.points_from_xy(
            pd.to_numeric(frame["Longitude"]), pd.to_numeric(frame["Latitude"])
        ),
        crs=4326,
    )
    joined = gpd.sjoin(points, beats, predicate="within", how="left")
    assert len(joined) >= len(frame)
    return time.perf_counter() - t, time.process_time() - cpu


def beatfeeds_import(
    path: Path, workdir: Path, preset: str | None
) -> tuple[float, float, int, str]:
    env = dict(os.environ, BEATFEEDS_INSTANCE_PATH=str(workdir / "instance"))
    env.pop("BEATFEEDS_DATABASE_URL", None)
    cli = [sys.executable, "-m", "beatfeeds.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*cli, "beats", "load", str(BEATS), "--code-field", "beat"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run([*cli, "beats", "publish", "1"], env=env, check=True, capture_output=True)
    args = ["incidents", "import", str(path)] + (["--preset", preset] if preset else [])
    hwm = workdir / "peak-rss"
    # The child's own peak (VmHWM) as it exits: ru_maxrss of a child also counts the pages it
    # shared with this process (which holds the floor's data) between fork and exec.
    wrapper = (
        "import atexit, resource, runpy, sys\n"
        "def peak():\n"
        "    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        f"            open({str(hwm)!r}, 'w').write(line.split()[1] + ' ' + str(child))\n"
        "atexit.register(peak)\n"
        f"sys.argv = ['beatfeeds', *{args!r}]\n"
        "runpy.run_module('beatfeeds.cli', run_name='__main__')\n"
    )
    os.sync()  # the set-up's writes, not the import's
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", wrapper], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    out = proc.stdout.decode()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"import failed: {out}")
    own, child = (int(k) * 1024 for k in hwm.read_text().split())
    return elapsed, cpu, (own, child), out.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--file", type=Path, help="time a real file instead of synthetic rows")
    ap.add_argument("--preset", help="preset for --file (default: auto-detect)")
    ap.add_argument("--keep", type=Path, help="keep the generated file and database here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.file:
            path, preset = args.file, args.preset
        else:
            path, preset = work / f"spd_crime_synthetic_{args.rows}.csv", "spd-crime"
            t = time.perf_counter()
            generate(path, args.rows)
            print(
                f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s "
                f"({path.stat().st_size / 2**20:.0f} MiB)"
            )
        rows = sum(1 for _ in open(path, encoding="utf-8-sig")) - 1
        # Neither timing should pay for writing back the file just generated (or anything
        # else still in the page cache): flush it first.
        os.sync()
        a, a_cpu = floor(path) if not args.file or preset in (None, "spd-crime") else (None, None)
        b, b_cpu, rss, counters = beatfeeds_import(path, work, preset)
        print(f"rows: {rows:,}")
        if a is not None:
            print(
                f"(a) floor, pandas read_csv + points_from_xy + sjoin: {a:7.2f} s "
                f"{rows / a:12,.0f} rows/s   CPU {a_cpu:6.2f} s"
            )
        own, child = rss
        print(
            f"(b) beatfeeds incidents import, SQLite:          {b:7.2f} s "
            f"{rows / b:12,.0f} rows/s   CPU {b_cpu:6.2f} s   peak RSS {own / 2**20:,.0f} MiB"
        )
        if child:  # a forked child shares pages with its parent: the sum is an upper bound
            print(
                f"    parsing child process peak RSS {child / 2**20:,.0f} MiB; both together "
                f"at most {(own + child) / 2**20:,.0f} MiB"
            )
        if a is not None:
            print(
                f"ratio b/a: {b / a:.1f} (CPU time: {b_cpu / a_cpu:.1f}; on a busy machine the "
                f"CPU ratio is the steadier figure)"
            )
        print(f"counters: {counters}")


if __name__ == "__main__":
    main()
