"""`beatfeeds demo`: the embedded default beat map and sample incidents, moved to the present."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from beatfeeds.core.models import IncidentRow
from beatfeeds.core.resources import resource_dir
from beatfeeds.ingest.mapping import ColumnMapping
from beatfeeds.ingest.presets import PRESETS
from beatfeeds.ingest.reading import iter_raw_rows
from beatfeeds.ingest.rows import validate_row
from beatfeeds.services import beatmaps, imports

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

SAMPLE_PRESET = "spd-911"
#: The demo's own dataset name: the real exports imported next to the demo (with the preset's
#: own source) never merge with, or rewrite, the demo's sample entries.
SAMPLE_SOURCE = "demo-sample"
#: Age of the newest sample incident once moved to the present.
NEWEST_AGE = timedelta(hours=2)


def default_beats_path():
    return resource_dir("data") / "beats.geojson"


def sample_incidents_path():
    return resource_dir("data") / "sample_incidents.csv"


def sample_shift(settings: Settings, now: datetime) -> timedelta:
    """How far to move the sample so its newest incident is NEWEST_AGE (two hours) old."""
    path = sample_incidents_path()
    mapping = ColumnMapping.from_preset(PRESETS[SAMPLE_PRESET])
    newest = max(
        r.event_time
        for raw in iter_raw_rows(path, [])
        if isinstance(r := validate_row(raw, mapping, settings.tz, now), IncidentRow)
    )
    shift = now - NEWEST_AGE - newest
    return timedelta(minutes=int(shift.total_seconds() // 60))


def setup_demo(
    store: SQLStore, settings: Settings, *, now: datetime, echo: Callable[[str], None] = print
) -> str:
    """Upgrade the database; load the default beats and sample incidents if empty.

    Returns the notice pages show about the shifted timestamps.
    """
    store.upgrade()
    if not store.beatmaps.list_beat_sets():
        set_id = beatmaps.load_beat_map(
            store,
            default_beats_path(),
            code_field="beat",
            sector_field="sector",
            precinct_field="precinct",
            name="Seattle Police beats 2018-present (default)",
            actor="demo",
            now=now,
        )
        beatmaps.publish_beat_map(store, set_id, actor="demo", now=now)
        echo(f"loaded and published the default beat map ({set_id})")
    if store.incidents.incident_count() == 0:
        shift = sample_shift(settings, now)
        # Imported as of the newest (moved) incident, as a live feed would have imported them:
        # the publication delay counts from the first import too, and a demo imported "now"
        # would show nothing for the first BEATFEEDS_PUBLICATION_DELAY minutes.
        report = imports.import_file(
            store,
            sample_incidents_path(),
            imports.ImportOptions(
                preset=SAMPLE_PRESET, source=SAMPLE_SOURCE, actor="demo", time_shift=shift
            ),
            settings,
            now=now - NEWEST_AGE,
        )
        store.db.set_meta("demo_shift_days", str(shift.days))
        echo(f"imported the sample incidents: {report.line()}")
    days = store.db.get_meta("demo_shift_days")
    if days is None:
        return ""
    return (
        f"Demo: real Seattle Police 911 incidents from March 2016 (data.seattle.gov, CC0), "
        f"with timestamps moved forward {days} days so the newest is about two hours old."
    )
