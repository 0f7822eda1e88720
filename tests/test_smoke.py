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
