"""A stranger cannot slow the site (issue 14, points 2 and 3).

Point 2: the feed cache had one global version that moved with every audit row, so failed
sign-ins kept every feed cold; an import rebuilt all feeds, and readers of a cold feed built it
in parallel. Point 3: while an import held SQLite's write lock, each sign-in held a server
thread for the 30 s busy timeout, and feeds (which store their Last-Modified mark) waited too.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from datetime import timedelta

import feedparser
import pytest

from beatfeeds.publish.cache import FeedCache
from beatfeeds.publish.feeds import FeedFilter
from beatfeeds.services import accounts, publishing
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.instance import utcnow
from tests.support.web import add_incident, build_site, fresh_row, sample_rows, write_incidents

ADMIN = "admin@example.org"
ADMIN_PW = "admin password 1234"
# K3 is in sector K of the West precinct; C1 is in sector C of the East precinct.
NEAR = ["/beats/K3/feed.atom", "/sectors/K/feed.atom", "/precincts/W/feed.atom", "/feed.atom"]
FAR = [
    "/beats/C1/feed.atom",
    "/sectors/C/feed.atom",
    "/precincts/E/feed.atom",
    "/beats/K1/feed.atom",
]


@pytest.fixture
def site(tmp_path):
    app, store, settings = build_site(tmp_path)
    accounts.add_user(store, ADMIN, "admin", ADMIN_PW, actor="test", now=utcnow())
    return app, store, settings


@pytest.fixture
def built(monkeypatch):
    """Counts feed builds by area: (kind, code) -> builds."""
    counts: Counter = Counter()
    real = publishing.area_feed

    def counting(store, settings, area, fmt, **kw):
        counts[(area.kind, area.code)] += 1
        return real(store, settings, area, fmt, **kw)

    monkeypatch.setattr(publishing, "area_feed", counting)
    return counts


def failed_sign_in(client):
    return client.post("/login", data={"email": ADMIN, "password": "wrong password 1234"})


# ---- point 2: the cache is versioned by what a feed shows ------------------------------------


def test_failed_sign_ins_do_not_invalidate_a_cached_feed(site, built):
    app, store, _ = site
    c = app.test_client()
    first = c.get("/beats/K3/feed.atom")
    assert built == {("beat", "K3"): 1}
    audit_rows = len(store.audit_log())
    for _ in range(3):
        assert failed_sign_in(c).status_code in (200, 401)
        again = c.get("/beats/K3/feed.atom")
        assert again.data == first.data
    assert len(store.audit_log()) == audit_rows + 3  # the attempts are audited all the same
    assert built == {("beat", "K3"): 1}
    cache = app.extensions["beatfeeds.feed_cache"]
    assert cache.rechecks == 0  # not even the feed's own stamp was read again


def test_an_import_rebuilds_the_feeds_of_its_area_and_no_other(site, built, tmp_path):
    app, store, settings = site
    c = app.test_client()
    before = {url: c.get(url).data for url in NEAR + FAR}
    assert all(built[key] == 1 for key in built) and len(built) == len(NEAR + FAR)
    add_incident(tmp_path, store, settings, "930000001", beat="K3")
    after = {url: c.get(url).data for url in NEAR + FAR}
    rebuilt = {key for key, n in built.items() if n == 2}
    assert rebuilt == {("beat", "K3"), ("sector", "K"), ("precinct", "W"), ("city", None)}
    for url in NEAR:
        assert b"930000001" in after[url] and after[url] != before[url], url
    for url in FAR:
        assert after[url] == before[url], url


def test_a_retraction_rebuilds_the_feeds_that_showed_the_entry(site):
    """Staff actions still reach every feed (they are not a stranger's to repeat)."""
    app, store, _ = site
    c = app.test_client()
    uid = feedparser.parse(c.get("/beats/K3/feed.atom").data).entries[0].link.rsplit("/", 1)[1]
    assert uid.encode() in c.get("/feed.atom").data
    store.retract_incident(uid, "entered in error", actor=ADMIN, now=utcnow())
    assert uid.encode() not in c.get("/beats/K3/feed.atom").data
    assert uid.encode() not in c.get("/feed.atom").data


def test_readers_of_a_cold_feed_wait_for_one_build(site, monkeypatch):
    app, store, settings = site
    cache = FeedCache()
    calls = []
    real = publishing.area_feed

    def slow(*args, **kw):
        calls.append(threading.get_ident())
        time.sleep(0.3)  # long enough for every thread to arrive while it builds
        return real(*args, **kw)

    monkeypatch.setattr(publishing, "area_feed", slow)
    now = utcnow()
    bodies, errors = [], []
    start = threading.Barrier(8)

    def read():
        try:
            start.wait()
            bodies.append(
                publishing.serve_area_feed(
                    store, settings, "precinct", "W", "rss", now=now, filt=FeedFilter(), cache=cache
                )[1].body
            )
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(calls) == 1 and cache.builds == 1
    assert len(bodies) == 8 and len(set(bodies)) == 1


def test_an_entry_whose_delay_ends_changes_its_feeds_without_any_write(site, built, tmp_path):
    app, store, settings = site
    cache = app.extensions["beatfeeds.feed_cache"]
    _, rows = sample_rows()
    k3 = next(r for r in rows if r["Zone/Beat"] == "K3")
    now = utcnow()
    event = now - timedelta(minutes=30)
    path = tmp_path / "held.csv"
    write_incidents(path, [fresh_row(k3, "940000001", event)])
    import_file(store, path, ImportOptions(preset="spd-911"), settings, now=event)

    def served(kind, code, at):
        return publishing.serve_area_feed(
            store, settings, kind, code, "json", now=at, filt=FeedFilter(), cache=cache
        )[1].body

    assert b"940000001" not in served("beat", "K3", now)
    far = served("beat", "C1", now)
    later = now + timedelta(minutes=31)  # past the 60-minute delay; nothing was written
    assert b"940000001" in served("beat", "K3", later)
    assert served("beat", "C1", later) == far
    assert built[("beat", "K3")] == 2 and built[("beat", "C1")] == 1


# ---- point 3: a held write lock does not freeze the site -------------------------------------


@pytest.fixture
def write_lock(site):
    """Another process holds SQLite's write lock, as a long import does."""
    _, _, settings = site
    other = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def timed(call):
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def test_reads_answer_fast_and_writes_answer_503_while_another_writer_holds_the_lock(
    site, write_lock
):
    app, store, settings = site
    c = app.test_client()
    # Cold feeds store their Last-Modified mark; warm ones, pages and lookups only read.
    for url in [
        "/beats/K3/feed.atom",
        "/sectors/K/feed.rss",
        "/feed.json",
        "/",
        "/beats/K3",
        "/precincts/W",
        "/feeds.opml",
    ]:
        r, took = timed(lambda url=url: c.get(url))
        assert r.status_code == 200 and took < 1.0, (url, r.status_code, took)
    r, took = timed(lambda: failed_sign_in(c))
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    assert settings.request_write_wait - 0.1 <= took < settings.request_write_wait + 1.5
    assert "read-only or busy; try again shortly" in r.get_data(as_text=True)
    write_lock.execute("ROLLBACK")
    # Released: sign-in works again, and the feeds' marks are stored as they are built.
    assert failed_sign_in(c).status_code in (200, 401)
    r = c.post("/login", data={"email": ADMIN, "password": ADMIN_PW})
    assert r.status_code == 302
    first = c.get("/beats/K3/feed.atom")
    assert first.status_code == 200
    again = c.get(
        "/beats/K3/feed.atom", headers={"If-Modified-Since": first.headers["Last-Modified"]}
    )
    assert again.status_code == 304


def test_a_mark_worked_out_during_the_lock_is_not_earlier_than_the_stored_one(site, write_lock):
    app, store, _ = site
    c = app.test_client()
    during = c.get("/beats/K3/feed.atom")
    write_lock.execute("ROLLBACK")
    after = c.get("/beats/K3/feed.atom")
    assert after.data == during.data
    assert after.headers["Last-Modified"] == during.headers["Last-Modified"]


def test_residents_writes_answer_503_with_retry_after_during_the_lock(tmp_path):
    """The alert sign-up and the manage-link request write (rate rows) before mailing."""
    app, _, settings = build_site(
        tmp_path / "mail",
        smtp_url="smtp://127.0.0.1:9",
        mail_from="Alerts <alerts@feeds.example.test>",
    )
    other = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        c = app.test_client()
        for url, form in [
            (
                "/alerts/subscribe",
                {
                    "address": "resident@example.org",
                    "area_kind": "beat",
                    "area_code": "K3",
                    "frequency": "instant",
                },
            ),
            ("/alerts/manage", {"address": "resident@example.org"}),
        ]:
            r, took = timed(lambda url=url, form=form: c.post(url, data=form))
            assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0, url
            assert took < settings.request_write_wait + 1.5, (url, took)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_background_writers_keep_the_long_wait(site):
    """Imports and jobs run outside requests: they still wait for the lock as before."""
    _, store, _ = site
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
