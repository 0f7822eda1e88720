"""Outbound accounts and the outbox, against loopback servers that speak each service's API."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from werkzeug import Response

from beatfeeds.delivery import queue
from beatfeeds.delivery.credentials import decrypt_credentials
from beatfeeds.services import outbound_accounts, outbox, review
from beatfeeds.storage import schema as t
from tests.support.fakes import FakeMastodon, FakePDS, FakeX
from tests.support.instance import make_settings
from tests.support.outbound import (
    ADMIN,
    FakeClock,
    T,
    add,
    import_incidents,
    incident,
    items,
    send,
    setup,
)


# ---- webhook -----------------------------------------------------------------------------------
def test_webhook_posts_each_public_entry_once_signed_with_hmac(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    secret = "shared-secret-of-the-receiver"
    received = []

    def handler(request):
        body = request.get_data()
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert request.headers["X-Beatfeeds-Signature"] == expected
        received.append((request.headers["Idempotency-Key"], json.loads(body)))
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    add(store, settings, "webhook", httpserver.url_for("/hook"), {"secret": secret})
    import_incidents(
        store,
        settings,
        tmp_path,
        [
            incident(settings, 1, 90),  # public 30 minutes ago
            incident(settings, 2, 10),  # still inside the 60-minute delay
            incident(settings, 3, 90, lat="47.6606", lon="-122.3125"),  # another beat (U)
        ],
    )
    summary = send(store, settings, T)
    assert summary["sent"] == 1
    key, doc = received[0]
    assert doc["event"] == "entry.published" and doc["id"] == key
    assert key == f"beatfeeds-outbox-{items(store)[0].id}"
    assert doc["url"].startswith("http://feeds.example.test/entries/")
    assert doc["url"] in doc["text"] and "11XX BLOCK OF 8TH AVE NE" in doc["text"]
    assert doc["entry"]["beat"] == "K3"

    assert send(store, settings, T)["sent"] == 0  # exactly once
    assert len(received) == 1
    later = T + timedelta(minutes=51)  # incident 2 passes its delay
    assert send(store, settings, later)["sent"] == 1
    assert len(received) == 2 and [i.status for i in items(store)] == ["sent", "sent"]


def test_transient_errors_back_off_permanent_ones_stop(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    answers = [503, 503, 400]
    httpserver.expect_request("/hook").respond_with_handler(
        lambda r: Response("nope", status=answers.pop(0))
    )
    add(store, settings, "webhook", httpserver.url_for("/hook"), {"secret": "s"})
    import_incidents(store, settings, tmp_path, [incident(settings, 1, 90)])
    assert send(store, settings, T)["retry"] == 1
    item = items(store)[0]
    assert item.status == "pending" and "503" in item.error
    assert item.next_attempt_at == T + timedelta(minutes=1)
    assert send(store, settings, T + timedelta(seconds=30))["retry"] == 0  # waits
    assert send(store, settings, T + timedelta(minutes=1))["retry"] == 1
    assert items(store)[0].next_attempt_at == T + timedelta(minutes=3)  # doubled
    assert send(store, settings, T + timedelta(minutes=3))["failed"] == 1
    item = items(store)[0]
    assert item.status == "failed" and "400" in item.error and item.attempts == 3
    assert send(store, settings, T + timedelta(days=1))["failed"] == 0


def test_old_and_earlier_entries_are_not_posted(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    httpserver.expect_request("/hook").respond_with_data("ok")
    import_incidents(
        store, settings, tmp_path, [incident(settings, 1, 300)], now=T - timedelta(hours=4)
    )  # public before the account existed
    add(store, settings, "webhook", httpserver.url_for("/hook"), {"secret": "s"})
    import_incidents(store, settings, tmp_path, [incident(settings, 2, 60 * 30)])  # 30 h old
    assert send(store, settings, T)["enqueued"] == 0
    assert not httpserver.log


def test_dry_run_records_the_text_and_sends_nothing(tmp_path, httpserver):
    store, settings = setup(tmp_path, dry_run=True)
    add(store, settings, "webhook", httpserver.url_for("/hook"), {"secret": "s"})
    import_incidents(store, settings, tmp_path, [incident(settings, 1, 90)])
    assert send(store, settings, T)["sent"] == 1
    item = items(store)[0]
    assert item.dry_run and "11XX BLOCK OF 8TH AVE NE" in item.text
    assert not httpserver.log


def test_credentials_are_encrypted_at_rest(tmp_path):
    store, settings = setup(tmp_path)
    add(store, settings, "mastodon", "https://fake.example", {"access_token": "tok-SECRET-123"})
    with store.engine.connect() as conn:
        raw = conn.execute(select(t.outbound_accounts.c.credentials)).scalar_one()
    assert "tok-SECRET-123" not in raw
    account = store.list_outbound_accounts()[0]
    assert decrypt_credentials(settings, account.credentials)["access_token"] == "tok-SECRET-123"
    other = make_settings(tmp_path / "other", secret_key="another-key")
    with pytest.raises(Exception, match="secret key changed"):
        decrypt_credentials(other, account.credentials)


# ---- Mastodon ----------------------------------------------------------------------------------
def test_mastodon_posts_with_idempotency_key_and_instance_limit(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    masto = FakeMastodon(httpserver, max_characters=120)
    add(store, settings, "mastodon", httpserver.url_for("/"), {"access_token": "tok"})
    import_incidents(
        store,
        settings,
        tmp_path,
        [incident(settings, 1, 90, desc="THEFT - CAR PROWL " + "VERY LONG DESCRIPTION " * 8)],
    )
    assert send(store, settings, T)["sent"] == 1
    req = masto.requests[0]
    assert req["auth"] == "Bearer tok" and req["key"] == f"beatfeeds-outbox-{items(store)[0].id}"
    text = req["status"]
    assert "http://feeds.example.test/entries/" in text and "…" in text
    from beatfeeds.delivery.posting.text import mastodon_length

    assert mastodon_length(text) <= 120
    item = items(store)[0]
    assert item.remote_url.startswith("https://fake.example/@beat/")


# ---- Bluesky -----------------------------------------------------------------------------------
def test_bluesky_fixed_record_key_facets_and_rate_limit(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    pds = FakePDS(httpserver)
    add(
        store,
        settings,
        "bluesky",
        httpserver.url_for("/").rstrip("/"),
        {"identifier": pds.handle, "app_password": pds.password},
    )
    import_incidents(
        store, settings, tmp_path, [incident(settings, 1, 90), incident(settings, 2, 80)]
    )
    pds.rate_limited_next = 1
    summary = send(store, settings, T)
    assert summary["retry"] == 1 and summary["sent"] == 0
    first = items(store)[0]
    reset = datetime.fromtimestamp(pds.reset_at, UTC).replace(tzinfo=None)
    assert first.status == "pending" and "429" in first.error and first.next_attempt_at >= reset
    assert store.outbound_account(first.account_id).blocked_until == reset
    assert send(store, settings, T + timedelta(minutes=1))["sent"] == 0  # waits
    summary = send(store, settings, reset + timedelta(minutes=2))
    assert summary["sent"] == 2 and len(pds.records) == 2
    rkeys = [c["rkey"] for c in pds.creates]
    assert rkeys[0] == rkeys[1]  # the retry reused the item's record key
    record = pds.records[rkeys[0]]
    text = record["text"]
    facet = record["facets"][0]
    link = text.encode()[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode()
    assert link == facet["features"][0]["uri"] and link.startswith("http://feeds.example.test/")
    assert pds.sessions == 1  # the session is reused
    assert items(store)[0].remote_id == f"at://{pds.DID}/app.bsky.feed.post/{rkeys[0]}"


# ---- X -----------------------------------------------------------------------------------------
X_CREDS = {
    "consumer_key": "ck",
    "consumer_secret": "cs",
    "access_token": "at",
    "access_token_secret": "ats",
}


def test_x_is_rate_limited_per_account_with_a_fake_clock(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    x = FakeX(httpserver)
    add(store, settings, "x", httpserver.url_for("/").rstrip("/"), X_CREDS)
    import_incidents(
        store, settings, tmp_path, [incident(settings, i, 90 + i) for i in range(1, 21)]
    )
    clock = FakeClock(T)
    summary = outbox.send_outbox(store, settings, T, clock=clock)
    assert summary["sent"] == 17 and summary["deferred"] == 3  # X Free: 17 posts a day
    assert len(x.tweets) == 17 and 'oauth_consumer_key="ck"' in x.requests[0]["auth"]
    clock.advance(hours=23)
    assert outbox.send_outbox(store, settings, clock.at, clock=clock)["sent"] == 0
    clock.advance(hours=1, seconds=1)
    assert outbox.send_outbox(store, settings, clock.at, clock=clock)["sent"] == 3
    assert len(x.tweets) == 20


# ---- crashes between sending and recording ------------------------------------------------------
def _run_send_outbox_and_kill(settings, hold, server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEATFEEDS_")}
    env.update(
        BEATFEEDS_DATABASE_URL=settings.database_url,
        BEATFEEDS_SECRET_KEY=settings.secret_key,
        BEATFEEDS_INSTANCE_PATH=settings.instance_path,
        BEATFEEDS_BASE_URL=settings.base_url,
    )
    hold.armed = True
    logged = len(server.log)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from beatfeeds.cli import main; main()",
            "jobs",
            "run",
            "send-outbox",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert hold.received.wait(60), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)  # the service has the post; we never hear back
        proc.wait(10)
    finally:
        hold.release.set()
    # The held request is answered (to nobody) and logged by the server's thread: wait for
    # it, so that it never lands in the next test's log.
    deadline = time.monotonic() + 10
    while len(server.log) == logged and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_crash_mid_send_with_mastodon_never_double_posts(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    masto = FakeMastodon(httpserver)
    add(store, settings, "mastodon", httpserver.url_for("/"), {"access_token": "tok"})
    import_incidents(store, settings, tmp_path, [incident(settings, 1, 90)])
    _run_send_outbox_and_kill(settings, masto.hold, httpserver)
    assert items(store)[0].status == "sending" and len(masto.statuses) == 1
    later = datetime.now(UTC).replace(tzinfo=None) + queue.LEASE + timedelta(minutes=1)
    assert send(store, settings, later)["sent"] == 1
    item = items(store)[0]
    assert item.status == "sent" and item.attempts == 2
    assert len(masto.requests) == 2 and masto.requests[0]["key"] == masto.requests[1]["key"]
    assert len(masto.statuses) == 1 and item.remote_id in masto.statuses  # posted once


@pytest.mark.slow
def test_crash_mid_send_with_x_leaves_the_item_unknown(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    x = FakeX(httpserver)
    add(store, settings, "x", httpserver.url_for("/").rstrip("/"), X_CREDS)
    import_incidents(store, settings, tmp_path, [incident(settings, 1, 90)])
    _run_send_outbox_and_kill(settings, x.hold, httpserver)
    later = datetime.now(UTC).replace(tzinfo=None) + queue.LEASE + timedelta(minutes=1)
    summary = send(store, settings, later)
    assert summary["unknown"] == 1 and summary["sent"] == 0
    item = items(store)[0]
    assert item.status == "unknown" and "duplicate guard" in item.error
    send(store, settings, later + timedelta(days=1))
    assert len(x.tweets) == 1  # never retried by itself
    outbox.resolve_unknown(store, item.id, "sent", actor=ADMIN, now=later)
    assert items(store)[0].status == "sent"


def test_interrupted_sends_resume_only_after_the_lease(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    httpserver.expect_request("/hook").respond_with_data("ok")
    add(store, settings, "webhook", httpserver.url_for("/hook"), {"secret": "s"})
    import_incidents(store, settings, tmp_path, [incident(settings, 1, 90)])
    outbox.enqueue_due(store, settings, T)
    item = items(store)[0]
    assert store.claim_outbox_item(item.id, T)  # a process took it, then died
    assert not store.claim_outbox_item(item.id, T)  # nobody else can take it meanwhile
    assert send(store, settings, T + timedelta(minutes=5))["sent"] == 0
    assert send(store, settings, T + timedelta(minutes=11))["sent"] == 1
    assert len(httpserver.log) == 1


def test_paused_accounts_hold_their_items(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    httpserver.expect_request("/hook").respond_with_data("ok")
    account_id = add(store, settings, "webhook", httpserver.url_for("/hook"), {"secret": "s"})
    outbound_accounts.set_account_paused(store, account_id, True, actor=ADMIN, now=T)
    import_incidents(store, settings, tmp_path, [incident(settings, 1, 90)])
    assert send(store, settings, T)["sent"] == 0
    outbound_accounts.set_account_paused(store, account_id, False, actor=ADMIN, now=T)
    assert send(store, settings, T)["sent"] == 1


# ---- retractions and corrections ----------------------------------------------------------------
def test_retraction_deletes_the_mastodon_and_bluesky_posts(tmp_path, httpserver):

    store, settings = setup(tmp_path)
    masto = FakeMastodon(httpserver)
    pds = FakePDS(httpserver)
    add(store, settings, "mastodon", httpserver.url_for("/"), {"access_token": "tok"})
    add(
        store,
        settings,
        "bluesky",
        httpserver.url_for("/").rstrip("/"),
        {"identifier": pds.handle, "app_password": pds.password},
    )
    import_incidents(
        store, settings, tmp_path, [incident(settings, 1, 90), incident(settings, 2, 90)]
    )
    assert send(store, settings, T)["sent"] == 4
    assert len(masto.statuses) == 2 and len(pds.records) == 2
    assert outbox.retract_posts(store, settings, T)["deleted"] == 0  # nothing to do
    uid = items(store)[0].entry_uid
    review.retract_entry(store, uid, "entered in error", actor=ADMIN, now=T)
    assert outbox.retract_posts(store, settings, T)["deleted"] == 2
    assert len(masto.statuses) == 1 and len(pds.records) == 1
    gone = [i for i in items(store) if i.entry_uid == uid]
    assert {i.status for i in gone} == {"deleted"} and all(i.deleted_at for i in gone)
    assert outbox.retract_posts(store, settings, T)["deleted"] == 0  # once


def test_a_correction_posts_again_only_when_the_category_changes(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    httpserver.expect_request("/hook").respond_with_data("ok")
    add(store, settings, "webhook", httpserver.url_for("/hook"), {"secret": "s"})
    row = incident(settings, 1, 90)
    import_incidents(store, settings, tmp_path, [row])
    assert send(store, settings, T)["sent"] == 1
    fixed = list(row)
    fixed[4] = "1200 8TH AVE NE"  # the address corrected: same category
    import_incidents(store, settings, tmp_path, [fixed], now=T + timedelta(minutes=1))
    assert send(store, settings, T + timedelta(minutes=2))["sent"] == 0
    recat = list(fixed)
    recat[2], recat[3] = "ROBBERY", "ROBBERY - STREET"
    import_incidents(store, settings, tmp_path, [recat], now=T + timedelta(minutes=3))
    assert send(store, settings, T + timedelta(minutes=4))["sent"] == 1
    posted = [json.loads(e[0].get_data())["text"] for e in httpserver.log]
    assert len(posted) == 2 and "ROBBERY - STREET" in posted[1]
    assert [i.category for i in items(store)] == ["car-prowl", "robbery"]


def test_suppressed_or_retracted_before_sending_is_never_posted(tmp_path, httpserver):

    store, settings = setup(tmp_path)
    httpserver.expect_request("/hook").respond_with_data("ok")
    add(store, settings, "webhook", httpserver.url_for("/hook"), {"secret": "s"})
    row = incident(settings, 1, 90)
    import_incidents(store, settings, tmp_path, [row, incident(settings, 2, 90)])
    outbox.enqueue_due(store, settings, T)
    review.retract_entry(store, items(store)[0].entry_uid, "duplicate", actor=ADMIN, now=T)
    dv = list(incident(settings, 2, 90))
    dv[2], dv[3] = "DOMESTIC", "DOMESTIC - VERBAL"
    import_incidents(store, settings, tmp_path, [dv])
    summary = send(store, settings, T)
    assert summary["sent"] == 0 and summary["cancelled"] == 2
    assert not httpserver.log


def test_suppression_after_posting_deletes_the_x_post(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    x = FakeX(httpserver)
    add(store, settings, "x", httpserver.url_for("/").rstrip("/"), X_CREDS)
    row = incident(settings, 1, 90)
    import_incidents(store, settings, tmp_path, [row])
    assert send(store, settings, T)["sent"] == 1 and len(x.tweets) == 1
    dv = list(row)
    dv[2], dv[3] = "DOMESTIC", "DOMESTIC - VERBAL"
    import_incidents(store, settings, tmp_path, [dv], now=T + timedelta(minutes=1))
    assert outbox.retract_posts(store, settings, T + timedelta(minutes=2))["deleted"] == 1
    assert x.tweets == {}


# ---- profile text ------------------------------------------------------------------------------
def test_profile_text_is_written_to_mastodon_and_bluesky(tmp_path, httpserver):
    store, settings = setup(tmp_path)
    masto = FakeMastodon(httpserver)
    pds = FakePDS(httpserver)
    pds.profile = {"$type": "app.bsky.actor.profile", "displayName": "SPD Beat K3"}
    m = add(store, settings, "mastodon", httpserver.url_for("/"), {"access_token": "tok"})
    b = add(
        store,
        settings,
        "bluesky",
        httpserver.url_for("/").rstrip("/"),
        {"identifier": pds.handle, "app_password": pds.password},
    )
    w = add(store, settings, "webhook", httpserver.url_for("/hook"), {"secret": "s"})
    assert (
        outbound_accounts.update_profile(store, settings, m, actor=ADMIN, now=T)
        == "profile updated"
    )
    assert "Not monitored: call 911 for emergencies." in masto.profile["note"]
    assert "Beat K3" in masto.profile["note"]
    assert (
        outbound_accounts.update_profile(store, settings, b, actor=ADMIN, now=T)
        == "profile updated"
    )
    assert pds.profile["displayName"] == "SPD Beat K3"  # other fields kept
    assert "call 911" in pds.profile["description"]
    assert outbound_accounts.update_profile(store, settings, w, actor=ADMIN, now=T).startswith(
        "failed"
    )
