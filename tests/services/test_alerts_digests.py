"""Email digests (daily, weekly) on a fake clock across daylight-saving changes, no duplicates
across overlapping subscriptions, urgent announcements at once, and pausing all mail. A real
SMTP server on loopback (aiosmtpd) receives every message; the tests parse it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from beatfeeds.app import create_app
from beatfeeds.delivery import links, messages, queue
from beatfeeds.services import alerts, announcements, deliveries, digests
from tests.support.alerts import digest_setup, entry_uids, parts, to_utc
from tests.support.imports import import_csv, row_at
from tests.support.instance import make_settings

A = "resident@example.org"
W = "weekly@example.org"


@pytest.fixture
def inbox(smtp_server):
    return smtp_server


def _local(utc: datetime, settings) -> datetime:
    return utc.replace(tzinfo=UTC).astimezone(settings.tz).replace(tzinfo=None)


def _burglary(row):
    row[2], row[3] = "BURGLARY", "BURGLARY - RESIDENTIAL"
    return row


def _elsewhere_in_w(store):
    """A point in a West-precinct beat outside sector K (K3's sector)."""
    beat = next(
        b for b in store.beats(store.active_beat_set_id()) if b.precinct == "W" and b.sector != "K"
    )
    p = beat.geometry.representative_point()
    return beat.code, f"{p.y:.6f}", f"{p.x:.6f}"


def _run(store, settings, now):
    return alerts.send_alerts(store, settings, now, clock=lambda: now)


def _to(inbox, address):
    return [m for m in inbox.messages if m["To"] == address]


# ---- timing across daylight saving ---------------------------------------------------------
@pytest.mark.parametrize(
    "first_day", [datetime(2026, 3, 6), datetime(2026, 10, 30)], ids=["spring-forward", "fall-back"]
)
def test_digests_go_out_at_local_send_time_once_a_day_across_dst(tmp_path, inbox, first_day):
    store, settings = digest_setup(tmp_path, inbox)
    start = to_utc(first_day.replace(hour=12), settings)
    for address, frequency in ((A, "daily"), (W, "weekly")):
        store.save_email_subscription(
            address=address,
            area_kind="beat",
            area_code="K3",
            categories=(),
            frequency=frequency,
            now=start,
        )
    sent_at: dict[str, list[datetime]] = {A: [], W: []}
    imports = {
        to_utc(first_day.replace(hour=3, minute=30) + timedelta(days=d), settings): d
        for d in range(1, 11)
    }
    now, end = start, start + timedelta(days=10)
    while now <= end:
        if now in imports:  # each night at 03:00 local, a car prowl in K3
            event = now - timedelta(minutes=30)
            import_csv(store, settings, tmp_path, [row_at(settings, imports[now], event)], now)
        before = {a: len(_to(inbox, a)) for a in sent_at}
        _run(store, settings, now)
        for a in sent_at:
            sent_at[a] += [now] * (len(_to(inbox, a)) - before[a])
        now += timedelta(minutes=30)

    daily = [_local(t, settings) for t in sent_at[A]]
    assert [t.time().isoformat() for t in daily] == ["07:00:00"] * 10  # both sides of DST
    assert [t.date() for t in daily] == [
        (first_day + timedelta(days=d)).date() for d in range(1, 11)
    ]  # exactly once per day
    offsets = {t.replace(tzinfo=UTC).astimezone(settings.tz).utcoffset() for t in sent_at[A]}
    assert len(offsets) == 2  # the run really crossed a change of offset
    weekly = [_local(t, settings) for t in sent_at[W]]
    assert [(t.strftime("%A"), t.time().isoformat()) for t in weekly] == [
        ("Sunday", "07:00:00")
    ] * 2
    # Every entry reached each address once: each day's digest lists that night's entry.
    for address, n in ((A, 10), (W, 9)):  # the weekly one has not yet had Monday's
        uids = [u for m in _to(inbox, address) for u in entry_uids(m)]
        assert len(uids) == len(set(uids)) == n, address
    first = _to(inbox, A)[0]
    assert "daily digest" in first["Subject"] and "1 new entry" in first["Subject"]
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    weekly_first = _to(inbox, W)[0]
    assert len(entry_uids(weekly_first)) == 2  # Friday night's and Saturday night's
    assert {d.status for d in store.email_digests()} == {"sent"}


def test_digest_settings_are_checked_and_shown_in_the_confirmation(tmp_path, inbox):
    from beatfeeds.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="digest_time"):
        make_settings(tmp_path, digest_time="7am")
    with pytest.raises(ConfigurationError, match="digest_weekday"):
        make_settings(tmp_path, digest_weekday="someday")
    assert (
        make_settings(tmp_path, digest_time="6:30", digest_weekday=" Friday ").digest_time
        == "06:30"
    )
    store, settings = digest_setup(tmp_path, inbox)
    app = create_app(
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "store": store, **settings.as_dict()}
    )
    client = app.test_client()
    page = client.get("/beats/K3").get_data(as_text=True)
    assert 'name="frequency" value="weekly"' in page
    assert "A weekly digest on Sundays at 07:00 (America/Los_Angeles time)" in page
    r = client.post(
        "/alerts/subscribe",
        data={"address": A, "area_kind": "beat", "area_code": "K3", "frequency": "weekly"},
    )
    assert r.status_code == 200
    text, html = parts(inbox.messages[-1])
    assert "a weekly digest on Sundays at 07:00 (America/Los_Angeles time)" in text
    assert "Sundays at 07:00" in html
    path = urlsplit(re.search(r"(http://\S+/alerts/confirm/\S+)", text).group(1)).path
    assert "Sundays at 07:00" in client.get(path).get_data(as_text=True)
    done = client.post(path).get_data(as_text=True)
    assert "weekly digest on Sundays at 07:00" in done
    assert store.email_subscriptions(A)[0].frequency == "weekly"


