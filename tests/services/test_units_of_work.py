"""Use cases of several writes are one unit: an error between two steps leaves nothing done.

Each test breaks a use case at its last step (the audit entry, or the write after the first)
and checks the database is exactly as before, then runs it again unbroken to show that the
retry succeeds. The same holds on PostgreSQL (tests/storage/test_units_of_work.py covers the
transactions themselves on every backend).
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from beatfeeds.services import announcements, beatmaps, records
from tests.support.instance import DEFAULT_BEATS, NOW, load_default_beats, make_settings, make_store


class Boom(RuntimeError):
    pass


def _break(monkeypatch, repo, name: str, *, after: int = 0):
    """Make repo.name raise on its (after+1)-th call."""
    real = getattr(repo, name)
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise Boom(f"{name} failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(repo, name, broken)


@pytest.fixture
def instance(tmp_path):
    settings = make_settings(tmp_path)
    store = make_store(settings)
    load_default_beats(store)
    return store, settings


def _audit_actions(store) -> list[str]:
    return [row["action"] for row in store.accounts.audit_log(1000)]


def test_a_nested_unit_joins_the_outer_one_and_an_error_undoes_both(instance):
    store, _ = instance
    with pytest.raises(Boom):
        with store.db.unit_of_work():
            store.db.set_meta("uow-test", "one")
            with store.db.unit_of_work():
                store.db.set_meta("uow-test-inner", "two")
            assert store.db.get_meta("uow-test") is None  # another connection: not yet
            raise Boom("after both writes")
    assert store.db.get_meta("uow-test") is None
    assert store.db.get_meta("uow-test-inner") is None
    with store.db.unit_of_work():
        store.db.set_meta("uow-test", "one")
        store.db.set_meta("uow-test-inner", "two")
    assert store.db.get_meta("uow-test") == "one"
    assert store.db.get_meta("uow-test-inner") == "two"


def _draft(store) -> int:
    return beatmaps.load_beat_map(
        store,
        DEFAULT_BEATS,
        code_field="beat",
        sector_field="sector",
        precinct_field="precinct",
        name="redrawn",
        now=NOW + timedelta(hours=1),
    )


@pytest.mark.parametrize("step", ["record_boundary_changes", "audit"])
def test_publishing_a_beat_map_is_all_or_nothing(instance, monkeypatch, step):
    store, _ = instance
    active = store.beatmaps.active_beat_set_id()
    draft = _draft(store)
    actions = _audit_actions(store)
    repo = store.beatmaps if step == "record_boundary_changes" else store.accounts
    with monkeypatch.context() as m:
        _break(m, repo, step)
        with pytest.raises(Boom):
            beatmaps.publish_beat_map(store, draft, now=NOW + timedelta(hours=2))
    assert store.beatmaps.active_beat_set_id() == active
    assert store.beatmaps.get_beat_set(draft).status == "draft"
    assert store.beatmaps.boundary_changes(set_id=draft) == []
    assert _audit_actions(store) == actions
    beatmaps.publish_beat_map(store, draft, now=NOW + timedelta(hours=2))  # the retry works
    assert store.beatmaps.active_beat_set_id() == draft
    assert _audit_actions(store)[0] == "beats.publish"


def test_a_rollback_and_its_audit_entry_are_one_unit(instance, monkeypatch):
    store, _ = instance
    first = store.beatmaps.active_beat_set_id()
    draft = _draft(store)
    beatmaps.publish_beat_map(store, draft, now=NOW + timedelta(hours=2))
    actions = _audit_actions(store)
    with monkeypatch.context() as m:
        _break(
            m, store.accounts, "audit", after=1
        )  # "beats.publish" passes, "beats.rollback" fails
        with pytest.raises(Boom):
            beatmaps.rollback_beat_map(store, now=NOW + timedelta(hours=3))
    assert store.beatmaps.active_beat_set_id() == draft
    assert _audit_actions(store) == actions
    assert beatmaps.rollback_beat_map(store, now=NOW + timedelta(hours=3)) == first
    assert _audit_actions(store)[:2] == ["beats.rollback", "beats.publish"]


def test_a_map_published_meanwhile_is_a_conflict_not_a_silent_overwrite(instance, monkeypatch):
    """Boundary changes are worked out against the map active when publishing starts; if
    another publish switched it in the meantime, the second one stops and says so."""
    from beatfeeds.core.errors import Conflict

    store, settings = instance
    one, two = _draft(store), _draft(store)
    other = make_store(settings)  # another admin's process on the same database
    real = store.incidents.located_incidents_missing_join

    def other_admin_first(set_id):
        other.beatmaps.publish_beat_set(one, now=NOW + timedelta(hours=2))
        return real(set_id)

    monkeypatch.setattr(store.incidents, "located_incidents_missing_join", other_admin_first)
    with pytest.raises(Conflict, match="Another beat map was published"):
        beatmaps.publish_beat_map(store, two, now=NOW + timedelta(hours=2))
    # the other admin's publish stands (it committed on its own); this one changed nothing
    assert store.beatmaps.active_beat_set_id() == one
    assert store.beatmaps.get_beat_set(two).status == "draft"


def _upload(store, settings):
    data = b"Ref,When,What,Where,Y,X\n1,03/25/2016 08:09:00 PM,THEFT,1100 8TH AVE NE,47.6,-122.3\n"
    return records.store_upload(
        store, settings, io.BytesIO(data), "odd.csv", actor="clerk@example.org", now=NOW
    )


COLUMNS = {
    "external_id": "Ref",
    "occurred_at": "When",
    "category": "What",
    "address": "Where",
    "lat": "Y",
    "lon": "X",
}


def test_saving_a_column_mapping_with_its_preset_is_all_or_nothing(instance, monkeypatch):
    store, settings = instance
    up = _upload(store, settings)
    assert up.status == "needs-mapping"
    actions = _audit_actions(store)
    kw = dict(source="odd-cad", save_as="odd-cad", actor="clerk@example.org", now=NOW)
    with monkeypatch.context() as m:
        _break(m, store.uploads, "set_upload_mapping")  # after the preset was saved
        with pytest.raises(Boom):
            records.set_mapping(store, up.id, COLUMNS, **kw)
    assert store.uploads.saved_presets() == []
    assert store.uploads.get_upload(up.id).status == "needs-mapping"
    assert _audit_actions(store) == actions
    done = records.set_mapping(store, up.id, COLUMNS, **kw)
    assert done.status == "queued"
    assert [p.name for p in store.uploads.saved_presets()] == ["odd-cad"]


@pytest.mark.parametrize("use_case", ["create", "edit", "withdraw"])
def test_an_announcement_and_its_audit_entry_are_one_unit(instance, monkeypatch, use_case):
    store, settings = instance
    made = dict(kind="alert", title="Road closed", body="Detour via 5th.", beats=["K3"])
    ann = None
    if use_case != "create":
        ann = announcements.create_announcement(store, settings, **made, actor="a", now=NOW)
    before = store.outbox.announcement(ann.uid) if ann else None
    actions = _audit_actions(store)
    with monkeypatch.context() as m:
        _break(m, store.accounts, "audit")
        with pytest.raises(Boom):
            if use_case == "create":
                announcements.create_announcement(store, settings, **made, actor="a", now=NOW)
            elif use_case == "edit":
                announcements.edit_announcement(
                    store,
                    settings,
                    ann.uid,
                    kind="alert",
                    title="Road open",
                    body="",
                    expires_at=None,
                    actor="a",
                    now=NOW,
                )
            else:
                announcements.withdraw_announcement(store, ann.uid, actor="a", now=NOW)
    assert _audit_actions(store) == actions
    if use_case == "create":
        assert (
            store.outbox.public_announcements(
                store.beatmaps.active_beat_set_id(), now=NOW + timedelta(days=1), limit=10
            )
            == []
        )
    else:
        assert store.outbox.announcement(ann.uid) == before
