"""Email alerts and residents' privacy (issue 13): opaque links, no cookies on public pages,
single-line headers, and the grace period that lets a retraction stop an alert. Against a
real SMTP server on loopback (aiosmtpd) and the real app."""

from __future__ import annotations

from datetime import timedelta

from beatfeeds import alerts

from .test_alerts import (  # noqa: F401 (fixtures)
    _confirmed,
    _import,
    _now,
    _parts,
    _row,
    mailapp,
    smtp_server,
)


# ---- headers are built from single-line text (point 11) --------------------------------------
def test_a_line_break_in_a_description_cannot_break_or_forge_a_header(tmp_path, mailapp):
    app, store, settings, inbox = mailapp
    _confirmed(app.test_client(), inbox)
    before = len(inbox.messages)
    now = _now()
    desc = "THEFT - CAR PROWL\r\nBcc: someone@example.net\u2028NEXT\u0085LINE\tX"
    _import(store, settings, tmp_path, [_row(settings, 1, now - timedelta(minutes=120),
                                             desc=desc)], now)
    summary = alerts.send_alerts(store, settings, now)
    assert summary["sent"] == 1 and summary["failed"] == summary["unknown"] == 0, summary
    (msg,) = inbox.messages[before:]
    assert msg["Subject"].startswith(
        "THEFT - CAR PROWL Bcc: someone@example.net NEXT LINE X at ")
    assert msg["Bcc"] is None and inbox.envelopes[-1][1] == ["resident@example.org"]
    for name, value in msg.items():
        assert not any(c in str(value) for c in "\r\n\u2028\u0085"), (name, value)
    assert store.email_deliveries()[0].status == "sent"
    text, _ = _parts(msg)
    assert "THEFT - CAR PROWL Bcc: someone@example.net NEXT LINE X at" in text