# ---- no duplicates across overlapping subscriptions --------------------------------------------
def test_overlapping_subscriptions_get_each_entry_once_grouped_by_area(tmp_path, inbox):
    store, settings = digest_setup(tmp_path, inbox)
    app = create_app({"TESTING": True, "store": store, **settings.as_dict()})
    t0 = datetime(2026, 3, 10, 18, 0)  # 11:00 local (PDT)
    for kind, code, cats, freq in (
        ("beat", "K3", (), "daily"),
        ("precinct", "W", ("burglary",), "daily"),
        ("sector", "K", ("burglary",), "instant"),
    ):
        store.save_email_subscription(
            address=A, area_kind=kind, area_code=code, categories=cats, frequency=freq, now=t0
        )
    other_beat, lat, lon = _elsewhere_in_w(store)
    t1 = t0 + timedelta(hours=3)
    import_csv(
        store,
        settings,
        tmp_path,
        [
            _burglary(row_at(settings, 1, t1 - timedelta(hours=2))),  # K3: instant (sector K)
            row_at(settings, 2, t1 - timedelta(hours=2)),  # K3 car prowl: beat K3's digest
            _burglary(row_at(settings, 3, t1 - timedelta(hours=2), lat=lat, lon=lon)),  # W digest
            row_at(settings, 4, t1 - timedelta(hours=2), lat=lat, lon=lon),  # matches nothing
        ],
        t1 - timedelta(hours=2),
    )  # imported as they happened: public an hour before t1
    urgent = announcements.create_announcement(
        store,
        settings,
        kind="alert",
        title="Gas leak on 8th Ave",
        body="Avoid the area.",
        beats=["K3"],
        urgent=True,
        actor="records@example.org",
        now=t1,
    )
    tip = announcements.create_announcement(
        store,
        settings,
        kind="prevention-tip",
        title="Lock your car",
        body="Every night.",
        beats=["K3"],
        actor="records@example.org",
        now=t1,
    )
    summary = _run(store, settings, t1)
    assert summary["sent"] == 2  # the burglary (instant) and the urgent alert, at once
    instant = _to(inbox, A)
    alert_msg = next(m for m in instant if "Gas leak" in m["Subject"])
    assert alert_msg["Subject"] == "URGENT Public-safety alert: Gas leak on 8th Ave"
    assert "Avoid the area." in parts(alert_msg)[0] and "911" in parts(alert_msg)[0]
    assert alert_msg["List-Unsubscribe"]
    assert _run(store, settings, t1 + timedelta(hours=2))["sent"] == 0  # the tip waits

    digest_time = to_utc(datetime(2026, 3, 11, 7, 0), settings)
    assert _run(store, settings, digest_time - timedelta(minutes=1))["digests"] == 0
    summary = _run(store, settings, digest_time)
    assert summary["digests"] == 1 and summary["sent"] == 1
    digest = _to(inbox, A)[-1]
    text, html = parts(digest)
    assert "daily digest" in digest["Subject"] and "3 new entries" in digest["Subject"]
    k3, w = text.index("== Beat K3 (2) =="), text.index("== West Precinct (1) ==")
    assert k3 < w  # narrowest area first, each entry under one area only
    assert "Lock your car" in text[k3:w] and "Every night." in text
    assert "BLOCK OF" in text and "1100 8TH" not in text + html
    assert "911" in text and "911" in html
    assert "Stop this daily digest" in text and text.count("(stop: ") == 2
    for uid in entry_uids(digest):
        assert uid in html
        assert app.test_client().get(f"/entries/{uid}").status_code == 200

    everything = Counter(u for m in _to(inbox, A) for u in entry_uids(m))
    assert set(everything.values()) == {1}  # never the same entry twice
    assert len(everything) == 5  # 3 incidents and 2 announcements; #4 matched nothing
    assert tip.uid in everything and urgent.uid in everything

    # The next day there is nothing new: no mail, and the period still counts as done.
    next_day = digest_time + timedelta(days=1)
    assert _run(store, settings, next_day)["sent"] == 0
    assert [d.status for d in store.email_digests()] == ["sent", "cancelled"]
    assert _run(store, settings, next_day + timedelta(minutes=1))["digests"] == 0

    # One click on the digest's header stops the daily digest, not the instant alerts.
    unsub = re.fullmatch(r"<(\S+)>", digest["List-Unsubscribe"]).group(1)
    r = app.test_client().post(urlsplit(unsub).path, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and "daily digest" in r.get_data(as_text=True)
    assert [s.frequency for s in store.email_subscriptions(A)] == ["instant"]


def test_an_entry_already_in_a_digest_is_not_mailed_by_a_new_instant_subscription(tmp_path, inbox):
    store, settings = digest_setup(tmp_path, inbox)
    t0 = datetime(2026, 3, 10, 18, 0)
    store.save_email_subscription(
        address=A, area_kind="beat", area_code="K3", categories=(), frequency="daily", now=t0
    )
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 1, t0 + timedelta(hours=1))],
        t0 + timedelta(hours=1),
    )
    digest_time = to_utc(datetime(2026, 3, 11, 7, 0), settings)
    assert _run(store, settings, digest_time)["sent"] == 1
    # The resident adds instant alerts for the precinct; the entry was mailed already.
    store.save_email_subscription(
        address=A, area_kind="precinct", area_code="W", categories=(), frequency="instant", now=t0
    )
    assert deliveries.enqueue_alerts(store, settings, digest_time) == 0
    assert len(_to(inbox, A)) == 1


