"""`needs review`: rows whose published text looks like personal data are stored, counted,
flagged in the preview, published nowhere, and released or retracted by records staff (web
and CLI); a release outlasts re-imports of the same text and the publication-policy job."""

from __future__ import annotations

from datetime import timedelta

import feedparser
import pytest

from beatfeeds import jobs
from beatfeeds.cli import main
from beatfeeds.core import identifiers
from beatfeeds.core.errors import Conflict
from beatfeeds.services import imports, records, review
from beatfeeds.services.imports import ImportOptions
from tests.support.exports import local, spd911_row, write_rows
from tests.support.instance import make_settings, utcnow
from tests.support.records import run_queue, upload, upload_id
from tests.support.staff import CLERK

SOURCE = "spd-911-incident-response"
NAMED = "JOHN SMITH, DOB 01/02/1990"


def import_rows(store, settings, path):
    # first imported two hours ago: the publication delay counts from the first import too
    return imports.import_file(
        store, path, ImportOptions(preset="spd-911"), settings, now=utcnow() - timedelta(hours=2)
    )


@pytest.fixture
def held(beats_store, settings, tmp_path):
    """A theft (publishes) and a row whose description names a person, both two days old;
    returns the named row's uid."""
    when = local(utcnow() - timedelta(days=2))
    path = write_rows(
        tmp_path / "export.csv",
        [
            spd911_row(601, when),
            spd911_row(602, when, desc=NAMED),
        ],
    )
    report = import_rows(beats_store, settings, path)
    assert report.counters["new"] == 2 and report.counters["needs_review"] == 1
    return identifiers.entry_uid(SOURCE, "602", beats_store.identifier_key())


def public_text(client, beat: str) -> str:
    """Everything the public channels of an instance say."""
    urls = [
        "/feed.atom",
        "/feed.rss",
        "/feed.json",
        f"/beats/{beat}/feed.atom",
        f"/beats/{beat}/feed.rss",
        f"/beats/{beat}/feed.json",
        f"/beats/{beat}",
        "/",
    ]
    return "\n".join(client.get(u).get_data(as_text=True) for u in urls)


def test_a_named_row_is_stored_but_published_nowhere(beats_store, held, client):
    e = beats_store.staff_incident(held)
    assert e.description == NAMED and e.status(utcnow()) == "needs review"
    assert e.suppressed_reason == (
        "needs review: the description looks like it contains a date of birth"
    )
    text = public_text(client, e.beat)
    assert "SMITH" not in text and held not in text
    assert (
        identifiers.entry_uid(SOURCE, "601", beats_store.identifier_key()) in text
    )  # the other row publishes
    assert client.get(f"/entries/{held}").status_code == 404
    assert held not in {
        x.uid
        for x in beats_store.public_entries(
            beats_store.active_beat_set_id(), now=utcnow(), limit=100
        )
    }
    # Outbound posts and e-mail alerts draw from the same suppression: nothing to send.
    assert beats_store.incident_publication(held)[1] is False


def test_release_publishes_it_as_it_is_audited_and_it_outlasts_reimports_and_the_policy_job(
    beats_store, settings, tmp_path, held, clerk, client
):
    page = clerk.get("/records/review").get_data(as_text=True)
    assert 'id="review-count">1 held back' in page and held in page and NAMED in page
    assert "date of birth" in page
    entry = clerk.get(f"/records/entries/{held}").get_data(as_text=True)
    assert 'id="entry-status">needs review: the description' in entry
    assert 'id="release"' in entry and "Retract" in entry
    r = clerk.post(
        f"/records/entries/{held}/release", data={"back": "review"}, follow_redirects=True
    )
    assert "was released" in r.get_data(as_text=True)
    assert "Nothing is held back for review" in r.get_data(as_text=True)
    e = beats_store.staff_incident(held)
    assert e.status(utcnow()) == "published" and e.released_by == CLERK and e.released_at
    assert held in public_text(client, e.beat)
    entry = clerk.get(f"/records/entries/{held}").get_data(as_text=True)
    assert 'id="released">Released for publication by ' + CLERK in entry
    audit = beats_store.audit_log()[0]
    assert audit["action"] == "incidents.release" and audit["actor"] == CLERK
    assert audit["target"] == f"entry:{held}"

    # A correction of the same incident (another address, the same text) stays released.
    when = local(utcnow() - timedelta(days=2))
    corrected = write_rows(
        tmp_path / "corrected.csv",
        [spd911_row(602, when, desc=NAMED, addr="13XX BLOCK OF 3RD AVE")],
    )
    report = import_rows(beats_store, settings, corrected)
    assert report.counters["updated"] == 1 and report.counters["needs_review"] == 0
    assert beats_store.staff_incident(held).status(utcnow()) == "published"
    # A change of policy redoes every decision; the release is kept.
    stricter = make_settings(tmp_path, publication_delay=120)
    assert jobs.apply_publication_policy(beats_store, stricter, utcnow())["changed"] >= 1
    assert beats_store.staff_incident(held).suppressed_reason is None
    # A re-import that changes the text asks for a review again, in the import and the job.
    changed = write_rows(
        tmp_path / "changed.csv", [spd911_row(602, when, desc="SMITH, JOHN A; CALL 206-555-1234")]
    )
    report = import_rows(beats_store, settings, changed)
    assert report.counters["updated"] == 1 and report.counters["needs_review"] == 1
    assert beats_store.staff_incident(held).status(utcnow()) == "needs review"
    assert held not in public_text(client, e.beat)
    jobs.apply_publication_policy(beats_store, settings, utcnow())
    assert beats_store.staff_incident(held).status(utcnow()) == "needs review"


