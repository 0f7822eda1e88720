"""Email alerts: sign-up with double opt-in, managing and unsubscribing, against a real SMTP
server on loopback (aiosmtpd) and the real app."""

from __future__ import annotations

import email
import re
import socket
from datetime import timedelta
from email import policy
from urllib.parse import urlsplit

import pytest

from beatfeeds.app import create_app
from beatfeeds.delivery import links
from beatfeeds.services import alerts, deliveries
from tests.support.alerts import alerts_app, confirmed, delay_ago, due, link, parts, subscribe
from tests.support.imports import import_csv, row_at
from tests.support.instance import make_settings, utcnow


def test_area_pages_offer_the_form_only_when_mail_can_be_sent(tmp_path, mailapp):
    app, *_ = mailapp
    client = app.test_client()
    for url in ("/beats/K3", "/sectors/K", "/precincts/W", "/"):
        page = client.get(url).get_data(as_text=True)
        assert 'action="/alerts/subscribe"' in page, url
        assert 'name="category" value="burglary"' in page
        assert "sexual-offense" not in page.split('id="email-alerts"')[1]
    off, _, _ = alerts_app(tmp_path / "off")
    assert 'action="/alerts/subscribe"' not in off.test_client().get("/beats/K3").get_data(
        as_text=True
    )
    assert (
        off.test_client()
        .post(
            "/alerts/subscribe",
            data={"address": "a@example.org", "area_kind": "beat", "area_code": "K3"},
        )
        .status_code
        == 400
    )


def test_double_opt_in_through_the_received_mail(mailapp):
    app, store, settings, inbox = mailapp
    client = app.test_client()
    r = subscribe(client, address=" Resident@Example.org ", category=["burglary", "robbery"])
    assert r.status_code == 200 and "Check your email" in r.get_data(as_text=True)
    assert store.email_subscriptions() == []  # nothing stored before confirmation
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["To"] == "resident@example.org"
    assert inbox.envelopes[0][1] == ["resident@example.org"]
    assert msg["From"] == "SPD Alerts <alerts@feeds.example.test>"
    assert "Beat K3" in msg["Subject"] and msg["Message-ID"] and msg["Date"]
    text, html = parts(msg)
    assert "Burglary" in text and "Robbery" in text and "911" in text and "911" in html
    path = link(text, "/alerts/confirm/")
    assert path in html

    page = client.get(path)
    assert page.status_code == 200 and "Confirm" in page.get_data(as_text=True)
    assert store.email_subscriptions() == []  # a link scanner's GET confirms nothing
    done = client.post(path)
    assert done.status_code == 200 and "Your alerts are on" in done.get_data(as_text=True)
    subs = store.email_subscriptions("resident@example.org")
    assert [(s.area_kind, s.area_code, s.categories, s.frequency) for s in subs] == [
        ("beat", "K3", ("burglary", "robbery"), "instant")
    ]
    assert client.post(path).status_code == 200  # confirming twice changes nothing
    assert len(store.email_subscriptions()) == 1

    # A forged or altered link is refused.
    assert client.get(path[:-3] + "xyz").status_code == 400
    assert client.post(path[:-3] + "xyz").status_code == 400


def test_the_answer_reveals_nothing_and_resubscribing_replaces_the_filter(mailapp):
    app, store, settings, inbox = mailapp
    client = app.test_client()
    first = subscribe(client, category="burglary")
    client.post(link(inbox.messages[0].get_body(("plain",)).get_content(), "/alerts/confirm/"))
    again = subscribe(client)  # already subscribed to K3: same answer
    assert again.status_code == first.status_code
    assert again.get_data() == first.get_data()
    client.post(link(inbox.messages[1].get_body(("plain",)).get_content(), "/alerts/confirm/"))
    subs = store.email_subscriptions("resident@example.org")
    assert len(subs) == 1 and subs[0].categories == ()


def test_sign_ups_are_rate_limited_per_address_and_per_client(mailapp):
    app, store, settings, inbox = mailapp
    client = app.test_client()
    for _ in range(settings.signup_max_per_address):
        assert subscribe(client, address="x@example.org").status_code == 200
    r = subscribe(client, address="x@example.org")
    assert r.status_code == 429 and "Too many" in r.get_data(as_text=True)
    assert len(inbox.messages) == settings.signup_max_per_address
    other = {"REMOTE_ADDR": "10.0.0.9"}
    codes = [
        client.post(
            "/alerts/subscribe",
            environ_base=other,
            data={"address": f"n{i}@example.org", "area_kind": "city", "frequency": "instant"},
        ).status_code
        for i in range(settings.signup_max_per_client + 1)
    ]
    assert codes[:-1] == [200] * settings.signup_max_per_client and codes[-1] == 429
    # Only a keyed hash of the addresses is kept for the limit, never the address.
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("select address_key from email_signups").scalars().all()
    assert stored and not any("@" in k for k in stored)


