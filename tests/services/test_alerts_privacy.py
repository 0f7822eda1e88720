"""Email alerts and residents' privacy (issue 13): opaque links, no cookies on public pages,
single-line headers, and the grace period that lets a retraction stop an alert. Against a
real SMTP server on loopback (aiosmtpd) and the real app."""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

import beatfeeds
from beatfeeds.app import create_app
from beatfeeds.delivery import links
from beatfeeds.services import alerts, digests, review
from tests.support.alerts import confirmed, delay_ago, digest_setup, due, entry_uids, parts, to_utc
from tests.support.imports import import_csv, row_at
from tests.support.instance import utcnow


# ---- headers are built from single-line text (point 11) --------------------------------------
def test_a_line_break_in_a_description_cannot_break_or_forge_a_header(tmp_path, mailapp):
    app, store, settings, inbox = mailapp
    confirmed(app.test_client(), inbox)
    before = len(inbox.messages)
    now = utcnow()
    # (No address in the forged header: text with an e-mail address is held for review.)
    desc = "THEFT - CAR PROWL\r\nX-Forged: yes\u2028NEXT\u0085LINE\tX"
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 1, now - timedelta(minutes=120), desc=desc)],
        delay_ago(settings, now),
    )
    summary = alerts.send_alerts(store, settings, due(settings, now))
    assert summary["sent"] == 1 and summary["failed"] == summary["unknown"] == 0, summary
    (msg,) = inbox.messages[before:]
    assert msg["Subject"].startswith("THEFT - CAR PROWL X-Forged: yes NEXT LINE X at ")
    assert msg["X-Forged"] is None and inbox.envelopes[-1][1] == ["resident@example.org"]
    for name, value in msg.items():
        assert not any(c in str(value) for c in "\r\n\u2028\u0085"), (name, value)
    assert store.email_deliveries()[0].status == "sent"
    text, _ = parts(msg)
    assert "THEFT - CAR PROWL X-Forged: yes NEXT LINE X at" in text


# ---- links reveal nothing and expire (point 9) ----------------------------------------------
def _links(msg) -> set[str]:
    """Every link of a message: both parts and every header."""
    text, html = parts(msg)
    found = set(re.findall(r"https?://[^\s<>\"')]+", text + html))
    for _, value in msg.items():
        found |= set(re.findall(r"https?://[^\s<>\"')]+", str(value)))
    return found


def _decodings(token: str) -> list[bytes]:
    """What anyone could read out of a token without the key: base64 of the whole and of
    each dot-separated part (itsdangerous' layout), zlib-inflated where it inflates, and
    itsdangerous' own unsafe (unverified) loading."""
    out = [token.encode()]
    for part in [token, *token.split(".")]:
        part = part.lstrip(".")
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            try:
                raw = decode(part + "=" * (-len(part) % 4))
            except (binascii.Error, ValueError):
                continue
            out.append(raw)
            try:
                out.append(zlib.decompress(raw))
            except zlib.error:
                pass
    for cls in (URLSafeSerializer, URLSafeTimedSerializer):
        ok, payload = cls("not the key").loads_unsafe(token)
        out.append(repr(payload).encode())
    return out


def _assert_opaque(messages, addresses) -> int:
    """Every link of every message hides every address; returns how many tokens were seen."""
    seen = 0
    for msg in messages:
        for link in _links(msg):
            path = urlsplit(link).path
            for address in addresses:
                assert address not in link, link
            token = path.rstrip("/").rsplit("/", 1)[-1]
            if not path.startswith(("/alerts/confirm/", "/alerts/manage/", "/alerts/unsubscribe/")):
                continue
            seen += 1
            for raw in _decodings(token):
                for address in addresses:
                    for form in (address, address.split("@")[0]):
                        assert form.encode() not in raw.lower(), (link, raw)
    return seen


