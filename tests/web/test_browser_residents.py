"""A resident in a real browser (Debian chromium via Playwright): find the beat on the map, by
location or by address, subscribe; keyboard only; and axe-core's accessibility rules."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from beatfeeds.services import demo
from tests.support.browser import AXE, LiveServer, axe_violations
from tests.support.instance import DEFAULT_BEATS, make_settings, make_store, need, utcnow
from tests.support.web import make_app

pytestmark = pytest.mark.browser


class Geocoder:
    """A loopback Nominatim stand-in: /search answers one place for any query."""

    def __init__(self, lat: float, lon: float):
        self.queries: list[str] = []
        geo = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                url = urlsplit(self.path)
                q = parse_qs(url.query)
                geo.queries.append(q.get("q", [""])[0])
                body = json.dumps(
                    [{"lat": str(lat), "lon": str(lon), "display_name": "somewhere"}]
                ).encode()
                self.send_response(200 if url.path == "/search" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Access-Control-Allow-Origin", "*")  # called from the page
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def k3_point():
    doc = json.loads(DEFAULT_BEATS.read_text())
    import shapely.geometry

    k3 = next(f for f in doc["features"] if f["properties"]["beat"] == "K3")
    p = shapely.geometry.shape(k3["geometry"]).representative_point()
    return p.y, p.x


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory, k3_point):
    """The demo (default beats, shifted sample) behind a live server; no map tiles, so the
    browser never leaves the loopback interface."""
    tmp = tmp_path_factory.mktemp("browser-demo")
    geocoder = Geocoder(*k3_point)
    settings = make_settings(tmp, tile_url="", geocoder_url=geocoder.url)
    store = make_store(settings)
    demo.setup_demo(store, settings, now=utcnow(), echo=lambda _m: None)
    server = LiveServer(make_app(settings, store))
    yield server, store, geocoder
    server.stop()
    geocoder.close()


@pytest.fixture
def resident(browser, demo_site, k3_point):
    """A page whose every request is recorded; anything off the loopback interface is refused."""
    context = browser.new_context(
        geolocation={"latitude": k3_point[0], "longitude": k3_point[1]},
        permissions=["geolocation", "clipboard-read", "clipboard-write"],
    )
    pg = context.new_page()
    pg.requests = []
    pg.outside = []

    def route(r):
        host = urlsplit(r.request.url).hostname
        if host not in ("127.0.0.1", "localhost"):
            pg.outside.append(r.request.url)
            return r.abort()
        pg.requests.append((r.request.url, r.request.post_data or ""))
        return r.continue_()

    pg.route("**/*", route)
    yield pg
    assert pg.outside == []
    context.close()


def wait_for_map(pg, selector="#beat-map"):
    pg.wait_for_selector(f"{selector}[data-ready]", timeout=15000)


def click_at(pg, lat: float, lon: float, selector="#beat-map"):
    """Click the map where a point is, as a person would with the mouse."""
    x, y = pg.evaluate(
        """([sel, lat, lon]) => {
        const el = document.querySelector(sel);
        const p = el.leafletMap.latLngToContainerPoint([lat, lon]);
        const box = el.getBoundingClientRect();
        return [box.left + p.x, box.top + p.y];
    }""",
        [selector, lat, lon],
    )
    pg.mouse.click(x, y)


def test_click_a_point_on_the_map_then_follow_the_atom_link(resident, demo_site, k3_point):
    server, _, _ = demo_site
    pg = resident
    pg.goto(server.url + "/")
    wait_for_map(pg)
    pg.locator("#beat-map").scroll_into_view_if_needed()
    pg.evaluate(
        "document.querySelector('#beat-map').leafletMap.setView(arguments[0], 14)".replace(
            "arguments[0]", json.dumps(list(k3_point))
        )
    )
    with pg.expect_navigation(url=server.url + "/beats/K3"):
        click_at(pg, *k3_point)
    assert pg.locator("h1").inner_text() == "Beat K3"
    wait_for_map(pg, "#area-map")
    with pg.expect_navigation() as nav:
        pg.get_by_role("link", name="Atom feed of Beat K3").click()
    response = nav.value
    assert pg.url == server.url + "/beats/K3/feed.atom"
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/xml")  # the browser view
    assert "Accept" in response.headers["vary"]
    # Our XSL stylesheet turns the feed into a page that says what to do with it.
    assert "news feed" in pg.locator("p.about").inner_text()
    assert pg.locator("h1").inner_text() == "Seattle Police Department: Beat K3"
    assert pg.locator("li a").count() > 0


def test_clicking_outside_every_beat_says_so(resident, demo_site):
    server, _, _ = demo_site
    pg = resident
    pg.goto(server.url + "/")
    wait_for_map(pg)
    click_at(pg, 47.60, -122.45)  # Puget Sound, west of every beat
    assert "outside every beat" in pg.locator("#map-status").inner_text()
    assert pg.url == server.url + "/"


def test_use_my_location_never_sends_the_position(resident, demo_site, k3_point):
    server, _, _ = demo_site
    pg = resident
    pg.goto(server.url + "/")
    wait_for_map(pg)
    pg.requests.clear()
    with pg.expect_navigation(url=server.url + "/beats/K3"):
        pg.get_by_role("button", name="Use my location").click()
    lat, lon = (f"{v:.4f}"[:-1] for v in k3_point)  # even a rounded form must not appear
    sent = " ".join(url + " " + data for url, data in pg.requests)
    assert lat not in sent and lon not in sent


def test_address_search_goes_to_the_geocoder_not_to_us(resident, demo_site):
    server, _, geocoder = demo_site
    pg = resident
    pg.goto(server.url + "/")
    wait_for_map(pg)
    pg.requests.clear()
    pg.get_by_label("Street address").fill("800 S King St")
    with pg.expect_navigation(url=server.url + "/beats/K3"):
        pg.get_by_role("button", name="Find beat").click()
    assert geocoder.queries[-1] == "800 S King St"
    ours = [u for u, _ in pg.requests if u.startswith(server.url)]
    assert not any("King" in u for u in ours)


def test_beat_code_search_and_copy_link(resident, demo_site):
    server, _, _ = demo_site
    pg = resident
    pg.goto(server.url + "/")
    pg.get_by_label("Beat code (for example K3)").fill("k3")
    with pg.expect_navigation(url=server.url + "/beats/K3"):
        pg.get_by_role("button", name="Open beat").click()
    pg.get_by_role("button", name="Copy link").click()
    assert pg.evaluate("navigator.clipboard.readText()") == pg.locator("#feed-url").input_value()
    assert "Copied" in pg.locator("#feed-url-status").inner_text()


def tab_through(pg, limit: int) -> set[str]:
    """Press Tab until focus comes back round; the hrefs of every link that took focus."""
    reached: set[str] = set()
    pg.locator("body").focus()
    for _ in range(limit):
        pg.keyboard.press("Tab")
        href = pg.evaluate("document.activeElement && document.activeElement.getAttribute('href')")
        if href:
            if href in reached and href == "#content":
                break
            reached.add(href)
    return reached


@pytest.mark.parametrize("path", ["/", "/beats/K3", "/precincts/W"])
def test_keyboard_alone_reaches_every_feed_link(resident, demo_site, path):
    server, _, _ = demo_site
    pg = resident
    pg.goto(server.url + path)
    feed_links = set(
        pg.eval_on_selector_all(
            "a[href*='/feed.'], a[href$='.opml']", "els => els.map(e => e.getAttribute('href'))"
        )
    )
    assert len(feed_links) >= (3 * (51 + 17 + 5) if path == "/" else 4)
    reached = tab_through(pg, limit=len(feed_links) * 2 + 200)
    assert feed_links - reached == set()
    # Focus is visible: the outline style applies to links.
    pg.keyboard.press("Tab")
    outline = pg.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


@pytest.mark.parametrize("path", ["/", "/beats/K3", "entry"])
def test_axe_finds_no_serious_or_critical_violation(resident, demo_site, path):
    need(AXE.exists(), f"{AXE} missing (run `npm ci` at the repository root)")
    server, _, _ = demo_site
    pg = resident
    if path == "entry":
        pg.goto(server.url + "/beats/K3")
        path = pg.locator("ul.entries a").first.get_attribute("href")
    pg.goto(server.url + path)
    if not path.startswith("/entries/"):
        wait_for_map(pg, "#beat-map" if path == "/" else "#area-map")
    assert axe_violations(pg) == []


def test_axe_on_a_phone(browser, demo_site):
    need(AXE.exists(), f"{AXE} missing (run `npm ci` at the repository root)")
    server, _, _ = demo_site
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    pg = context.new_page()
    try:
        pg.goto(server.url + "/beats/K3")
        wait_for_map(pg, "#area-map")
        assert axe_violations(pg) == []
        # Nothing wider than the screen.
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_the_axe_check_does_catch_a_violation(resident, demo_site):
    """Guard against a check that cannot fail: an unlabelled field must be reported."""
    need(AXE.exists(), f"{AXE} missing (run `npm ci` at the repository root)")
    server, _, _ = demo_site
    pg = resident
    pg.goto(server.url + "/entries/none")  # the 404 page, no map
    pg.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<input>')")
    assert "label" in {v["id"] for v in axe_violations(pg)}
