"""A populated instance for the privacy audit, and every public document it produces.

The instance holds the real Seattle exports of `../shared/data/seattle` (one of them moved to
the present, so that it is posted and mailed like live data) and `hostile_incidents.csv`
beside this file: crafted rows whose addresses, descriptions, categories and times each try
one way of leaking what must stay private. Every row of that file carries a marker (`ZQ..`)
in its description, whether it must be published (`expect`), and strings that must never be
seen near its marker (`forbidden`).

The instance has outbound accounts (a Mastodon-compatible server and a webhook, both on
loopback) and confirmed email subscriptions (instant and a daily digest, delivered to a real
SMTP server on loopback). The `audit` fixture runs the jobs that post and mail, then fetches
every public document: feeds of every area in every format (filtered too), OPML, pages,
entry pages, GeoJSON, the locate API, mails, posts and webhook bodies.
"""

from __future__ import annotations

import csv
import email
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer
from sqlalchemy import text
from werkzeug import Response

from beatfeeds import jobs
from beatfeeds.app import create_app
from beatfeeds.core.areas import area_path
from beatfeeds.ingest.fields import parse_datetime
from beatfeeds.services import digests, imports, outbound_accounts, publishing, review
from tests.support.fakes import FakeMastodon
from tests.support.instance import load_default_beats, make_settings, make_store, shared

HERE = Path(__file__).resolve().parent
HOSTILE = HERE / "hostile_incidents.csv"
HOSTILE_ANCHOR = datetime(2026, 1, 1, 12, 0, 0)  # local time in the file that becomes "now"
HOSTILE_MAPS = {
    "external_id": "id",
    "occurred_at": "occurred",
    "reported_at": "reported",
    "category": "type",
    "description": "desc",
    "address": "addr",
    "lat": "lat",
    "lon": "lon",
    "sensitive": "sensitive",
}
SEATTLE_FILES = [  # (file, preset, moved to the present?)
    ("spd_911_incident_response_2016-03-02.csv", "spd-911", False),
    ("spd_911_incident_response_2016-03-25.csv", "spd-911", True),
    ("spd_crime_data_robbery_2008_2021.csv", "spd-crime", False),
    ("spd_call_data_blurred_sector_c_2010_2023.csv", "spd-call-data", False),
    ("seattle_fire_911_calls_mva_2010_2015.csv", "seattle-fire-911", False),
]
MARKER = re.compile(r"ZQ[A-Z]\d\d")


@dataclass
class HostileRow:
    id: str
    marker: str
    expect: str  # public | hidden | retract
    forbidden: list[str]
    reported_late: bool


@dataclass
class Doc:
    """One public document: where it came from, its text, how to read it, and when."""

    channel: str  # feed | opml | page | entry | geojson | api | mail | post | webhook
    name: str
    text: str
    kind: str  # rss | atom | json | html | opml | geojson | mail | text
    at: datetime


@dataclass
class Audit:
    store: object
    settings: object
    app: object
    now: datetime
    digest_at: datetime
    hostile: dict[str, HostileRow]
    docs: list[Doc] = field(default_factory=list)
    retracted_uids: set[str] = field(default_factory=set)
    posted_then_retracted: str = ""
    mastodon: FakeMastodon | None = None

    def by_channel(self, channel: str) -> list[Doc]:
        return [d for d in self.docs if d.channel == channel]


class _Inbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def read_hostile() -> dict[str, HostileRow]:
    with open(HOSTILE, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {
        r["id"]: HostileRow(
            r["id"],
            MARKER.search(r["desc"]).group(0),
            r["expect"],
            [f for f in r["forbidden"].split("|") if f],
            bool(r["reported"]),
        )
        for r in rows
    }


def mail_text(msg, subtype: str = "plain") -> str:
    """A received mail as text: its headers (decoded) and its text parts, or its HTML parts."""
    parts = [f"{k}: {v}" for k, v in msg.items()] if subtype == "plain" else []
    for part in msg.walk():
        if part.get_content_type() == f"text/{subtype}":
            parts.append(part.get_content())
    return "\n".join(parts)


def _mail_docs(docs: list, name: str, msg, at: datetime) -> None:
    docs.append(Doc("mail", f"{name} (text)", mail_text(msg), "text", at))
    if html_ := mail_text(msg, "html"):
        docs.append(Doc("mail", f"{name} (html)", html_, "html", at))


def _link(text_: str, path: str) -> str:
    found = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"[^\s<>\"]+)", text_)
    assert found, f"no {path} link in {text_[:2000]}"
    return found.group(1)


def _uids(store, where: str, **params) -> list[str]:
    with store.engine.connect() as conn:
        return [
            r[0] for r in conn.execute(text(f"SELECT uid FROM incidents WHERE {where}"), params)
        ]