@pytest.mark.parametrize(
    "form,message",
    [
        ({"address": "not-an-address"}, "email address"),
        ({"category": "sexual-offense"}, "never published"),
        ({"category": "nonsense"}, "Unknown category"),
        ({"code": "ZZ9"}, "no beat"),
        ({"frequency": "hourly"}, "Choose one of"),
    ],
)
def test_bad_sign_ups_get_a_clear_error_and_send_nothing(mailapp, form, message):
    app, store, settings, inbox = mailapp
    r = subscribe(app.test_client(), **form)
    assert r.status_code in (400, 404)
    assert message.lower() in r.get_data(as_text=True).lower()
    assert inbox.messages == []


def test_manage_link_lists_removes_and_deletes_everything(mailapp):
    app, store, settings, inbox = mailapp
    client = app.test_client()
    for kind, code in (("beat", "K3"), ("precinct", "W")):
        subscribe(client, kind=kind, code=code)
        client.post(link(inbox.messages[-1].get_body(("plain",)).get_content(), "/alerts/confirm/"))
    assert len(store.email_subscriptions("resident@example.org")) == 2

    unknown = client.post("/alerts/manage", data={"address": "nobody@example.org"})
    known = client.post("/alerts/manage", data={"address": "resident@example.org"})
    assert unknown.get_data() == known.get_data()
    assert len(inbox.messages) == 3  # only the subscribed address got a link
    text, html = parts(inbox.messages[-1])
    path = link(text, "/alerts/manage/")
    page = client.get(path).get_data(as_text=True)
    assert "Beat K3" in page and "West Precinct" in page
    k3 = next(s for s in store.email_subscriptions("resident@example.org") if s.area_code == "K3")
    assert client.post(f"{path}/remove/{k3.id}").status_code == 303
    assert [s.area_code for s in store.email_subscriptions("resident@example.org")] == ["W"]
    # Another address's subscription cannot be removed with this link.
    subscribe(client, address="other@example.org")
    client.post(link(inbox.messages[-1].get_body(("plain",)).get_content(), "/alerts/confirm/"))
    theirs = store.email_subscriptions("other@example.org")[0]
    assert client.post(f"{path}/remove/{theirs.id}").status_code == 404
    r = client.post(f"{path}/delete")
    assert r.status_code == 200 and "Deleted" in r.get_data(as_text=True)
    assert store.email_subscriptions("resident@example.org") == []
    assert len(store.email_subscriptions()) == 1  # the other address is untouched
    with store.engine.connect() as conn:
        left = conn.exec_driver_sql("select address from email_subscribers").scalars().all()
    assert left == ["other@example.org"]


def test_one_click_unsubscribe_by_post_without_a_session(mailapp):
    app, store, settings, inbox = mailapp
    client = app.test_client()
    subscribe(client)
    client.post(link(inbox.messages[0].get_body(("plain",)).get_content(), "/alerts/confirm/"))
    sub = store.email_subscriptions()[0]
    token = links.unsubscribe_token(settings, sub)
    # CSRF protection is on here, as in production: the one-click POST must still work.
    strict = create_app({"store": store, **settings.as_dict()}).test_client()
    assert strict.get(f"/alerts/unsubscribe/{token}").status_code == 200
    r = strict.post(
        f"/alerts/unsubscribe/{token}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert r.status_code == 200 and "Beat K3" in r.get_data(as_text=True)
    assert store.email_subscriptions() == []
    assert strict.post(f"/alerts/unsubscribe/{token}").status_code == 200  # twice: still fine
    assert strict.post(f"/alerts/unsubscribe/{token}x").status_code == 400


def test_dry_run_writes_the_message_to_the_instance_folder(tmp_path):
    app, store, settings = alerts_app(tmp_path, dry_run=True)
    assert subscribe(app.test_client()).status_code == 200
    files = list((tmp_path / "instance" / "mail").glob("*.eml"))
    assert len(files) == 1
    msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["To"] == "resident@example.org"
    assert msg["From"] == "alerts@feeds.example.test"
    assert "/alerts/confirm/" in msg.get_body(("plain",)).get_content()


def test_an_unreachable_smtp_server_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    app, store, settings = alerts_app(tmp_path, smtp_url=f"smtp://127.0.0.1:{port}")
    r = subscribe(app.test_client())
    assert r.status_code == 502 and "SMTP server" in r.get_data(as_text=True)


# ---- sending ----------------------------------------------------------------------------------
def test_each_entry_reaches_an_address_once_with_headers_parts_and_working_links(tmp_path, mailapp):
    app, store, settings, inbox = mailapp
    client = app.test_client()
    assert store.beats(store.active_beat_set_id())  # K3 lies in the West precinct
    confirmed(client, inbox, kind="beat", code="K3")
    confirmed(client, inbox, kind="precinct", code="W", category="burglary")
    confirmed(
        client,
        inbox,
        address="burglary-only@example.org",
        kind="beat",
        code="K3",
        category="burglary",
    )
    before = len(inbox.messages)
    now = utcnow()
    import_csv(
        store,
        settings,
        tmp_path,
        [
            row_at(settings, 1, now - timedelta(minutes=120)),  # public, car prowl
            row_at(settings, 2, now - timedelta(minutes=10)),  # still within the publication delay
            row_at(settings, 3, now - timedelta(minutes=90), dv="Y"),  # never published
        ],
        delay_ago(settings, now),
    )
    summary = alerts.send_alerts(store, settings, due(settings, now))
    assert summary["sent"] == 1 and summary["failed"] == 0
    new = inbox.messages[before:]
    assert [m["To"] for m in new] == ["resident@example.org"]  # once, despite K3 and W
    msg = new[0]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsub = re.fullmatch(
        r"<(http://feeds\.example\.test/alerts/unsubscribe/\S+)>", msg["List-Unsubscribe"]
    ).group(1)
    text, html = parts(msg)
    assert "BLOCK OF 8TH AVE NE" in text and "1100 8TH" not in text + html
    assert "911" in text and "Stop these alerts" in text and "Beat K3" in text
    entry_path = link(text, "/entries/")
    assert entry_path in html
    assert client.get(entry_path).status_code == 200

    # Nothing twice, and the entry held back by the delay goes out once it is public.
    assert alerts.send_alerts(store, settings, due(settings, now))["sent"] == 0
    later = now + timedelta(minutes=60)
    assert alerts.send_alerts(store, settings, later)["sent"] == 1
    assert len(inbox.messages) == before + 2

    # One-click unsubscribe, as a mail client does it: POST to the header's URL.
    r = app.test_client().post(urlsplit(unsub).path, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200
    left = store.email_subscriptions("resident@example.org")
    assert [(s.area_kind, s.area_code) for s in left] == [("precinct", "W")]


def test_a_delivery_interrupted_mid_send_becomes_unknown_and_is_not_resent(tmp_path, mailapp):
    app, store, settings, inbox = mailapp
    confirmed(app.test_client(), inbox)
    before = len(inbox.messages)
    now = utcnow()
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 1, now - timedelta(minutes=120))],
        delay_ago(settings, now),
    )
    assert deliveries.enqueue_alerts(store, settings, now) == 1
    (d,) = store.email_deliveries()
    assert store.claim_email_delivery(d.id, now - timedelta(hours=1))  # then the process died
    summary = alerts.send_alerts(store, settings, now)
    assert summary["unknown"] == 1 and summary["sent"] == 0
    assert len(inbox.messages) == before
    assert store.email_deliveries()[0].status == "unknown"


