"""In a real browser: drawing an announcement's area on the map, and the account form."""

import pytest

from beatfeeds.app import create_app
from beatfeeds.services import accounts
from tests.support.browser import LiveServer
from tests.support.instance import NOW

pytestmark = pytest.mark.browser


def test_clerk_draws_an_area_and_publishes_an_announcement(beats_store, settings, page):
    app = create_app(
        {"TESTING": True, "store": beats_store, **{**settings.as_dict(), "tile_url": ""}}
    )
    accounts.add_user(
        beats_store, "clerk@example.test", "records", "correct horse battery", actor="test", now=NOW
    )
    server = LiveServer(app)
    try:
        page.goto(server.url + "/records/announcements")
        page.get_by_label("Email").fill("clerk@example.test")
        page.get_by_label("Password").fill("correct horse battery")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(server.url + "/records/announcements")
        page.get_by_label("Type").select_option("road-closure")
        page.get_by_label("Title").fill("Street fair: Pike St closed")
        page.get_by_label("Text", exact=True).fill("Saturday 10 am to 6 pm.")
        page.wait_for_selector("#announcement-map path.leaflet-interactive")
        box = page.locator("#announcement-map").bounding_box()
        cx, cy = box["width"] / 2, box["height"] / 2
        field = page.get_by_label("Drawn area (GeoJSON; you may also paste one)")

        def draw():
            for dx, dy in ((-25, -25), (25, -25), (25, 25), (-25, 25)):
                page.locator("#announcement-map").click(position={"x": cx + dx, "y": cy + dy})

        draw()
        assert '"type":"Polygon"' in field.input_value()
        page.get_by_role("button", name="Clear the drawn area").click()
        assert field.input_value() == ""
        draw()
        page.get_by_role("button", name="Publish announcement").click()
        page.wait_for_url(server.url + "/records/announcements")
        assert "Announcement saved for" in page.content()
        ann = beats_store.list_announcements()[0]
        assert ann.beats and ann.target["polygon"]["type"] == "Polygon"
        assert ann.title == "Street fair: Pike St closed"
    finally:
        server.stop()


def test_admin_form_shows_the_chosen_services_credentials(beats_store, settings, page):
    app = create_app({"TESTING": True, "store": beats_store, **settings.as_dict()})
    accounts.add_user(
        beats_store, "admin@example.test", "admin", "correct horse battery", actor="test", now=NOW
    )
    server = LiveServer(app)
    try:
        page.goto(server.url + "/admin/outbound")
        page.get_by_label("Email").fill("admin@example.test")
        page.get_by_label("Password").fill("correct horse battery")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(server.url + "/admin/outbound")
        assert page.get_by_label("Access token (scope write:statuses)").is_visible()
        assert not page.get_by_label("App password").is_visible()
        page.get_by_label("Service").select_option("bluesky")
        assert page.get_by_label("App password").is_visible()
        assert not page.get_by_label("Access token (scope write:statuses)").is_visible()
    finally:
        server.stop()
