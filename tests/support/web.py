"""The real app over the bundled sample: building it, and rows of the sample moved to the
present (imported as they happened, so that they are public now)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from beatfeeds.app import create_app
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.instance import (
    NOW,
    SAMPLE,
    load_default_beats,
    make_settings,
    make_store,
    utcnow,
)


def spd_time(d_utc: datetime) -> str:
    """A naive-UTC time as the SPD 911 file writes it (local, US style)."""
    local = d_utc.replace(tzinfo=UTC).astimezone(ZoneInfo("America/Los_Angeles"))
    return local.strftime("%m/%d/%Y %I:%M:%S %p")


def sample_rows() -> tuple[list[str], list[dict[str, str]]]:
    with open(SAMPLE, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def write_incidents(path, rows: list[dict[str, str]]) -> None:
    header, _ = sample_rows()
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


def fresh_row(template: dict[str, str], cad_id: str, event_utc: datetime) -> dict[str, str]:
    return template | {
        "CAD CDW ID": cad_id,
        "Event Clearance Date": spd_time(event_utc),
        "At Scene Time": spd_time(event_utc - timedelta(minutes=20)),
    }


def make_app(settings, store, **extra):
    return create_app(
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "store": store, **settings.as_dict(), **extra}
    )


def build_site(tmp_path, **overrides):
    settings = make_settings(tmp_path, feed_max_entries=1000, **overrides)
    store = make_store(settings)
    load_default_beats(store)
    import_file(store, SAMPLE, ImportOptions(preset="spd-911"), settings, now=NOW)
    app = make_app(settings, store)
    return app, store, settings


def add_incident(tmp_path, store, settings, cad_id: str, beat: str = "K3", hours_ago: float = 3):
    """Import one new incident in `beat`, already past its publication delay: imported as it
    happened, `hours_ago` (the delay counts from the import too)."""
    _, rows = sample_rows()
    template = next(r for r in rows if r["Zone/Beat"] == beat)
    event = utcnow() - timedelta(hours=hours_ago)
    path = tmp_path / f"new-{cad_id}.csv"
    write_incidents(path, [fresh_row(template, cad_id, event)])
    report = import_file(store, path, ImportOptions(preset="spd-911"), settings, now=event)
    assert report.counters["new"] == 1
    return template
