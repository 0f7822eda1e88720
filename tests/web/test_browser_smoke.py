"""A real browser against the real server: staff sign-in with CSRF, and the vendored Leaflet."""

import pytest

from beatfeeds.services import accounts
from tests.support.instance import NOW

pytestmark = pytest.mark.browser


def test_staff_sign_in_in_a_browser(app, live_server, page, beats_store):
    app.config["WTF_CSRF_ENABLED"] = True
    accounts.add_user(
        beats_store, "clerk@example.test", "records", "correct horse battery", actor="test", now=NOW
    )
    page.goto(live_server.url + "/staff")
    assert page.url.startswith(live_server.url + "/login")
    page.get_by_label("Email").fill("clerk@example.test")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server.url + "/staff")
    assert "Signed in as clerk@example.test" in page.content()


def test_leaflet_is_served_from_the_xstatic_package(live_server, page):
    resp = page.goto(live_server.url + "/static/vendor/leaflet/leaflet.js")
    assert resp.status == 200 and "javascript" in resp.headers["content-type"]
    page.goto(live_server.url + "/")
    page.add_script_tag(url=live_server.url + "/static/vendor/leaflet/leaflet.js")
    assert page.evaluate("typeof L.map") == "function"