def test_a_digest_interrupted_mid_send_becomes_unknown_and_admins_decide(tmp_path, inbox):
    store, settings = digest_setup(tmp_path, inbox)
    t0 = datetime(2026, 3, 10, 18, 0)
    store.save_email_subscription(
        address=A, area_kind="beat", area_code="K3", categories=(), frequency="daily", now=t0
    )
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 1, t0 + timedelta(hours=1))],
        t0 + timedelta(hours=1),
    )
    digest_time = to_utc(datetime(2026, 3, 11, 7, 0), settings)
    assert digests.assemble_digests(store, settings, digest_time) == 1
    (g,) = store.email_digests()
    assert store.claim_email_digest(g.id, digest_time)  # then the process died
    later = digest_time + timedelta(minutes=11)
    summary = _run(store, settings, later)
    assert summary["unknown"] == 1 and summary["sent"] == 0 and summary["digests"] == 0
    assert store.email_digest(g.id).status == "unknown"
    (d,) = store.email_deliveries()
    assert d.status == "unknown" and d.digest_id == g.id
    assert _run(store, settings, later + timedelta(days=1, minutes=5))["sent"] == 0
    assert inbox.messages == []  # never resent by itself
    alerts.resolve_delivery(store, d.id, "retry", actor="admin@example.org", now=later)
    assert store.email_digest(g.id).status == "pending"
    assert _run(store, settings, later + timedelta(days=1, minutes=6))["sent"] == 1
    assert store.email_deliveries()[0].status == "sent"
    assert len(inbox.messages) == 1


