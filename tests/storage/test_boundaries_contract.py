"""Beat-map storage over SQLite and PostgreSQL: drafts edited, changes recorded, moves read."""

from __future__ import annotations

from datetime import datetime

from beatfeeds.services import beatmaps
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.instance import DEFAULT_BEATS, NOW, SAMPLE


def test_edit_publish_and_rollback_record_what_changed(db, cfg):
    active = beatmaps.load_beat_map(db, DEFAULT_BEATS, now=NOW)
    beatmaps.publish_beat_map(db, active, now=NOW)
    import_file(db, SAMPLE, ImportOptions(preset="spd-911"), cfg, now=NOW)
    draft = beatmaps.edit_beat_map(
        db,
        active,
        {"op": "merge", "code": "K2", "other": "K3"},
        actor="admin@example.test",
        now=NOW,
    )
    assert draft != active and db.get_beat_set(draft).status == "draft"
    beatmaps.edit_beat_map(
        db,
        draft,
        {"op": "rename", "code": "B1", "new_code": "B7"},
        actor="admin@example.test",
        now=NOW,
    )
    assert len(db.beats(draft)) == 50

    d = beatmaps.diff_beat_sets(db, draft, since=datetime(2000, 1, 1))
    assert d.removed == ["K3"] and d.renamed == [("B1", "B7")]
    assert d.moves and {(m.old, m.new) for m in d.moves} == {("K3", "K2")}
    assert all(m.uid and m.block_address for m in d.moves)

    at = datetime(2026, 1, 2)
    beatmaps.publish_beat_map(db, draft, now=at)
    changes = {(c.kind, c.code): c.new_codes for c in db.boundary_changes(set_id=draft)}
    assert changes[("removed", "K3")] == ["K2"] and changes[("renamed", "B1")] == ["B7"]
    assert changes[("reshaped", "K2")] == []
    assert beatmaps.retired_beat(db, "K3").kind == "removed"
    assert beatmaps.retired_beat(db, "b1").new_codes == ["B7"]
    entries = beatmaps.beat_system_entries(db, "K3", now=at)
    assert len(entries) == 1 and "K2" in entries[0].title
    assert beatmaps.system_entry(db, entries[0].uid).title == entries[0].title

    beatmaps.rollback_beat_map(db, now=datetime(2026, 1, 3))
    assert db.active_beat_set_id() == active
    assert beatmaps.retired_beat(db, "K3") is None  # K3 is a beat again
    assert beatmaps.retired_beat(db, "B7").new_codes == ["B1"]
    actions = [a["action"] for a in db.audit_log()]
    assert actions.count("beats.edit") == 2 and "beats.copy" in actions


def test_area_changes_are_recorded_once_and_read_back(db):
    from beatfeeds.core.models import Beat

    active = beatmaps.load_beat_map(db, DEFAULT_BEATS, now=NOW)
    beatmaps.publish_beat_map(db, active, now=NOW)
    edited = [
        Beat(b.code, "Z" if b.sector == "B" else b.sector, b.precinct, b.geometry)
        for b in db.beats(active)
    ]
    new = db.create_beat_set(
        "sector B is Z",
        edited,
        effective_date=None,
        source_filename=None,
        created_by="test",
        now=NOW,
    )
    at = datetime(2026, 1, 2)
    beatmaps.publish_beat_map(db, new, now=at)
    recorded = db.boundary_changes(set_id=new)
    assert {(c.kind, c.code, tuple(c.new_codes)) for c in recorded} == {
        ("sector", "B", ("Z",)),
        ("city", "city", ()),
    }
    assert beatmaps.retired_area(db, "sector", "b").detail["change"] == "renamed"
    db.record_boundary_changes(new, active, recorded, now=at)  # a retry stores nothing more
    assert len(db.boundary_changes(set_id=new)) == 2
    assert [e.title for e in beatmaps.area_system_entries(db, "sector", "Z", now=at)] == [
        "Sector B is now Sector Z (beat map 2); its pages and feeds moved here."
    ]
