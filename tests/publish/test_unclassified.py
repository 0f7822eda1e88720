"""Unclassified incidents are held back (issue 16): the setting, the start-up warning, the
import counters on the CLI and the web, and the publication-policy job on stored incidents."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from beatfeeds import jobs
from beatfeeds.cli import main
from beatfeeds.core.errors import ConfigurationError
from beatfeeds.core.logsetup import log_startup_warnings, startup_warnings
from beatfeeds.core.models import UNCLASSIFIED
from beatfeeds.publish import privacy
from beatfeeds.services import imports, records
from beatfeeds.services.imports import ImportOptions
from beatfeeds.storage import schema as t
from tests.support.exports import local, spd911_row, write_rows
from tests.support.instance import make_settings, utcnow
from tests.support.records import run_queue, upload, upload_id

UNKNOWN = dict(desc="ZORBLAX - QUUX", group="ZORBLAX", initial="QUUX")


def rows(when):
    return [spd911_row(901, when), spd911_row(902, when, **UNKNOWN)]


def test_the_setting_defaults_to_hold_and_accepts_only_hold_or_publish(tmp_path):
    assert make_settings(tmp_path).unclassified == "hold"
    assert make_settings(tmp_path).hold_unclassified
    assert startup_warnings(make_settings(tmp_path)) == []
    published = make_settings(tmp_path, unclassified=" Publish ")
    assert published.unclassified == "publish" and not published.hold_unclassified
    with pytest.raises(ConfigurationError, match="unclassified"):
        make_settings(tmp_path, unclassified="maybe")


def test_publishing_unclassified_incidents_is_warned_about_at_start_up(tmp_path, caplog):
    settings = make_settings(tmp_path, unclassified="publish")
    assert "BEATFEEDS_UNCLASSIFIED=publish" in startup_warnings(settings)[0]
    with caplog.at_level(logging.WARNING):
        log_startup_warnings(settings)
    assert "BEATFEEDS_UNCLASSIFIED=publish" in caplog.text
    from beatfeeds.scheduler import build_scheduler

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_scheduler(None, settings, background=True)
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_the_policy_fingerprint_names_the_setting():
    hold = privacy.policy_fingerprint(["medical"], 60)
    assert hold.startswith(f"rules={privacy.RULES_VERSION};") and privacy.RULES_VERSION >= 3
    assert hold != privacy.policy_fingerprint(["medical"], 60, hold_unclassified=False)


def test_the_import_counts_and_holds_unclassified_rows(beats_store, settings, tmp_path):
    path = write_rows(tmp_path / "export.csv", rows(local(utcnow() - timedelta(days=2))))
    report = imports.import_file(
        beats_store, path, ImportOptions(preset="spd-911"), settings, now=utcnow()
    )
    assert report.counters["new"] == 2 and report.counters["unclassified"] == 1
    assert "unclassified 1" in report.line()
    c = t.incidents.c
    with beats_store.engine.connect() as conn:
        got = dict(conn.execute(select(c.external_id, c.suppressed_reason)).all())
    assert got == {"901": None, "902": UNCLASSIFIED}
    # a corrected row that is still unclassified is counted again
    path = write_rows(
        tmp_path / "export.csv",
        [spd911_row(902, local(utcnow() - timedelta(days=1)), **UNKNOWN)],
    )
    report = imports.import_file(
        beats_store, path, ImportOptions(preset="spd-911"), settings, now=utcnow()
    )
    assert report.counters["updated"] == 1 and report.counters["unclassified"] == 1


def test_the_cli_import_says_how_many_rows_wait_as_unclassified(
    runner, monkeypatch, tmp_path, settings, beats_store
):
    monkeypatch.setenv("BEATFEEDS_DATABASE_URL", settings.database_url)
    path = write_rows(tmp_path / "export.csv", rows(local(utcnow() - timedelta(days=2))))
    r = runner.invoke(main, ["incidents", "import", str(path)])
    assert r.exit_code == 0, r.output
    assert "unclassified 1" in r.output
    assert "1 rows wait as unclassified" in r.output


def test_the_policy_job_holds_stored_other_incidents_and_the_setting_releases_them(
    beats_store, tmp_path
):
    publish = make_settings(tmp_path, unclassified="publish")
    path = write_rows(tmp_path / "export.csv", rows(local(utcnow() - timedelta(days=2))))
    imports.import_file(beats_store, path, ImportOptions(preset="spd-911"), publish, now=utcnow())

    def reasons():
        c = t.incidents.c
        q = select(c.external_id, c.category, c.suppressed_reason).order_by(c.external_id)
        with beats_store.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q).all()]

    assert reasons() == [("901", "car-prowl", None), ("902", "other", None)]
    jobs.apply_publication_policy(beats_store, make_settings(tmp_path), utcnow())
    assert reasons() == [("901", "car-prowl", None), ("902", "other", UNCLASSIFIED)]
    jobs.apply_publication_policy(beats_store, publish, utcnow())
    assert reasons() == [("901", "car-prowl", None), ("902", "other", None)]


def test_rederiving_keeps_a_category_another_column_decided():
    stored = {
        "category_text": "ZORBLAX",
        "description": "QUUX",
        "category": "theft",  # decided by an extra classification column, not stored
        "address": "12XX BLOCK OF 3RD AVE",
        "sensitive": False,
        "located": True,
        "released_digest": None,
        "occurred_at": utcnow(),
        "reported_at": None,
        "created_at": utcnow(),
    }
    assert privacy.redo_decisions(stored, [], 60)["suppressed_reason"] is None
    assert privacy.redo_decisions(stored | {"category": "other"}, [], 60)["suppressed_reason"] == (
        UNCLASSIFIED
    )


def test_the_web_import_result_says_how_many_rows_wait_as_unclassified(
    clerk, beats_store, settings, tmp_path
):
    path = write_rows(tmp_path / "export.csv", rows(local(utcnow() - timedelta(days=2))))
    uid = upload_id(upload(clerk, path))
    preview = records.preview_upload(
        beats_store, settings, beats_store.get_upload(uid), now=utcnow()
    )
    assert [p.status for p in preview] == ["delayed", "suppressed"]
    assert preview[1].reason.startswith("unclassified: ")
    run_queue(beats_store, settings)
    page = clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    assert '<th scope="row">unclassified</th><td>1</td>' in page
    assert 'id="unclassified-note"' in page and "1 entries wait as unclassified" in page