def test_erasure_removes_digests_too(tmp_path, inbox):
    store, settings = digest_setup(tmp_path, inbox)
    t0 = datetime(2026, 3, 10, 18, 0)
    store.save_email_subscription(
        address=A, area_kind="beat", area_code="K3", categories=(), frequency="daily", now=t0
    )
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 1, t0 + timedelta(hours=1))],
        t0 + timedelta(hours=1),
    )
    _run(store, settings, to_utc(datetime(2026, 3, 11, 7, 0), settings))
    assert store.email_digests(address=A)
    assert store.delete_email_subscriber(A)
    assert store.email_digests() == [] and store.email_deliveries() == []


# ---- pausing all mail ---------------------------------------------------------------------------
def test_pausing_all_mail_holds_everything_until_resumed(tmp_path, inbox, monkeypatch):
    store, settings = digest_setup(tmp_path, inbox)
    t0 = datetime(2026, 3, 10, 18, 0)
    store.save_email_subscription(
        address=A, area_kind="beat", area_code="K3", categories=(), frequency="instant", now=t0
    )
    store.save_email_subscription(
        address=W, area_kind="beat", area_code="K3", categories=(), frequency="daily", now=t0
    )
    alerts.set_paused(store, True, actor="admin@example.org", now=t0)
    assert alerts.paused_state(store)["by"] == "admin@example.org"
    t1 = t0 + timedelta(hours=2)
    import_csv(store, settings, tmp_path, [row_at(settings, 1, t0 - timedelta(minutes=30))], t1)
    digest_time = to_utc(datetime(2026, 3, 11, 7, 0), settings)
    for at in (t1, digest_time, digest_time + timedelta(hours=1)):
        summary = _run(store, settings, at)
        assert summary.get("paused") and summary["sent"] == 0
    assert inbox.messages == []
    assert [d.status for d in store.email_deliveries()] == ["pending"]  # queued, not lost
    alerts.set_paused(store, False, actor="admin@example.org", now=t1)
    summary = _run(store, settings, digest_time + timedelta(hours=2))
    assert summary["sent"] == 2  # the instant alert, and the digest that waited
    assert sorted(m["To"] for m in inbox.messages) == [A, W]
    actions = [e["action"] for e in store.audit_log()]
    assert "alerts.pause" in actions and "alerts.resume" in actions


def test_admins_pause_and_resume_on_the_admin_page(admin, staff_clerk, staff):
    store = staff
    page = admin.get("/alerts/admin").get_data(as_text=True)
    assert "Pause all mail" in page and "mail-paused" not in page
    assert staff_clerk.post("/alerts/admin/pause", data={"paused": "1"}).status_code == 403
    assert store.email_paused() is None
    assert admin.post("/alerts/admin/pause", data={"paused": "1"}).status_code == 303
    page = admin.get("/alerts/admin").get_data(as_text=True)
    assert 'id="mail-paused"' in page and "All email is paused" in page
    assert "Resume all mail" in page
    assert admin.post("/alerts/admin/pause", data={"paused": "0"}).status_code == 303
    assert store.email_paused() is None
    assert "Pause all mail" in admin.get("/alerts/admin").get_data(as_text=True)
    assert [e["action"] for e in store.audit_log()][:2] == ["alerts.resume", "alerts.pause"]


