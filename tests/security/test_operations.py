"""A database that refuses writes is reported, not hidden (issue 14, point 10): /healthz said
ok while sign-in answered a generic 500; library log lines drowned ours under load."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event

from beatfeeds.app import create_app
from beatfeeds.services import accounts
from beatfeeds.storage import SQLStore
from tests.support.instance import NOW

ADMIN = "admin@example.org"
ADMIN_PW = "admin password 1234"
DEPLOYMENT = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def sqlite_path(settings) -> str:
    return settings.database_url.removeprefix("sqlite:///")


def on_every_connection(store, pragma: str) -> None:
    """Run `pragma` on each new connection of the store (its pool is emptied first)."""

    @event.listens_for(store.engine, "connect")
    def _pragma(dbapi_conn, _record):
        dbapi_conn.execute(pragma)

    store.engine.dispose()


@pytest.fixture
def admin(beats_store):
    accounts.add_user(beats_store, ADMIN, "admin", ADMIN_PW, actor="test", now=NOW)


@pytest.fixture
def read_only(beats_store, admin):
    """The database as a read-only mount or file would give it. (CI runs as root, which
    ignores file modes: `PRAGMA query_only` refuses writes whoever runs the test.)"""
    on_every_connection(beats_store, "PRAGMA query_only=ON")


@pytest.fixture
def locked(beats_store, settings, admin):
    """Another process holds the write lock (an import on SQLite). Requests wait for it as
    long as BEATFEEDS_REQUEST_WRITE_WAIT says (2 s); other connections 0.3 s rather than the
    production 30 s, to keep the test short."""
    on_every_connection(beats_store, "PRAGMA busy_timeout=300")
    other = sqlite3.connect(sqlite_path(settings), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    yield
    other.execute("ROLLBACK")
    other.close()


def test_healthz_is_ok_when_the_database_can_be_written(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json()["status"] == "ok"


@pytest.mark.parametrize(("state", "reason"), [("read_only", "read-only"), ("locked", "locked")])
def test_healthz_answers_503_with_the_reason_when_writes_fail(request, client, state, reason):
    request.getfixturevalue(state)
    r = client.get("/healthz")
    assert r.status_code == 503
    assert reason in r.get_json()["status"]
    assert r.headers["Retry-After"].isdigit()


@pytest.mark.parametrize("state", ["read_only", "locked"])
def test_sign_in_explains_a_database_that_refuses_writes(request, client, state):
    request.getfixturevalue(state)
    r = client.post("/login", data={"email": ADMIN, "password": ADMIN_PW})
    assert r.status_code == 503
    assert "read-only or busy; try again shortly" in r.get_data(as_text=True)
    assert int(r.headers["Retry-After"]) > 0


def test_the_write_check_leaves_nothing_behind(beats_store):
    revision = beats_store.current_revision()
    assert beats_store.check_writable() is None
    assert beats_store.current_revision() == revision
    with beats_store.engine.connect() as conn:  # the pool's connection keeps its own timeout
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_the_deployment_docs_give_the_status_codes_the_code_gives():
    text = DEPLOYMENT.read_text()
    health = text[text.index('`/healthz` answers `{"status": "ok"') :]
    health = health[: health.index("\n\n")]
    assert "500" not in health
    assert "503" in health and "read-only" in health and "locked" in health


@pytest.mark.parametrize(("level", "quiet"), [("INFO", True), ("WARNING", True), ("DEBUG", False)])
def test_per_request_and_per_run_library_lines_are_quiet_unless_debugging(
    beats_store, settings, level, quiet
):
    """waitress warns "Task queue depth is N" for each queued request; APScheduler logs each
    run at INFO."""
    create_app({"TESTING": True, "store": beats_store, **settings.as_dict(), "log_level": level})
    try:
        queue = logging.getLogger("waitress.queue")
        runs = logging.getLogger("apscheduler.executors.default")
        assert queue.isEnabledFor(logging.WARNING) is not quiet
        assert runs.isEnabledFor(logging.INFO) is not quiet
        assert logging.getLogger("waitress").isEnabledFor(logging.ERROR)  # real errors stay
    finally:
        create_app({"TESTING": True, "store": beats_store, **settings.as_dict()})


# ---- the write check on each backend ----------------------------------------------------------
def read_only_store(url: str) -> SQLStore:
    """A second store on the same database whose connections may not write."""
    if url.startswith("sqlite"):
        store = SQLStore.from_url(url)
        on_every_connection(store, "PRAGMA query_only=ON")
        return store
    return SQLStore(
        create_engine(url, connect_args={"options": "-c default_transaction_read_only=on"})
    )


def test_the_write_check_on_each_backend(backend_url):
    store = SQLStore.from_url(backend_url)
    store.upgrade()
    assert store.check_writable() is None
    ro = read_only_store(backend_url)
    try:
        assert ro.check_writable() == "read-only"
        assert ro.is_current()  # reads still work: only the write check notices
    finally:
        ro.engine.dispose()
        store.engine.dispose()
