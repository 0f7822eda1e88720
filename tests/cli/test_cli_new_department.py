"""docs/new-department.md, followed command by command on Washington DC's real files: setup,
db upgrade, beats load and publish, presets save, incidents import (the saved layout is
detected), import again (new 0), and serve starts; a sex-abuse entry is never in a feed."""

from __future__ import annotations

import re

from beatfeeds.app import create_app
from beatfeeds.cli import main
from beatfeeds.core.settings import load_settings
from tests.support.instance import shared

DOCS_FLAGS = [
    "--department-name",
    "Metropolitan Police Department",
    "--timezone",
    "America/New_York",
    "--beat-label",
    "PSA",
    "--precinct-label",
    "District",
    "--map-center",
    "38.9,-77.03",
    "--tag-authority",
    "feeds.example.org,2026",
]
MAPS = [
    "external_id=CCN",
    "reported_at=REPORT_DAT",
    "occurred_at=START_DATE",
    "category=OFFENSE",
    "address=BLOCK",
    "lat=LATITUDE",
    "lon=LONGITUDE",
    "beat=PSA",
]


def invoke(runner, *args):
    r = runner.invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.output


def counters(output: str) -> dict[str, int]:
    line = next(x for x in output.splitlines() if x.startswith("read "))
    return {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", line)}


def test_dc_from_nothing_to_feeds_with_the_documented_commands(runner, monkeypatch):
    psas = shared("../dc/dc_mpd_police_service_areas.geojson")
    crimes = shared("../dc/dc_crime_incidents_last30days_2019-10.csv")
    invoke(runner, "setup", *DOCS_FLAGS)
    invoke(runner, "db", "upgrade")
    out = invoke(
        runner, "beats", "load", psas, "--code-field", "PSA", "--precinct-field", "DISTRICT"
    )
    assert "57 beats" in out
    invoke(runner, "beats", "publish", out.split()[0])
    maps = [a for m in MAPS for a in ("--map", m)]
    invoke(
        runner,
        "presets",
        "save",
        "dc-mpd",
        "--source",
        "dc-mpd-crime-incidents",
        *maps,
        "--file",
        crimes,
    )

    first = invoke(runner, "incidents", "import", crimes)
    assert (
        "source dc-mpd-crime-incidents (detected preset dc-mpd-crime)" in first
    )  # built-ins come first
    c = counters(first)
    print(f"DC 2019-10 (detected): {c}")
    assert c["read"] == 2985 and c["rejected"] == 0 and c["unassigned"] == 0
    assert c["new"] + c["duplicate"] == 2985
    again = counters(invoke(runner, "incidents", "import", crimes))
    print(f"DC 2019-10 again: {again}")
    assert again["new"] == 0 and again["updated"] == 0

    served = []
    monkeypatch.setattr("beatfeeds.cli.serve.run_waitress", lambda *a, **k: served.append(a))
    invoke(runner, "serve")  # the profile is set: not refused
    assert len(served) == 1

    settings = load_settings()
    assert settings.department_name == "Metropolitan Police Department"
    client = create_app({"TESTING": True}).test_client()
    feed = client.get("/beats/101/feed.atom")
    assert feed.status_code == 200
    body = feed.get_data(as_text=True)
    assert "Metropolitan Police Department" in body and "SEX ABUSE" not in body.upper()
