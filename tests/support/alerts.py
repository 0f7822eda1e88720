"""Email alerts in tests: a loopback SMTP inbox, an app that can mail, subscribing and
confirming, and the times at which imported incidents become public and alerts go out."""

from __future__ import annotations

import email
import re
import threading
from datetime import UTC, datetime, timedelta
from email import policy
from urllib.parse import urlsplit

from beatfeeds.app import create_app
from tests.support.instance import load_default_beats, make_settings, make_store


class Inbox:
    """What a loopback SMTP server (aiosmtpd) received: messages and envelopes."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        with self.arrived:
            self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.notify_all()
        return "250 Message accepted"


def alerts_app(tmp_path, **overrides):
    settings = make_settings(tmp_path, **overrides)
    store = make_store(settings)
    # Published a day before the real clock: sending works on the real clock.
    load_default_beats(store, now=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1))
    app = create_app(
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "store": store, **settings.as_dict()}
    )
    return app, store, settings


def parts(msg):
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    return text, html


def link(text: str, path: str) -> str:
    found = re.search(r"(http://feeds\.example\.test" + re.escape(path) + r"\S+)", text)
    assert found, text
    return urlsplit(found.group(1)).path


def subscribe(client, address="resident@example.org", kind="beat", code="K3", **extra):
    form = {"address": address, "area_kind": kind, "frequency": "instant", **extra}
    if code:
        form["area_code"] = code
    return client.post("/alerts/subscribe", data=form)


def confirmed(client, inbox, **kw):
    subscribe(client, **kw)
    client.post(link(inbox.messages[-1].get_body(("plain",)).get_content(), "/alerts/confirm/"))


def delay_ago(settings, now: datetime) -> datetime:
    """An import time that makes incidents older than it public exactly at `now`, after the
    subscriptions made just before (the delay counts from the import too)."""
    return now - timedelta(minutes=settings.publication_delay)


def due(settings, now: datetime) -> datetime:
    """When instant alerts of entries that became public at `now` go out: after the grace
    time that lets a retraction stop them."""
    return now + timedelta(minutes=settings.alert_grace_minutes)


# ---- digests ----------------------------------------------------------------------------------
def digest_setup(tmp_path, inbox, **overrides):
    values = {
        "timezone": "America/Los_Angeles",
        "digest_time": "07:00",
        "digest_weekday": "sunday",
        **overrides,
    }
    settings = make_settings(tmp_path, smtp_url=inbox.url, **values)
    store = make_store(settings)
    load_default_beats(store, now=datetime(2026, 1, 1))
    return store, settings


def to_utc(local: datetime, settings) -> datetime:
    return local.replace(tzinfo=settings.tz).astimezone(UTC).replace(tzinfo=None)


def entry_uids(msg) -> list[str]:
    text, _ = parts(msg)
    return re.findall(r"/entries/([0-9a-z]+)", text)
