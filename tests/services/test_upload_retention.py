"""Retention of uploaded files (BEATFEEDS_UPLOAD_RETENTION_DAYS): the `prune-uploads` job
deletes the stored files of finished, failed and cancelled uploads past the retention period,
keeps their history rows (shown as "file removed"), and never touches waiting or running ones
or a file a newer upload still uses."""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from beatfeeds import jobs
from beatfeeds.cli import main
from beatfeeds.services import records
from tests.support.exports import local, sheriff_file, spd911_row, write_rows
from tests.support.instance import make_settings, utcnow

NOW = utcnow()
OLD = NOW - timedelta(days=100)


@pytest.fixture
def old_file(tmp_path) -> Path:
    """An spd-911 export of 100 days ago: four good rows, one with a formula for a date."""
    when = local(OLD - timedelta(days=1))
    return write_rows(
        tmp_path / "export.csv",
        [spd911_row(k, when) for k in range(1, 5)] + [spd911_row(5, "=cmd|' /C calc'!A0")],
    )


def stored(store, settings, path: Path, when, name=None):
    with open(path, "rb") as fh:
        return records.store_upload(
            store, settings, fh, name or path.name, actor="clerk@example.org", now=when
        )


def imported(store, settings, path: Path, when, name=None):
    """An upload imported at `when` (its finish time is `when` too)."""
    up = stored(store, settings, path, when, name)
    assert records.process_queue(store, settings, when, clock=lambda: when)["imported"] == 1
    return store.get_upload(up.id)


def prune(store, settings, now=NOW) -> dict:
    return jobs.run_job("prune-uploads", store, settings, now)


def test_old_finished_failed_and_cancelled_files_go_waiting_and_recent_ones_stay(
    beats_store, settings, tmp_path, old_file
):
    done_old = imported(beats_store, settings, old_file, OLD)
    failed_old = stored(beats_store, settings, _binary(tmp_path), OLD)
    assert failed_old.status == "failed"
    cancelled_old = stored(beats_store, settings, sheriff_file(tmp_path / "s1.csv"), OLD)
    records.cancel_upload(beats_store, cancelled_old.id, actor="clerk@example.org", now=OLD)
    recent = imported(
        beats_store, settings, _copy(old_file, tmp_path / "recent.csv", 1), NOW - timedelta(days=10)
    )
    # Waiting or running for a long time: never touched, whatever their age.
    mapping = stored(beats_store, settings, sheriff_file(tmp_path / "s2.csv", 10), OLD)
    assert mapping.status == "needs-mapping"
    running = stored(beats_store, settings, _copy(old_file, tmp_path / "run.csv", 2), OLD)
    assert beats_store.claim_next_upload(OLD).id == running.id
    queued = stored(beats_store, settings, _copy(old_file, tmp_path / "q.csv", 3), OLD)
    assert beats_store.get_upload(queued.id).status == "queued"

    paths = {u.id: Path(u.stored_path) for u in beats_store.list_uploads()}
    assert all(p.exists() for p in paths.values())
    summary = prune(beats_store, settings)
    assert summary["uploads"] == 3 and summary["files"] == 3 and summary["bytes"] > 0

    gone = {done_old.id, failed_old.id, cancelled_old.id}
    for up in beats_store.list_uploads():
        assert up.file_removed == (up.id in gone), up
        assert paths[up.id].exists() == (up.id not in gone), up
    # The history stays as it was: status, run, counters.
    after = beats_store.get_upload(done_old.id)
    assert after.status == "done" and after.run_id == done_old.run_id
    assert beats_store.get_import_run(after.run_id).counters["new"] == 4
    assert beats_store.get_upload(running.id).status == "running"
    assert beats_store.get_upload(mapping.id).status == "needs-mapping"
    entry = beats_store.audit_log(1)[0]
    assert entry["action"] == "incidents.remove-files"

    # Nothing left to do: a second run changes nothing.
    assert prune(beats_store, settings) == {"uploads": 0, "files": 0, "bytes": 0}
    # The recent one goes once it, too, is past the retention period.
    assert prune(beats_store, settings, NOW + timedelta(days=81))["uploads"] == 1
    assert beats_store.get_upload(recent.id).file_removed


def test_a_file_a_newer_upload_still_uses_is_kept(beats_store, settings, old_file):
    old = imported(beats_store, settings, old_file, OLD)
    again = stored(beats_store, settings, old_file, NOW)  # same content and name
    assert again.stored_path == old.stored_path and again.status == "queued"
    assert prune(beats_store, settings) == {"uploads": 1, "files": 0, "bytes": 0}
    assert beats_store.get_upload(old.id).file_removed
    assert Path(again.stored_path).exists()
    assert records.process_queue(beats_store, settings, NOW)["imported"] == 1
    assert (
        beats_store.get_import_run(beats_store.get_upload(again.id).run_id).counters["unchanged"]
        == 4
    )


def test_zero_days_keeps_every_file(beats_store, tmp_path, old_file):
    settings = make_settings(tmp_path, upload_retention_days=0)
    up = imported(beats_store, settings, old_file, NOW - timedelta(days=3000))
    assert prune(beats_store, settings) == {"uploads": 0, "files": 0, "bytes": 0}
    assert Path(up.stored_path).exists()


def test_the_pages_say_the_file_was_removed_and_rejected_rows_still_download(
    clerk, beats_store, settings, old_file
):
    up = imported(beats_store, settings, old_file, OLD)
    prune(beats_store, settings)
    page = clerk.get(f"/records/imports/{up.id}").get_data(as_text=True)
    assert "file removed after 90 days" in page
    assert "the uploaded file, which named the columns, was removed" in page
    listing = clerk.get("/records/imports").get_data(as_text=True)
    assert "(file removed)" in listing
    r = clerk.get(f"/records/imports/runs/{up.run_id}/rejected.csv")
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert rows[0] == ["line", "reason", "row"]
    assert rows[1][0] == "6" and rows[1][2].startswith("5,1,1,063,")  # the row as one field


def test_the_job_is_listed_and_runs_from_the_cli(runner):
    assert "prune-uploads\tevery 3600s" in runner.invoke(main, ["jobs", "list"]).output
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    r = runner.invoke(main, ["jobs", "run", "prune-uploads"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "prune-uploads: {'uploads': 0, 'files': 0, 'bytes': 0}"


def _binary(tmp_path: Path) -> Path:
    p = tmp_path / "report.xlsx"
    p.write_bytes(b"PK\x03\x04\x00binary")
    return p


def _copy(src: Path, dest: Path, n: int) -> Path:
    """The same rows under another name, with a trailing line so the content differs."""
    dest.write_bytes(src.read_bytes() + b"\n" * n)
    return dest


def test_partial_copies_a_killed_process_left_are_removed_after_a_day(
    beats_store, settings, old_file
):
    imported(beats_store, settings, old_file, NOW)  # creates the uploads folder
    folder = records.uploads_dir(settings)
    stale, fresh = folder / ".incoming-abc123", folder / ".fetch-def456"
    for p in (stale, fresh):
        p.write_bytes(b"half a file")
    day_old = (NOW - timedelta(hours=25)).replace(tzinfo=UTC).timestamp()
    os.utime(stale, (day_old, day_old))
    assert prune(beats_store, settings) == {"uploads": 0, "files": 1, "bytes": 0}
    assert not stale.exists() and fresh.exists()
