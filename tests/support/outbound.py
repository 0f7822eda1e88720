"""Outbound accounts and the outbox in tests: a fake clock, a store whose beat map was
published the day before the real clock, incidents, accounts and sending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from beatfeeds.services import outbound_accounts, outbox
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.imports import MAPS, good, write_csv
from tests.support.instance import load_default_beats, make_settings, make_store

# The outbox works on the real clock where a subprocess is involved, so these tests do too.
T = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
ADMIN = "admin@example.test"


class FakeClock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **kw):
        self.at += timedelta(**kw)


def local(settings, utc: datetime) -> str:
    return utc.replace(tzinfo=UTC).astimezone(settings.tz).strftime("%m/%d/%Y %I:%M:%S %p")


def setup(tmp_path, **overrides):
    settings = make_settings(tmp_path, **overrides)
    store = make_store(settings)
    load_default_beats(store, now=T - timedelta(days=1))
    return store, settings


def import_incidents(store, settings, tmp_path, rows, now=None):
    """Import rows; by default one publication delay before T, so that incidents older than
    the delay are public at T (the delay counts from the first import too)."""
    path = write_csv(tmp_path / f"inc-{len(list(tmp_path.iterdir()))}.csv", rows)
    if now is None:
        now = T - timedelta(minutes=settings.publication_delay)
    return import_file(store, path, ImportOptions(maps=dict(MAPS), source="t"), settings, now=now)


def incident(settings, i, minutes_ago, **kw):
    return good(i, when=local(settings, T - timedelta(minutes=minutes_ago)), **kw)


def add(store, settings, service, endpoint, creds, kind="beat", code="K3", at=None, **kw):
    return outbound_accounts.add_account(
        store,
        settings,
        area_kind=kind,
        area_code=code,
        service=service,
        label="",
        endpoint=endpoint,
        credentials=creds,
        actor=ADMIN,
        now=at or T - timedelta(hours=2),
        **kw,
    )


def send(store, settings, at):
    return outbox.send_outbox(store, settings, at, clock=FakeClock(at))


def items(store):
    return sorted(store.list_outbox(), key=lambda i: i.id)
