"""The public-side queries (filters, retention, snapped points, counts, the feed version stamp)
behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from tests.support.instance import NOW
from tests.support.storage import import_rows, row


def typed(external_id: str, when: str, kind: str) -> list[str]:
    """A row whose source type (which decides the category) is `kind`."""
    values = row(external_id, when=when, desc=kind)
    values[2] = kind
    return values


def test_filters_retention_and_snapped_points(beats_db, cfg, tmp_path):
    import_rows(
        beats_db,
        cfg,
        tmp_path / "a.csv",
        [
            typed("1", "2026-11-20T18:00:00Z", "THEFT - CAR PROWL"),
            typed("2", "2026-11-21T18:00:00Z", "BURGLARY - RESIDENTIAL"),
            typed("3", "2026-10-01T18:00:00Z", "ROBBERY - STREET"),
        ],
    )
    set_id = beats_db.active_beat_set().id
    later = NOW + timedelta(days=30)

    def cats(**kw):
        return sorted(e.category for e in beats_db.public_entries(set_id, now=later, **kw))

    assert cats() == ["burglary", "car-prowl", "robbery"]
    assert cats(categories=["burglary", "robbery"]) == ["burglary", "robbery"]
    assert cats(exclude=["burglary"]) == ["car-prowl", "robbery"]
    assert cats(since=NOW - timedelta(days=30)) == ["burglary", "car-prowl"]
    plain = beats_db.public_entries(set_id, now=later)
    assert all(e.point is None for e in plain)  # no precision asked: no point at all
    snapped = beats_db.public_entries(set_id, now=later, geo_precision=0.001)
    assert {e.point for e in snapped} == {(47.598, -122.322)}  # K3's 47.598347, -122.32245


def test_counts_by_category_and_between_bounds(beats_db, cfg, tmp_path):
    import_rows(
        beats_db,
        cfg,
        tmp_path / "a.csv",
        [
            typed("1", "2026-11-20T18:00:00Z", "THEFT - CAR PROWL"),
            typed("2", "2026-11-21T18:00:00Z", "THEFT - CAR PROWL"),
            typed("3", "2026-11-10T18:00:00Z", "BURGLARY - RESIDENTIAL"),
        ],
    )
    set_id = beats_db.active_beat_set().id
    now = NOW + timedelta(days=1)
    counts = beats_db.public_category_counts(
        set_id, now=now, since=NOW - timedelta(days=30), beat="K3"
    )
    assert counts == {"car-prowl": 2, "burglary": 1}
    assert beats_db.public_category_counts(set_id, now=now, since=NOW, beat="K1") == {}
    bounds = [NOW - timedelta(days=21), NOW - timedelta(days=14), NOW - timedelta(days=7), now]
    # Nov 10 falls in the first week, Nov 20 and 21 in the last.
    assert beats_db.public_counts_between(set_id, bounds, now=now, sector="K") == [1, 0, 2]
    assert beats_db.public_counts_between(set_id, bounds, now=now, precinct="N") == [0, 0, 0]


def test_feed_version_moves_only_when_feeds_may_change(beats_db, cfg, tmp_path):
    v0 = beats_db.feed_version(now=NOW)
    assert beats_db.feed_version(now=NOW) == v0
    import_rows(beats_db, cfg, tmp_path / "a.csv", [row("1", when="2026-11-26T11:30:00Z")], now=NOW)
    v1 = beats_db.feed_version(now=NOW)
    assert v1 != v0
    # Nothing written, but the entry passes its publication delay: the stamp moves.
    assert beats_db.feed_version(now=NOW + timedelta(hours=2)) != v1
    beats_db.set_meta("websub.version", "x")  # the ping job's own state does not count
    assert beats_db.feed_version(now=NOW) == v1
    beats_db.touch_feeds(NOW)
    assert beats_db.feed_version(now=NOW) != v1
    # Retention: the stamp moves when the incident (11:30) falls out of the window.
    assert beats_db.feed_version(now=NOW, since=NOW - timedelta(hours=1)) != beats_db.feed_version(
        now=NOW, since=NOW
    )


def test_content_marks_never_go_back_and_move_with_the_fingerprint(db):
    """The high-water mark behind Last-Modified: first sighting, unchanged, changed (also within
    the same second, and with a `now` earlier than the mark), on every backend."""
    at = NOW.replace(microsecond=500)
    first = NOW - timedelta(days=1)
    assert db.content_mark("k", "a" * 64, first=first, now=at) == first
    assert db.content_mark("k", "a" * 64, first=NOW, now=at + timedelta(hours=1)) == first
    assert db.content_mark("k", "b" * 64, first=first, now=at) == NOW  # whole seconds
    # A change in the same second still moves the mark by a whole second.
    assert db.content_mark("k", "c" * 64, first=first, now=at) == NOW + timedelta(seconds=1)
    # A clock that went back (another process, a test) cannot pull the mark back.
    assert db.content_mark(
        "k", "d" * 64, first=first, now=NOW - timedelta(hours=1)
    ) == NOW + timedelta(seconds=2)
    assert db.content_mark("other", "d" * 64, first=NOW, now=NOW) == NOW  # marks are per key


def test_feed_stamps_leave_out_sign_ins_and_move_per_beat(beats_db, cfg, tmp_path):
    """Issue 14, point 2: a stranger's audit rows move no stamp; an entry moves its beat's."""
    later = NOW + timedelta(hours=2)
    set_id = beats_db.active_beat_set().id
    version = beats_db.feed_version(now=later)
    stamps = beats_db.area_feed_stamps(set_id, now=later)
    beats_db.audit("-", "auth.failed", "someone@example.org", now=NOW)
    beats_db.record_login_attempt("someone@example.org", "client", False, NOW)
    assert beats_db.feed_version(now=later) == version
    assert beats_db.area_feed_stamps(set_id, now=later) == stamps
    import_rows(beats_db, cfg, tmp_path / "a.csv", [row("1", when="2026-11-26T11:30:00Z")], now=NOW)
    moved = beats_db.area_feed_stamps(set_id, now=later)
    assert {k for k in moved.keys() | stamps.keys() if moved.get(k) != stamps.get(k)} == {"K3"}
    beats_db.audit("records@example.org", "incidents.retract", "entry:x", now=NOW)
    assert beats_db.area_feed_stamps(set_id, now=later)[None] != moved[None]  # staff: all
