"""A real browser: an admin loads a draft, drags a vertex, sees the diff, publishes and rolls
back, with the base-map tiles unreachable."""

import pytest

from beatfeeds.app import create_app
from beatfeeds.services import accounts
from tests.support.browser import AXE, LiveServer, axe_violations
from tests.support.instance import DEFAULT_BEATS, NOW, need

pytestmark = pytest.mark.browser

ADMIN, PW = "admin@example.test", "a long enough password 1"


@pytest.fixture
def live_server(beats_store, settings):
    # a tile server that refuses connections: the editor must work without base tiles
    app = create_app(
        {
            "TESTING": True,
            "store": beats_store,
            **settings.as_dict(),
            "tile_url": "http://127.0.0.1:9/{z}/{x}/{y}.png",
        }
    )
    server = LiveServer(app)
    yield server
    server.stop()


def test_admin_redraws_a_beat_in_the_browser(live_server, page, beats_store):
    accounts.add_user(beats_store, ADMIN, "admin", PW, actor="test", now=NOW)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(live_server.url + "/admin/beats")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PW)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server.url + "/admin/beats")

    # load a draft: upload, confirm the guessed fields
    page.set_input_files("#file", str(DEFAULT_BEATS))
    page.get_by_role("button", name="Upload and check the fields").click()
    assert page.locator("#code_field").input_value() == "beat"
    page.get_by_label("Name of the map").fill("Redraw 2027")
    page.get_by_role("button", name="Load as a draft").click()
    page.wait_for_url(live_server.url + "/admin/beats/2")
    page.wait_for_selector('#beat-map[data-ready="1"]')

    # select E2 (every edge of it is shared) and drag one of its vertices
    page.select_option("#beat-select", "E2")
    page.get_by_role("button", name="Move vertices").click()
    page.wait_for_selector("#beat-map[data-moving='0']", state="attached")
    handle = page.locator(".bf-vertex").nth(40)
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 30, y + 18, steps=8)
    page.mouse.up()
    with page.expect_response(lambda r: r.url.endswith("/admin/beats/2/edit")) as resp:
        page.get_by_role("button", name="Save").click()
    assert resp.value.status == 200, resp.value.text()
    page.wait_for_selector("#tool-help:has-text('Saved.')")
    assert beats_store.list_beat_sets()[1].status == "draft"
    audit = [a["action"] for a in beats_store.audit_log()]
    assert "beats.edit" in audit

    # the diff shows E2 (and the neighbour that gave or took the area) as reshaped
    page.reload()
    reshaped = page.locator("#reshaped").inner_text()
    assert "E2" in reshaped, reshaped
    assert "Fix the errors" not in page.content(), page.locator("#problems").inner_text()

    page.get_by_role("button", name="Publish").click()
    assert "is active" in page.locator(".flash").inner_text()
    assert beats_store.active_beat_set_id() == 2

    page.goto(live_server.url + "/admin/beats")
    page.get_by_role("button", name="Roll back to the previous map").click()
    assert "beat map 1 is active again" in page.locator(".flash").inner_text()
    assert beats_store.active_beat_set_id() == 1
    assert errors == []


def test_admin_splits_and_renames_a_beat_in_the_browser(live_server, page, beats_store):
    accounts.add_user(beats_store, ADMIN, "admin", PW, actor="test", now=NOW)
    page.goto(live_server.url + "/admin/beats/1")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PW)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server.url + "/admin/beats/1")
    page.wait_for_selector('#beat-map[data-ready="1"]')

    page.select_option("#beat-select", "E2")  # zooms to the beat
    page.get_by_role("button", name="Split along a line").click()
    box = page.locator("#beat-map").bounding_box()
    mid = box["y"] + box["height"] / 2
    page.mouse.click(box["x"] + 15, mid)
    page.mouse.click(box["x"] + box["width"] - 15, mid)
    page.get_by_label("Code of the new beat").fill("E9")
    with page.expect_navigation():  # the active map was copied into draft 2
        page.get_by_role("button", name="Save").click()
    assert page.url == live_server.url + "/admin/beats/2"
    assert {"E2", "E9"} <= {b.code for b in beats_store.beats(2)}
    assert beats_store.active_beat_set_id() == 1
    page.wait_for_selector('#beat-map[data-ready="1"]')
    assert "E9" in page.locator("table.diff").inner_text()  # listed as added

    page.select_option("#beat-select", "E9")
    page.get_by_label("Code", exact=True).fill("E4")
    page.get_by_role("button", name="Rename / set sector and precinct").click()
    page.wait_for_selector("#tool-help:has-text('Saved.')")
    assert "E4" in {b.code for b in beats_store.beats(2)}
    assert page.locator("#beat-select").input_value() == "E4"


def serious_axe_violations(pg) -> list[dict]:
    return axe_violations(pg)


def test_beat_map_admin_pages_have_no_serious_accessibility_violation(
    live_server, page, beats_store
):
    need(AXE.exists(), f"{AXE} missing (run `npm ci` at the repository root)")
    accounts.add_user(beats_store, ADMIN, "admin", PW, actor="test", now=NOW)
    beats_store.copy_beat_set(1, "draft", created_by="test", now=NOW)
    page.goto(live_server.url + "/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PW)
    page.get_by_role("button", name="Sign in").click()
    for path in ("/admin/beats", "/admin/beats/2"):
        page.goto(live_server.url + path)
        page.wait_for_selector('#beat-map[data-ready="1"]')
        assert serious_axe_violations(page) == [], path
    page.goto(live_server.url + "/admin/beats")
    page.set_input_files("#file", str(DEFAULT_BEATS))
    page.get_by_role("button", name="Upload and check the fields").click()
    assert serious_axe_violations(page) == [], "confirm page"
