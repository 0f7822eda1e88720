"""The records workflow's storage over every backend (SQLite and PostgreSQL): the upload
queue, saved presets, scheduled sources and their polls, staff search and retraction. Plus
every shared Seattle CSV uploaded on the web, detected, imported by the job, and idempotent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from beatfeeds.core import identifiers
from beatfeeds.core.errors import Conflict, EntryNotFound, NotFound
from beatfeeds.services import imports, records, review, sources
from beatfeeds.services.imports import ImportOptions
from tests.support.instance import NOW, SAMPLE, load_default_beats, shared, utcnow
from tests.support.records import upload, upload_id


@pytest.fixture
def beats_db(db):
    load_default_beats(db)
    return db


def test_the_upload_queue_is_claimed_once_and_finished(db, cfg, tmp_path):
    with open(SAMPLE, "rb") as fh:
        first = records.store_upload(db, cfg, fh, "sample.csv", actor="a@example.org", now=NOW)
    with open(SAMPLE, "rb") as fh:
        second = records.store_upload(
            db, cfg, fh, "sample.csv", actor="b@example.org", now=NOW + timedelta(seconds=1)
        )
    assert first.status == second.status == "queued" and first.preset == "spd-911"
    assert [u.id for u in db.uploads_with_sha256(first.file_sha256)] == [first.id, second.id]
    claimed = db.claim_next_upload(NOW)
    assert claimed.id == first.id and claimed.status == "running"
    assert db.claim_upload(first.id, NOW) is None  # already running
    assert db.claim_next_upload(NOW).id == second.id
    assert db.claim_next_upload(NOW) is None
    db.requeue_upload(second.id)
    assert db.get_upload(second.id).status == "queued"
    db.finish_upload(first.id, status="failed", error="boom", now=NOW)
    assert db.get_upload(first.id).error == "boom"
    with pytest.raises(Conflict):
        db.set_upload_mapping(first.id, preset=None, mapping={"external_id": "x"}, source="s")
    with pytest.raises(NotFound):
        db.get_upload(999)
    assert [u.id for u in db.list_uploads(status="queued")] == [second.id]


def test_the_job_imports_on_every_backend(beats_db, cfg):
    with open(SAMPLE, "rb") as fh:
        up = records.store_upload(beats_db, cfg, fh, "sample.csv", actor="a@example.org", now=NOW)
    assert records.process_queue(beats_db, cfg, NOW)["imported"] == 1
    done = beats_db.get_upload(up.id)
    assert done.status == "done" and beats_db.upload_for_run(done.run_id).id == up.id
    run = beats_db.get_import_run(done.run_id)
    assert run.counters["new"] > 300 and run.user_email == "a@example.org"
    name, text = records.rejected_rows_csv(beats_db, done.run_id)
    assert name.endswith("-rejected.csv") and text.splitlines()[0].startswith("line,reason,")


def test_saved_presets(db):
    db.save_preset(
        "county",
        "county-cad",
        {"external_id": "No", "occurred_at": "When"},
        created_by="a",
        now=NOW,
    )
    with pytest.raises(Conflict):
        db.save_preset("county", "x", {}, created_by="a", now=NOW)
    saved = db.saved_preset("county")
    assert saved.source == "county-cad" and saved.columns == {
        "external_id": "No",
        "occurred_at": "When",
    }
    assert records.detect_mapping(db, ["No", "When", "Other"]) == (
        "county",
        {"external_id": "No", "occurred_at": "When"},
        "county-cad",
    )
    db.delete_saved_preset("county")
    assert db.saved_presets() == []
    with pytest.raises(NotFound):
        db.delete_saved_preset("county")


def test_sources_and_their_polls(db, tmp_path):
    s = sources.add_source(db, "drop", folder=str(tmp_path), actor="t", now=NOW)
    assert s.kind == "folder" and sources.is_due(s, NOW)
    db.record_poll(
        s.id,
        status="imported",
        now=NOW,
        filename="a.csv",
        file_sha256="ab" * 32,
        etag='"1"',
        last_modified="Wed, 25 Nov 2026 10:00:00 GMT",
    )
    db.record_poll(s.id, status="failed", now=NOW + timedelta(minutes=1), error="HTTP 500")
    s = db.get_source("drop")
    assert s.last_status == "failed" and s.last_error == "HTTP 500" and s.etag == '"1"'
    assert not sources.is_due(s, NOW + timedelta(minutes=10))
    assert sources.is_due(s, NOW + timedelta(minutes=16))
    assert db.source_has_imported(s.id, "ab" * 32)
    assert not db.source_has_imported(s.id, "cd" * 32)
    polls = db.source_polls()
    assert [p.status for p in polls] == ["failed", "imported"] and polls[0].source_name == "drop"
    sources.remove_source(db, "drop", actor="t", now=NOW)
    assert db.list_sources() == [] and db.source_polls() == []
    with pytest.raises(NotFound):
        db.get_source("drop")


def test_staff_search_and_retraction(beats_db, cfg):
    imports.import_file(beats_db, SAMPLE, ImportOptions(), cfg, now=NOW)
    uid = identifiers.entry_uid("spd-911-incident-response", "1701856", beats_db.identifier_key())
    assert [e.uid for e in beats_db.find_incidents(uid)] == [uid]
    assert [e.uid for e in beats_db.find_incidents("1701856")] == [uid]
    found = beats_db.find_incidents("car prowl", 500)
    assert uid in {e.uid for e in found} and len(found) < 322
    assert beats_db.find_incidents("100%_") == []  # LIKE wildcards are taken literally
    e = beats_db.staff_incident(uid)
    assert e.beat == "K3" and e.status(NOW + timedelta(days=3650)) == "published"
    review.retract_entry(beats_db, uid, "sealed record", actor="t", now=NOW)
    e = beats_db.staff_incident(uid)
    assert e.status(NOW) == "retracted" and e.retraction_reason == "sealed record"
    set_id = beats_db.active_beat_set_id()
    assert beats_db.public_entry(set_id, uid, now=NOW + timedelta(days=3650)) is None
    with pytest.raises(Conflict):
        beats_db.retract_incident(uid, "again", actor="t", now=NOW)
    with pytest.raises(EntryNotFound):
        beats_db.retract_incident("nope", "x", actor="t", now=NOW)


# ---- every shared Seattle CSV, uploaded on the web --------------------------------------------
SHARED = [
    ("spd_911_incident_response_2016-03-25.csv", "spd-911"),
    ("spd_911_incident_response_2016-03-02.csv", "spd-911"),
    ("spd_crime_data_robbery_2008_2021.csv", "spd-crime"),
    ("spd_call_data_blurred_sector_c_2010_2023.csv", "spd-call-data"),
    ("seattle_fire_911_calls_mva_2010_2015.csv", "seattle-fire-911"),
]


@pytest.mark.shared_data
@pytest.mark.parametrize("name, preset", SHARED)
def test_every_shared_csv_is_detected_and_imported_from_the_web(
    clerk, beats_store, settings, name, preset
):
    path = shared(name)
    uid = upload_id(upload(clerk, path))
    up = beats_store.get_upload(uid)
    assert up.status == "queued" and up.preset == preset
    page = clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    assert 'id="preview"' in page
    assert records.process_queue(beats_store, settings, utcnow())["imported"] == 1
    first = beats_store.get_import_run(beats_store.get_upload(uid).run_id).counters
    assert first["new"] > 0
    again = upload_id(upload(clerk, path))
    records.process_queue(beats_store, settings, utcnow())
    second = beats_store.get_import_run(beats_store.get_upload(again).run_id).counters
    assert second["new"] == 0 and second["read"] == first["read"]


def test_old_upload_files_are_pruned_on_every_backend(db, cfg):
    old = NOW - timedelta(days=cfg.upload_retention_days + 1)
    with open(SAMPLE, "rb") as fh:
        first = records.store_upload(db, cfg, fh, "sample.csv", actor="a@example.org", now=old)
    with open(SAMPLE, "rb") as fh:  # the same content and name: the same stored file
        second = records.store_upload(db, cfg, fh, "sample.csv", actor="a@example.org", now=old)
    db.finish_upload(first.id, status="failed", error="cancelled by a@example.org", now=old)
    assert [u.id for u in db.uploads_past_retention(NOW)] == [first.id]
    assert db.uploads_keeping_file(first.stored_path, [first.id]) == 1
    assert records.prune_upload_files(db, cfg, NOW) == {"uploads": 1, "files": 0, "bytes": 0}
    assert db.get_upload(first.id).file_removed and not db.get_upload(second.id).file_removed
    assert db.uploads_past_retention(NOW) == []

    db.finish_upload(second.id, status="done", now=old)
    summary = records.prune_upload_files(db, cfg, NOW)
    assert summary["uploads"] == 1 and summary["files"] == 1
    assert not Path(second.stored_path).exists()
    assert db.mark_upload_files_removed([second.id]) == 1  # idempotent: already ""
