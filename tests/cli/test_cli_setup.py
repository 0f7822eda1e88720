"""`beatfeeds setup` writes the department profile into the instance's TOML file (merged,
0600), and `serve` / `scheduler` refuse a real instance still branded as the demo's
Seattle Police Department or with no time zone set; the demo itself needs no setup."""

from __future__ import annotations

import stat
import tomllib

import pytest

from beatfeeds.cli import main
from beatfeeds.core.settings import load_settings

FLAGS = [
    "--department-name",
    "Metropolitan Police Department",
    "--timezone",
    "America/New_York",
    "--beat-label",
    "PSA",
    "--sector-label",
    "Sector",
    "--precinct-label",
    "District",
    "--map-center",
    "38.9,-77.03",
    "--tag-authority",
    "feeds.example.org,2026",
]


def invoke(runner, *args, **kw):
    return runner.invoke(main, [str(a) for a in args], **kw)


@pytest.fixture
def started(monkeypatch):
    """What `serve` and `scheduler` would have started, instead of starting it."""
    seen = []
    monkeypatch.setattr("beatfeeds.cli.serve.run_waitress", lambda *a, **k: seen.append("serve"))

    class Sched:
        def start(self):
            seen.append("scheduler")

    monkeypatch.setattr("beatfeeds.scheduler.build_scheduler", lambda *a, **k: Sched())
    return seen


def test_setup_with_flags_writes_the_profile_into_the_instance_toml(runner, tmp_path):
    r = invoke(runner, "setup", *FLAGS)
    assert r.exit_code == 0, r.output
    path = tmp_path / "instance" / "beatfeeds.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    assert data["department_name"] == "Metropolitan Police Department"
    assert data["precinct_label"] == "District" and data["map_center"] == "38.9,-77.03"
    s = load_settings()  # read from the instance folder without BEATFEEDS_CONFIG
    assert s.department_name == "Metropolitan Police Department"
    assert s.timezone == "America/New_York" and s.origin("timezone") == "file"
    assert s.beat_label == "PSA" and s.precinct_label == "District"


def test_setup_merges_into_an_existing_file_and_keeps_other_keys(runner, tmp_path, monkeypatch):
    path = tmp_path / "site.toml"
    path.write_text(
        '# our site\npublication_delay = 90\ndepartment_name = "Old"\nbase_url = "https://x.org"\n'
    )
    monkeypatch.setenv("BEATFEEDS_CONFIG", str(path))
    r = invoke(runner, "setup", "--department-name", "Boston Police Department")
    assert r.exit_code == 0, r.output
    text = path.read_text()
    assert text.startswith("# our site\n")
    data = tomllib.loads(text)
    assert data == {
        "publication_delay": 90,
        "department_name": "Boston Police Department",
        "base_url": "https://x.org",
    }
    other = tmp_path / "elsewhere.toml"
    r = invoke(runner, "setup", "--timezone", "America/New_York", "--config", other)
    assert r.exit_code == 0 and tomllib.loads(other.read_text()) == {"timezone": "America/New_York"}
    assert "BEATFEEDS_CONFIG" in r.output  # not the file beatfeeds reads: says so


@pytest.mark.parametrize(
    "flag,value,says",
    [
        ("--timezone", "Mars/Olympus", "unknown time zone"),
        ("--map-center", "38.9", "not LAT,LON"),
        ("--map-center", "138.9,-77", "not a latitude and a longitude"),
        ("--precinct-label", "Districts", "plural"),
        ("--beat-label", "Sector", "must differ"),
        ("--sector-label", "<b>", "short words"),
        ("--tag-authority", "example.org", "tag_authority"),
    ],
)
def test_setup_refuses_values_that_cannot_be_used(runner, tmp_path, flag, value, says):
    r = invoke(runner, "setup", flag, value)
    assert r.exit_code == 1 and says in r.output, r.output
    assert not (tmp_path / "instance" / "beatfeeds.toml").exists()


def test_setup_asks_when_given_no_flags_and_asks_again_after_a_bad_answer(runner, tmp_path):
    answers = "\n".join(
        [
            "Boston Police Department",
            "Boston/Nowhere",  # asked again
            "America/New_York",
            "Reporting Area",
            "",  # Sector, the default
            "District",
            "42.33,-71.07",
            "feeds.example.org,2026",
        ]
    )
    r = invoke(runner, "setup", input=answers + "\n")
    assert r.exit_code == 0, r.output
    assert "unknown time zone" in r.output
    s = load_settings()
    assert s.department_name == "Boston Police Department" and s.beat_label == "Reporting Area"
    assert s.sector_label == "Sector" and s.map_center == "42.33,-71.07"


def test_serve_and_scheduler_refuse_a_real_instance_with_the_demo_profile(
    runner, started, monkeypatch
):
    assert invoke(runner, "db", "upgrade").exit_code == 0
    for command in ("serve", "scheduler"):
        r = invoke(runner, command)
        assert r.exit_code == 1, r.output
        assert "BEATFEEDS_DEPARTMENT_NAME" in r.output and "BEATFEEDS_TIMEZONE" in r.output
        assert "beatfeeds setup" in r.output
    monkeypatch.setenv("BEATFEEDS_DEPARTMENT_NAME", "Boston Police Department")
    r = invoke(runner, "serve")
    assert r.exit_code == 1 and "BEATFEEDS_TIMEZONE" in r.output
    assert "DEPARTMENT_NAME" not in r.output
    assert started == []
    monkeypatch.setenv("BEATFEEDS_TIMEZONE", "America/New_York")
    assert invoke(runner, "serve").exit_code == 0
    assert invoke(runner, "scheduler").exit_code == 0
    assert started == ["serve", "scheduler"]


def test_after_setup_serve_starts(runner, started):
    assert invoke(runner, "db", "upgrade").exit_code == 0
    assert invoke(runner, "setup", *FLAGS).exit_code == 0
    r = invoke(runner, "serve")
    assert r.exit_code == 0, r.output
    assert started == ["serve"]


def test_the_demo_needs_no_setup(runner, started):
    r = invoke(runner, "demo", "--no-serve")
    assert r.exit_code == 0, r.output
    assert invoke(runner, "serve").exit_code == 0
    assert invoke(runner, "scheduler").exit_code == 0
    assert started == ["serve", "scheduler"]
