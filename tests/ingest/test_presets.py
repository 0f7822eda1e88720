"""Saved column-mapping presets: listed on /records/presets and deleted there (a confirmation
step, CSRF, audited) or with `beatfeeds presets`; one a scheduled source uses is kept."""

from __future__ import annotations

import re

import pytest

from beatfeeds.cli import main
from beatfeeds.core.errors import InvalidInput
from beatfeeds.core.settings import load_settings
from beatfeeds.services import presets, sources
from beatfeeds.storage import SQLStore
from tests.support.exports import sheriff_file
from tests.support.instance import utcnow
from tests.support.records import run_queue, upload, upload_id

COLUMNS = {
    "external_id": "Case No",
    "occurred_at": "Reported",
    "category": "Offense",
    "lat": "Y",
    "lon": "X",
}


def save(store, name="county-sheriff", by="clerk@example.org"):
    return presets.save_preset(store, name, "county-sheriff", COLUMNS, actor=by, now=utcnow())


def test_saved_presets_are_listed_with_their_columns_author_and_sources(
    clerk, beats_store, tmp_path
):
    save(beats_store)
    save(beats_store, "harbor-patrol", by="other@example.org")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources.add_source(
        beats_store,
        "sheriff-drop",
        folder=str(inbox),
        preset="county-sheriff",
        actor="test",
        now=utcnow(),
    )
    imports_page = clerk.get("/records/imports").get_data(as_text=True)
    assert 'href="/records/presets"' in imports_page
    page = clerk.get("/records/presets").get_data(as_text=True)
    row = re.search(r'<tr id="preset-county-sheriff">(.*?)</tr>', page, re.S).group(1)
    assert "external_id: <code>Case No</code>" in row and "lon: <code>X</code>" in row
    assert "clerk@example.org" in row and "sheriff-drop" in row
    assert 'href="/records/presets/county-sheriff/delete"' in row
    other = re.search(r'<tr id="preset-harbor-patrol">(.*?)</tr>', page, re.S).group(1)
    assert "other@example.org" in other and "none" in other


def test_a_preset_is_deleted_after_a_confirmation_and_the_deletion_is_audited(
    app, clerk, beats_store
):
    save(beats_store)
    confirm = clerk.get("/records/presets/county-sheriff/delete").get_data(as_text=True)
    assert "Delete the saved layout county-sheriff?" in confirm
    assert 'action="/records/presets/county-sheriff/delete"' in confirm
    assert beats_store.saved_preset("county-sheriff") is not None  # a GET changes nothing

    app.config["WTF_CSRF_ENABLED"] = True
    r = clerk.post("/records/presets/county-sheriff/delete")
    assert r.status_code == 400 and beats_store.saved_preset("county-sheriff") is not None
    app.config["WTF_CSRF_ENABLED"] = False

    r = clerk.post("/records/presets/county-sheriff/delete", follow_redirects=True)
    page = r.get_data(as_text=True)
    assert "The saved preset county-sheriff was deleted" in page
    assert "No saved layouts yet" in page
    assert beats_store.saved_preset("county-sheriff") is None
    entry = beats_store.audit_log(5)[0]
    assert entry["action"] == "presets.delete" and entry["target"] == "preset:county-sheriff"
    assert entry["actor"] == "clerk@example.org"

    # Gone: its confirmation page is a 404 and deleting again says so.
    assert clerk.get("/records/presets/county-sheriff/delete").status_code == 404
    again = clerk.post("/records/presets/county-sheriff/delete", follow_redirects=True)
    assert "No saved preset" in again.get_data(as_text=True)


def test_a_preset_a_scheduled_source_uses_cannot_be_deleted(clerk, beats_store, tmp_path):
    save(beats_store)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources.add_source(
        beats_store,
        "sheriff-drop",
        folder=str(inbox),
        preset="county-sheriff",
        actor="test",
        now=utcnow(),
    )
    confirm = clerk.get("/records/presets/county-sheriff/delete").get_data(as_text=True)
    assert "cannot be deleted" in confirm and "sheriff-drop" in confirm
    assert "Delete the saved layout county-sheriff</button>" not in confirm
    r = clerk.post("/records/presets/county-sheriff/delete", follow_redirects=True)
    page = r.get_data(as_text=True)
    assert "cannot be deleted" in page and "sheriff-drop uses it" in page
    assert beats_store.saved_preset("county-sheriff") is not None
    assert not any(e["action"] == "presets.delete" for e in beats_store.audit_log())

    # Once the source is removed, the preset can go.
    sources.remove_source(beats_store, "sheriff-drop", actor="test", now=utcnow())
    presets.delete_preset(beats_store, "county-sheriff", actor="test", now=utcnow())
    assert beats_store.saved_presets() == []


def test_built_in_presets_cannot_be_deleted(beats_store):
    with pytest.raises(InvalidInput, match="built-in"):
        presets.delete_preset(beats_store, "spd-911", actor="test", now=utcnow())


def test_a_queued_file_keeps_its_columns_when_its_preset_is_deleted(
    clerk, beats_store, settings, tmp_path
):
    save(beats_store)
    uid = upload_id(upload(clerk, sheriff_file(tmp_path / "sheriff.csv")))
    assert beats_store.get_upload(uid).preset == "county-sheriff"
    presets.delete_preset(beats_store, "county-sheriff", actor="test", now=utcnow())
    assert run_queue(beats_store, settings)["imported"] == 1
    assert beats_store.get_import_run(beats_store.get_upload(uid).run_id).counters["new"] == 2


def test_presets_are_listed_and_deleted_from_the_cli(runner, tmp_path):
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    store = SQLStore.from_url(load_settings().database_url)
    save(store)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources.add_source(
        store,
        "sheriff-drop",
        folder=str(inbox),
        preset="county-sheriff",
        actor="test",
        now=utcnow(),
    )
    r = runner.invoke(main, ["presets", "list"])
    assert r.exit_code == 0
    fields = r.output.splitlines()[0].split("\t")
    assert fields[:2] == ["county-sheriff", "county-sheriff"]
    assert "external_id=Case No" in fields[2] and fields[3] == "clerk@example.org"
    assert fields[5] == "sheriff-drop"

    r = runner.invoke(main, ["presets", "delete", "county-sheriff"])
    assert r.exit_code == 1 and "sheriff-drop uses it" in r.output
    runner.invoke(main, ["sources", "remove", "sheriff-drop"])
    r = runner.invoke(main, ["presets", "delete", "county-sheriff"])
    assert r.exit_code == 0 and "deleted preset county-sheriff" in r.output
    assert runner.invoke(main, ["presets", "list"]).output == ""
    r = runner.invoke(main, ["presets", "delete", "county-sheriff"])
    assert r.exit_code == 1 and "No saved preset" in r.output