def test_operators_pause_and_resume_all_mail_from_the_cli(runner):
    # The same switch as the admin page: stored in the database, audited as the CLI.
    from beatfeeds.cli import main
    from beatfeeds.core.settings import load_settings
    from beatfeeds.storage import SQLStore

    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    status = runner.invoke(main, ["mail", "status"])
    assert (status.exit_code, status.output.strip()) == (0, "mail is being sent")
    paused = runner.invoke(main, ["mail", "pause"])
    assert paused.exit_code == 0 and "paused" in paused.output
    store = SQLStore.from_url(load_settings().database_url)
    assert alerts.paused_state(store)["by"] == "cli"
    assert runner.invoke(main, ["mail", "status"]).output.startswith("all mail paused by cli at ")
    assert runner.invoke(main, ["mail", "resume"]).exit_code == 0
    assert alerts.paused_state(store) is None
    assert [e["action"] for e in store.audit_log()][:2] == ["alerts.resume", "alerts.pause"]
    store.engine.dispose()


# ---- SIGKILL mid-send ---------------------------------------------------------------------------
class _StallingInbox:
    """An SMTP server that takes the message, then never answers DATA until released."""

    def __init__(self):
        self.received = threading.Event()
        self.release = threading.Event()
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(envelope.content)
        self.received.set()
        while not self.release.is_set():
            await asyncio.sleep(0.05)
        return "250 Message accepted"


@pytest.fixture
def stalling_smtp():
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _StallingInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.url = f"smtp://127.0.0.1:{port}"
    yield inbox
    inbox.release.set()
    controller.stop()


@pytest.mark.slow
@pytest.mark.parametrize("frequency", ["instant", "daily"])
def test_sigkill_mid_send_leaves_the_message_unknown_and_never_resends_it(
    tmp_path, stalling_smtp, frequency
):
    inbox = stalling_smtp
    now = datetime.now(UTC).replace(tzinfo=None)
    local = now.replace(tzinfo=UTC).astimezone(ZoneInfo("America/Los_Angeles"))
    send_time = (local - timedelta(minutes=5)).strftime("%H:%M")  # the digest is due now
    store, settings = digest_setup(tmp_path, inbox, digest_time=send_time)
    store.save_email_subscription(
        address=A,
        area_kind="beat",
        area_code="K3",
        categories=(),
        frequency=frequency,
        now=now - timedelta(days=1),
    )
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 1, now - timedelta(hours=2))],
        now - timedelta(hours=2),
    )  # imported as it happened: public an hour ago
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEATFEEDS_")}
    env.update(
        BEATFEEDS_DATABASE_URL=settings.database_url,
        BEATFEEDS_SECRET_KEY=settings.secret_key,
        BEATFEEDS_INSTANCE_PATH=settings.instance_path,
        BEATFEEDS_BASE_URL=settings.base_url,
        BEATFEEDS_SMTP_URL=inbox.url,
        BEATFEEDS_TIMEZONE="America/Los_Angeles",
        BEATFEEDS_DIGEST_TIME=send_time,
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from beatfeeds.cli import main; main()",
            "jobs",
            "run",
            "send-alerts",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert inbox.received.wait(60), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)  # the server has the message; we never hear back
        proc.wait(10)
    finally:
        inbox.release.set()
    assert proc.returncode == -signal.SIGKILL
    (d,) = store.email_deliveries()
    assert d.status == "sending"
    # Within the lease nobody touches it; after it, the next run marks it unknown.
    assert _run(store, settings, now + timedelta(minutes=1))["unknown"] == 0
    later = now + queue.LEASE + timedelta(minutes=1)
    summary = _run(store, settings, later)
    assert summary["unknown"] == 1 and summary["sent"] == 0
    (d,) = store.email_deliveries()
    assert d.status == "unknown" and "not resent" in d.error
    if frequency == "daily":
        assert store.email_digest(d.digest_id).status == "unknown"
    for extra in (timedelta(hours=1), timedelta(days=1, minutes=1)):  # and never by itself
        assert _run(store, settings, later + extra)["sent"] == 0
    assert len(inbox.messages) == 1


