"""The storage contract's data: a small CSV layout and its mapping, rows in beat K3, the
default beat map loaded (and published) at a given time, importing an hour before NOW."""

from __future__ import annotations

import csv
from datetime import timedelta

from beatfeeds.services import beatmaps, imports
from beatfeeds.services.imports import ImportOptions
from tests.support.instance import DEFAULT_BEATS, NOW

SOURCE = "contract-test"
MAPS = {
    "external_id": "id",
    "occurred_at": "when",
    "category": "type",
    "description": "desc",
    "address": "addr",
    "lat": "lat",
    "lon": "lon",
    "sensitive": "sensitive",
}
K3 = ("47.598347", "-122.32245")  # a point in beat K3 (the sample's first incident)


def load_beats(store, *, publish: bool, now=NOW) -> int:
    set_id = beatmaps.load_beat_map(
        store,
        DEFAULT_BEATS,
        code_field="beat",
        sector_field="sector",
        precinct_field="precinct",
        name=f"map at {now:%H:%M}",
        now=now,
    )
    if publish:
        beatmaps.publish_beat_map(store, set_id, now=now)
    return set_id


def row(
    external_id: str,
    *,
    when: str = "2026-11-20T18:00:00Z",
    desc: str = "THEFT - CAR PROWL",
    addr: str = "1900 E JEFFERSON ST",
    where: tuple[str, str] | None = K3,
    sensitive: str = "",
) -> list[str]:
    lat, lon = where or ("", "")
    return [external_id, when, "THEFT", desc, addr, lat, lon, sensitive]


def write_csv(path, rows: list[list[str]]):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "when", "type", "desc", "addr", "lat", "lon", "sensitive"])
        w.writerows(rows)
    return path


# Imports run an hour (the default delay) before NOW: the delay counts from the first import
# too, so rows imported then are public at NOW.
IMPORTED = NOW - timedelta(hours=1)


def import_rows(store, cfg, path, rows=None, *, now=IMPORTED, **options) -> dict[str, int]:
    if rows is not None:
        write_csv(path, rows)
    report = imports.import_file(
        store, path, ImportOptions(maps=MAPS, source=SOURCE, **options), cfg, now=now
    )
    return report.counters
