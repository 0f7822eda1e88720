"""The email alert sign-up in a real browser: subscribe, confirm from the received mail,
receive an alert, unsubscribe."""

from __future__ import annotations

from datetime import timedelta

import pytest

from beatfeeds.app import create_app
from beatfeeds.services import alerts
from tests.support.alerts import alerts_app, delay_ago, due, link
from tests.support.browser import LiveServer
from tests.support.imports import import_csv, row_at
from tests.support.instance import NOW, utcnow

pytestmark = pytest.mark.browser


def test_resident_subscribes_confirms_receives_and_unsubscribes(
    tmp_path,
    smtp_server,
    page,
):
    _, store, settings = alerts_app(tmp_path, smtp_url=smtp_server.url)
    app = create_app({"store": store, **settings.as_dict()})  # CSRF on, as in production
    server = LiveServer(app)
    try:

        def local(url_path: str) -> str:
            return server.url + url_path

        page.goto(local("/beats/K3"))
        page.fill("#alert-address", "resident@example.org")
        page.get_by_role("button", name="Email me about Beat K3").click()
        page.get_by_role("heading", name="Check your email").wait_for()
        assert len(smtp_server.messages) == 1
        text = smtp_server.messages[0].get_body(("plain",)).get_content()
        page.goto(local(link(text, "/alerts/confirm/")))
        page.get_by_role("button", name="Confirm").click()
        page.get_by_role("heading", name="Your alerts are on").wait_for()
        assert len(store.email_subscriptions("resident@example.org")) == 1

        now = utcnow()
        import_csv(
            store,
            settings,
            tmp_path,
            [row_at(settings, 1, now - timedelta(minutes=120))],
            delay_ago(settings, now),
        )
        assert alerts.send_alerts(store, settings, due(settings, now))["sent"] == 1
        alert = smtp_server.messages[-1].get_body(("plain",)).get_content()
        page.goto(local(link(alert, "/entries/")))
        assert "BLOCK OF 8TH AVE NE" in page.content()
        page.goto(local(link(alert, "/alerts/unsubscribe/")))
        page.get_by_role("button", name="Unsubscribe").click()
        page.get_by_role("heading", name="Unsubscribed").wait_for()
        assert store.email_subscriptions() == []
        assert page.context.cookies() == []  # residents' pages set no cookie (issue 13)
    finally:
        server.stop()


def test_admin_pauses_and_resumes_all_mail_in_the_browser(
    tmp_path,
    smtp_server,
    page,
):
    from beatfeeds.services import accounts

    _, store, settings = alerts_app(tmp_path, smtp_url=smtp_server.url)
    accounts.add_user(
        store, "admin@example.test", "admin", "a long enough password 1", actor="test", now=NOW
    )
    app = create_app({"store": store, **settings.as_dict()})  # CSRF on, as in production
    server = LiveServer(app)
    try:
        page.goto(server.url + "/alerts/admin")
        page.get_by_label("Email").fill("admin@example.test")
        page.get_by_label("Password").fill("a long enough password 1")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(server.url + "/alerts/admin")
        page.get_by_role("button", name="Pause all mail").click()
        banner = page.get_by_role("alert")
        assert "All email is paused" in banner.inner_text()
        assert "admin@example.test" in banner.inner_text()
        assert alerts.paused_state(store)["by"] == "admin@example.test"
        page.screenshot(path=str(tmp_path / "paused.png"), full_page=True)
        page.get_by_role("button", name="Resume all mail").click()
        page.get_by_role("button", name="Pause all mail").wait_for()
        assert alerts.paused_state(store) is None
        assert [e["action"] for e in store.audit_log()][:2] == ["alerts.resume", "alerts.pause"]
    finally:
        server.stop()