@pytest.fixture(scope="package")
def audit(tmp_path_factory) -> Audit:
    tmp = tmp_path_factory.mktemp("privacy")
    now = utcnow()
    imported = now - timedelta(hours=3)  # imports ran three hours ago ...
    early = now - timedelta(days=2)  # ... accounts and subscriptions exist since before

    inbox = _Inbox()
    port = _free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    http = HTTPServer(host="127.0.0.1", port=0)
    http.start()
    try:
        settings = make_settings(
            tmp,
            smtp_url=f"smtp://127.0.0.1:{port}",
            mail_from="Alerts <alerts@feeds.example.test>",
            publication_delay=60,
            smtp_max_per_minute=100000,
        )
        store = make_store(settings)
        load_default_beats(store, now=early - timedelta(days=1))
        app = create_app(
            {"TESTING": True, "WTF_CSRF_ENABLED": False, "store": store, **settings.as_dict()}
        )
        client = app.test_client()

        # Outbound accounts: a Mastodon-compatible server for beat K3, a webhook for sector K.
        hooks: list[str] = []
        http.expect_request("/hook").respond_with_handler(
            lambda r: (
                hooks.append(
                    json.dumps(
                        {
                            "event": r.headers.get("X-Beatfeeds-Event"),
                            "body": json.loads(r.get_data()),
                        }
                    )
                )
                or Response("ok")
            )
        )
        masto = FakeMastodon(http)
        outbound_accounts.add_account(
            store,
            settings,
            area_kind="beat",
            area_code="K3",
            service="mastodon",
            label="K3",
            endpoint=http.url_for("/"),
            credentials={"access_token": "tok"},
            actor="test",
            now=early,
        )
        outbound_accounts.add_account(
            store,
            settings,
            area_kind="sector",
            area_code="K",
            service="webhook",
            label="K",
            endpoint=http.url_for("/hook"),
            credentials={"secret": "s3cret"},
            actor="test",
            now=early,
        )

        # Residents: instant alerts for beat K3 and sector K, a daily digest for beat K3 (a
        # digest lists at most 100 entries: a busier area would not show them all).
        for address, kind, code, frequency in (
            ("k3@example.org", "beat", "K3", "instant"),
            ("k@example.org", "sector", "K", "instant"),
            ("digest@example.org", "beat", "K3", "daily"),
        ):
            before = len(inbox.messages)
            r = client.post(
                "/alerts/subscribe",
                data={
                    "address": address,
                    "area_kind": kind,
                    "area_code": code,
                    "frequency": frequency,
                },
            )
            assert r.status_code < 400, r.get_data(as_text=True)
            assert len(inbox.messages) == before + 1
            link = _link(mail_text(inbox.messages[-1]), "/alerts/confirm/")
            assert client.post(link).status_code == 200
        with store.engine.begin() as conn:  # as if they had confirmed two days ago
            conn.execute(text("UPDATE email_subscriptions SET created_at = :t"), {"t": early})
            conn.execute(text("UPDATE email_subscribers SET created_at = :t"), {"t": early})
        signup_mails = len(inbox.messages)

        for name, preset, present in SEATTLE_FILES:
            path = shared(name)
            shift = None
            if present:  # the newest of its events six hours ago, before the hostile rows
                last = max(
                    parse_datetime(r["Event Clearance Date"], settings.tz)
                    for r in csv.DictReader(open(path, newline="", encoding="utf-8"))
                    if r.get("Event Clearance Date")
                )
                shift = (now - timedelta(hours=6)) - last
            imports.import_file(
                store,
                path,
                imports.ImportOptions(preset=preset, actor="test", time_shift=shift),
                settings,
                now=imported,
            )
        anchor = HOSTILE_ANCHOR.replace(tzinfo=settings.tz).astimezone(UTC).replace(tzinfo=None)
        report = imports.import_file(
            store,
            HOSTILE,
            imports.ImportOptions(
                maps=HOSTILE_MAPS, source="hostile", actor="test", time_shift=now - anchor
            ),
            settings,
            now=imported,
        )
        hostile = read_hostile()
        assert report.counters["read"] == len(hostile), report.line()
        located = _uids(store, "source = 'hostile' AND lat IS NOT NULL")
        with store.engine.connect() as conn:
            beats = {
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT DISTINCT ib.beat_code FROM incident_beats ib JOIN incidents i "
                        "ON i.id = ib.incident_id WHERE i.source = 'hostile' AND ib.beat_code IS NOT NULL"
                    )
                )
            }
        assert beats == {"K3"} and len(located) == len(hostile) - 1, beats

        # Records staff retract some entries before anything is sent.
        retracted = set()
        for row in hostile.values():
            if row.expect == "retract":
                retracted |= set(_uids(store, "source = 'hostile' AND external_id = :e", e=row.id))
        live_k3 = _uids(
            store,
            "source = 'spd-911-incident-response' AND suppressed_reason "
            "IS NULL AND id IN (SELECT incident_id FROM incident_beats "
            "WHERE beat_code = 'K3') ORDER BY event_time DESC",
        )
        assert len(live_k3) >= 4, "the present-day 911 file has too few K3 entries"
        retracted |= set(live_k3[:2])
        for uid in retracted:
            review.retract_entry(store, uid, "privacy audit", actor="test", now=now)

        for name in ("apply-publication-policy", "send-outbox", "send-alerts"):
            jobs.run_job(name, store, settings, now)
        for minutes in range(2, 12, 2):  # the webhook takes 60 posts a minute
            if not jobs.run_job("send-outbox", store, settings, now + timedelta(minutes=minutes))[
                "sent"
            ]:
                break
        # A post already out is withdrawn: the entry leaves every channel, the post is deleted.
        sent_uid = live_k3[2]
        assert any(i.entry_uid == sent_uid and i.status == "sent" for i in store.list_outbox())
        review.retract_entry(store, sent_uid, "privacy audit, after posting", actor="test", now=now)
        # (an hour later: the posting just now used up the services' rate limits)
        jobs.run_job("retract-posts", store, settings, now + timedelta(hours=1))
        retracted.add(sent_uid)
        instant_mails = inbox.messages[signup_mails:]

        # the next daily digest after now (the first run above sent today's, if it was due)
        digest_at = digests.scheduled_send(settings, "daily", now + timedelta(days=1))
        before = len(inbox.messages)
        jobs.run_job("send-alerts", store, settings, digest_at)
        digest_mails = inbox.messages[before:]

        result = Audit(
            store=store,
            settings=settings,
            app=app,
            now=now,
            digest_at=digest_at,
            hostile=hostile,
            retracted_uids=retracted,
            posted_then_retracted=sent_uid,
            mastodon=masto,
        )
        docs = result.docs
        for msg in inbox.messages[:signup_mails]:
            _mail_docs(docs, f"signup to {msg['To']}", msg, now)
        for msg in instant_mails:
            _mail_docs(docs, f"alert to {msg['To']}", msg, now)
        for msg in digest_mails:
            _mail_docs(docs, f"digest to {msg['To']}", msg, digest_at)
        for status in masto.statuses.values():
            docs.append(Doc("post", "mastodon status", json.dumps(status), "text", now))
        for body in hooks:
            docs.append(Doc("webhook", "webhook body", body, "text", now))
        _fetch_public(client, store, settings, docs)
        return result
    finally:
        http.clear()
        http.stop()
        smtp.stop()


