"""Files as the real sources export them: SPD 911 rows (local US-style times), a sheriff's
layout that needs a mapping, and Seattle Fire 911 calls."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.imports import K3
from tests.support.instance import utcnow

SPD911 = [
    "CAD CDW ID",
    "CAD Event Number",
    "General Offense Number",
    "Event Clearance Code",
    "Event Clearance Description",
    "Event Clearance SubGroup",
    "Event Clearance Group",
    "Event Clearance Date",
    "Hundred Block Location",
    "District/Sector",
    "Zone/Beat",
    "Census Tract",
    "Longitude",
    "Latitude",
    "Incident Location",
    "Initial Type Description",
    "Initial Type Subgroup",
    "Initial Type Group",
    "At Scene Time",
]


def local(d: datetime) -> str:
    """A naive-UTC time written the way SPD exports write local times."""
    from zoneinfo import ZoneInfo

    t = d.replace(tzinfo=UTC).astimezone(ZoneInfo("America/Los_Angeles"))
    return t.strftime("%m/%d/%Y %I:%M:%S %p")


def spd911_row(
    key,
    when,
    desc="THEFT - CAR PROWL",
    group="CAR PROWL",
    addr="12XX BLOCK OF 3RD AVE",
    lon="-122.3365",
    lat="47.6070",
    initial="THEFT (DOES NOT INCLUDE SHOPLIFT OR SVCS)",
) -> list[str]:
    return [
        str(key),
        "1",
        "1",
        "063",
        desc,
        group,
        group,
        when,
        addr,
        "K",
        "K1",
        "1",
        lon,
        lat,
        "",
        initial,
        "",
        "",
        "",
    ]


def write_rows(path: Path, rows, header=SPD911) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


SHERIFF = ["Case No", "Reported", "Offense", "Narrative", "Location", "Y", "X", "DV"]


def sheriff_file(path: Path, key_start=1) -> Path:
    when = (utcnow() - timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    return write_rows(
        path,
        [
            [
                f"S-{key_start}",
                when,
                "BURGLARY",
                "BURGLARY - RESIDENTIAL",
                "1900 E JEFFERSON ST",
                "47.6067",
                "-122.3066",
                "N",
            ],
            [
                f"S-{key_start + 1}",
                when,
                "ASSAULT",
                "ASSAULT - SIMPLE",
                "500 PINE ST",
                "47.6113",
                "-122.3375",
                "Y",
            ],
        ],
        header=SHERIFF,
    )


# One clock reading per test run: a row exported twice must be the same row, however long the
# test took between the two exports (a second apart, it would read as a correction).
EXPORTED_AT = utcnow()


def export(path: Path, keys, days_ago=2) -> Path:
    when = local(EXPORTED_AT - timedelta(days=days_ago))
    return write_rows(path, [spd911_row(k, when) for k in keys])


# ---- Seattle Fire 911 ------------------------------------------------------------------------
FIRE_HEADER = [
    "Address",
    "Type",
    "Datetime",
    "Latitude",
    "Longitude",
    "Report Location",
    "Incident Number",
]
HOUSE = "1234 5TH AVE"
TYPE = "Motor Vehicle Accident"


def fire_row(when: str, address: str = HOUSE, number: str = "", kind: str = TYPE) -> list[str]:
    return [address, kind, when, *K3, f"({K3[0]}, {K3[1]})", number]


def write_fire(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(FIRE_HEADER)
        w.writerows(rows)
    return path
