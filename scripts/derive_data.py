"""Derive the embedded default data in data/ from ../shared/data/seattle/.

Run from the repository root: python scripts/derive_data.py [SHARED_DATA_DIR]
The output is committed; this script documents exactly how it was made.
"""

import csv
import json
import sys
from pathlib import Path

SHARED = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/seattle")
OUT = Path("data")


def derive_beats() -> None:
    src = json.loads((SHARED / "spd_beats_2018_present.geojson").read_text())
    features = []
    for f in src["features"]:
        p = f["properties"]
        # H1-H3 are harbor water and "99" is the no-beat area: points there are unassigned.
        if p["beat"] == "99" or p["sector"] == "H" or not p["first_precinct"]:
            continue
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "beat": p["beat"],
                    "sector": p["sector"],
                    "precinct": p["first_precinct"],
                },
                "geometry": f["geometry"],
            }
        )
    features.sort(key=lambda f: f["properties"]["beat"])
    out = {
        "type": "FeatureCollection",
        "name": "Seattle Police Beats 2018-Present (land beats)",
        "features": features,
    }
    (OUT / "beats.geojson").write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"beats.geojson: {len(features)} beats")


def derive_sample() -> None:
    rows = []
    header = None
    for name, take in (
        ("spd_911_incident_response_2016-03-25.csv", 200),
        ("spd_911_incident_response_2016-03-02.csv", 120),
    ):
        with open(SHARED / name, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            body = list(reader)
        desc_col = header.index("Initial Type Description")
        chosen = body[:take]
        # Keep the sensitive rows so the demo shows suppression working.
        chosen += [r for r in body[take:] if "CHILD" in r[desc_col]]
        rows += chosen
    with open(OUT / "sample_incidents.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    print(f"sample_incidents.csv: {len(rows)} rows")


if __name__ == "__main__":
    derive_beats()
    derive_sample()
