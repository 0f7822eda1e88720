"""End to end on the embedded default: beats + sample incidents -> feeds."""

import feedparser

from beatfeeds.services import demo
from tests.support.instance import NOW


def test_demo_setup_publishes_sample_into_beat_feeds(store, settings):
    notice = demo.setup_demo(store, settings, now=NOW, echo=lambda s: None)
    assert "moved forward" in notice
    from beatfeeds.app import create_app

    app = create_app({"TESTING": True, "store": store, **settings.as_dict()})
    client = app.test_client()
    feed = feedparser.parse(client.get("/feed.atom").data)
    assert not feed.bozo
    assert len(feed.entries) == settings.feed_max_entries
    # Running the setup again changes nothing.
    demo.setup_demo(store, settings, now=NOW, echo=lambda s: None)
    assert store.incident_count() == 322


def test_a_real_export_imported_next_to_the_demo_never_rewrites_its_entries(store, settings):
    """The sample is cut from Seattle's real 911 export: imported with its preset's own
    dataset name, the same rows are another dataset's and leave the demo's entries as they
    are (their uids, texts and times)."""
    from sqlalchemy import text

    from beatfeeds.services import imports

    demo.setup_demo(store, settings, now=NOW, echo=lambda s: None)
    rows = "SELECT uid, description, occurred_at FROM incidents WHERE source = :s ORDER BY uid"
    with store.engine.connect() as conn:
        before = conn.execute(text(rows), {"s": demo.SAMPLE_SOURCE}).all()
    assert len(before) == 322
    report = imports.import_file(
        store,
        demo.sample_incidents_path(),
        imports.ImportOptions(preset=demo.SAMPLE_PRESET),  # the real file's own dataset name
        settings,
        now=NOW,
    )
    assert report.source != demo.SAMPLE_SOURCE
    assert report.counters["new"] == 322 and report.counters["updated"] == 0
    with store.engine.connect() as conn:
        assert conn.execute(text(rows), {"s": demo.SAMPLE_SOURCE}).all() == before
