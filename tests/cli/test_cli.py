"""The CLI contract: beats, jobs, db, demo."""

import json

from beatfeeds.cli import main
from tests.support.instance import DEFAULT_BEATS, shared


def invoke(runner, *args, **kw):
    result = runner.invoke(main, [str(a) for a in args], **kw)
    return result


def test_db_upgrade_is_idempotent(runner):
    first = invoke(runner, "db", "upgrade")
    second = invoke(runner, "db", "upgrade")
    assert first.exit_code == 0 and "was empty" in first.output
    assert second.exit_code == 0 and "was" not in second.output


def test_commands_refuse_an_unmigrated_database(runner):
    r = invoke(runner, "beats", "load", DEFAULT_BEATS, "--code-field", "beat")
    assert r.exit_code == 1 and "beatfeeds db upgrade" in r.output


def test_beats_load_list_publish_validate_export(runner, tmp_path):
    invoke(runner, "db", "upgrade")
    r = invoke(
        runner,
        "beats",
        "load",
        DEFAULT_BEATS,
        "--code-field",
        "beat",
        "--sector-field",
        "sector",
        "--precinct-field",
        "precinct",
        "--name",
        "Seattle 2018",
        "--effective",
        "2018-01-01",
    )
    assert r.exit_code == 0, r.output
    set_id = int(r.output.split()[0])
    lines = invoke(runner, "beats", "list").output.splitlines()
    assert lines[0].split("\t")[:4] == [str(set_id), "draft", "51 beats", "2018-01-01"]
    assert invoke(runner, "beats", "validate", set_id).exit_code == 0
    r = invoke(runner, "beats", "publish", set_id)
    assert r.exit_code == 0 and "active" in r.output
    assert invoke(runner, "beats", "list").output.split("\t")[1] == "active"
    assert invoke(runner, "beats", "publish", set_id).exit_code == 1  # already active
    out = tmp_path / "export.geojson"
    assert invoke(runner, "beats", "export", "-o", out).exit_code == 0
    doc = json.loads(out.read_text())
    assert len(doc["features"]) == 51
    assert set(doc["features"][0]["properties"]) == {"beat", "sector", "precinct"}


def test_publishing_a_second_map_retires_the_first(runner):
    invoke(runner, "db", "upgrade")
    path = shared("spd_beats_2015_2017.geojson")
    invoke(runner, "beats", "load", DEFAULT_BEATS, "--code-field", "beat")
    invoke(runner, "beats", "publish", "1")
    r = invoke(runner, "beats", "load", path, "--code-field", "name", "--name", "2015-2017")
    assert r.exit_code == 0, r.output
    invoke(runner, "beats", "publish", "2")
    statuses = [line.split("\t")[1] for line in invoke(runner, "beats", "list").output.splitlines()]
    assert statuses == ["retired", "active"]


def test_unknown_field_is_named(runner):
    invoke(runner, "db", "upgrade")
    r = invoke(runner, "beats", "load", DEFAULT_BEATS, "--code-field", "BEAT_NUM")
    assert r.exit_code == 1 and "BEAT_NUM" in r.output and "beat, sector, precinct" in r.output


def test_jobs_list_and_run(runner):
    invoke(runner, "db", "upgrade")
    listed = invoke(runner, "jobs", "list").output
    assert "activate-scheduled-beat-maps" in listed and "prune-login-attempts" in listed
    r = invoke(runner, "jobs", "run", "prune-login-attempts")
    assert r.exit_code == 0 and "removed" in r.output
    assert invoke(runner, "jobs", "run", "nope").exit_code == 1


def test_demo_without_serving_sets_up_everything(runner):
    r = invoke(runner, "demo", "--no-serve")
    assert r.exit_code == 0, r.output
    assert "published the default beat map" in r.output
    assert "new 322" in r.output
    again = invoke(runner, "demo", "--no-serve")
    assert again.exit_code == 0 and "imported" not in again.output


def test_diff_2015_to_2018_lists_the_reshaped_beats(runner):
    invoke(runner, "db", "upgrade")
    invoke(runner, "beats", "load", shared("spd_beats_2015_2017.geojson"), "--code-field", "name")
    invoke(runner, "beats", "publish", "1")
    invoke(runner, "beats", "load", DEFAULT_BEATS, "--code-field", "beat")
    r = invoke(runner, "beats", "diff", "2")
    assert r.exit_code == 0, r.output
    reshaped = r.output.split("reshaped: ")[1].splitlines()[0]
    codes = [c for c in reshaped.split() if not c.startswith("(")]
    print(r.output)
    assert codes == ["G1", "G3", "K2", "K3"]
    assert "added: -" in r.output and "removed: -" in r.output


def test_rollback_and_scheduled_publish(runner):
    invoke(runner, "db", "upgrade")
    invoke(runner, "beats", "load", DEFAULT_BEATS, "--code-field", "beat")
    assert invoke(runner, "beats", "rollback").exit_code == 1  # nothing to roll back to
    invoke(runner, "beats", "publish", "1")
    invoke(runner, "beats", "load", DEFAULT_BEATS, "--code-field", "beat", "--name", "next")
    r = invoke(runner, "beats", "publish", "2", "--at", "2020-01-01")
    assert r.exit_code == 0 and "scheduled" in r.output
    assert invoke(runner, "beats", "list").output.splitlines()[1].split("\t")[1] == "scheduled"
    assert "published': [2]" in invoke(runner, "jobs", "run", "activate-scheduled-beat-maps").output
    r = invoke(runner, "beats", "rollback")
    assert r.exit_code == 0 and "1 is active again" in r.output
    statuses = [line.split("\t")[1] for line in invoke(runner, "beats", "list").output.splitlines()]
    assert statuses == ["active", "retired"]


def test_validate_and_publish_name_unknown_maps(runner):
    invoke(runner, "db", "upgrade")
    for verb in ("validate", "publish"):
        r = invoke(runner, "beats", verb, "99")
        assert r.exit_code == 1 and "No beat map with id 99" in r.output