def test_no_link_in_any_mail_reveals_the_address_when_decoded(tmp_path, mailapp):
    app, store, settings, inbox = mailapp
    client = app.test_client()
    address = "resident1@example.org"
    confirmed(client, inbox, address=address)  # confirmation mail, then instant alerts
    client.post("/alerts/manage", data={"address": address})  # the manage mail
    digest = "resident2@example.org"  # the entry mailed to the first one is not in a digest
    store.save_email_subscription(
        address=digest,
        area_kind="precinct",
        area_code="W",
        categories=(),
        frequency="daily",
        now=utcnow() - timedelta(days=3),
    )
    now = utcnow()
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 1, now - timedelta(minutes=120))],
        delay_ago(settings, now),
    )
    alerts.send_alerts(store, settings, due(settings, now))  # the instant alert
    day = digests.scheduled_send(settings, "daily", now + timedelta(days=1))
    alerts.send_alerts(store, settings, day)  # and the daily digest
    kinds = {m["Subject"].split()[0] for m in inbox.messages}
    assert len(inbox.messages) == 4, [m["Subject"] for m in inbox.messages]
    assert {"Confirm", "Manage", "THEFT"} <= kinds and any(
        "daily digest" in m["Subject"] for m in inbox.messages
    )
    # confirm, manage, the alert's unsubscribe, the digest's and its subscription's
    assert _assert_opaque(inbox.messages, [address, digest]) == 5


def test_the_first_releases_links_leak_the_address_and_are_refused_with_a_way_out(mailapp):
    app, store, settings, inbox = mailapp
    client = app.test_client()
    confirmed(client, inbox)
    sub = store.email_subscriptions()[0]
    old = URLSafeSerializer(settings.secret_key, salt="beatfeeds email alerts unsubscribe")
    legacy = old.dumps({"s": sub.id, "a": sub.address})
    assert b"resident@example.org" in _decodings(legacy)[2]  # what the old links gave away
    with pytest.raises(AssertionError):
        _assert_opaque_token(legacy, sub.address)
    for method in (client.get, client.post):
        r = method(f"/alerts/unsubscribe/{legacy}")
        page = r.get_data(as_text=True)
        assert r.status_code == 400 and "no longer works" in page, page
        assert 'href="/alerts/manage"' in page
    assert store.email_subscriptions() != []
    manage = URLSafeTimedSerializer(settings.secret_key, salt="beatfeeds email alerts manage")
    r = client.get(f"/alerts/manage/{manage.dumps({'a': sub.address})}")
    assert r.status_code == 400 and "resident@example.org" not in r.get_data(as_text=True)


def _assert_opaque_token(token: str, address: str) -> None:
    for raw in _decodings(token):
        assert address.encode() not in raw


def test_unsubscribe_and_manage_links_expire(mailapp):
    app, store, settings, inbox = mailapp
    confirmed(app.test_client(), inbox)
    sub = store.email_subscriptions()[0]
    made = utcnow()
    token = links.unsubscribe_token(settings, sub, made)
    manage = links.manage_token(settings, sub.address, made)
    _assert_opaque_token(token, sub.address)
    _assert_opaque_token(manage, sub.address)
    days = links.UNSUBSCRIBE_LINK_DAYS
    with pytest.raises(links.InvalidLink, match="expired"):
        alerts.unsubscribe(store, settings, token, made + timedelta(days=days, minutes=2))
    with pytest.raises(links.InvalidLink, match="expired"):
        alerts.manage_address(
            settings, manage, made + timedelta(hours=settings.alert_link_hours, minutes=2)
        )
    # A link for one purpose does not serve another, and an altered one is refused.
    with pytest.raises(links.InvalidLink, match="not valid"):
        alerts.manage_address(settings, token, made)
    with pytest.raises(links.InvalidLink, match="not valid"):
        alerts.unsubscribe(store, settings, token[:-4] + "AAAA", made)
    assert (
        alerts.manage_address(
            settings, manage, made + timedelta(hours=settings.alert_link_hours - 1)
        )
        == sub.address
    )
    assert store.email_subscriptions() != []
    # Within its lifetime the one-click POST of an old mail still works (RFC 8058).
    assert alerts.unsubscribe(store, settings, token, made + timedelta(days=days - 1)) == "Beat K3"
    assert store.email_subscriptions() == []


