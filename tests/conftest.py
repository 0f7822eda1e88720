"""Shared fixtures: a real SQLite file per test, the real app, the real CLI runner, a live
server and a real browser, staff accounts, a records clerk, a loopback SMTP server, a
loopback Socrata-like server and the storage backends. Plain helpers and constants live in
tests/support."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from beatfeeds.app import create_app
from tests.support.alerts import Inbox
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, LiveServer
from tests.support.exports import local, spd911_row, write_rows
from tests.support.instance import load_default_beats, make_settings, make_store, need, utcnow
from tests.support.sources import Feed
from tests.support.staff import ADMIN, ADMIN_PW, CLERK, CLERK_PW, login


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


# ---- staff accounts: an admin and a records clerk, signed in ------------------------------------
@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    """argon2 hashes (the hasher's defaults, as accounts uses) made once: hashing is slow on
    purpose, and most tests only need two existing accounts."""
    hasher = PasswordHasher()
    return {ADMIN: hasher.hash(ADMIN_PW), CLERK: hasher.hash(CLERK_PW)}


@pytest.fixture
def staff(beats_store, hashes):
    now = utcnow()
    beats_store.add_user(ADMIN, "admin", hashes[ADMIN], now)
    beats_store.add_user(CLERK, "records", hashes[CLERK], now)
    return beats_store


@pytest.fixture
def admin(app, staff):
    c = app.test_client()
    assert login(c, ADMIN, ADMIN_PW).status_code == 302
    return c


@pytest.fixture
def staff_clerk(app, staff):
    c = app.test_client()
    assert login(c, CLERK, CLERK_PW).status_code == 302
    return c


# ---- a records clerk alone, and a file of the records workflow ---------------------------------
@pytest.fixture(scope="module")
def clerk_hash() -> str:
    return PasswordHasher().hash(CLERK_PW)  # slow on purpose: once per module


@pytest.fixture
def clerk(app, beats_store, clerk_hash):
    beats_store.add_user(CLERK, "records", clerk_hash, utcnow())
    c = app.test_client()
    assert c.post("/login", data={"email": CLERK, "password": CLERK_PW}).status_code == 302
    return c


@pytest.fixture
def mixed_file(tmp_path) -> Path:
    """Five rows: old theft and fresh theft (both delayed: the delay counts from the import
    too), child luring (suppressed),
    a bad date with a formula in it (rejected), a point outside every beat (unassigned)."""
    now = utcnow()
    old, fresh = local(now - timedelta(days=2)), local(now - timedelta(minutes=5))
    return write_rows(
        tmp_path / "clerk export.csv",
        [
            spd911_row(101, old, addr="1234 3RD AVE"),
            spd911_row(102, fresh),
            spd911_row(
                103,
                old,
                desc="SUSPICIOUS PERSON",
                group="SUSPICIOUS CIRCUMSTANCES",
                initial="CHILD - LURING",
            ),
            spd911_row(104, "=cmd|' /C calc'!A0"),
            spd911_row(105, old, lon="-121.0", lat="48.5"),
        ],
    )


# ---- a real SMTP server on loopback (aiosmtpd) --------------------------------------------------
@pytest.fixture
def smtp_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.url = f"smtp://127.0.0.1:{port}"
    yield inbox
    controller.stop()


# ---- a loopback Socrata-like server for scheduled sources ---------------------------------------
@pytest.fixture
def socrata(tmp_path):
    feed = Feed()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            feed.requests.append(dict(self.headers))
            if feed.status != 200:
                self.send_error(feed.status)
                return
            if feed.etag and self.headers.get("If-None-Match") == feed.etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(feed.body) + feed.lie))
            if feed.etag:
                self.send_header("ETag", feed.etag)
            self.end_headers()
            self.wfile.write(feed.body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    feed.url = f"http://127.0.0.1:{server.server_port}/resource/3k2p-39jp.csv"
    yield feed
    server.shutdown()
    server.server_close()


# ---- the storage backends: SQLite (a file), and PostgreSQL when configured ----------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'contract.sqlite3'}"
        return
    server = os.environ.get("BEATFEEDS_TEST_POSTGRES_URL", "")
    need(bool(server), "BEATFEEDS_TEST_POSTGRES_URL is not set (a PostgreSQL role with CREATEDB)")
    url = make_url(server)
    name = f"beatfeeds_contract_{secrets.token_hex(6)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin, name)
        admin.dispose()


def _drop_database(admin, name: str) -> None:
    """Drop a test database, also when a server process we may not signal is in it.

    WITH (FORCE) ends the test's own leftover sessions, but a role without superuser rights
    may not terminate an autovacuum worker, which the server starts on a busy new database;
    a plain DROP makes the server cancel that worker itself, so retry without FORCE."""
    for attempt in range(10):
        force = " WITH (FORCE)" if attempt % 2 == 0 else ""
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
            return
        except DBAPIError:
            time.sleep(0.5)
    with admin.connect() as conn:  # the last try says why
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
