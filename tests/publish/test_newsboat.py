"""A real feed reader (Debian's newsboat) subscribes to every beat feed of the demo served over
HTTP, sees the expected number of unread items, and sees nothing new after the same file is
imported again. newsboat exits 0 even when a feed fails, so its cache and log are checked too."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess

import pytest

from beatfeeds.services import demo, imports
from tests.support.browser import LiveServer
from tests.support.instance import make_settings, make_store, need, utcnow
from tests.support.web import make_app

pytestmark = pytest.mark.slow


def run_newsboat(tmp_path, urls_file, cache, log) -> str:
    config = tmp_path / "newsboat.conf"
    config.write_text(
        f'reload-threads 4\ndownload-timeout 30\nerror-log "{tmp_path / "errors.log"}"\n'
    )
    result = subprocess.run(
        [
            "newsboat",
            "-u",
            str(urls_file),
            "-c",
            str(cache),
            "-C",
            str(config),
            "-d",
            str(log),
            "-l",
            "4",
            "-x",
            "reload",
            "print-unread",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def unread(stdout: str) -> int:
    # "N unread articles"
    return int(stdout.strip().splitlines()[-1].split()[0])


def test_newsboat_reads_every_beat_feed_of_the_demo(tmp_path):
    need(shutil.which("newsboat") is not None, "newsboat not installed (apt-get install newsboat)")
    settings = make_settings(tmp_path)
    store = make_store(settings)
    now = utcnow()
    demo.setup_demo(store, settings, now=now, echo=lambda _m: None)
    app = make_app(settings, store)
    server = LiveServer(app)
    try:
        client = app.test_client()
        beats = [b.code for b in store.beats(store.active_beat_set().id)]
        urls = [f"{server.url}/beats/{code}/feed.atom" for code in beats]
        expected = sum(
            len(json.loads(client.get(f"/beats/{c}/feed.json").data)["items"]) for c in beats
        )
        assert expected > 200
        urls_file = tmp_path / "urls"
        urls_file.write_text("\n".join(urls) + "\n")
        cache, log = tmp_path / "cache.db", tmp_path / "newsboat.log"

        assert unread(run_newsboat(tmp_path, urls_file, cache, log)) == expected
        with sqlite3.connect(cache) as db:
            fetched = dict(
                db.execute(
                    "SELECT rssurl, title FROM rss_feed WHERE rssurl LIKE 'http%'"
                ).fetchall()
            )
            assert set(fetched) == set(urls), set(urls) - set(fetched)
            assert all(t.startswith(settings.department_name) for t in fetched.values())
            assert db.execute("SELECT count(*) FROM rss_item").fetchone()[0] == expected
            db.execute("UPDATE rss_item SET unread = 0")  # the resident reads everything
        errors = tmp_path / "errors.log"
        assert not errors.exists() or errors.read_text().strip() == "", errors.read_text()
        text = log.read_text(errors="replace")
        assert "HTTP error" not in text and "Error" not in text.replace("error-log", ""), text[
            -2000:
        ]

        # Records staff import the same file again: nothing is new for the reader.
        report = imports.import_file(
            store,
            demo.sample_incidents_path(),
            imports.ImportOptions(
                preset=demo.SAMPLE_PRESET,
                source=demo.SAMPLE_SOURCE,
                time_shift=demo.sample_shift(settings, now),
            ),
            settings,
            now=utcnow(),
        )
        assert report.counters["new"] == 0
        assert unread(run_newsboat(tmp_path, urls_file, cache, log)) == 0
        with sqlite3.connect(cache) as db:
            assert db.execute("SELECT count(*) FROM rss_item").fetchone()[0] == expected
    finally:
        server.stop()
