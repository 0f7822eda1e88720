"""Email alert storage over every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from beatfeeds.services import alerts, deliveries
from tests.support.alerts import delay_ago, due
from tests.support.imports import import_csv, row_at
from tests.support.instance import load_default_beats, make_settings


def test_subscriptions_and_deliveries_on_each_backend(cfg, tmp_path):
    from beatfeeds.storage import SQLStore

    settings = make_settings(tmp_path, database_url=cfg.database_url, dry_run=True)
    store = SQLStore.from_url(settings.database_url)
    try:
        store.upgrade()
        now = datetime.now(UTC).replace(tzinfo=None)
        load_default_beats(store, now=now - timedelta(days=1))
        start = now - timedelta(minutes=5)
        a = "a@example.org"
        first = store.save_email_subscription(
            address=a,
            area_kind="beat",
            area_code="K3",
            categories=(),
            frequency="instant",
            now=start,
        )
        again = store.save_email_subscription(
            address=a,
            area_kind="beat",
            area_code="K3",
            categories=("car-prowl",),
            frequency="instant",
            now=start,
        )
        assert first == again  # one subscription per area: the new choice replaces the old
        store.save_email_subscription(
            address=a,
            area_kind="precinct",
            area_code="W",
            categories=(),
            frequency="instant",
            now=start,
        )
        store.save_email_subscription(
            address="b@example.org",
            area_kind="city",
            area_code=None,
            categories=("burglary",),
            frequency="instant",
            now=start,
        )
        assert store.email_subscriber_counts() == [
            ("beat", "K3", 1),
            ("city", None, 1),
            ("precinct", "W", 1),
        ]
        store.record_email_signup("k", "10.0.0.1", now)
        assert store.email_signups_since(start, address_key="k") == 1
        assert store.email_signups_since(start, client="10.0.0.2") == 0

        import_csv(
            store,
            settings,
            tmp_path,
            [
                row_at(settings, 1, now - timedelta(minutes=120)),
                row_at(settings, 2, now - timedelta(minutes=100)),
            ],
            delay_ago(settings, now),
        )
        assert deliveries.enqueue_alerts(store, settings, now) == 2  # K3 and W overlap: once each
        assert deliveries.enqueue_alerts(store, settings, now) == 0
        summary = alerts.send_alerts(store, settings, due(settings, now))
        assert summary["sent"] == 2
        assert len(list((tmp_path / "instance" / "mail").glob("*.eml"))) == 2
        assert store.email_sends_since(due(settings, now) - timedelta(minutes=1)) == 2
        assert {d.address for d in store.email_deliveries(status="sent")} == {a}
        assert store.delete_email_subscriber(a)
        assert store.email_deliveries() == [] and store.email_subscriptions(a) == []
        assert [s.address for s in store.email_subscriptions()] == ["b@example.org"]
    finally:
        store.engine.dispose()


def test_digests_on_each_backend(cfg, tmp_path):
    from beatfeeds.storage import SQLStore

    settings = make_settings(
        tmp_path, database_url=cfg.database_url, dry_run=True, digest_time="07:00"
    )
    store = SQLStore.from_url(settings.database_url)
    try:
        store.upgrade()
        now = datetime.now(UTC).replace(tzinfo=None)
        load_default_beats(store, now=now - timedelta(days=3))
        start = now - timedelta(days=2)
        a = "a@example.org"
        for kind, code in (("beat", "K3"), ("precinct", "W")):
            store.save_email_subscription(
                address=a,
                area_kind=kind,
                area_code=code,
                categories=(),
                frequency="daily",
                now=start,
            )
        sid = store.email_subscriptions(a)[0].subscriber_id
        import_csv(
            store,
            settings,
            tmp_path,
            [
                row_at(settings, 1, now - timedelta(minutes=120)),
                row_at(settings, 2, now - timedelta(minutes=100)),
            ],
            delay_ago(settings, now),
        )
        assert deliveries.enqueue_alerts(store, settings, now) == 0  # digest subscriptions wait
        entries = store.entries_for_email_digest(
            store.active_beat_set_id(), sid, "daily", now=now, since=start
        )
        assert len(entries) == 2  # K3 and W overlap: each entry once
        end = now - timedelta(minutes=1)
        first = store.create_email_digest(
            subscriber_id=sid,
            frequency="daily",
            period_start=start,
            period_end=end,
            entries=entries,
            now=now,
        )
        assert first is not None
        assert (
            store.create_email_digest(
                subscriber_id=sid,
                frequency="daily",
                period_start=start,
                period_end=end,
                entries=entries,
                now=now,
            )
            is None
        )  # same period
        assert store.latest_email_digest_ends("daily") == {sid: end}
        assert (
            store.entries_for_email_digest(
                store.active_beat_set_id(), sid, "daily", now=now, since=start
            )
            == []
        )
        empty = store.create_email_digest(
            subscriber_id=sid,
            frequency="daily",
            period_start=end,
            period_end=now,
            entries=entries,
            now=now,
        )  # all already queued: nothing new
        assert store.email_digest(empty).status == "cancelled"
        assert [d.digest_id for d in store.email_digest_entries(first)] == [first, first]
        assert store.due_email_deliveries(now) == []  # they go out with the digest
        assert [g.id for g in store.due_email_digests(now)] == [first]
        assert store.claim_email_digest(first, now)
        assert not store.claim_email_digest(first, now)
        assert [g.id for g in store.stale_email_digests(now + timedelta(minutes=1))] == [first]
        store.finish_email_digest(first, status="sent", sent_at=now, error=None)
        assert {d.status for d in store.email_deliveries()} == {"sent"}
        assert store.email_sends_since(now - timedelta(minutes=1)) == 1  # one message
        assert store.email_digest_counts() == {"sent": 1, "cancelled": 1}
        assert store.email_paused() is None
        store.set_email_paused('{"by": "x"}')
        assert store.email_paused() == '{"by": "x"}'
        store.set_email_paused(None)
        assert store.email_paused() is None
        assert store.delete_email_subscriber(a)
        assert store.email_digests() == [] and store.email_deliveries() == []
    finally:
        store.engine.dispose()