def test_the_policy_job_holds_back_rows_stored_before_the_rule(beats_store, settings, held):
    # As an instance upgraded from a version without the rule has them: published.
    e = beats_store.staff_incident(held)
    beats_store.set_policy_results(
        [
            {
                "id": _incident_id(beats_store, "602"),
                "category": e.category,
                "block_address": e.block_address,
                "suppressed_reason": None,
                "publish_at": utcnow() - timedelta(days=1),
            }
        ],
        utcnow(),
    )
    assert beats_store.staff_incident(held).status(utcnow()) == "published"
    beats_store.set_meta("publication_policy", "delay=60;suppressed=")  # the old fingerprint
    jobs.apply_publication_policy(beats_store, settings, utcnow())
    assert beats_store.staff_incident(held).status(utcnow()) == "needs review"


def _incident_id(store, external_id: str) -> int:
    return store.incident_private(SOURCE, external_id)["id"]


def test_only_held_entries_can_be_released(beats_store, held):
    other = identifiers.entry_uid(SOURCE, "601", beats_store.identifier_key())
    with pytest.raises(Conflict, match="not held back for review"):
        review.release_entry(beats_store, other, actor="t", now=utcnow())
    review.retract_entry(beats_store, held, "sealed record", actor="t", now=utcnow())
    with pytest.raises(Conflict, match="retracted"):
        review.release_entry(beats_store, held, actor="t", now=utcnow())
    assert review.entries_for_review(beats_store) == ([], 0)  # retracted: off the list


def test_retract_from_the_review_page(beats_store, held, clerk, client):
    r = clerk.post(
        f"/records/entries/{held}/retract",
        data={"reason": "victim request", "back": "review"},
        follow_redirects=True,
    )
    text = r.get_data(as_text=True)
    assert "has left every feed and page" in text and "Nothing is held back" in text
    assert beats_store.staff_incident(held).status(utcnow()) == "retracted"


def test_review_and_release_from_the_cli(runner, monkeypatch, settings, beats_store, held, client):
    monkeypatch.setenv("BEATFEEDS_DATABASE_URL", settings.database_url)
    r = runner.invoke(main, ["incidents", "review"])
    assert r.exit_code == 0, r.output
    assert held in r.output and NAMED in r.output and "date of birth" in r.output
    assert "1 held back for review" in r.output
    r = runner.invoke(main, ["incidents", "release", held])
    assert r.exit_code == 0, r.output
    assert f"released {held} ({SOURCE} 602): published" in r.output
    assert beats_store.audit_log()[0]["actor"] == "cli"
    feed = feedparser.parse(client.get("/feed.atom").data)
    assert any(x.link.endswith(held) for x in feed.entries)
    r = runner.invoke(main, ["incidents", "release", held])
    assert r.exit_code == 1 and "not held back for review" in r.output
    r = runner.invoke(main, ["incidents", "review"])
    assert "0 held back for review" in r.output


def test_the_preview_flags_the_row_and_the_result_counts_it(
    clerk,
    beats_store,
    settings,
    tmp_path,
):
    when = local(utcnow() - timedelta(days=2))
    path = write_rows(
        tmp_path / "named.csv",
        [spd911_row(701, when), spd911_row(702, when, desc="RESIDENCE OF J DOE")],
    )
    uid = upload_id(upload(clerk, path))
    preview = records.preview_upload(
        beats_store, settings, beats_store.get_upload(uid), now=utcnow()
    )
    assert [p.status for p in preview] == [
        "delayed",
        "needs review",
    ]  # a new row imported now waits its delay
    assert "looks like it contains a residence" in preview[1].reason
    page = clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    assert 'class="preview-needs-review"' in page
    assert '<strong class="flag">needs review</strong>' in page
    run_queue(beats_store, settings)
    page = clerk.get(f"/records/imports/{uid}").get_data(as_text=True)
    assert '<th scope="row">needs_review</th><td>1</td>' in page
    assert 'id="review-link"' in page and "/records/review" in page


def test_the_cli_import_counts_rows_held_for_review(
    runner, monkeypatch, tmp_path, settings, beats_store
):
    monkeypatch.setenv("BEATFEEDS_DATABASE_URL", settings.database_url)
    when = local(utcnow() - timedelta(days=2))
    path = write_rows(
        tmp_path / "named.csv",
        [spd911_row(801, when), spd911_row(802, when, desc="CALL 206-555-1234")],
    )
    r = runner.invoke(main, ["incidents", "import", str(path)])
    assert r.exit_code == 0, r.output
    assert "new 2 " in r.output and "needs_review 1" in r.output


def test_the_check_runs_once_per_distinct_wording(beats_store, settings, tmp_path, monkeypatch):
    from beatfeeds.publish import pii

    pii._looks_personal.cache_clear()
    when = local(utcnow() - timedelta(days=2))
    rows = [
        spd911_row(900 + k, when, desc=NAMED if k % 2 else "THEFT - CAR PROWL") for k in range(40)
    ]
    report = import_rows(beats_store, settings, write_rows(tmp_path / "many.csv", rows))
    assert report.counters["new"] == 40 and report.counters["needs_review"] == 20
    info = pii._looks_personal.cache_info()
    assert info.misses <= 4 and info.hits == 0  # two descriptions, two category wordings
