"""Department announcements: targeting, feeds, entry pages, filters, outbox, withdrawal."""

from __future__ import annotations

import json
from datetime import timedelta

import feedparser
import pytest

from beatfeeds.core.errors import EntryNotFound, InvalidInput
from beatfeeds.services import announcements, outbox, publishing
from tests.support.fakes import FakeMastodon
from tests.support.outbound import ADMIN, T, add, items, send, setup

K3_POINT = (-122.32245, 47.598347)  # lon, lat


def feed_entries(store, settings, kind, code, now, **filters):
    area = publishing.resolve_area(store, kind, code)
    filt = publishing.parse_filter(filters.get("category", []), filters.get("exclude", []))
    body = publishing.area_feed(store, settings, area, "atom", now=now, filt=filt).body
    parsed = feedparser.parse(body)
    assert not parsed.bozo
    return parsed.entries


def create(store, settings, now=T, **kw):
    values = {
        "kind": "road-closure",
        "title": "Aurora Ave N closed at N 85th St",
        "body": "Use Greenwood Ave N.",
        "actor": ADMIN,
        "now": now,
    }
    values.update(kw)
    return announcements.create_announcement(store, settings, **values)


def test_a_sector_announcement_reaches_its_beats_sector_precinct_and_city(tmp_path):
    store, settings = setup(tmp_path)
    ann = create(store, settings, sectors="k")
    assert ann.beats == ["K1", "K2", "K3"] and ann.publish_at == T + timedelta(minutes=60)
    assert feed_entries(store, settings, "beat", "K3", T) == []  # waits for the delay
    later = T + timedelta(minutes=61)
    for kind, code in (
        ("beat", "K1"),
        ("beat", "K3"),
        ("sector", "K"),
        ("precinct", "W"),
        ("city", None),
    ):
        entries = feed_entries(store, settings, kind, code, later)
        assert [e.title for e in entries] == ["Road closure: Aurora Ave N closed at N 85th St"]
        assert entries[0].tags[0].term == "announcement-road-closure"
        assert "Use Greenwood Ave N." in entries[0].summary
        assert entries[0].link.endswith(f"/entries/{ann.uid}")
        assert entries[0].id == f"tag:example.test,2026:announcement/{ann.uid}"
    assert feed_entries(store, settings, "beat", "U1", later) == []
    assert (
        feed_entries(store, settings, "beat", "K3", later, exclude=["announcement-road-closure"])
        == []
    )
    assert (
        len(
            feed_entries(
                store, settings, "beat", "K3", later, category=["announcement-road-closure"]
            )
        )
        == 1
    )
    assert feed_entries(store, settings, "beat", "K3", later, category=["theft"]) == []
    entry = publishing.public_entry(store, settings, ann.uid, now=later)
    assert entry.description == "Use Greenwood Ave N."
    with pytest.raises(EntryNotFound):
        publishing.public_entry(store, settings, ann.uid, now=T)  # not public yet


def test_urgent_alerts_skip_the_delay_others_cannot_be_urgent(tmp_path):
    store, settings = setup(tmp_path)
    ann = create(
        store,
        settings,
        kind="alert",
        title="Shelter in place near 3rd Ave",
        beats="K3",
        urgent=True,
    )
    assert ann.publish_at == T
    assert [e.title for e in feed_entries(store, settings, "beat", "K3", T)] == [
        "Public-safety alert: Shelter in place near 3rd Ave"
    ]
    with pytest.raises(InvalidInput, match="urgent"):
        create(store, settings, kind="prevention-tip", beats="K3", urgent=True)


