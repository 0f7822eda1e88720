"""Shared fixtures: a real SQLite file per test, the real app, the real CLI runner."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from beatfeeds.app import create_app
from beatfeeds.core.resources import resource_dir
from beatfeeds.core.settings import load_settings
from beatfeeds.services import beatmaps
from beatfeeds.storage import SQLStore

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BEATFEEDS_SHARED_DATA", REPO.parent / "shared" / "data")) / "seattle"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEFAULT_BEATS = resource_dir("data") / "beats.geojson"
SAMPLE = resource_dir("data") / "sample_incidents.csv"
NOW = datetime(2026, 11, 26, 12, 0, 0)  # a fixed "now" (naive UTC) for reproducible tests


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def need(condition: bool, reason: str) -> None:
    """Skip locally when a resource is missing; under CI=true, fail instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def shared(name: str) -> Path:
    path = SHARED / name
    need(path.exists(), f"{path} not found (../shared/data)")
    return path


def make_settings(tmp_path: Path, **overrides):
    values = {
        "instance_path": str(tmp_path / "instance"),
        "secret_key": "test-secret-key",
        "base_url": "http://feeds.example.test",
        "tag_authority": "example.test,2026",
    }
    values.update(overrides)
    return load_settings(values, environ={})


def make_store(settings) -> SQLStore:
    store = SQLStore.from_url(settings.database_url)
    store.upgrade()
    return store


def load_default_beats(store, now=NOW) -> int:
    set_id = beatmaps.load_beat_map(
        store,
        DEFAULT_BEATS,
        code_field="beat",
        sector_field="sector",
        precinct_field="precinct",
        name="default",
        now=now,
    )
    beatmaps.publish_beat_map(store, set_id, now=now)
    return set_id


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path)


@pytest.fixture
def store(settings):
    return make_store(settings)


@pytest.fixture
def beats_store(store):
    load_default_beats(store)
    return store


@pytest.fixture
def app(tmp_path, beats_store, settings):
    app = create_app(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "store": beats_store,
            **{k: v for k, v in settings.as_dict().items()},
        }
    )
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """A CLI runner whose environment points at a fresh instance folder."""
    for k in list(os.environ):
        if k.startswith("BEATFEEDS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("BEATFEEDS_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("BEATFEEDS_SECRET_KEY", "test-secret-key")
    return CliRunner()


# ---- a live server and a real browser -----------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


class LiveServer:
    """The real app served by waitress on a free loopback port, in a background thread."""

    def __init__(self, app):
        import socket
        import threading

        from waitress.server import create_server

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.server = create_server(app, host="127.0.0.1", port=self.port, threads=4)
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.close()


@pytest.fixture
def live_server(app):
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (no browser download)."""
    need(CHROMIUM.exists(), f"{CHROMIUM} not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    pg = context.new_page()
    yield pg
    context.close()


# ---- accessibility: axe-core from npm, evaluated in the page ------------------------------------
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(pg) -> list[dict]:
    """Serious and critical axe-core violations of the page (WCAG 2.1 A/AA, best practices).

    axe is evaluated through the browser's debugging protocol rather than added as a script
    tag: the site's Content-Security-Policy (rightly) refuses inline script.
    """
    need(AXE.exists(), f"{AXE} missing (run `npm ci` at the repository root)")
    pg.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = pg.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]
