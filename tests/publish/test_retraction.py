"""Retraction: records staff withdraw a published entry (web and CLI); it leaves every feed and
page at once, stays withdrawn across re-imports, and is audited. Re-categorising an incident
into a suppressed category withdraws it the same way."""

from __future__ import annotations

from datetime import timedelta

import feedparser
import pytest

from beatfeeds.cli import main
from beatfeeds.core import identifiers
from beatfeeds.services import imports, review
from beatfeeds.services.imports import ImportOptions
from tests.support.exports import local, spd911_row, write_rows
from tests.support.instance import utcnow
from tests.support.staff import CLERK


@pytest.fixture
def published(beats_store, settings, tmp_path):
    """One theft and one burglary two days old, both published; returns the theft's uid."""
    event = utcnow() - timedelta(days=2)
    when = local(event)
    path = write_rows(
        tmp_path / "export.csv",
        [
            spd911_row(501, when, addr="1234 3RD AVE"),
            spd911_row(502, when, desc="BURGLARY - RESIDENTIAL", group="BURGLARY"),
        ],
    )
    # imported as they happened (the delay counts from the first import too)
    report = imports.import_file(
        beats_store, path, ImportOptions(preset="spd-911"), settings, now=event
    )
    assert report.counters["new"] == 2
    return identifiers.entry_uid("spd-911-incident-response", "501", beats_store.identifier_key())


def public_uids(client, url="/feed.atom") -> set[str]:
    feed = feedparser.parse(client.get(url).data)
    return {e.link.rsplit("/", 1)[1] for e in feed.entries}


def test_a_retracted_entry_leaves_every_feed_and_page_at_once(
    clerk,
    client,
    beats_store,
    published,
):
    uid = published
    beat = beats_store.staff_incident(uid).beat
    pages = ["/feed.atom", "/feed.rss", f"/beats/{beat}/feed.atom", f"/beats/{beat}/feed.json"]
    etag = client.get("/feed.atom").headers["ETag"]
    assert uid in public_uids(client)
    assert client.get(f"/entries/{uid}").status_code == 200
    assert uid in client.get(f"/beats/{beat}").get_data(as_text=True)

    found = clerk.get(f"/records/entries?q={uid}").get_data(as_text=True)
    assert f"/records/entries/{uid}" in found and "published" in found
    found = clerk.get("/records/entries?q=car prowl").get_data(as_text=True)
    assert f"/records/entries/{uid}" in found
    view = clerk.get(f"/records/entries/{uid}").get_data(as_text=True)
    assert "1234 3RD AVE" in view and "12XX BLOCK OF 3RD AVE" in view and "Retract" in view

    r = clerk.post(
        f"/records/entries/{uid}/retract",
        data={"reason": "victim request", "note": "called 11/26"},
        follow_redirects=True,
    )
    text = r.get_data(as_text=True)
    assert "has left every feed and page" in text and "victim request: called 11/26" in text
    assert 'id="entry-status">retracted' in text

    for url in pages:
        body = client.get(url).get_data(as_text=True)
        assert uid not in body, url
    assert client.get("/feed.atom").headers["ETag"] != etag
    assert client.get(f"/entries/{uid}").status_code == 404
    assert uid not in client.get(f"/beats/{beat}").get_data(as_text=True)
    other = identifiers.entry_uid("spd-911-incident-response", "502", beats_store.identifier_key())
    assert other in public_uids(client)  # only that one entry went

    audit = [a for a in beats_store.audit_log() if a["action"] == "incidents.retract"]
    assert audit[0]["actor"] == CLERK and audit[0]["target"] == f"entry:{uid}"
    assert "victim request" in audit[0]["detail"]

    again = clerk.post(
        f"/records/entries/{uid}/retract", data={"reason": "sealed record"}, follow_redirects=True
    )
    assert "already retracted" in again.get_data(as_text=True)


def test_a_retraction_needs_a_reason_and_a_signed_in_user(
    clerk,
    client,
    beats_store,
    published,
):
    r = client.post(f"/records/entries/{published}/retract", data={"reason": "x"})
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    r = clerk.post(
        f"/records/entries/{published}/retract", data={"reason": " "}, follow_redirects=True
    )
    assert "Give the reason" in r.get_data(as_text=True)
    assert beats_store.staff_incident(published).retracted_at is None
    assert clerk.get("/records/entries/nosuchentry").status_code == 404


def test_re_importing_does_not_bring_a_retracted_entry_back(
    beats_store, settings, tmp_path, published, client
):

    review.retract_entry(beats_store, published, "sealed record", actor="test", now=utcnow())
    when = local(utcnow() - timedelta(days=2))
    corrected = write_rows(
        tmp_path / "corrected.csv",
        [
            spd911_row(501, when, addr="1300 3RD AVE"),  # a correction of the same incident
        ],
    )
    report = imports.import_file(
        beats_store, corrected, ImportOptions(preset="spd-911"), settings, now=utcnow()
    )
    assert report.counters["updated"] == 1
    e = beats_store.staff_incident(published)
    assert e.retracted_at is not None and e.block_address == "13XX BLOCK OF 3RD AVE"
    assert published not in public_uids(client)


def test_re_categorising_into_a_suppressed_category_withdraws_the_entry(
    beats_store, settings, tmp_path, published, client
):
    assert published in public_uids(client)
    when = local(utcnow() - timedelta(days=2))
    recategorised = write_rows(
        tmp_path / "later.csv",
        [
            spd911_row(
                501,
                when,
                addr="1234 3RD AVE",
                desc="CHILD - LURING",
                group="SUSPICIOUS CIRCUMSTANCES",
                initial="CHILD - LURING",
            ),
        ],
    )
    report = imports.import_file(
        beats_store, recategorised, ImportOptions(preset="spd-911"), settings, now=utcnow()
    )
    assert report.counters["updated"] == 1
    e = beats_store.staff_incident(published)
    assert e.category == "juvenile" and e.status(utcnow()) == "suppressed"
    for url in ["/feed.atom", "/feed.rss", f"/beats/{e.beat}/feed.atom"]:
        assert published not in client.get(url).get_data(as_text=True), url
    assert client.get(f"/entries/{published}").status_code == 404


def test_retract_from_the_cli(runner, monkeypatch, settings, beats_store, published, client):
    monkeypatch.setenv("BEATFEEDS_DATABASE_URL", settings.database_url)
    r = runner.invoke(main, ["incidents", "retract", published, "--reason", "wrong address"])
    assert r.exit_code == 0, r.output
    assert f"retracted {published} (spd-911-incident-response 501): wrong address" in r.output
    assert published not in public_uids(client)
    assert beats_store.audit_log()[0]["actor"] == "cli"
    r = runner.invoke(main, ["incidents", "retract", published, "--reason", "again"])
    assert r.exit_code == 1 and "already retracted" in r.output
    r = runner.invoke(main, ["incidents", "retract", "nosuchentry", "--reason", "x"])
    assert r.exit_code == 1 and "No incident" in r.output
    r = runner.invoke(main, ["incidents", "retract", published])
    assert r.exit_code == 2 and "--reason" in r.output
