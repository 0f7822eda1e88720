"""Scheduled sources: a watched folder and an HTTP URL (a real loopback server), polled by the
`poll-sources` job; each new file is one import run, the same content is never imported
twice, failures are recorded and shown; managed with `beatfeeds sources`."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from beatfeeds import jobs
from beatfeeds.cli import main
from beatfeeds.core.errors import ConfigurationError
from beatfeeds.services import sources
from tests.support.exports import export, write_rows
from tests.support.instance import make_settings, utcnow


# One clock reading per test run: a row exported twice must be the same row, however long the
# test took between the two exports (a second apart, it would read as a correction).
def poll(store, settings, now=None) -> dict:
    return jobs.run_job("poll-sources", store, settings, now or utcnow())


def run_counters(store, poll_result) -> dict:
    return store.get_import_run(poll_result.upload.run_id).counters


# ---- a watched folder ----------------------------------------------------------------------
def test_a_watched_folder_imports_each_new_file_once(beats_store, settings, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources.add_source(
        beats_store,
        "dispatch-drop",
        folder=str(inbox),
        interval_minutes=10,
        actor="test",
        now=utcnow(),
    )
    export(inbox / "day1.csv", [1, 2, 3])
    (inbox / "day2.csv.part").write_text("still being written")
    (inbox / ".hidden.csv").write_text("editor swap file")

    now = utcnow()
    assert poll(beats_store, settings, now) == {
        "imported": 1,
        "unchanged": 0,
        "failed": 0,
        "polled": 1,
    }
    assert beats_store.incident_count() == 3
    assert (inbox / "done" / "day1.csv").exists() and not (inbox / "day1.csv").exists()
    assert (inbox / "day2.csv.part").exists() and (inbox / ".hidden.csv").exists()
    upload = beats_store.list_uploads()[0]
    assert upload.uploaded_by == "source:dispatch-drop" and upload.status == "done"
    run = beats_store.get_import_run(upload.run_id)
    assert run.counters["new"] == 3 and run.user_email == "source:dispatch-drop"

    # Not due yet: a new file waits for the interval.
    export(inbox / "day2.csv", [3, 4])
    assert poll(beats_store, settings, now + timedelta(minutes=5))["polled"] == 0
    later = now + timedelta(minutes=10)
    assert poll(beats_store, settings, later)["imported"] == 1
    assert beats_store.incident_count() == 4

    # The same content under another name is never imported again.
    (inbox / "day1-again.csv").write_bytes((inbox / "done" / "day1.csv").read_bytes())
    summary = poll(beats_store, settings, later + timedelta(minutes=10))
    assert summary == {"imported": 0, "unchanged": 1, "failed": 0, "polled": 1}
    assert (inbox / "done" / "day1-again.csv").exists()
    assert len(beats_store.list_import_runs()) == 2


def test_a_bad_file_in_a_folder_is_recorded_set_aside_and_shown(
    beats_store, settings, tmp_path, clerk
):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources.add_source(beats_store, "dispatch-drop", folder=str(inbox), actor="test", now=utcnow())
    (inbox / "report.xlsx").write_bytes(b"PK\x03\x04\x00binary")
    write_rows(inbox / "other.csv", [["1", "2"]], header=["foo", "bar"])
    export(inbox / "good.csv", [7])
    summary = poll(beats_store, settings)
    assert summary == {"imported": 1, "unchanged": 0, "failed": 2, "polled": 1}
    assert (inbox / "failed" / "report.xlsx").exists()
    assert (inbox / "failed" / "other.csv").exists()
    assert (inbox / "done" / "good.csv").exists()
    failures = beats_store.source_polls(status="failed")
    assert {f.filename for f in failures} == {"report.xlsx", "other.csv"}
    page = clerk.get("/records/imports").get_data(as_text=True)
    assert "dispatch-drop" in page and "Recent source failures" in page
    assert "not text" in page and "give the source a preset" in page


def test_a_missing_folder_is_a_recorded_failure(beats_store, settings, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources.add_source(beats_store, "gone", folder=str(inbox), actor="test", now=utcnow())
    inbox.rmdir()
    assert poll(beats_store, settings)["failed"] == 1
    s = beats_store.get_source("gone")
    assert s.last_status == "failed" and "does not exist" in s.last_error


# ---- a URL on a real loopback server -------------------------------------------------------
def test_a_url_is_polled_on_its_interval_and_the_same_content_is_never_imported_twice(
    beats_store, settings, tmp_path, socrata
):
    socrata.body = export(tmp_path / "a.csv", [1, 2]).read_bytes()
    sources.add_source(
        beats_store,
        "spd-911-socrata",
        url=socrata.url,
        preset="spd-911",
        interval_minutes=60,
        actor="test",
        now=utcnow(),
    )
    now = utcnow()
    first = sources.poll_sources(beats_store, settings, now)
    assert first == {"imported": 1, "unchanged": 0, "failed": 0, "polled": 1}
    assert beats_store.incident_count() == 2
    assert socrata.requests[0]["User-Agent"].startswith("beatfeeds/")

    assert sources.poll_sources(beats_store, settings, now + timedelta(minutes=30))["polled"] == 0
    same = sources.poll_sources(beats_store, settings, now + timedelta(minutes=60))
    assert same == {"imported": 0, "unchanged": 1, "failed": 0, "polled": 1}
    assert len(beats_store.list_import_runs()) == 1  # no second run for the same bytes

    socrata.body = export(tmp_path / "b.csv", [2, 3, 4]).read_bytes()
    results = sources.poll_source(
        beats_store,
        settings,
        beats_store.get_source("spd-911-socrata"),
        now + timedelta(minutes=120),
    )
    assert [r.status for r in results] == ["imported"]
    counters = run_counters(beats_store, results[0])
    assert counters["new"] == 2 and counters["unchanged"] == 1 and counters["read"] == 3
    polls = beats_store.source_polls(source_id=beats_store.get_source("spd-911-socrata").id)
    assert [p.status for p in polls] == ["imported", "unchanged", "imported"]
    assert polls[0].file_sha256 == hashlib.sha256(socrata.body).hexdigest()


def test_a_url_with_an_etag_is_fetched_conditionally(beats_store, settings, tmp_path, socrata):
    socrata.body = export(tmp_path / "a.csv", [1]).read_bytes()
    socrata.etag = '"v1"'
    source = sources.add_source(beats_store, "etagged", url=socrata.url, actor="test", now=utcnow())
    assert sources.poll_source(beats_store, settings, source, utcnow())[0].status == "imported"
    source = beats_store.get_source("etagged")
    assert source.etag == '"v1"'
    assert sources.poll_source(beats_store, settings, source, utcnow())[0].status == "unchanged"
    assert socrata.requests[-1]["If-None-Match"] == '"v1"'


def test_url_failures_are_recorded_and_shown(beats_store, settings, tmp_path, socrata, clerk):
    socrata.status = 503
    sources.add_source(
        beats_store, "flaky", url=socrata.url, preset="spd-911", actor="test", now=utcnow()
    )
    assert sources.poll_sources(beats_store, settings, utcnow())["failed"] == 1
    s = beats_store.get_source("flaky")
    assert s.last_status == "failed" and "HTTP 503" in s.last_error
    page = clerk.get("/records/imports").get_data(as_text=True)
    assert "flaky" in page and "HTTP 503" in page

    # A retry after the interval succeeds once the server recovers.
    socrata.status = 200
    socrata.body = export(tmp_path / "a.csv", [1]).read_bytes()
    later = utcnow() + timedelta(minutes=15)
    assert sources.poll_sources(beats_store, settings, later)["imported"] == 1
    assert beats_store.get_source("flaky").last_status == "imported"


def test_an_unreachable_url_is_a_recorded_failure(beats_store, settings):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    sources.add_source(
        beats_store, "down", url=f"http://127.0.0.1:{port}/x.csv", actor="test", now=utcnow()
    )
    assert sources.poll_sources(beats_store, settings, utcnow())["failed"] == 1
    assert "cannot fetch from 127.0.0.1" in beats_store.get_source("down").last_error


# ---- the CLI -------------------------------------------------------------------------------
def invoke(runner, *args):
    return runner.invoke(main, list(args))


def test_sources_are_added_listed_polled_and_removed_from_the_cli(runner, tmp_path):
    assert invoke(runner, "db", "upgrade").exit_code == 0
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    r = invoke(
        runner,
        "sources",
        "add",
        "drop",
        "--folder",
        str(inbox),
        "--preset",
        "spd-911",
        "--interval",
        "5",
    )
    assert r.exit_code == 0 and "added source drop: folder" in r.output
    r = invoke(runner, "sources", "add", "socrata", "--url", "https://data.example.org/x.csv")
    assert r.exit_code == 0, r.output
    lines = invoke(runner, "sources", "list").output.splitlines()
    assert lines[0].split("\t")[:5] == ["drop", "folder", str(inbox), "spd-911", "every 5 min"]
    assert lines[1].split("\t")[3:6] == ["detect", "every 15 min", "never"]

    for args, message in [
        (["dup", "--folder", str(inbox), "--url", "http://x/"], "either --folder"),
        (["none"], "either --folder"),
        (["ftp", "--url", "ftp://example.org/x.csv"], "http:// or https://"),
        (["fileurl", "--url", "file:///etc/passwd"], "http:// or https://"),
        (["nofolder", "--folder", str(tmp_path / "missing")], "is not a folder"),
        (["badpreset", "--folder", str(inbox), "--preset", "nope"], "Unknown preset"),
        (["drop", "--folder", str(inbox)], "already exists"),
        (["Bad Name!", "--folder", str(inbox)], "source name"),
        (["slow", "--folder", str(inbox), "--interval", "0"], "at least 1 minute"),
    ]:
        r = invoke(runner, "sources", "add", *args)
        assert r.exit_code == 1 and message in r.output, (args, r.output)

    assert "poll-sources\tevery 30s" in invoke(runner, "jobs", "list").output
    invoke(runner, "sources", "remove", "socrata")
    export(inbox / "x.csv", [1, 2])
    r = invoke(runner, "jobs", "run", "poll-sources")
    assert r.exit_code == 0 and "'imported': 1" in r.output
    export(inbox / "y.csv", [3])
    r = invoke(runner, "sources", "poll", "drop")  # now, whatever the interval
    assert r.exit_code == 0 and "imported 1" in r.output
    r = invoke(runner, "sources", "remove", "drop")
    assert r.exit_code == 0 and "removed source drop" in r.output
    assert invoke(runner, "sources", "list").output == ""
    r = invoke(runner, "sources", "remove", "drop")
    assert r.exit_code == 1 and "No source named" in r.output


# ---- the download limit (BEATFEEDS_SOURCE_MAX_MB) ------------------------------------------
def big_export(tmp_path) -> bytes:
    """A valid spd-911 export of about 1.4 MB: refused for its size, not its content."""
    body = export(tmp_path / "big.csv", range(1, 9001)).read_bytes()
    assert len(body) > 1024 * 1024
    return body


def assert_nothing_kept(store, settings):
    uploads = Path(settings.instance_path) / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    assert store.incident_count() == 0 and store.list_uploads() == []
    assert store.list_import_runs() == []


def test_a_download_announced_over_the_limit_is_refused_and_recorded(
    beats_store, tmp_path, httpserver, clerk
):
    from werkzeug import Response

    settings = make_settings(tmp_path, source_max_mb=1)
    body = big_export(tmp_path)
    httpserver.expect_request("/big.csv").respond_with_response(
        Response(body, content_type="text/csv")
    )
    sources.add_source(
        beats_store,
        "huge",
        url=httpserver.url_for("/big.csv"),
        preset="spd-911",
        actor="test",
        now=utcnow(),
    )
    assert sources.poll_sources(beats_store, settings, utcnow()) == {
        "imported": 0,
        "unchanged": 0,
        "failed": 1,
        "polled": 1,
    }
    s = beats_store.get_source("huge")
    assert s.last_status == "failed"
    assert "1.4 MB, more than the 1 MB" in s.last_error
    assert "BEATFEEDS_SOURCE_MAX_MB" in s.last_error
    assert_nothing_kept(beats_store, settings)
    page = clerk.get("/records/imports").get_data(as_text=True)
    assert "BEATFEEDS_SOURCE_MAX_MB" in page

    # Under the default limit the same file imports.
    later = utcnow() + timedelta(minutes=20)
    assert sources.poll_sources(beats_store, make_settings(tmp_path), later)["imported"] == 1
    assert beats_store.incident_count() == 9000


def test_a_download_without_a_length_is_stopped_once_it_passes_the_limit(
    beats_store, tmp_path, httpserver
):
    from werkzeug import Response

    settings = make_settings(tmp_path, source_max_mb=1)
    body = big_export(tmp_path)

    def stream(request):
        def chunks():
            for i in range(0, len(body), 64 * 1024):
                yield body[i : i + 64 * 1024]

        return Response(chunks(), content_type="text/csv")  # no Content-Length

    httpserver.expect_request("/stream.csv").respond_with_handler(stream)
    sources.add_source(
        beats_store,
        "endless",
        url=httpserver.url_for("/stream.csv"),
        preset="spd-911",
        actor="test",
        now=utcnow(),
    )
    results = sources.poll_source(
        beats_store, settings, beats_store.get_source("endless"), utcnow()
    )
    assert [r.status for r in results] == ["failed"]
    assert "grew past the 1 MB" in results[0].error
    assert "download was stopped" in beats_store.get_source("endless").last_error
    assert_nothing_kept(beats_store, settings)


def test_a_download_cut_short_is_a_recorded_failure_without_a_partial_file(
    beats_store, settings, socrata
):
    socrata.body = b"CAD CDW ID,Event Clearance Date\n1,"
    sources.add_source(beats_store, "cut", url=socrata.url, actor="test", now=utcnow())
    socrata.lie = 1000  # the server announces more than it sends, then closes the connection
    assert sources.poll_sources(beats_store, settings, utcnow())["failed"] == 1
    error = beats_store.get_source("cut").last_error
    assert error.startswith("cannot fetch from 127.0.0.1")
    assert "closed after 34 of the 1,034 bytes announced" in error
    assert_nothing_kept(beats_store, settings)


def test_the_source_limit_is_at_least_one_megabyte(tmp_path):
    with pytest.raises(ConfigurationError, match="source_max_mb"):
        make_settings(tmp_path, source_max_mb=0)