# ---- public pages set no cookie (point 9) ---------------------------------------------------
OWN_FILE = next(
    p.name for p in (Path(beatfeeds.__file__).parent / "static").iterdir() if p.is_file()
)
STAFF_PREFIXES = ("/admin/", "/account/", "/records/", "/staff", "/login", "/alerts/admin")


def _public_get_urls(app, store, settings, tokens: dict[str, str]) -> dict[str, str]:
    """One URL per public GET rule of the app's url_map (staff routes left out)."""
    set_id = store.active_beat_set_id()
    entry = store.public_entries(set_id, now=utcnow(), limit=1)[0]
    values = {
        "kinds": "beats",
        "code": "K3",
        "fmt": "atom",
        "uid": entry.uid,
        "set_id": set_id,
        "kind": "beats",
        "filename": OWN_FILE,
        "token": None,
        "package": "leaflet",
    }
    urls = {}
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.rule.startswith(STAFF_PREFIXES):
            continue
        args = {a: values[a] for a in rule.arguments}
        if "token" in rule.arguments:
            args["token"] = tokens[rule.endpoint]
        if rule.endpoint == "assets.vendor":
            args["filename"] = "leaflet.js"
        if rule.endpoint == "public.opml_precinct":
            args["code"] = "W"
        with app.test_request_context():
            from flask import url_for

            urls[rule.endpoint] = url_for(rule.endpoint, **args)
    return urls


@pytest.mark.parametrize("strict", [True, False], ids=["csrf-on", "csrf-off"])
def test_no_public_get_route_sets_a_cookie(tmp_path, mailapp, strict):
    app, store, settings, inbox = mailapp
    if strict:  # as in production: CSRF protection on
        app = create_app({"store": store, **settings.as_dict()})
    now = utcnow()
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 1, now - timedelta(minutes=120))],
        delay_ago(settings, now),
    )
    client = app.test_client()
    ours = {"Origin": "http://feeds.example.test"}  # what a browser sends with the form
    client.post(
        "/alerts/subscribe",
        headers=ours,
        data={"address": "resident@example.org", "area_kind": "beat", "area_code": "K3"},
    )
    client.post(
        re.search(r"/alerts/confirm/\S+", parts(inbox.messages[-1])[0]).group(0), headers=ours
    )
    sub = store.email_subscriptions()[0]
    signup = alerts.SignupRequest(sub.address, "beat", "K3", (), "instant")
    tokens = {
        "alerts.confirm_form": links.seal(settings, "confirm", signup.as_token()),
        "alerts.manage": links.manage_token(settings, sub.address),
        "alerts.unsubscribe_form": links.unsubscribe_token(settings, sub),
    }
    urls = _public_get_urls(app, store, settings, tokens)
    for must in (
        "public.index",
        "public.area_page",
        "public.area_feed",
        "public.entry",
        "public.city_feed",
        "public.opml_all",
        "public.opml_precinct",
        "public.beats_geojson",
        "api.locate",
        "beatsets.layer",
        "public.find",
        "alerts.manage_request_form",
        "alerts.manage",
        "alerts.confirm_form",
        "alerts.unsubscribe_form",
        "public.healthz",
        "assets.own",
    ):
        assert must in urls, must
    queries = {
        "api.locate": {"lat": "47.598347", "lon": "-122.32245"},
        "public.find": {"beat": "k3"},
    }
    checked = 0
    for endpoint, url in sorted(urls.items()):
        for path in {
            url,
            url.replace("/beats/K3", "/sectors/K"),
            url.replace("/beats/K3", "/precincts/W"),
            url.replace("feed.atom", "feed.rss"),
            url.replace("feed.atom", "feed.json"),
        }:
            fresh = app.test_client()  # no cookie to refresh
            r = fresh.get(path, query_string=queries.get(endpoint))
            assert r.status_code < 400, (endpoint, path, r.status_code)
            assert "Set-Cookie" not in r.headers, (endpoint, path, r.headers["Set-Cookie"])
            checked += 1
    assert checked >= 25
    # Error pages, the 404 of a search and a refused link included.
    for path in (
        "/find",
        "/beats/ZZ9",
        "/entries/nope",
        "/alerts/manage/nope",
        "/alerts/unsubscribe/nope",
        "/no/such/page",
    ):
        r = app.test_client().get(path)
        assert r.status_code in (400, 404) and "Set-Cookie" not in r.headers, path
    # A page with a sign-up form also answers the same to everyone: cacheable.
    page = app.test_client().get("/beats/K3")
    assert 'action="/alerts/subscribe"' in page.get_data(as_text=True)
    assert "csrf_token" not in page.get_data(as_text=True)


