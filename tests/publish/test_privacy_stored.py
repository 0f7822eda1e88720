"""New publication rules reach incidents stored before them (issue 13, points 1, 4 and 6)."""

from __future__ import annotations

from datetime import timedelta

import feedparser
from sqlalchemy import select, update

from beatfeeds import jobs
from beatfeeds.cli import main
from beatfeeds.core.settings import load_settings
from beatfeeds.publish import privacy
from beatfeeds.services import publishing
from beatfeeds.services.imports import ImportOptions, import_file
from beatfeeds.storage import SQLStore
from beatfeeds.storage import schema as t
from tests.support.imports import MAPS, good, write_csv
from tests.support.instance import NOW, load_default_beats

# What an instance stored before this version: the old generaliser kept `607 1 / 2 N 50 ST`
# as an "intersection", the old rules published MEDICAL EMERGENCY, the old delay counted from
# the event time, and the fingerprint had no rules version.
OLD_FINGERPRINT = (
    "delay=60;suppressed=behavioral-health,death,domestic-violence,juvenile,"
    "medical,missing-person,sexual-offense"
)


def store_as_an_old_version_did(store, settings, tmp_path) -> None:
    rows = [
        good(1, addr="607 1 / 2 N 50 ST"),
        good(2, desc="MEDICAL EMERGENCY"),
        good(3, addr="1234 5TH AVE AT UNION ST"),
    ]
    rows[1][2] = "MEDICAL EMERGENCY"
    path = write_csv(tmp_path / "old.csv", rows)
    import_file(store, path, ImportOptions(maps=dict(MAPS), source="t"), settings, now=NOW)
    c = t.incidents.c
    with store.engine.begin() as conn:
        conn.execute(
            update(t.incidents)
            .where(c.external_id == "1")
            .values(block_address="607 1 / 2 N 50 ST")
        )
        conn.execute(
            update(t.incidents)
            .where(c.external_id == "2")
            .values(category="other", suppressed_reason=None)
        )
        conn.execute(
            update(t.incidents)
            .where(c.external_id == "3")
            .values(block_address="1234 5TH AVE AT UNION ST")
        )
        for i, event_time in conn.execute(select(c.id, c.event_time)).all():
            conn.execute(
                update(t.incidents)
                .where(c.id == i)
                .values(publish_at=event_time + timedelta(minutes=60))
            )
    store.set_meta("publication_policy", OLD_FINGERPRINT)


def public_text(store, settings, at) -> str:
    area = publishing.resolve_area(store, "city", None)
    feed = publishing.area_feed(store, settings, area, "atom", now=at)
    return " ".join(e.title for e in feedparser.parse(feed.body).entries)


def test_the_policy_job_rederives_stored_incidents_under_new_rules(tmp_path, beats_store, settings):
    store_as_an_old_version_did(beats_store, settings, tmp_path)
    later = NOW + timedelta(hours=2)
    assert "607 1 / 2" in public_text(beats_store, settings, later)  # the break, reproduced
    summary = jobs.apply_publication_policy(beats_store, settings, later)
    assert summary["changed"] == 3 and f"rules={privacy.RULES_VERSION}" in summary["policy"]
    one = beats_store.incident_private("t", "1")
    assert one["block_address"] == "6XX BLOCK OF N 50 ST"
    assert beats_store.incident_private("t", "3")["block_address"] == "12XX BLOCK OF 5TH AVE"
    medical = beats_store.incident_private("t", "2")
    assert (medical["category"], medical["suppressed_reason"]) == (
        "medical",
        "category medical is never published",
    )
    # the delay now counts from the first import (created_at), not from the 2016 event
    assert one["publish_at"] == one["created_at"] + timedelta(minutes=settings.publication_delay)
    text = public_text(beats_store, settings, later)
    assert "607" not in text and "1234" not in text and "MEDICAL" not in text
    assert "6XX BLOCK OF N 50 ST" in text
    assert jobs.apply_publication_policy(beats_store, settings, later) == {
        "changed": 0,
        "policy": "unchanged",
    }


def test_rederiving_never_loosens_a_category_decided_by_another_column(
    tmp_path, beats_store, settings
):
    """Extra classification columns are not stored: what they made sensitive stays so."""
    path = write_csv(tmp_path / "x.csv", [good(1, desc="SUSPICIOUS PERSON")])
    import_file(beats_store, path, ImportOptions(maps=dict(MAPS), source="t"), settings, now=NOW)
    with beats_store.engine.begin() as conn:  # as if an Initial Type column said CHILD - LURING
        conn.execute(
            update(t.incidents).values(
                category="juvenile", suppressed_reason="category juvenile is never published"
            )
        )
    beats_store.set_meta("publication_policy", OLD_FINGERPRINT)
    jobs.apply_publication_policy(beats_store, settings, NOW)
    stored = beats_store.incident_private("t", "1")
    assert stored["category"] == "juvenile" and stored["suppressed_reason"]


def test_db_upgrade_applies_new_rules_to_an_existing_instance(runner, tmp_path):
    """Upgrading runs the policy job once; feeds need not wait for a scheduler."""
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    settings = load_settings(
        {"instance_path": str(tmp_path / "instance"), "secret_key": "test-secret-key"}, environ={}
    )
    store = SQLStore.from_url(settings.database_url)
    load_default_beats(store)
    store_as_an_old_version_did(store, settings, tmp_path)
    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "3 stored incidents changed" in result.output
    assert store.incident_private("t", "1")["block_address"] == "6XX BLOCK OF N 50 ST"
    again = runner.invoke(main, ["db", "upgrade"])
    assert again.exit_code == 0 and "changed" not in again.output
