"""Characters XML 1.0 forbids (issue 14, point 5): one ESC byte in a description made RSS and
Atom answer 500 for the beat, its sector, precinct and the city. They are removed at import
(reported) and the feed writer can never emit them, whatever is stored."""

from __future__ import annotations

from datetime import timedelta

import feedparser
import pytest
from lxml import etree

from beatfeeds.cli import main
from beatfeeds.core.models import Area
from beatfeeds.core.text import xml_text
from beatfeeds.publish.feeds import FeedContext, build_feed
from beatfeeds.services import imports
from beatfeeds.services.imports import ImportOptions
from tests.support.exports import local, spd911_row, write_rows
from tests.support.instance import utcnow

DIRTY = "THEFT \x1b[31mRED\x1b[0m \x0b\x0c \ufffe\uffff \x7f END"
FEEDS = (
    "/beats/{beat}/feed.{fmt}",
    "/sectors/{sector}/feed.{fmt}",
    "/precincts/{precinct}/feed.{fmt}",
    "/feed.{fmt}",
)


def test_xml_text_keeps_everything_xml_allows():
    assert xml_text(DIRTY) == "THEFT [31mRED[0m   \x7f END"
    kept = "tab\tline\nreturn\r é ü 🚓 \ue000 \ufffd"
    assert xml_text(kept) == kept
    assert xml_text(None) == ""


def test_a_description_with_control_characters_is_cleaned_counted_and_every_feed_works(
    beats_store, settings, client, tmp_path
):
    when = local(utcnow() - timedelta(days=1))
    path = write_rows(
        tmp_path / "export.csv", [spd911_row(951, when, desc=DIRTY), spd911_row(952, when)]
    )
    report = imports.import_file(
        beats_store,
        path,
        ImportOptions(preset="spd-911"),
        settings,
        now=utcnow() - timedelta(hours=2),
    )
    assert report.counters["new"] == 2 and report.counters["cleaned"] == 1
    (entry,) = [
        e
        for e in beats_store.public_entries(
            beats_store.active_beat_set_id(), now=utcnow(), limit=10
        )
        if "RED" in e.description
    ]
    assert entry.description == "THEFT [31mRED[0m   \x7f END"
    where = {"beat": entry.beat, "sector": entry.sector, "precinct": entry.precinct}
    for url in FEEDS:
        for fmt in ("rss", "atom"):
            r = client.get(url.format(fmt=fmt, **where))
            assert r.status_code == 200, url
            etree.fromstring(r.data)  # well-formed XML
            parsed = feedparser.parse(r.data)
            assert not parsed.bozo, (url, parsed.bozo_exception)
            assert any("RED" in e.title for e in parsed.entries), [e.title for e in parsed.entries][
                :5
            ]
        assert client.get(url.format(fmt="json", **where)).status_code == 200


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
def test_the_feed_writer_never_emits_them_even_from_stored_text(settings, fmt):
    from datetime import datetime

    from beatfeeds.core.models import FeedEntry

    now = datetime(2026, 11, 26, 12, 0)
    entry = FeedEntry(
        uid="0123456789abcdef0123",
        title="",
        category="theft",
        category_text=DIRTY,
        description=DIRTY,
        block_address="11XX BLOCK OF 8TH AVE \x1b",
        event_time=now,
        updated_at=now,
        publish_at=now,
        source="t",
        external_id="1",
        beat="K3",
        sector="K",
        precinct="W",
    )
    body = build_feed(
        FeedContext(Area("beat", "K3", "Beat K3", 1)), [entry], fmt, settings, updated_fallback=now
    )
    text = body.decode("utf-8")
    assert not any(c in text for c in "\x1b\x0b\x0c\ufffe\uffff")
    if fmt != "json":
        etree.fromstring(body)


def test_the_cli_says_what_it_removed(runner, tmp_path):
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    path = write_rows(tmp_path / "export.csv", [spd911_row(961, local(utcnow()), desc=DIRTY)])
    r = runner.invoke(main, ["incidents", "import", str(path), "--preset", "spd-911"])
    assert r.exit_code == 0, r.output
    assert "control characters" in r.output and "1 rows" in r.output
