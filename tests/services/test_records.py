"""The records workflow over HTTP, the scheduler job and the CLI: upload, queue, preview,
progress, counters, rejected rows, column mapping and saved presets, the upload limit."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from beatfeeds.app import create_app
from beatfeeds.cli import main
from beatfeeds.services import records
from tests.support.exports import SPD911, local, sheriff_file, spd911_row, write_rows
from tests.support.instance import utcnow
from tests.support.records import run_queue, upload, upload_id
from tests.support.staff import CLERK, CLERK_PW


# ---- upload, preview, job, counters, rejected rows -------------------------------------------
def test_staff_pages_refuse_anonymous_users(client, mixed_file):
    assert client.get("/records/imports").status_code == 302
    assert upload(client, mixed_file).status_code == 302  # to the sign-in page
    assert "/login" in upload(client, mixed_file).headers["Location"]


def test_upload_is_stored_queued_previewed_then_imported_by_the_job(
    clerk, beats_store, settings, mixed_file
):
    uid = upload_id(upload(clerk, mixed_file))
    up = beats_store.get_upload(uid)
    assert up.status == "queued" and up.preset == "spd-911" and up.uploaded_by == CLERK
    stored = Path(up.stored_path)
    assert stored.parent == Path(settings.instance_path) / "uploads"
    assert stored.read_bytes() == mixed_file.read_bytes()
    assert beats_store.incident_count() == 0  # nothing imported by the request itself

    page = clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    assert "Preview" in page and 'data-status="queued"' in page
    assert "12XX BLOCK OF 3RD AVE" in page  # 1234 3RD AVE, published as its hundred block
    assert "1234 3RD AVE" not in page
    assert "delayed until" in page and "publishes" not in page  # not before the delay
    assert "suppressed: " in page and "juvenile" in page
    assert "rejected: " in page and "unrecognised date" in page
    assert "unassigned: outside every beat" in page
    preview = records.preview_upload(beats_store, settings, up, now=utcnow())
    assert [p.status for p in preview] == [
        "delayed",
        "delayed",
        "suppressed",
        "rejected",
        "unassigned",
    ]
    assert preview[0].beat == "M3" and preview[0].category == "car-prowl"
    assert "<td>M3</td>" in page  # the beat it joins, computed by our spatial join

    assert run_queue(beats_store, settings) == {"imported": 1, "failed": 0, "requeued": 0}
    up = beats_store.get_upload(uid)
    assert up.status == "done" and up.run_id
    page = clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    assert 'data-status="done"' in page and 'id="counters"' in page
    assert '<th scope="row">new</th><td>4</td>' in page
    assert '<th scope="row">rejected</th><td>1</td>' in page
    assert f"/records/imports/runs/{up.run_id}/rejected.csv" in page

    r = clerk.get(f"/records/imports/runs/{up.run_id}/rejected.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["line", "reason", "CAD CDW ID"]
    assert rows[1][0] == "5" and "unrecognised date" in rows[1][1]
    date_cell = rows[1][2 + SPD911.index("Event Clearance Date")]
    assert date_cell.startswith("'=cmd")  # the formula is neutralised
    assert all(not cell.startswith("=") for row in rows for cell in row)

    history = clerk.get("/records/imports").get_data(as_text=True)
    assert CLERK in history and "clerk export.csv" in history and "new 4" in history
    assert run_queue(beats_store, settings)["imported"] == 0  # the queue is empty
    assert any(
        a["action"] == "incidents.upload" and a["actor"] == CLERK for a in beats_store.audit_log()
    )


def test_admins_may_upload_too(app, beats_store, clerk_hash, mixed_file):
    beats_store.add_user("boss@example.org", "admin", clerk_hash, utcnow())
    c = app.test_client()
    c.post("/login", data={"email": "boss@example.org", "password": CLERK_PW})
    assert beats_store.get_upload(upload_id(upload(c, mixed_file))).status == "queued"


def test_a_running_import_shows_its_progress(clerk, beats_store, settings, mixed_file):
    uid = upload_id(upload(clerk, mixed_file))
    up = beats_store.claim_next_upload(utcnow())
    assert up.id == uid and up.status == "running"
    records._progress_writer(settings, uid, utcnow)(3)
    page = clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    assert 'data-status="running"' in page and "3 rows processed of about 5" in page
    assert '<progress max="100" value="60"' in page
    assert 'http-equiv="refresh"' in page
    assert records.run_upload(beats_store, settings, up, now=utcnow()).status == "done"
    assert not list((Path(settings.instance_path) / "uploads").glob(".progress-*"))


def test_progress_is_reported_while_a_large_file_imports(
    beats_store, settings, tmp_path, monkeypatch
):
    when = local(utcnow() - timedelta(days=1))
    path = write_rows(tmp_path / "big.csv", [spd911_row(i, when) for i in range(12000)])
    with open(path, "rb") as fh:
        up = records.store_upload(beats_store, settings, fh, path.name, actor=CLERK, now=utcnow())
    seen = []
    real = records._progress_writer

    def spy(settings_, upload_id, clock):
        write = real(settings_, upload_id, clock)

        def both(n):
            write(n)
            seen.append(records.read_progress(settings_, beats_store.get_upload(upload_id)).rows)

        return both

    monkeypatch.setattr(records, "_progress_writer", spy)
    assert records.process_queue(beats_store, settings, utcnow())["imported"] == 1
    # 0 when it starts, then after each chunk the import reports; the page reads the file.
    assert seen[0] == 0 and seen[-1] == 12000 and seen == sorted(seen)
    assert beats_store.get_upload(up.id).rows_estimate == 12000


def test_a_dead_worker_s_upload_is_requeued_and_completed(beats_store, settings, mixed_file):
    with open(mixed_file, "rb") as fh:
        up = records.store_upload(
            beats_store, settings, fh, mixed_file.name, actor=CLERK, now=utcnow()
        )
    long_ago = utcnow() - timedelta(hours=1)
    beats_store.claim_next_upload(long_ago)  # claimed, then the worker was killed
    summary = records.process_queue(beats_store, settings, utcnow())
    assert summary == {"imported": 1, "failed": 0, "requeued": 1}
    assert beats_store.get_upload(up.id).status == "done"


def test_unusable_files_fail_with_a_reason_and_are_listed(clerk, beats_store, settings, tmp_path):
    binary = tmp_path / "export.xlsx"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary")
    uid = upload_id(upload(clerk, binary))
    up = beats_store.get_upload(uid)
    assert up.status == "failed" and "not text" in up.error
    assert "not text" in clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    assert "not text" in clerk.get("/records/imports").get_data(as_text=True)


def test_upload_without_a_file_explains(clerk):
    r = clerk.post(
        "/records/imports", data={}, content_type="multipart/form-data", follow_redirects=True
    )
    assert "Choose a CSV file" in r.get_data(as_text=True)


def test_upload_form_needs_the_csrf_token(app, clerk, mixed_file):
    app.config["WTF_CSRF_ENABLED"] = True
    r = upload(clerk, mixed_file)
    assert r.status_code == 400 and "form expired" in r.get_data(as_text=True)
    page = clerk.get("/records/imports").get_data(as_text=True)
    assert 'name="csrf_token"' in page and 'enctype="multipart/form-data"' in page


def test_an_upload_over_the_limit_gets_413_before_it_is_stored(
    tmp_path, beats_store, settings, clerk_hash
):
    app = create_app(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "store": beats_store,
            **settings.as_dict(),
            "max_upload_mb": 1,
        }
    )
    beats_store.add_user(CLERK, "records", clerk_hash, utcnow())
    c = app.test_client()
    c.post("/login", data={"email": CLERK, "password": CLERK_PW})
    body = io.BytesIO(b"a,b\n" + b"1,2\n" * (10 * 1024 * 1024 // 4))  # 10 MB
    r = c.post(
        "/records/imports", data={"file": (body, "huge.csv")}, content_type="multipart/form-data"
    )
    assert r.status_code == 413 and "larger than this site accepts" in r.get_data(as_text=True)
    folder = Path(settings.instance_path) / "uploads"
    assert not folder.exists() or not any(folder.iterdir())
    assert beats_store.list_uploads() == []


def test_the_size_limit_also_holds_without_a_content_length(beats_store, settings, tmp_path):
    with pytest.raises(Exception) as exc:
        records.store_upload(
            beats_store,
            settings,
            io.BytesIO(b"x" * (2 * 1024 * 1024)),
            "big.csv",
            actor=CLERK,
            now=utcnow(),
            max_bytes=1024 * 1024,
        )
    assert exc.value.http_status == 413
    assert not any((Path(settings.instance_path) / "uploads").iterdir())


# ---- column mapping and saved presets ------------------------------------------------------
def test_an_unknown_layout_asks_for_a_mapping_which_can_be_saved_as_a_preset(
    clerk, beats_store, settings, tmp_path, runner, monkeypatch
):
    uid = upload_id(upload(clerk, sheriff_file(tmp_path / "sheriff.csv")))
    assert beats_store.get_upload(uid).status == "needs-mapping"
    page = clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    assert "Map the columns" in page and 'name="map_external_id"' in page
    assert '<option value="Case No">Case No</option>' in page

    mapping = {
        "map_external_id": "Case No",
        "map_occurred_at": "Reported",
        "map_category": "Offense",
        "map_description": "Narrative",
        "map_address": "Location",
        "map_lat": "Y",
        "map_lon": "X",
        "map_sensitive": "DV",
    }
    bad = clerk.post(
        f"/records/imports/{uid}/mapping",
        data={**mapping, "map_lat": "", "source": "county-sheriff"},
        follow_redirects=True,
    )
    assert "Map both lat and lon" in bad.get_data(as_text=True)
    assert beats_store.get_upload(uid).status == "needs-mapping"

    r = clerk.post(
        f"/records/imports/{uid}/mapping",
        data={**mapping, "source": "county-sheriff", "save_as": "county-sheriff"},
    )
    assert r.status_code == 302
    up = beats_store.get_upload(uid)
    assert up.status == "queued" and up.mapping["external_id"] == "Case No"
    preview = clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    assert "19XX BLOCK OF E JEFFERSON ST" in preview and "marked sensitive" in preview
    assert run_queue(beats_store, settings)["imported"] == 1
    assert beats_store.get_import_run(beats_store.get_upload(uid).run_id).counters["new"] == 2
    saved = beats_store.saved_preset("county-sheriff")
    assert saved.source == "county-sheriff" and saved.columns["lat"] == "Y"

    # Next time the same layout is recognised from the saved preset...
    uid2 = upload_id(upload(clerk, sheriff_file(tmp_path / "sheriff2.csv", key_start=2)))
    up2 = beats_store.get_upload(uid2)
    assert up2.status == "queued" and up2.preset == "county-sheriff"
    assert run_queue(beats_store, settings)["imported"] == 1
    counters = beats_store.get_import_run(beats_store.get_upload(uid2).run_id).counters
    assert counters["new"] == 1 and counters["updated"] == 1  # S-2 corrected in place

    # ... and the CLI takes it as --preset NAME.
    monkeypatch.setenv("BEATFEEDS_DATABASE_URL", settings.database_url)
    cli_file = sheriff_file(tmp_path / "sheriff3.csv", key_start=3)
    res = runner.invoke(main, ["incidents", "import", str(cli_file), "--preset", "county-sheriff"])
    assert res.exit_code == 0, res.output
    assert "source county-sheriff" in res.output and "new 1" in res.output
    res = runner.invoke(main, ["incidents", "import", str(cli_file), "--preset", "nope"])
    assert res.exit_code == 2 and "county-sheriff" in res.output  # names the saved presets


def test_a_saved_preset_name_must_be_new_and_not_built_in(clerk, beats_store, tmp_path):
    uid = upload_id(upload(clerk, sheriff_file(tmp_path / "s.csv")))
    data = {
        "map_external_id": "Case No",
        "map_occurred_at": "Reported",
        "source": "county-sheriff",
        "save_as": "spd-911",
    }
    r = clerk.post(f"/records/imports/{uid}/mapping", data=data, follow_redirects=True)
    assert "built-in preset" in r.get_data(as_text=True)
    assert beats_store.get_upload(uid).status == "needs-mapping"


def test_a_chosen_preset_is_used_as_given(clerk, beats_store, mixed_file):
    uid = upload_id(upload(clerk, mixed_file, preset="spd-911"))
    assert beats_store.get_upload(uid).preset == "spd-911"
    r = upload(clerk, mixed_file, preset="no-such-preset")
    assert r.status_code == 400 and "Unknown preset" in r.get_data(as_text=True)


def test_the_same_file_uploaded_again_says_so(clerk, beats_store, settings, mixed_file):
    first = upload_id(upload(clerk, mixed_file))
    run_queue(beats_store, settings)
    second = upload_id(upload(clerk, mixed_file))
    page = clerk.get(f"/records/imports/{second}").get_data(as_text=True)
    assert f"#{first} by {CLERK}" in page
    run_queue(beats_store, settings)
    run = beats_store.get_import_run(beats_store.get_upload(second).run_id)
    assert run.counters["new"] == 0 and run.counters["unchanged"] == 4


def test_the_job_is_listed_and_runs_once_from_the_cli(runner, tmp_path, monkeypatch):
    listed = runner.invoke(main, ["jobs", "list"]).output
    assert "process-import-queue\tevery 5s" in listed
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    r = runner.invoke(main, ["jobs", "run", "process-import-queue"])
    assert r.exit_code == 0 and json.loads(r.output.split(": ", 1)[1].replace("'", '"')) == {
        "imported": 0,
        "failed": 0,
        "requeued": 0,
    }


def test_a_hostile_file_name_is_neither_a_path_nor_markup(clerk, beats_store, settings, mixed_file):
    with open(mixed_file, "rb") as fh:
        r = clerk.post(
            "/records/imports",
            data={"file": (fh, "../../<b>evil</b>\\..\\=cmd.csv")},
            content_type="multipart/form-data",
        )
    up = beats_store.get_upload(upload_id(r))
    stored = Path(up.stored_path)
    assert stored.parent == Path(settings.instance_path) / "uploads"
    assert "/" not in stored.name and "<" not in stored.name
    page = clerk.get(f"/records/imports/{up.id}").get_data(as_text=True)
    assert "<b>evil</b>" not in page and "&lt;b&gt;evil&lt;/b&gt;" in page


def test_a_waiting_upload_can_be_cancelled_but_not_a_finished_one(
    clerk, beats_store, settings, mixed_file
):
    uid = upload_id(upload(clerk, mixed_file))
    assert "Cancel this upload" in clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    r = clerk.post(f"/records/imports/{uid}/cancel", follow_redirects=True)
    assert "nothing from it was imported" in r.get_data(as_text=True)
    up = beats_store.get_upload(uid)
    assert up.status == "failed" and up.error == f"cancelled by {CLERK}"
    assert run_queue(beats_store, settings)["imported"] == 0
    assert beats_store.incident_count() == 0
    r = clerk.post(f"/records/imports/{uid}/cancel", follow_redirects=True)
    assert "cannot be cancelled" in r.get_data(as_text=True)


def test_an_import_running_elsewhere_is_left_alone(beats_store, settings, mixed_file):
    with open(mixed_file, "rb") as fh:
        up = records.store_upload(
            beats_store, settings, fh, mixed_file.name, actor=CLERK, now=utcnow()
        )
    beats_store.claim_next_upload(utcnow() - timedelta(hours=1))  # started long ago...
    records._progress_writer(settings, up.id, utcnow)(50_000)  # ...but still making progress
    assert records.process_queue(beats_store, settings, utcnow()) == {
        "imported": 0,
        "failed": 0,
        "requeued": 0,
    }
    assert beats_store.get_upload(up.id).status == "running"
