"""The publication policy: hundred blocks, suppression, delay."""

import csv
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import feedparser
import numpy as np
import pytest

from beatfeeds.publish import privacy
from beatfeeds.services import publishing
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.imports import HEADER, MAPS, good, write_csv
from tests.support.instance import NOW, make_settings, shared


@pytest.mark.parametrize(
    "address,expected",
    [
        ("1900 E JEFFERSON ST", "19XX BLOCK OF E JEFFERSON ST"),
        ("1100 8th Ave NE", "11XX BLOCK OF 8TH AVE NE"),
        ("11023 8TH AVE NE", "110XX BLOCK OF 8TH AVE NE"),
        ("45 Pine St", "XX BLOCK OF PINE ST"),
        ("1234 PINE ST APT 5", "12XX BLOCK OF PINE ST"),
        ("1234 PINE ST #5", "12XX BLOCK OF PINE ST"),
        ("1234-1236 PINE ST", "12XX BLOCK OF PINE ST"),
        ("110XX BLOCK OF 8TH AVE NE", "110XX BLOCK OF 8TH AVE NE"),
        ("S KING ST / 8 AV S", "S KING ST / 8 AV S"),
        ("5 AV S / S KING ST", "5 AV S / S KING ST"),
        ("Nb I5 At Mercer", ""),  # `MERCER` alone cannot be proven a street: withheld
        ("", ""),
    ],
)
def test_hundred_block(address, expected):
    assert privacy.hundred_block(address) == expected


@pytest.mark.parametrize(
    "texts,slug,sensitive",
    [
        (("CAR PROWL", "THEFT - CAR PROWL"), "car-prowl", False),
        (("SUSPICIOUS CIRCUMSTANCES", "SUSPICIOUS PERSON", "CHILD - LURING"), "juvenile", True),
        (
            ("PERSONS - LOST, FOUND, MISSING", "MISSING PERSON", "MISSING - CHILD"),
            "missing-person",
            True,
        ),
        (("PROPERTY - MISSING, FOUND", "PROPERTY - FOUND"), "lost-found", False),
        (("ASSAULTS", "ASSAULT, DOMESTIC VIOLENCE"), "domestic-violence", True),
        (("LEWD CONDUCT", "LEWD CONDUCT"), "sexual-offense", True),
        (("FALSE ALACAD", "BURGLARY ALACAD (FALSE)"), "false-alarm", False),
        (("Motor Vehicle Accident", "Motor Vehicle Accident"), "collision", False),
        (("SOMETHING NEW", "NEVER SEEN"), "other", False),
    ],
)
def test_classify(texts, slug, sensitive):
    assert privacy.classify(texts[0], texts[1], texts[2:]) == (slug, sensitive)


def test_entry_title_in_tweets_by_beat_form():
    when = datetime(2016, 3, 26, 3, 9)  # 8:09 PM PDT on 3/25
    from zoneinfo import ZoneInfo

    title = privacy.entry_title(
        "THEFT - CAR PROWL", "110XX BLOCK OF 8TH AVE NE", when, ZoneInfo("America/Los_Angeles")
    )
    assert title == "THEFT - CAR PROWL at 110XX BLOCK OF 8TH AVE NE, 3/25/2016 8:09 PM"


@pytest.mark.shared_data
def test_real_child_rows_are_stored_but_never_published(beats_store, settings):
    path = shared("spd_911_incident_response_2016-03-02.csv")
    import_file(beats_store, path, ImportOptions(preset="spd-911"), settings, now=NOW)
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    sensitive = {
        r["Initial Type Description"]: r["CAD CDW ID"]
        for r in rows
        if r["Initial Type Description"] in ("CHILD - LURING", "MISSING - CHILD")
    }
    assert set(sensitive) == {"CHILD - LURING", "MISSING - CHILD"}
    area = publishing.resolve_area(beats_store, "city", None)
    after_delay = NOW + timedelta(minutes=settings.publication_delay)  # from the first import
    published = {
        e.external_id
        for e in beats_store.public_entries(area.beat_set_id, now=after_delay, limit=10_000)
    }
    assert len(published) > 500
    for text, key in sensitive.items():
        stored = beats_store.incident_private("spd-911-incident-response", key)
        assert stored is not None and stored["suppressed_reason"], text
        assert key not in published


def local_text(at: datetime, settings) -> str:
    """A naive UTC time as the test CSVs write it (local, US style)."""
    local = at.replace(tzinfo=ZoneInfo("UTC")).astimezone(settings.tz)
    return local.strftime("%m/%d/%Y %I:%M:%S %p")


def visible_in_k3(store, settings, at: datetime) -> int:
    area = publishing.resolve_area(store, "beat", "K3")
    feed = publishing.area_feed(store, settings, area, "atom", now=at)
    return len(feedparser.parse(feed.body).entries)


def test_fresh_incident_is_held_back_until_its_delay_passes(tmp_path, beats_store, settings):
    event = NOW - timedelta(minutes=10)  # naive UTC; imported ten minutes later, at NOW
    path = write_csv(tmp_path / "fresh.csv", [good(1, when=local_text(event, settings))])
    import_file(beats_store, path, ImportOptions(maps=dict(MAPS), source="t"), settings, now=NOW)
    delay = timedelta(minutes=settings.publication_delay)
    assert visible_in_k3(beats_store, settings, NOW) == 0
    # The delay counts from the import, the latest of the times known (it used to count from
    # the event, and the entry appeared ten minutes early).
    assert visible_in_k3(beats_store, settings, event + delay) == 0
    assert visible_in_k3(beats_store, settings, NOW + delay - timedelta(minutes=1)) == 0
    assert visible_in_k3(beats_store, settings, NOW + delay) == 1


