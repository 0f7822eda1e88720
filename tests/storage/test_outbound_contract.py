"""The outbox and announcements over every storage backend (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from beatfeeds.services import announcements, outbound_accounts, outbox, publishing, review
from tests.support.instance import load_default_beats
from tests.support.outbound import ADMIN, FakeClock, T, import_incidents, incident


def test_outbox_and_announcements_on_each_backend(cfg, tmp_path, httpserver):
    from beatfeeds.storage import SQLStore

    store = SQLStore.from_url(cfg.database_url)
    try:
        store.upgrade()
        load_default_beats(store, now=T - timedelta(days=1))
        httpserver.expect_request("/hook").respond_with_data("ok")
        account_id = outbound_accounts.add_account(
            store,
            cfg,
            area_kind="sector",
            area_code="K",
            service="webhook",
            label="",
            endpoint=httpserver.url_for("/hook"),
            credentials={"secret": "s"},
            actor=ADMIN,
            now=T - timedelta(hours=2),
        )
        import_incidents(store, cfg, tmp_path, [incident(cfg, 1, 90), incident(cfg, 2, 95)])
        ann = announcements.create_announcement(
            store,
            cfg,
            kind="alert",
            title="Gas leak on 3rd Ave",
            body="Avoid the area.",
            beats="K3",
            urgent=True,
            actor=ADMIN,
            now=T,
        )
        assert outbox.enqueue_due(store, cfg, T) == 3
        assert outbox.enqueue_due(store, cfg, T) == 0  # unique per entry, account, category
        summary = outbox.send_outbox(store, cfg, T, clock=FakeClock(T))
        assert summary["sent"] == 3 and len(httpserver.log) == 3
        assert store.sends_since(account_id, T - timedelta(minutes=1)) == 3
        assert store.outbox_counts() == {"sent": 3}
        area = publishing.resolve_area(store, "beat", "K3")
        titles = [e.title for e in publishing.area_entries(store, cfg, area, now=T)]
        assert titles[0] == "Public-safety alert: Gas leak on 3rd Ave" and len(titles) == 3
        stamp = publishing.feed_version(store, cfg, now=T)
        assert publishing.feed_version(store, cfg, now=T) == stamp
        uid = next(i.entry_uid for i in store.list_outbox() if i.entry_kind == "incident")
        review.retract_entry(store, uid, "entered in error", actor=ADMIN, now=T)
        announcements.withdraw_announcement(store, ann.uid, actor=ADMIN, now=T)
        assert publishing.feed_version(store, cfg, now=T) != stamp  # withdrawal shows
        assert outbox.retract_posts(store, cfg, T)["deleted"] == 2
        assert store.outbox_counts() == {"sent": 1, "deleted": 2}
        events = [e[0].headers["X-Beatfeeds-Event"] for e in httpserver.log]
        assert events.count("entry.deleted") == 2
    finally:
        store.engine.dispose()
