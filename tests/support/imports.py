"""Incident files for import tests: a small CSV layout, its column mapping, rows in beat K3,
and importing them."""

import csv
from datetime import UTC
from pathlib import Path

from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.instance import NOW

HEADER = ["id", "when", "type", "desc", "addr", "lat", "lon", "beat", "dv"]
MAPS = {
    "external_id": "id",
    "occurred_at": "when",
    "category": "type",
    "description": "desc",
    "address": "addr",
    "lat": "lat",
    "lon": "lon",
    "beat": "beat",
    "sensitive": "dv",
}
K3 = ("47.598347", "-122.32245")  # a point in beat K3


def write_csv(path: Path, rows, header=HEADER, encoding="utf-8", delimiter=","):
    with open(path, "w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def good(
    i,
    when="03/25/2016 08:09:00 PM",
    desc="THEFT - CAR PROWL",
    addr="1100 8TH AVE NE",
    lat=K3[0],
    lon=K3[1],
    dv="",
):
    return [str(i), when, "CAR PROWL", desc, addr, lat, lon, "K3", dv]


def run(store, settings, path, **kw):
    opts = ImportOptions(maps=dict(MAPS), source="test-source", **kw)
    return import_file(store, path, opts, settings, now=NOW)


def import_csv(store, settings, tmp_path, rows, now):
    path = write_csv(tmp_path / f"inc-{len(list(tmp_path.iterdir()))}.csv", rows)
    return import_file(store, path, ImportOptions(maps=dict(MAPS), source="t"), settings, now=now)


def row_at(settings, i, when, **kw):
    local = when.replace(tzinfo=UTC).astimezone(settings.tz).strftime("%m/%d/%Y %I:%M:%S %p")
    return good(i, when=local, **kw)