def test_late_report_waits_the_whole_delay_from_its_report(tmp_path, beats_store, settings):
    """Occurred two hours ago, reported five minutes ago: not published at once."""
    occurred, reported = NOW - timedelta(hours=2), NOW - timedelta(minutes=5)
    path = write_csv(
        tmp_path / "late.csv",
        [good(1, when=local_text(occurred, settings)) + [local_text(reported, settings)]],
        header=[*HEADER, "reported"],
    )
    maps = dict(MAPS, reported_at="reported")
    # imported as of the report (a feed that is read as soon as it is written)
    import_file(beats_store, path, ImportOptions(maps=maps, source="t"), settings, now=reported)
    stored = beats_store.incident_private("t", "1")
    delay = timedelta(minutes=settings.publication_delay)
    assert stored["publish_at"] == reported + delay
    assert visible_in_k3(beats_store, settings, NOW) == 0
    assert visible_in_k3(beats_store, settings, reported + delay - timedelta(minutes=1)) == 0
    assert visible_in_k3(beats_store, settings, reported + delay) == 1


def test_publish_at_is_the_delay_after_the_latest_known_time():
    t0 = datetime(2026, 1, 1, 12, 0)
    later = t0 + timedelta(minutes=30)
    assert privacy.publish_at(60, t0, None, None) == t0 + timedelta(minutes=60)
    assert privacy.publish_at(60, t0, later, None) == later + timedelta(minutes=60)
    assert privacy.publish_at(60, later, t0, t0) == later + timedelta(minutes=60)
    assert privacy.publish_at(60, None, t0, later) == later + timedelta(minutes=60)
    occurred = np.array([t0, "NaT", later], dtype="datetime64[us]")
    reported = np.array(["NaT", later, t0], dtype="datetime64[us]")
    got = privacy.publish_at(60, occurred, reported, t0 - timedelta(days=1))
    assert got.astype("datetime64[us]").tolist() == [
        t0 + timedelta(minutes=60),
        later + timedelta(minutes=60),
        later + timedelta(minutes=60),
    ]


def test_reimport_keeps_first_import_time_and_never_hides_a_published_entry(
    tmp_path, beats_store, settings
):
    delay = timedelta(minutes=settings.publication_delay)
    event = NOW - timedelta(minutes=10)
    first = write_csv(tmp_path / "a.csv", [good(1, when=local_text(event, settings))])
    import_file(beats_store, first, ImportOptions(maps=dict(MAPS), source="t"), settings, now=NOW)
    assert beats_store.incident_private("t", "1")["publish_at"] == NOW + delay
    # A correction before publication: the delay still counts from the first import.
    fixed = write_csv(
        tmp_path / "b.csv",
        [good(1, when=local_text(event, settings), desc="THEFT - CAR PROWL (CORRECTED)")],
    )
    later = NOW + timedelta(minutes=20)
    import_file(beats_store, fixed, ImportOptions(maps=dict(MAPS), source="t"), settings, now=later)
    stored = beats_store.incident_private("t", "1")
    assert stored["description"] == "THEFT - CAR PROWL (CORRECTED)"
    assert (stored["created_at"], stored["publish_at"]) == (NOW, NOW + delay)
    # Once public, a correction that moves the event later does not take the entry back.
    public_at = NOW + delay + timedelta(minutes=5)
    assert visible_in_k3(beats_store, settings, public_at) == 1
    moved = write_csv(tmp_path / "c.csv", [good(1, when=local_text(NOW + delay, settings))])
    import_file(
        beats_store, moved, ImportOptions(maps=dict(MAPS), source="t"), settings, now=public_at
    )
    assert beats_store.incident_private("t", "1")["publish_at"] == NOW + delay
    assert visible_in_k3(beats_store, settings, public_at) == 1


def test_policy_changes_apply_to_incidents_already_stored(tmp_path, beats_store):
    from beatfeeds import jobs

    before = make_settings(tmp_path, publication_delay=60)
    shoplift_row = good(2, desc="THEFT - SHOPLIFT")
    shoplift_row[2] = "SHOPLIFTING"
    path = write_csv(tmp_path / "p.csv", [good(1), shoplift_row])
    import_file(beats_store, path, ImportOptions(maps=dict(MAPS), source="t"), before, now=NOW)
    assert jobs.apply_publication_policy(beats_store, before, NOW)["changed"] == 0
    assert jobs.apply_publication_policy(beats_store, before, NOW)["policy"] == "unchanged"
    stricter = make_settings(
        tmp_path, publication_delay=120, suppressed_categories="car-prowl,juvenile"
    )
    assert jobs.apply_publication_policy(beats_store, stricter, NOW)["changed"] == 2  # both delays
    prowl = beats_store.incident_private("t", "1")
    shoplift = beats_store.incident_private("t", "2")
    assert prowl["suppressed_reason"] == "category car-prowl is never published"
    assert shoplift["suppressed_reason"] is None
    assert shoplift["publish_at"] - shoplift["created_at"] == timedelta(minutes=120)  # imported
    assert jobs.apply_publication_policy(beats_store, before, NOW)["changed"] == 2  # and back
    assert beats_store.incident_private("t", "1")["suppressed_reason"] is None