def test_a_backfill_of_old_incidents_does_not_flood_digests(tmp_path, inbox):
    store, settings = digest_setup(tmp_path, inbox)
    t0 = datetime(2026, 3, 10, 18, 0)
    store.save_email_subscription(
        address=A, area_kind="beat", area_code="K3", categories=(), frequency="daily", now=t0
    )
    t1 = t0 + timedelta(hours=3)
    import_csv(
        store,
        settings,
        tmp_path,
        [
            *[row_at(settings, i, t0 - timedelta(days=30 + i)) for i in range(1, 6)],  # backfill
            row_at(settings, 9, t0 + timedelta(hours=1)),  # today's news
        ],
        t1,
    )
    assert _run(store, settings, to_utc(datetime(2026, 3, 11, 7, 0), settings))["sent"] == 1
    (digest,) = _to(inbox, A)
    assert len(entry_uids(digest)) == 1 and "1 new entry" in digest["Subject"]


def test_the_manage_link_switches_between_instant_alerts_and_digests(tmp_path, inbox):
    store, settings = digest_setup(tmp_path, inbox)
    app = create_app(
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "store": store, **settings.as_dict()}
    )
    client = app.test_client()
    t0 = datetime(2026, 3, 1, 18, 0)
    sub_id = store.save_email_subscription(
        address=A, area_kind="beat", area_code="K3", categories=(), frequency="instant", now=t0
    )
    theirs = store.save_email_subscription(
        address=W, area_kind="beat", area_code="K3", categories=(), frequency="instant", now=t0
    )
    path = f"/alerts/manage/{links.manage_token(settings, A)}"
    page = client.get(path).get_data(as_text=True)
    assert 'name="frequency"' in page and "Sundays at 07:00" in page
    assert client.post(f"{path}/frequency/{sub_id}", data={"frequency": "daily"}).status_code == 303
    assert store.email_subscription(sub_id).frequency == "daily"
    assert "a daily digest at 07:00" in client.get(path).get_data(as_text=True)
    assert (
        client.post(f"{path}/frequency/{sub_id}", data={"frequency": "hourly"}).status_code == 400
    )
    assert client.post(f"{path}/frequency/{theirs}", data={"frequency": "daily"}).status_code == 404
    assert store.email_subscription(theirs).frequency == "instant"
    # The first digest after the switch covers one day, not the time since subscribing.
    t1 = datetime(2026, 3, 10, 18, 0)
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 1, t0 + timedelta(days=2)), row_at(settings, 2, t1 + timedelta(hours=1))],
        t1 + timedelta(hours=1),
    )
    assert _run(store, settings, to_utc(datetime(2026, 3, 11, 7, 0), settings))["sent"] == 2
    (digest,) = _to(inbox, A)
    assert len(entry_uids(digest)) == 1


def test_a_long_digest_lists_the_newest_entries_and_counts_the_rest(tmp_path):
    from beatfeeds.core.models import EmailDigest, EmailSubscription, FeedEntry

    settings = make_settings(tmp_path)
    t0 = datetime(2026, 11, 25, 15, 0)
    sub = EmailSubscription(1, 1, "r@example.org", "city", None, (), "daily", t0)
    city = [
        messages.PublicEntry(
            FeedEntry(
                uid=f"u{i:04d}",
                title="",
                category="theft",
                category_text="THEFT",
                description="THEFT - CAR PROWL",
                block_address=f"{i}XX BLOCK OF PINE ST",
                event_time=t0 + timedelta(minutes=i),
                updated_at=t0,
            ),
            None,
        )
        for i in range(450)
    ]
    beat_sub = EmailSubscription(2, 1, "r@example.org", "beat", "K3", (), "daily", t0)
    beat = city[:3]
    digest = EmailDigest(
        7,
        1,
        "r@example.org",
        "daily",
        t0,
        t0 + timedelta(days=1),
        "pending",
        t0,
        0,
        None,
        None,
        t0,
        None,
    )
    msg = messages.digest_message(settings, digest, [(beat_sub, beat), (sub, city[3:])])
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "450 new entries" in msg["Subject"]
    listed = re.findall(r"/entries/(u\d{4})", text)
    assert len(listed) == messages.DIGEST_MAX_LISTED
    assert listed[:3] == ["u0002", "u0001", "u0000"]  # newest first in each area
    assert listed[3] == "u0449"
    assert "... and 350 more for " in text
    assert "350 more for" in html
    assert len(msg.as_bytes()) < 102_000  # Gmail clips longer messages, footer and all
    assert "Stop this daily digest" in text  # the footer survives