def test_residents_forms_must_come_from_this_site(mailapp):
    app, store, settings, inbox = mailapp
    strict = create_app({"store": store, **settings.as_dict()}).test_client()
    form = {
        "address": "resident@example.org",
        "area_kind": "beat",
        "area_code": "K3",
        "frequency": "instant",
    }
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {},
        {"Referer": "https://evil.example/feeds.example.test/beats/K3"},
        {"Origin": "http://feeds.example.test.evil.example"},
    ):
        r = strict.post("/alerts/subscribe", data=form, headers=headers)
        assert r.status_code == 403 and "this site" in r.get_data(as_text=True), headers
    assert inbox.messages == []
    for headers in (
        {"Origin": "http://feeds.example.test"},
        {"Referer": "http://feeds.example.test/beats/K3"},
        {"Origin": "http://localhost"},
    ):  # the host the request came to
        r = strict.post("/alerts/subscribe", data=form, headers=headers)
        assert r.status_code == 200 and "Set-Cookie" not in r.headers, headers
    assert len(inbox.messages) == 3
    # Confirming, managing and erasing: the same check, no cookie either.
    path = urlsplit(
        re.search(r"http://\S+/alerts/confirm/\S+", parts(inbox.messages[-1])[0]).group(0)
    ).path
    assert strict.post(path, headers={"Origin": "https://evil.example"}).status_code == 403
    assert store.email_subscriptions() == []
    r = strict.post(path, headers={"Origin": "http://feeds.example.test"})
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    manage = f"/alerts/manage/{links.manage_token(settings, 'resident@example.org')}"
    assert (
        strict.post(f"{manage}/delete", headers={"Origin": "https://evil.example"}).status_code
        == 403
    )
    assert store.email_subscriptions() != []
    assert (
        strict.post(f"{manage}/delete", headers={"Origin": "http://feeds.example.test"}).status_code
        == 200
    )
    assert store.email_subscriptions() == []


# ---- the grace time before mail, which cannot be recalled (point 5) -------------------------
def _grace_setup(tmp_path, inbox, **overrides):
    return digest_setup(tmp_path, inbox, **overrides)


def _send(store, settings, now):
    return alerts.send_alerts(store, settings, now, clock=lambda: now)