def test_an_unreachable_server_is_retried_with_backoff(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app, store, settings = alerts_app(tmp_path, dry_run=True)
    subscribe(app.test_client())
    (eml,) = (tmp_path / "instance" / "mail").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    app.test_client().post(link(msg.get_body(("plain",)).get_content(), "/alerts/confirm/"))
    down = make_settings(tmp_path, smtp_url=f"smtp://127.0.0.1:{port}")
    now = utcnow()
    import_csv(
        store, down, tmp_path, [row_at(down, 1, now - timedelta(minutes=120))], delay_ago(down, now)
    )
    assert alerts.send_alerts(store, down, due(down, now))["retry"] == 1
    (d,) = store.email_deliveries()
    assert d.status == "pending" and d.next_attempt_at > now and "SMTP" in d.error


# ---- administration ---------------------------------------------------------------------------
def test_admins_see_counts_and_resolve_unknown_deliveries_without_addresses(
    admin, staff_clerk, staff
):
    store = staff
    now = utcnow()
    for address, code in (("resident@example.org", "K3"), ("other@example.org", "K3")):
        store.save_email_subscription(
            address=address,
            area_kind="beat",
            area_code=code,
            categories=(),
            frequency="instant",
            now=now,
        )
    sid = store.email_subscriptions("resident@example.org")[0].subscriber_id
    store.enqueue_email_deliveries(
        [
            {
                "subscriber_id": sid,
                "entry_uid": "abc",
                "status": "pending",
                "due_at": now,
                "next_attempt_at": now,
                "attempts": 0,
                "created_at": now,
            }
        ]
    )
    (d,) = store.email_deliveries()
    store.finish_email_delivery(d.id, status="unknown", error="Interrupted while sending.")
    page = admin.get("/alerts/admin").get_data(as_text=True)
    assert "Beat K3" in page and "<td>2</td>" in page and "unknown 1" in page
    assert "r•••@example.org" in page and "resident@example.org" not in page
    assert staff_clerk.get("/alerts/admin").status_code == 403
    assert (
        staff_clerk.post(f"/alerts/admin/deliveries/{d.id}", data={"outcome": "retry"}).status_code
        == 403
    )
    r = admin.post(f"/alerts/admin/deliveries/{d.id}", data={"outcome": "retry"})
    assert r.status_code == 303
    assert store.email_deliveries()[0].status == "pending"
    assert (
        admin.post(f"/alerts/admin/deliveries/{d.id}", data={"outcome": "retry"}).status_code == 409
    )
    assert any(e["action"] == "alerts.resolve" for e in store.audit_log())
