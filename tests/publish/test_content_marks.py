"""Issue 13 point 5 (caching): a retraction, or any other removal, never lingers in a reader.

Last-Modified (and the ETag, and a feed's own updated/lastBuildDate) of every feed, filtered
feed, area page, entry page and OPML list never decreases and moves on any change of what it
shows, so a conditional GET with validators from before a retraction gets the document again
(200, without the entry) instead of a 304 that keeps the withdrawn entry in the reader.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import feedparser
import pytest
from lxml import etree
from werkzeug.http import parse_date

from beatfeeds import jobs
from beatfeeds.core import identifiers
from beatfeeds.core.models import Area, Beat
from beatfeeds.publish.feeds import FeedFilter
from beatfeeds.services import beatmaps, imports, publishing
from beatfeeds.services.imports import ImportOptions
from tests.support.boundaries import draft
from tests.support.exports import local, spd911_row, write_rows
from tests.support.instance import make_settings, utcnow
from tests.support.web import make_app

SOURCE = "spd-911-incident-response"
STAFF = "records@example.test"


def import_rows(store, settings, path, rows, *, now):
    report = imports.import_file(
        store, write_rows(path, rows), ImportOptions(preset="spd-911"), settings, now=now
    )
    return report.counters


@pytest.fixture
def thefts(beats_store, settings, tmp_path):
    """Two car prowls (the newer one is the one to retract) and a burglary, all public."""
    now = utcnow()
    import_rows(
        beats_store,
        settings,
        tmp_path / "a.csv",
        [
            spd911_row(801, local(now - timedelta(days=2))),
            spd911_row(802, local(now - timedelta(hours=3))),
            spd911_row(
                803, local(now - timedelta(days=1)), desc="BURGLARY - RESIDENTIAL", group="BURGLARY"
            ),
        ],
        now=now - timedelta(hours=2),
    )
    newest = identifiers.entry_uid(SOURCE, "802", beats_store.identifier_key())
    code = beats_store.staff_incident(newest).beat
    beat = next(b for b in beats_store.beats(beats_store.active_beat_set().id) if b.code == code)
    return newest, beat


def urls_of(beat: Beat) -> list[str]:
    areas = ["", f"/beats/{beat.code}", f"/sectors/{beat.sector}", f"/precincts/{beat.precinct}"]
    feeds = [
        f"{area}/feed.{fmt}{query}"
        for fmt in ("rss", "atom", "json")
        for area in areas
        for query in ("", "?category=car-prowl", "?exclude=burglary")
    ]
    return feeds + [area for area in areas if area]


def test_after_a_retraction_old_validators_get_the_document_again(client, beats_store, thefts):
    uid, beat = thefts
    urls = urls_of(beat)
    before = {}
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200, url
        assert "Last-Modified" in r.headers and "ETag" in r.headers, url
        assert uid in r.get_data(as_text=True), url
        before[url] = r
    page = client.get(f"/entries/{uid}")
    assert page.status_code == 200 and "Last-Modified" in page.headers

    beats_store.retract_incident(uid, "entered in error", actor=STAFF, now=utcnow())

    for url in urls:
        old = before[url]
        for headers in (
            {"If-Modified-Since": old.headers["Last-Modified"]},
            {"If-None-Match": old.headers["ETag"]},
            {
                "If-Modified-Since": old.headers["Last-Modified"],
                "If-None-Match": old.headers["ETag"],
            },
        ):
            r = client.get(url, headers=headers)
            assert r.status_code == 200, (url, headers)
            assert uid not in r.get_data(as_text=True), url
            assert parse_date(r.headers["Last-Modified"]) > parse_date(
                old.headers["Last-Modified"]
            ), url
            assert r.headers["ETag"] != old.headers["ETag"], url
        # The new validators work: nothing changed since.
        fresh = client.get(url)
        again = client.get(
            url,
            headers={
                "If-None-Match": fresh.headers["ETag"],
                "If-Modified-Since": fresh.headers["Last-Modified"],
            },
        )
        assert again.status_code == 304, url
    assert (
        client.get(
            f"/entries/{uid}", headers={"If-Modified-Since": page.headers["Last-Modified"]}
        ).status_code
        == 404
    )


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_a_feed_says_its_last_change_itself(client, beats_store, thefts, fmt):
    """The feed-level updated/lastBuildDate is the Last-Modified, and moves on a removal."""
    uid, beat = thefts
    url = f"/beats/{beat.code}/feed.{fmt}?category=car-prowl"
    first = client.get(url)
    beats_store.retract_incident(uid, "entered in error", actor=STAFF, now=utcnow())
    second = client.get(url)
    for r in (first, second):
        parsed = feedparser.parse(r.data)
        own = parsed.feed.get("updated")
        assert parsedate_or_iso(own) == parse_date(r.headers["Last-Modified"]), own
    assert parse_date(second.headers["Last-Modified"]) > parse_date(first.headers["Last-Modified"])


def parsedate_or_iso(text: str) -> datetime:
    try:
        return parsedate_to_datetime(text).astimezone(UTC)
    except (TypeError, ValueError):
        return datetime.fromisoformat(text).astimezone(UTC)


def test_an_entry_is_updated_when_it_became_public_not_when_it_was_imported(
    client, beats_store, settings, tmp_path
):
    now = utcnow().replace(microsecond=0)
    imported = now - timedelta(minutes=70)  # the delay counts from the first import:
    event = now - timedelta(minutes=90)  # public 10 minutes ago, imported 70 minutes ago
    import_rows(
        beats_store, settings, tmp_path / "a.csv", [spd911_row(811, local(event))], now=imported
    )
    uid = identifiers.entry_uid(SOURCE, "811", beats_store.identifier_key())
    public_at = beats_store.staff_incident(uid).publish_at
    assert imported < public_at <= now
    (entry,) = feedparser.parse(client.get("/feed.atom").data).entries
    assert entry.updated_parsed[:6] == public_at.timetuple()[:6]
    (item,) = json.loads(client.get("/feed.json").data)["items"]
    assert item["date_modified"].startswith(public_at.isoformat())
    page = client.get(f"/entries/{uid}")
    assert parse_date(page.headers["Last-Modified"]) == public_at.replace(tzinfo=UTC)

    # A public change (a new description) dates the entry and its page anew.
    later = utcnow()
    import_rows(
        beats_store,
        settings,
        tmp_path / "b.csv",
        [spd911_row(811, local(event), desc="THEFT - SHOPLIFT")],
        now=later,
    )
    (entry,) = feedparser.parse(client.get("/feed.atom").data).entries
    assert entry.updated_parsed[:6] == later.timetuple()[:6]
    again = client.get(
        f"/entries/{uid}", headers={"If-Modified-Since": page.headers["Last-Modified"]}
    )
    assert again.status_code == 200 and "SHOPLIFT" in again.get_data(as_text=True)


def test_a_beat_map_change_moves_the_opml_lists(client, beats_store):
    lists = ["/feeds.opml", "/precincts/W/feeds.opml"]
    before = {url: client.get(url) for url in lists}
    for url, r in before.items():
        assert "Beat M2" in r.get_data(as_text=True)
        again = client.get(
            url,
            headers={
                "If-Modified-Since": r.headers["Last-Modified"],
                "If-None-Match": r.headers["ETag"],
            },
        )
        assert again.status_code == 304, url  # unchanged: still cacheable
        created = parse_date(_opml_created(r.data))
        assert created == parse_date(r.headers["Last-Modified"])

    beats = beats_store.beats(beats_store.active_beat_set().id)
    m2 = next(b.geometry for b in beats if b.code == "M2")
    merged = [
        Beat(b.code, b.sector, b.precinct, b.geometry.union(m2) if b.code == "M3" else b.geometry)
        for b in beats
        if b.code != "M2"
    ]
    beatmaps.publish_beat_map(beats_store, draft(beats_store, merged), now=utcnow())

    for url, old in before.items():
        for headers in (
            {"If-Modified-Since": old.headers["Last-Modified"]},
            {"If-None-Match": old.headers["ETag"]},
        ):
            r = client.get(url, headers=headers)
            assert r.status_code == 200, (url, headers)
            assert "Beat M2" not in r.get_data(as_text=True)
            assert parse_date(r.headers["Last-Modified"]) > parse_date(old.headers["Last-Modified"])
            assert parse_date(_opml_created(r.data)) == parse_date(r.headers["Last-Modified"])


def _opml_created(body: bytes) -> str:
    return etree.fromstring(body).findtext("head/dateCreated")


# ---- property: a sequence of imports, retractions, policy changes and time ----------------------
KINDS = [
    ("THEFT - CAR PROWL", "CAR PROWL"),
    ("BURGLARY - RESIDENTIAL", "BURGLARY"),
    ("ROBBERY - STREET", "ROBBERY"),
]
WATCHED = [
    ("city", None, "rss", FeedFilter()),
    ("city", None, "atom", FeedFilter(("car-prowl",))),
    ("city", None, "json", FeedFilter(exclude=("burglary",))),
    ("sector", "M", "rss", FeedFilter(("burglary",))),
    ("sector", "M", "json", FeedFilter()),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_last_modified_never_decreases_and_moves_with_every_change(beats_store, tmp_path, seed):
    rng = random.Random(seed)
    base = make_settings(tmp_path, feed_retention_days=3)
    strict = make_settings(
        tmp_path,
        feed_retention_days=3,
        suppressed_categories=[*base.suppressed_categories, "burglary"],
    )
    settings = base
    set_id = beats_store.active_beat_set().id
    t = utcnow().replace(microsecond=0)
    next_id, known = 900, []
    seen: dict[tuple, tuple] = {}
    for step in range(45):
        op = rng.choice(["import", "import", "update", "retract", "policy", "wait", "wait"])
        if op == "import":
            rows = []
            for _ in range(rng.randint(1, 3)):
                desc, group = rng.choice(KINDS)
                when = t - timedelta(minutes=rng.randint(0, 5 * 24 * 60))
                rows.append(spd911_row(next_id, local(when), desc=desc, group=group))
                known.append((next_id, when))
                next_id += 1
            import_rows(beats_store, settings, tmp_path / f"{step}.csv", rows, now=t)
        elif op == "update" and known:
            key, when = rng.choice(known)
            desc, group = rng.choice(KINDS)
            import_rows(
                beats_store,
                settings,
                tmp_path / f"{step}.csv",
                [spd911_row(key, local(when), desc=desc, group=group)],
                now=t,
            )
        elif op == "retract":
            public = [e.uid for e in beats_store.public_entries(set_id, now=t, limit=1000)]
            if public:
                beats_store.retract_incident(rng.choice(public), "test", actor=STAFF, now=t)
        elif op == "policy":
            settings = strict if settings is base else base
            jobs.apply_publication_policy(beats_store, settings, t)
        else:
            t += timedelta(minutes=rng.choice([5, 30, 90, 24 * 60]))
        t += timedelta(seconds=rng.choice([0, 0, 1, 20]))  # same-second changes too

        for kind, code, fmt, filt in WATCHED:
            area = Area(kind, code, kind, set_id)
            feed = publishing.area_feed(beats_store, settings, area, fmt, now=t, filt=filt)
            key = (kind, code, fmt, filt.query())
            if key in seen:
                last_modified, body, etag = seen[key]
                assert feed.last_modified >= last_modified, (step, op, key)
                if feed.body != body:
                    assert feed.last_modified > last_modified, (step, op, key)
                    assert feed.etag != etag
            seen[key] = (feed.last_modified, feed.body, feed.etag)


def test_an_area_page_has_the_same_validators_for_every_anonymous_visitor(
    tmp_path, beats_store, thefts
):
    """The alert form's token differs per visitor; the page's validators do not."""
    _uid, beat = thefts
    settings = make_settings(tmp_path, dry_run=True)  # email alerts offered: the form shows
    app = make_app(settings, beats_store)
    url = f"/beats/{beat.code}"
    first, second = app.test_client(), app.test_client()
    a, b = first.get(url), second.get(url)
    assert 'action="/alerts/subscribe"' in a.get_data(as_text=True)
    assert a.headers["ETag"] == b.headers["ETag"]
    assert a.headers["Last-Modified"] == b.headers["Last-Modified"]
    assert "no-cache" in a.headers["Cache-Control"]
    assert second.get(url, headers={"If-None-Match": a.headers["ETag"]}).status_code == 304


def test_signed_in_staff_get_pages_without_validators(clerk, client, thefts):
    """Their pages show their name and a sign-out form: never answered from a cache."""
    uid, beat = thefts
    for url in (f"/beats/{beat.code}", f"/entries/{uid}"):
        assert "ETag" in client.get(url).headers
        r = clerk.get(url)
        assert r.status_code == 200 and "ETag" not in r.headers and "Last-Modified" not in r.headers
