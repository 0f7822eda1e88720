"""The storage contract's stores, on each backend of `backend_url` (tests/conftest.py):
settings, a bare store, a migrated one, and one with the default beat map published."""

from __future__ import annotations

import pytest

from beatfeeds.storage import SQLStore
from tests.support.instance import make_settings
from tests.support.storage import load_beats


@pytest.fixture
def cfg(tmp_path, backend_url):
    return make_settings(tmp_path, database_url=backend_url)


@pytest.fixture
def bare(cfg):
    """A store on an empty database (no migrations run)."""
    store = SQLStore.from_url(cfg.database_url)
    yield store
    store.engine.dispose()


@pytest.fixture
def db(bare):
    bare.upgrade()
    return bare


@pytest.fixture
def beats_db(db):
    load_beats(db, publish=True)
    return db
