"""Files on disk (issue 13, point 10): everything beatfeeds creates in the instance folder
(the SQLite database and its -wal/-shm files, the secret key, uploads, downloaded source
files, import progress, rejected-row reports, dry-run mail) is private to its user: files
0600, folders 0700, even under the usual umask 022."""

from __future__ import annotations

import email
import os
import stat
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest

from beatfeeds.app import create_app
from beatfeeds.cli import main
from beatfeeds.core import files
from beatfeeds.core.settings import load_settings
from beatfeeds.services import alerts, records, sources
from beatfeeds.storage import SQLStore
from tests.support.alerts import link
from tests.support.exports import export
from tests.support.imports import MAPS, good, import_csv, row_at, write_csv
from tests.support.instance import utcnow


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # what most systems give a service: world-readable by default
    yield
    os.umask(old)


def _modes(root: Path) -> dict[str, str]:
    """Path (relative to root, root itself as `.`) -> octal mode of everything under root."""
    out = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for p in root.rglob("*"):
        out[str(p.relative_to(root))] = oct(stat.S_IMODE(p.stat().st_mode))
    return out


def test_everything_the_instance_holds_is_private(
    tmp_path, runner, monkeypatch, socrata, umask_022
):
    monkeypatch.delenv("BEATFEEDS_SECRET_KEY")  # so the generated key file is made too
    instance = tmp_path / "instance"
    # The demo's setup: database, secret key, the default beats and the sample incidents.
    r = runner.invoke(main, ["demo", "--no-serve"])
    assert r.exit_code == 0, r.output
    # A CLI import with a bad row: its rejected-rows report.
    bad = write_csv(tmp_path / "bad.csv", [good(900001), good(900002, when="soon")])
    r = runner.invoke(
        main,
        [
            "incidents",
            "import",
            str(bad),
            *[f"--map={k}={v}" for k, v in MAPS.items()],
            "--source",
            "t",
        ],
    )
    assert r.exit_code == 1 and list((instance / "reports").glob("*.csv")), r.output

    settings = load_settings(
        {"dry_run": True, "base_url": "http://feeds.example.test"}, environ=dict(os.environ)
    )
    store = SQLStore.from_url(settings.database_url)
    now = utcnow()
    # A staff upload, imported by the queue (its progress file too).
    with open(export(tmp_path / "upload.csv", [1, 2]), "rb") as fh:
        records.store_upload(
            store,
            settings,
            fh,
            "upload.csv",
            actor="records@example.org",
            now=now,
            preset="spd-911",
        )
    assert records.process_queue(store, settings, now)
    # A scheduled source's download.
    socrata.body = export(tmp_path / "socrata.csv", [3, 4]).read_bytes()
    sources.add_source(
        store,
        "socrata",
        url=socrata.url,
        preset="spd-911",
        interval_minutes=60,
        actor="test",
        now=now,
    )
    assert sources.poll_sources(store, settings, now)["imported"] == 1
    # A dry-run sign-up, its confirmation and an alert: `.eml` files.
    app = create_app(
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "store": store, **settings.as_dict()}
    )
    client = app.test_client()
    client.post(
        "/alerts/subscribe",
        data={"address": "resident@example.org", "area_kind": "beat", "area_code": "K3"},
    )
    (confirmation,) = (instance / "mail").glob("*.eml")
    msg = email.message_from_bytes(confirmation.read_bytes(), policy=policy.default)
    assert (
        client.post(link(msg.get_body(("plain",)).get_content(), "/alerts/confirm/")).status_code
        == 200
    )
    assert store.email_subscriptions()
    now = utcnow()  # after the subscription: the entry is news to it
    import_csv(store, settings, tmp_path, [row_at(settings, 1, now - timedelta(minutes=120))], now)
    due = now + timedelta(minutes=settings.publication_delay + settings.alert_grace_minutes)
    assert alerts.send_alerts(store, settings, due)["sent"] == 1
    assert len(list((instance / "mail").glob("*.eml"))) == 2

    with store.engine.connect() as conn:  # while a connection is open, WAL files exist
        conn.exec_driver_sql("select count(*) from incidents").scalar()
        modes = _modes(instance)
    for name in (
        "beatfeeds.sqlite3",
        "beatfeeds.sqlite3-wal",
        "beatfeeds.sqlite3-shm",
        "secret_key",
        "reports",
        "uploads",
        "mail",
    ):
        assert name in modes, sorted(modes)
    kept = [k for k in modes if k.startswith("uploads/")]
    assert any(k.endswith("-upload.csv") for k in kept), kept  # the staff upload
    assert any("-socrata-" in k for k in kept), kept  # the source's download
    loose = {
        k: m
        for k, m in modes.items()
        if m != oct((instance / k).is_dir() and files.DIR_MODE or files.FILE_MODE)
    }
    assert loose == {}, loose


def test_the_helpers_hold_under_any_umask_and_fix_an_existing_file(tmp_path, umask_022):
    os.umask(0)
    path = files.write_private(tmp_path / "a" / "b" / "c.txt", "x")
    assert _modes(tmp_path / "a") == {".": "0o700", "b": "0o700", "b/c.txt": "0o600"}
    loose = tmp_path / "loose.txt"
    loose.write_text("old")
    loose.chmod(0o644)
    with files.open_private(loose, "w") as fh:
        fh.write("new")
    assert oct(stat.S_IMODE(loose.stat().st_mode)) == "0o600" and loose.read_text() == "new"
    assert files.create_private(path) == path and path.read_text() == "x"  # left as it was