def test_instant_alerts_wait_the_grace_time_and_a_retraction_cancels_them(tmp_path, smtp_server):

    inbox = smtp_server
    store, settings = _grace_setup(tmp_path, inbox)
    assert settings.alert_grace_minutes == 10  # the default
    t0 = datetime(2026, 6, 10, 12, 0)
    store.save_email_subscription(
        address="resident@example.org",
        area_kind="beat",
        area_code="K3",
        categories=(),
        frequency="instant",
        now=t0,
    )
    event = t0 + timedelta(minutes=5)
    public = event + timedelta(minutes=settings.publication_delay)
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 1, event), row_at(settings, 2, event), row_at(settings, 3, event)],
        event,
    )
    uids = sorted(e.uid for e in store.public_entries(store.active_beat_set_id(), now=public))
    assert len(uids) == 3
    summary = _send(store, settings, public)
    assert summary["enqueued"] == 3 and summary["sent"] == 0  # public, but not yet mailed
    assert _send(store, settings, public + timedelta(minutes=9, seconds=59))["sent"] == 0

    # Within the grace time records staff retract one entry; a correction suppresses another.
    review.retract_entry(
        store, uids[0], "wrong beat", actor="records@example.org", now=public + timedelta(minutes=3)
    )
    incident = next(i for i in range(1, 4) if store.incident_private("t", str(i))["uid"] == uids[1])
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, incident, event, dv="Y")],
        public + timedelta(minutes=4),
    )
    assert (
        store.public_entry(store.active_beat_set_id(), uids[1], now=public + timedelta(minutes=5))
        is None
    )

    summary = _send(store, settings, public + timedelta(minutes=10))
    assert summary["sent"] == 1 and summary["cancelled"] == 2, summary
    (msg,) = inbox.messages
    kept = uids[2]
    assert f"/entries/{kept}" in parts(msg)[0]
    status = {d.entry_uid: d.status for d in store.email_deliveries()}
    assert status == {uids[0]: "cancelled", uids[1]: "cancelled", kept: "sent"}
    # Never sent later either.
    assert _send(store, settings, public + timedelta(days=1))["sent"] == 0
    assert len(inbox.messages) == 1


def test_grace_zero_sends_as_soon_as_public(tmp_path, smtp_server):
    store, settings = _grace_setup(tmp_path, smtp_server, alert_grace_minutes=0)
    t0 = datetime(2026, 6, 10, 12, 0)
    store.save_email_subscription(
        address="resident@example.org",
        area_kind="beat",
        area_code="K3",
        categories=(),
        frequency="instant",
        now=t0,
    )
    event = t0 + timedelta(minutes=5)
    import_csv(store, settings, tmp_path, [row_at(settings, 1, event)], event)
    public = event + timedelta(minutes=settings.publication_delay)
    assert _send(store, settings, public)["sent"] == 1


def test_a_digest_never_lists_a_retracted_entry_and_waits_out_the_grace_time(tmp_path, smtp_server):

    inbox = smtp_server
    store, settings = _grace_setup(tmp_path, inbox)
    send = to_utc(datetime(2026, 6, 10, 7, 0), settings)  # the daily digest's time
    store.save_email_subscription(
        address="resident@example.org",
        area_kind="beat",
        area_code="K3",
        categories=(),
        frequency="daily",
        now=send - timedelta(days=1),
    )
    delay = timedelta(minutes=settings.publication_delay)
    early, retracted, late = (
        send - timedelta(hours=1),
        send - timedelta(hours=2),
        send - timedelta(minutes=4),
    )  # publication times
    for i, at in ((1, early), (2, retracted), (3, late)):
        import_csv(store, settings, tmp_path, [row_at(settings, i, at - delay)], at - delay)
    uid = {i: store.incident_private("t", str(i))["uid"] for i in (1, 2, 3)}
    review.retract_entry(
        store, uid[2], "not ours", actor="records@example.org", now=send - timedelta(minutes=30)
    )
    summary = _send(store, settings, send)
    assert summary["digests"] == 1 and summary["sent"] == 1, summary
    assert entry_uids(inbox.messages[-1]) == [uid[1]]  # the late one is still in its grace

    # Retracted between the digest's making and its sending: cancelled from the digest.
    next_send = send + timedelta(days=1)
    import_csv(
        store,
        settings,
        tmp_path,
        [row_at(settings, 4, next_send - 2 * delay)],
        next_send - 2 * delay,
    )
    uid[4] = store.incident_private("t", "4")["uid"]
    made = digests.assemble_digests(store, settings, next_send)
    assert made == 1
    review.retract_entry(
        store,
        uid[4],
        "not ours",
        actor="records@example.org",
        now=next_send + timedelta(seconds=30),
    )
    summary = _send(store, settings, next_send + timedelta(minutes=1))
    assert summary["sent"] == 1, summary
    assert entry_uids(inbox.messages[-1]) == [uid[3]]  # the late one, a day on; not #4
    listed = [u for m in inbox.messages for u in entry_uids(m)]
    assert uid[2] not in listed and uid[4] not in listed