def test_targets_are_checked_and_a_drawn_area_resolves_to_the_beats_it_touches(tmp_path):
    store, settings = setup(tmp_path)
    x, y = K3_POINT
    d = 0.0005
    square = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]
            ],
        },
    }
    ann = create(store, settings, polygon=json.dumps(square))
    assert ann.beats == ["K3"] and ann.target["polygon"]["type"] == "Polygon"
    big = create(
        store,
        settings,
        polygon=json.dumps(
            {
                "type": "Polygon",
                "coordinates": [
                    [
                        [x - 0.02, y - 0.02],
                        [x + 0.02, y - 0.02],
                        [x + 0.02, y + 0.02],
                        [x - 0.02, y - 0.02],
                    ]
                ],
            }
        ),
    )
    assert "K3" in big.beats and len(big.beats) > 3
    for bad, message in [
        ({"beats": "ZZ9"}, "Unknown beats"),
        ({}, "Choose where"),
        ({"polygon": "{not json"}, "not valid GeoJSON"),
        ({"polygon": json.dumps({"type": "Point", "coordinates": [x, y]})}, "must be a polygon"),
        (
            {
                "polygon": json.dumps(
                    {"type": "Polygon", "coordinates": [[[0, 0], [0.1, 0], [0.1, 0.1], [0, 0]]]}
                )
            },
            "touches no beat",
        ),
        ({"beats": "K3", "title": " "}, "title"),
        ({"beats": "K3", "kind": "rumour"}, "Type must be"),
        ({"beats": "K3", "expires_at": T}, "expire"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            create(store, settings, **bad)


def test_schedule_expiry_and_withdrawal(tmp_path):
    store, settings = setup(tmp_path, publication_delay=0)
    ann = create(
        store,
        settings,
        city=True,
        kind="community-event",
        title="Coffee with a cop",
        starts_at=T + timedelta(days=1),
        expires_at=T + timedelta(days=2),
    )
    assert feed_entries(store, settings, "beat", "U1", T) == []
    assert len(feed_entries(store, settings, "beat", "U1", T + timedelta(days=1, hours=1))) == 1
    assert feed_entries(store, settings, "city", None, T + timedelta(days=2, hours=1)) == []
    announcements.withdraw_announcement(store, ann.uid, actor=ADMIN, now=T)
    assert feed_entries(store, settings, "city", None, T + timedelta(days=1, hours=1)) == []


def test_announcements_go_out_through_the_targeted_accounts_and_withdrawal_deletes(
    tmp_path, httpserver
):
    store, settings = setup(tmp_path)
    masto = FakeMastodon(httpserver)
    base = httpserver.url_for("/")
    add(store, settings, "mastodon", base, {"access_token": "k3"}, kind="beat", code="K3")
    add(store, settings, "mastodon", base, {"access_token": "sector-k"}, kind="sector", code="K")
    add(store, settings, "mastodon", base, {"access_token": "u1"}, kind="beat", code="U1")
    ann = create(
        store,
        settings,
        kind="missing-person",
        sectors="K",
        urgent=True,
        title="Missing: Ana, 82, last seen near Pioneer Square",
        body="Ana wears a red coat. Call 911 if you see her.",
    )
    assert send(store, settings, T)["sent"] == 2
    assert sorted(r["auth"] for r in masto.requests) == ["Bearer k3", "Bearer sector-k"]
    text = masto.requests[0]["status"]
    assert text.startswith("URGENT Missing person: Missing: Ana") and f"/entries/{ann.uid}" in text
    assert send(store, settings, T + timedelta(hours=1))["sent"] == 0  # once
    announcements.withdraw_announcement(store, ann.uid, actor=ADMIN, now=T)
    assert outbox.retract_posts(store, settings, T)["deleted"] == 2
    assert masto.statuses == {} and {i.status for i in items(store)} == {"deleted"}


def test_staff_write_announcements_on_the_web(staff_clerk, staff):
    page = staff_clerk.get("/records/announcements").get_data(as_text=True)
    assert "New announcement" in page and "announcement-map.js" in page
    r = staff_clerk.post(
        "/records/announcements",
        data={
            "kind": "alert",
            "title": "Police activity on 3rd Ave",
            "body": "Avoid the area.",
            "sectors": "K",
            "urgent": "1",
        },
        follow_redirects=True,
    )
    assert "Announcement saved for 3 beat(s): K1, K2, K3" in r.get_data(as_text=True)
    ann = staff.list_announcements()[0]
    assert ann.urgent and ann.created_by == "clerk@example.org"
    feed = staff_clerk.get("/sectors/K/feed.atom").get_data(as_text=True)
    assert "Public-safety alert: Police activity on 3rd Ave" in feed
    page = staff_clerk.get(f"/entries/{ann.uid}").get_data(as_text=True)
    assert "Avoid the area." in page
    r = staff_clerk.post(
        "/records/announcements", data={"kind": "alert", "title": "x", "beats": "NOPE"}
    )
    assert r.status_code == 400 and "Unknown beats" in r.get_data(as_text=True)
    staff_clerk.post(f"/records/announcements/{ann.uid}/withdraw")
    assert "Police activity" not in staff_clerk.get("/sectors/K/feed.atom").get_data(as_text=True)
    assert staff_clerk.get(f"/entries/{ann.uid}").status_code == 404


def test_a_correction_changes_the_feed_and_reposts_only_when_the_type_changes(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    masto = FakeMastodon(httpserver)
    add(store, settings, "mastodon", httpserver.url_for("/"), {"access_token": "k3"})
    ann = create(store, settings, kind="alert", beats="K3", urgent=True, title="Gas leak")
    assert send(store, settings, T)["sent"] == 1
    announcements.edit_announcement(
        store,
        settings,
        ann.uid,
        kind="alert",
        title="Gas leak on 3rd Ave",
        body="Avoid the area.",
        expires_at=None,
        actor=ADMIN,
        now=T,
    )
    assert (
        feed_entries(store, settings, "beat", "K3", T)[0].title
        == "Public-safety alert: Gas leak on 3rd Ave"
    )
    assert send(store, settings, T + timedelta(minutes=1))["sent"] == 0  # same category
    announcements.edit_announcement(
        store,
        settings,
        ann.uid,
        kind="missing-person",
        title="Missing: Ana, 82",
        body="Red coat.",
        expires_at=None,
        actor=ADMIN,
        now=T,
    )
    assert send(store, settings, T + timedelta(minutes=2))["sent"] == 1  # a new category
    assert (
        len(masto.statuses) == 2 and "Missing person: Missing: Ana" in masto.requests[-1]["status"]
    )
    with pytest.raises(InvalidInput, match="urgent"):
        announcements.edit_announcement(
            store,
            settings,
            ann.uid,
            kind="prevention-tip",
            title="x",
            body="",
            expires_at=None,
            actor=ADMIN,
            now=T,
        )


def test_staff_correct_an_announcement_on_the_web(staff_clerk, staff):
    staff_clerk.post(
        "/records/announcements",
        data={"kind": "road-closure", "title": "Pike St closed", "body": "", "beats": "K3"},
    )
    ann = staff.list_announcements()[0]
    page = staff_clerk.get(f"/records/announcements/{ann.uid}/edit").get_data(as_text=True)
    assert "Pike St closed" in page and "K3" in page
    r = staff_clerk.post(
        f"/records/announcements/{ann.uid}/edit",
        data={
            "kind": "road-closure",
            "title": "Pike St closed until 6 pm",
            "body": "Detour on Pine.",
            "expires_at": "",
        },
        follow_redirects=True,
    )
    assert "Announcement corrected" in r.get_data(as_text=True)
    assert staff.announcement(ann.uid).body == "Detour on Pine."
    r = staff_clerk.post(
        f"/records/announcements/{ann.uid}/edit",
        data={"kind": "road-closure", "title": " ", "body": ""},
    )
    assert r.status_code == 400 and "title" in r.get_data(as_text=True)
    assert staff_clerk.get("/records/announcements/nope/edit").status_code == 404


def test_publish_time_is_the_start_never_in_the_past_plus_the_delay_unless_urgent(tmp_path):
    _, settings = setup(tmp_path, publication_delay=30)
    later = T + timedelta(hours=3)
    assert announcements.publish_time(settings, starts_at=None, urgent=False, now=T) == (
        T + timedelta(minutes=30)
    )
    assert announcements.publish_time(settings, starts_at=None, urgent=True, now=T) == T
    past = T - timedelta(days=1)
    assert announcements.publish_time(settings, starts_at=past, urgent=True, now=T) == T
    assert announcements.publish_time(settings, starts_at=later, urgent=False, now=T) == (
        later + timedelta(minutes=30)
    )


def test_public_now_is_one_condition_in_python_and_in_sql(tmp_path):
    """`Announcement.status(now) == "published"` and storage's public_announcements (the
    feeds, entry pages, outbox and alerts read through it) agree at every boundary."""
    store, settings = setup(tmp_path, publication_delay=0)
    day = timedelta(days=1)
    made = [
        create(store, settings, city=True, title="Open-ended"),
        create(store, settings, city=True, title="Tomorrow", starts_at=T + day),
        create(store, settings, city=True, title="Short", expires_at=T + day),
        create(
            store,
            settings,
            beats="K3",
            title="Later and short",
            starts_at=T + day,
            expires_at=T + 2 * day,
        ),
        create(store, settings, sectors="K", title="Withdrawn"),
    ]
    announcements.withdraw_announcement(store, made[-1].uid, actor=ADMIN, now=T + day / 2)
    set_id = store.active_beat_set_id()
    moments = [
        T - day,
        T,
        T + day / 2,
        T + day - timedelta(seconds=1),
        T + day,
        T + 2 * day - timedelta(seconds=1),
        T + 2 * day,
        T + 3 * day,
    ]
    for now in moments:
        stored = store.list_announcements(200)
        python_side = {a.uid for a in stored if a.status(now) == "published"}
        sql_side = {e.uid for e in store.public_announcements(set_id, now=now, limit=100)}
        assert python_side == sql_side, now
        for a in stored:
            page = announcements.public_announcement(store, a.uid, now=now)
            assert (page is not None) == (a.uid in python_side), (a.title, now)
    assert {a.title for a in store.list_announcements(200) if a.status(T + day) == "published"} == {
        "Open-ended",
        "Tomorrow",
        "Later and short",
    }