def _get(client, docs: list[Doc], channel: str, path: str, kind: str, *, statuses=(200,)) -> str:
    r = client.get(path, headers={"Accept": "*/*"})
    assert r.status_code in statuses, f"{path}: {r.status_code}"
    body = r.get_data(as_text=True)
    if r.status_code == 200:
        docs.append(Doc(channel, path, body, kind, utcnow()))
    return body


def _fetch_public(client, store, settings, docs: list[Doc]) -> None:
    """Every public document of the instance, as a reader, a browser or a client sees it."""
    areas = publishing.all_areas(store)
    now = utcnow()
    for area in areas:
        base = area_path(area.kind, area.code)
        for fmt in ("rss", "atom", "json"):
            _get(client, docs, "feed", f"{base}/feed.{fmt}", fmt)
        _get(client, docs, "page", base or "/", "html")
    for path in ("/beats/K3", "/sectors/K", "/precincts/W", ""):
        for fmt in ("rss", "atom", "json"):
            for query in (
                "category=car-prowl",
                "category=theft&category=car-prowl",
                "exclude=car-prowl",
                "exclude=theft",
            ):
                _get(client, docs, "feed", f"{path}/feed.{fmt}?{query}", fmt)
        _get(client, docs, "page", f"{path or '/'}?page=2", "html", statuses=(200, 404))
    _get(client, docs, "opml", "/feeds.opml", "opml")
    for area in areas:
        if area.kind == "precinct":
            _get(client, docs, "opml", f"/precincts/{area.code}/feeds.opml", "opml")
    _get(client, docs, "geojson", "/beats.geojson", "geojson")
    set_id = store.active_beat_set_id()
    for layer in ("beats", "sectors", "precincts"):
        _get(client, docs, "geojson", f"/api/beatsets/{set_id}/{layer}.geojson", "geojson")
    with store.engine.connect() as conn:
        points = conn.execute(
            text("SELECT uid, lat, lon FROM incidents WHERE source = 'hostile' AND lat IS NOT NULL")
        ).all()
        # Hostile rows, and present-day rows of beat K3 (public, retracted and suppressed).
        every = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT uid FROM incidents WHERE source = 'hostile' OR (event_time > :since AND id "
                    "IN (SELECT incident_id FROM incident_beats WHERE beat_code = 'K3'))"
                ),
                {"since": now - timedelta(days=2)},
            )
        ]
    for _, lat, lon in points[:5]:
        _get(client, docs, "api", f"/api/locate?lat={lat}&lon={lon}", "json")
    # Every entry page of the hostile and present-day rows, public or not: hidden ones must
    # answer without their content (404 or 410).
    for uid in every:
        _get(client, docs, "entry", f"/entries/{uid}", "html", statuses=(200, 404, 410))
    public = store.public_entries(store.active_beat_set_id(), now=now, limit=50)
    for e in public:
        _get(client, docs, "entry", f"/entries/{e.uid}", "html", statuses=(200, 404, 410))
