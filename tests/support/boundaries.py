"""Beat maps in tests: loading one at NOW, a draft of edited beats, a client of the app."""

from __future__ import annotations

from beatfeeds.services import beatmaps
from tests.support.instance import NOW


def load(store, path, **kw) -> int:
    return beatmaps.load_beat_map(store, path, now=NOW, **kw)


def draft(store, beats) -> int:
    return store.create_beat_set(
        "edited", beats, effective_date=None, source_filename=None, created_by="test", now=NOW
    )


def make_client(store, settings):
    from beatfeeds.app import create_app

    app = create_app(
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "store": store, **settings.as_dict()}
    )
    return app.test_client()
