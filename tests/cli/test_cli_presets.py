"""Layouts saved from the CLI (`presets save`, `incidents import --save-preset`) and found
again by detection, in the CLI exactly as in a web upload (one function: records.detect_mapping)."""

from __future__ import annotations

from beatfeeds.cli import main
from beatfeeds.core.settings import load_settings
from beatfeeds.services import records
from beatfeeds.storage import SQLStore
from tests.support.exports import SHERIFF, sheriff_file
from tests.support.instance import DEFAULT_BEATS

MAPS = [
    "--map",
    "external_id=Case No",
    "--map",
    "occurred_at=Reported",
    "--map",
    "category=Offense",
    "--map",
    "address=Location",
    "--map",
    "lat=Y",
    "--map",
    "lon=X",
]


def invoke(runner, *args):
    return runner.invoke(main, [str(a) for a in args])


def ready(runner):
    assert invoke(runner, "db", "upgrade").exit_code == 0
    r = invoke(runner, "beats", "load", DEFAULT_BEATS, "--code-field", "beat")
    assert r.exit_code == 0, r.output
    r = invoke(runner, "beats", "publish", r.output.split()[0])
    assert r.exit_code == 0, r.output


def store() -> SQLStore:
    return SQLStore.from_url(load_settings().database_url)


def test_a_preset_saved_with_presets_save_is_detected_by_the_cli_and_the_web(runner, tmp_path):
    ready(runner)
    sample = sheriff_file(tmp_path / "sheriff.csv")
    r = invoke(runner, "presets", "save", "county-sheriff", *MAPS, "--file", sample)
    assert r.exit_code == 0, r.output
    assert "saved preset county-sheriff (source county-sheriff)" in r.output
    assert "county-sheriff" in invoke(runner, "presets", "list").output

    # No --preset, no --map: the CLI finds the saved layout, as an upload does.
    r = invoke(runner, "incidents", "import", sample)
    assert r.exit_code == 0, r.output
    assert "source county-sheriff (detected preset county-sheriff)" in r.output
    assert "new 2" in r.output
    assert records.detect_mapping(store(), SHERIFF)[0] == "county-sheriff"
    r = invoke(runner, "incidents", "import", sheriff_file(tmp_path / "again.csv"))
    assert r.exit_code == 0 and "new 0" in r.output, r.output


def test_a_file_no_saved_preset_matches_still_names_the_closest_built_in(runner, tmp_path):
    ready(runner)
    r = invoke(runner, "incidents", "import", sheriff_file(tmp_path / "s.csv"))
    assert r.exit_code == 2 and "No preset matches this file's columns" in r.output


def test_import_with_save_preset_saves_after_the_import_and_only_checks_in_a_dry_run(
    runner, tmp_path
):
    ready(runner)
    f = sheriff_file(tmp_path / "s.csv")
    args = ["incidents", "import", f, *MAPS, "--source", "county-sheriff"]
    r = invoke(runner, *args, "--save-preset", "county-sheriff", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "dry run: preset county-sheriff can be saved" in r.output
    assert store().uploads.saved_preset("county-sheriff") is None

    r = invoke(runner, *args, "--save-preset", "county-sheriff")
    assert r.exit_code == 0, r.output
    assert "new 2" in r.output and "saved preset county-sheriff" in r.output
    saved = store().uploads.saved_preset("county-sheriff")
    assert saved.source == "county-sheriff" and saved.columns["external_id"] == "Case No"
    assert saved.created_by == "cli"

    # The name is taken now: refused before anything is imported.
    r = invoke(runner, *args, "--save-preset", "county-sheriff")
    assert r.exit_code == 2 and "already exists" in r.output


def test_bad_names_unknown_fields_and_missing_columns_are_named(runner, tmp_path):
    ready(runner)
    f = sheriff_file(tmp_path / "s.csv")
    r = invoke(runner, "presets", "save", "Bad Name!", *MAPS)
    assert r.exit_code == 1 and "not a preset name" in r.output
    r = invoke(runner, "presets", "save", "spd-911", *MAPS)
    assert r.exit_code == 1 and "built-in preset" in r.output
    r = invoke(runner, "presets", "save", "county", *MAPS, "--map", "colour=Offense")
    assert r.exit_code == 1 and "unknown field 'colour'" in r.output
    r = invoke(runner, "presets", "save", "county", *MAPS, "--map", "beat=Zone", "--file", f)
    assert r.exit_code == 1 and "The file lacks columns: Zone" in r.output
    r = invoke(runner, "presets", "save", "county", "--map", "category=Offense")
    assert r.exit_code == 1 and "external_id" in r.output
    r = invoke(
        runner,
        "incidents",
        "import",
        f,
        *MAPS,
        "--map",
        "beat=Zone",
        "--source",
        "county",
        "--save-preset",
        "county",
    )
    assert r.exit_code == 2 and "Zone" in r.output
    r = invoke(runner, "incidents", "import", f, "--preset", "spd-911", "--save-preset", "x-y")
    assert r.exit_code == 2 and "--save-preset saves the --map columns" in r.output
    assert store().uploads.saved_presets() == []
