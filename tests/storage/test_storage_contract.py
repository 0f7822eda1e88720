"""One storage contract, run over every backend: SQLite (a file) and PostgreSQL.

PostgreSQL cases use a fresh, randomly named database on the server named by
BEATFEEDS_TEST_POSTGRES_URL (the role needs CREATEDB); they skip locally without it and fail
under CI=true. Everything goes through SQLStore and the domain functions, never raw SQL,
except where the store has no API yet (retracting an incident).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, update

from beatfeeds.core.errors import Conflict, NoActiveBeatMap, NotFound
from beatfeeds.core.identifiers import entry_uid
from beatfeeds.services import beatmaps, imports
from beatfeeds.services.imports import ImportOptions
from beatfeeds.storage import SQLStore, schema
from tests.support.exports import fire_row, write_fire
from tests.support.instance import NOW, SAMPLE
from tests.support.storage import IMPORTED, K3, SOURCE, import_rows, load_beats, row


# ---- helpers --------------------------------------------------------------------------------
def public_uids(store, set_id: int, now=NOW) -> set[str]:
    return {e.uid for e in store.public_entries(set_id, now=now, limit=10_000)}


def uid(store, external_id: str) -> str:
    return entry_uid(SOURCE, external_id, store.identifier_key())


# ---- schema -----------------------------------------------------------------------------------
def test_upgrade_reaches_head_and_is_idempotent(bare):
    head = bare.head_revision()
    assert bare.current_revision() is None
    assert not bare.is_current()
    assert bare.upgrade() == (None, head)
    assert bare.upgrade() == (head, head)
    assert bare.current_revision() == head
    assert bare.is_current()
    assert bare.ping()


def test_upgrading_a_populated_database_keeps_every_row(bare, cfg, tmp_path):
    # 0007 copies the incidents table on SQLite; the beat rows referencing it (ON DELETE
    # CASCADE) must survive, and foreign keys must be enforced again afterwards.
    from alembic import command

    from beatfeeds.storage.engine import _alembic_config

    with bare.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0006")
    load_beats(bare, publish=True)
    assert import_rows(bare, cfg, tmp_path / "a.csv", [row("A1"), row("A2")])["new"] == 2

    def counts():
        with bare.engine.connect() as conn:
            return tuple(
                conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar()
                for name in ("incidents", "incident_beats")
            )

    before = counts()
    assert before == (2, 2)
    assert bare.upgrade() == ("0006", bare.head_revision())
    assert counts() == before
    with bare.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(Exception, match="(?i)unique"), bare.engine.begin() as conn:
        conn.execute(
            update(schema.incidents)
            .where(schema.incidents.c.external_id == "A2")
            .values(uid=uid(bare, "A1"))
        )
    assert public_uids(bare, bare.active_beat_set_id()) == {uid(bare, "A1"), uid(bare, "A2")}


def test_upgrading_to_0008_rekeys_only_the_ids_made_from_row_text(bare, cfg, tmp_path):
    # A 0007 database: uids were SHA-256 of (source, external id), no instance key. 0008
    # makes the key and re-keys the fallback-keyed (`h:`) incidents, in the queues too;
    # incidents with a source id keep the uids they were published with.
    import hashlib

    from alembic import command

    from beatfeeds.core import identifiers
    from beatfeeds.services import outbound_accounts
    from beatfeeds.storage.engine import _alembic_config

    with bare.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0007")
    load_beats(bare, publish=True)
    assert import_rows(bare, cfg, tmp_path / "a.csv", [row("A1"), row("A2")])["new"] == 2
    fire = write_fire(
        tmp_path / "fire.csv",
        [
            fire_row("11/20/2026 10:00:00 AM +0000"),
            fire_row("11/20/2026 10:05:00 AM +0000"),
            fire_row("11/20/2026 10:10:00 AM +0000", number="F1"),
        ],
    )
    fire_opts = ImportOptions(preset="seattle-fire-911")
    assert imports.import_file(bare, fire, fire_opts, cfg, now=IMPORTED).counters["new"] == 3

    def old_uid(source, external_id):
        return hashlib.sha256(f"{source}\x1f{external_id}".encode()).hexdigest()[:20]

    i = schema.incidents.c
    columns = select(i.id, i.uid, i.source, i.external_id)  # the columns 0007 has
    with bare.engine.begin() as conn:  # as 0007 stored them
        for r in conn.execute(columns).all():
            conn.execute(
                update(schema.incidents)
                .where(i.id == r.id)
                .values(uid=old_uid(r.source, r.external_id))
            )
        conn.execute(schema.meta.delete().where(schema.meta.c.key == identifiers.KEY_META))
        rows = {r.external_id: r for r in conn.execute(columns)}
    hashed = sorted(k for k in rows if k.startswith("h:"))
    assert len(hashed) == 2 and "F1" in rows
    account = outbound_accounts.add_account(
        bare,
        cfg,
        area_kind="beat",
        area_code="K3",
        service="webhook",
        label="",
        endpoint="https://h.test/x",
        credentials={"secret": "s"},
        actor="admin",
        now=NOW,
    )
    base = {
        "account_id": account,
        "entry_kind": "incident",
        "category": "other",
        "due_at": NOW,
        "next_attempt_at": NOW,
        "attempts": 1,
        "dry_run": False,
        "created_at": NOW,
        "text": None,
        "remote_url": None,
    }
    bare.enqueue_outbox(
        [
            base | {"entry_uid": rows[hashed[0]].uid, "status": "pending"},
            base | {"entry_uid": rows["F1"].uid, "status": "sent", "text": "posted F1"},
            base
            | {
                "entry_uid": rows[hashed[1]].uid,
                "status": "deleted",
                "text": "12XX BLOCK OF 5TH AVE",
                "remote_url": "https://h.test/p/1",
            },
        ]
    )
    bare.save_email_subscription(
        address="r@example.test",
        area_kind="city",
        area_code=None,
        categories=(),
        frequency="instant",
        now=NOW,
    )
    subscriber = bare.email_subscriptions()[0].subscriber_id
    bare.enqueue_email_deliveries(
        [
            {
                "subscriber_id": subscriber,
                "entry_uid": rows[k].uid,
                "status": "pending",
                "due_at": NOW,
                "next_attempt_at": NOW,
                "attempts": 0,
                "created_at": NOW,
            }
            for k in (hashed[0], "A1")
        ]
    )

    assert bare.upgrade() == ("0007", bare.head_revision())
    store = SQLStore(bare.engine)  # not the one that cached the key before
    key = store.identifier_key()
    assert store.get_meta(identifiers.KEY_META) == key.hex()
    with bare.engine.connect() as conn:
        after = {r.external_id: r for r in conn.execute(columns)}
    assert after.keys() == rows.keys()
    for k, r in after.items():
        if k.startswith("h:"):
            assert r.uid == entry_uid("seattle-fire-911", k, key) != rows[k].uid
        else:
            assert r.uid == rows[k].uid  # a source id: the published id stays
    queued = sorted(store.list_outbox(), key=lambda o: o.id)
    assert [o.entry_uid for o in queued] == [
        after[hashed[0]].uid,
        after["F1"].uid,
        after[hashed[1]].uid,
    ]
    assert queued[1].text == "posted F1"  # still up on its service
    assert queued[2].text is None and queued[2].remote_url is None  # withdrawn
    assert sorted(d.entry_uid for d in store.email_deliveries()) == sorted(
        [after[hashed[0]].uid, after["A1"].uid]
    )
    assert public_uids(store, store.active_beat_set_id()) == {r.uid for r in after.values()}
    # Re-imports find every incident again and keep every uid.
    assert imports.import_file(store, fire, fire_opts, cfg, now=NOW).counters["unchanged"] == 3
    assert import_rows(store, cfg, tmp_path / "a.csv")["unchanged"] == 2
    with bare.engine.connect() as conn:
        assert {r.external_id: r.uid for r in conn.execute(schema.incidents.select())} == {
            k: r.uid for k, r in after.items()
        }
    assert store.upgrade()[0] == store.head_revision()  # and once only


def test_head_revision_is_the_one_alembic_finds(bare):
    # head_revision reads the migration files itself (Alembic is slow to import).
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from beatfeeds.storage.engine import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert bare.head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def test_migrated_schema_matches_the_table_definitions(db):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, schema.metadata)
    assert diffs == []


def test_meta_values_are_replaced(db):
    assert db.get_meta("k") is None
    db.set_meta("k", "one")
    db.set_meta("k", "two")
    assert db.get_meta("k") == "two"


# ---- beat maps --------------------------------------------------------------------------------
def test_publishing_a_beat_map_retires_the_previous_one(db, cfg, tmp_path):
    with pytest.raises(NoActiveBeatMap):
        db.active_beat_set()
    assert db.active_beat_set_id() is None
    first = load_beats(db, publish=False)
    assert db.get_beat_set(first).status == "draft"
    assert db.beat_sets_for_join() == [first]
    assert beatmaps.publish_beat_map(db, first, now=NOW) == 0
    import_rows(db, cfg, tmp_path / "a.csv", [row("A1"), row("A2"), row("U", where=None)])

    later = NOW + timedelta(hours=1)
    second = load_beats(db, publish=False, now=later)
    assert db.active_beat_set_id() == first  # a draft changes nothing public
    assert db.beat_sets_for_join() == [first, second]
    import_rows(db, cfg, tmp_path / "b.csv", [row("B1")])  # joined to every non-retired map
    # Publishing joins the located incidents the map has not seen: A1 and A2, not B1 or U.
    assert beatmaps.publish_beat_map(db, second, now=later) == 2

    third = load_beats(db, publish=False, now=later)
    assert beatmaps.publish_beat_map(db, third, now=later) == 3

    sets = {bs.id: bs for bs in db.list_beat_sets()}
    assert [bs.status for bs in sets.values()].count("active") == 1
    assert sets[first].status == "retired"
    assert sets[second].status == "retired"
    assert sets[third].status == "active"
    assert sets[third].published_at == later
    assert sets[third].beat_count == sets[first].beat_count == 51
    assert db.active_beat_set().id == third
    assert db.beat_sets_for_join() == [third]
    for set_id in (first, second, third):
        entries = db.public_entries(set_id, now=later)
        assert {e.uid for e in entries} == {uid(db, "A1"), uid(db, "A2"), uid(db, "B1")}
        assert {e.beat for e in entries} == {"K3"}
    with pytest.raises(Conflict):
        db.publish_beat_set(third, now=later)
    with pytest.raises(NotFound):
        db.publish_beat_set(99_999, now=later)
    with pytest.raises(NotFound):
        db.get_beat_set(99_999)


# ---- imports ----------------------------------------------------------------------------------
def test_reimporting_the_same_file_changes_nothing(beats_db, cfg):
    first = imports.import_file(beats_db, SAMPLE, ImportOptions(), cfg, now=NOW).counters
    assert first["new"] > 300 and first["rejected"] == 0
    count = beats_db.incident_count()
    assert count == first["new"]
    later = NOW + timedelta(minutes=5)
    second = imports.import_file(beats_db, SAMPLE, ImportOptions(), cfg, now=later).counters
    assert second["new"] == 0
    assert second["updated"] == 0
    assert second["unchanged"] == first["new"]
    assert second["read"] == first["read"]
    assert beats_db.incident_count() == count
    runs = beats_db.list_import_runs()
    assert [r.counters for r in runs] == [second, first]  # newest first
    assert all(r.status == "done" for r in runs)


def test_a_changed_row_is_updated_in_place_and_keeps_its_uid(beats_db, cfg, tmp_path):
    first = import_rows(beats_db, cfg, tmp_path / "v1.csv", [row("A"), row("B"), row("C")])
    assert (first["new"], first["updated"]) == (3, 0)
    before = beats_db.incident_private(SOURCE, "B")
    later = NOW + timedelta(hours=1)
    second = import_rows(
        beats_db,
        cfg,
        tmp_path / "v2.csv",
        [row("A"), row("B", desc="THEFT - SHOPLIFT"), row("C")],
        now=later,
    )
    assert (second["new"], second["updated"], second["unchanged"]) == (0, 1, 2)
    after = beats_db.incident_private(SOURCE, "B")
    assert after["uid"] == before["uid"] == uid(beats_db, "B")
    assert after["id"] == before["id"]
    assert after["description"] == "THEFT - SHOPLIFT"
    assert after["row_hash"] != before["row_hash"]
    assert after["created_at"] == before["created_at"] == IMPORTED
    assert after["updated_at"] == later
    assert beats_db.incident_count() == 3
    entry = beats_db.public_entry(beats_db.active_beat_set_id(), uid(beats_db, "B"), now=later)
    assert entry.description == "THEFT - SHOPLIFT"
    assert entry.beat == "K3"


def test_identical_repeated_rows_count_as_duplicates(beats_db, cfg, tmp_path):
    rows = [row("A"), row("A"), row("B"), row("A")]
    first = import_rows(beats_db, cfg, tmp_path / "dup.csv", rows)
    assert (first["read"], first["new"], first["duplicate"]) == (4, 2, 2)
    # The same across chunk boundaries.
    second = import_rows(beats_db, cfg, tmp_path / "dup.csv", chunk_rows=1)
    assert (second["read"], second["new"], second["unchanged"], second["duplicate"]) == (4, 0, 2, 2)
    assert beats_db.incident_count() == 2


def test_a_dry_run_changes_nothing(beats_db, cfg, tmp_path):
    audit_before = beats_db.audit_log()
    report = imports.import_file(beats_db, SAMPLE, ImportOptions(dry_run=True), cfg, now=NOW)
    assert report.counters["new"] > 300
    assert report.run_id is None
    assert beats_db.incident_count() == 0
    assert beats_db.list_import_runs() == []
    assert beats_db.audit_log() == audit_before

    import_rows(beats_db, cfg, tmp_path / "v1.csv", [row("A"), row("B")])
    stored = beats_db.incident_private(SOURCE, "A")
    runs = beats_db.list_import_runs()
    audit_before = beats_db.audit_log()
    counters = import_rows(
        beats_db,
        cfg,
        tmp_path / "v2.csv",
        [row("A", desc="CHANGED"), row("B"), row("C")],
        dry_run=True,
        now=NOW + timedelta(hours=1),
    )
    assert (counters["new"], counters["updated"], counters["unchanged"]) == (1, 1, 1)
    assert beats_db.incident_private(SOURCE, "A") == stored
    assert beats_db.incident_private(SOURCE, "C") is None
    assert beats_db.incident_count() == 2
    assert beats_db.list_import_runs() == runs
    assert beats_db.audit_log() == audit_before


# ---- public entries ---------------------------------------------------------------------------
def test_public_entries_hide_what_must_not_be_published(beats_db, cfg, tmp_path):
    set_id = beats_db.active_beat_set_id()
    counters = import_rows(
        beats_db,
        cfg,
        tmp_path / "mixed.csv",
        [
            row("SHOWN"),
            row("SENSITIVE", sensitive="yes"),
            row("SUPPRESSED-CATEGORY", desc="DOMESTIC DISTURBANCE"),
            row("UNLOCATED", where=None),
            row("NOT-YET-DUE", when="2026-11-26T11:30:00Z"),  # due 12:30, an hour after the event
            row("RETRACTED"),
        ],
    )
    assert counters["new"] == 6
    assert counters["unlocated"] == 1
    with beats_db.engine.begin() as conn:  # no store API for retraction yet
        conn.execute(
            update(schema.incidents)
            .where(schema.incidents.c.uid == uid(beats_db, "RETRACTED"))
            .values(retracted_at=NOW, retraction_reason="entered in error")
        )

    assert public_uids(beats_db, set_id) == {uid(beats_db, "SHOWN")}
    assert beats_db.public_counts_by_beat(set_id, now=NOW) == {"K3": 1}
    for hidden in ("SENSITIVE", "SUPPRESSED-CATEGORY", "UNLOCATED", "NOT-YET-DUE", "RETRACTED"):
        assert beats_db.public_entry(set_id, uid(beats_db, hidden), now=NOW) is None, hidden
    assert beats_db.incident_private(SOURCE, "SENSITIVE")["suppressed_reason"]
    assert beats_db.incident_private(SOURCE, "UNLOCATED")["lat"] is None

    later = NOW + timedelta(minutes=31)
    assert public_uids(beats_db, set_id, now=later) == {
        uid(beats_db, "SHOWN"),
        uid(beats_db, "NOT-YET-DUE"),
    }
    # Area filters and order: newest first.
    entries = beats_db.public_entries(set_id, now=later, beat="K3", sector="K", precinct="W")
    assert [e.uid for e in entries] == [uid(beats_db, "NOT-YET-DUE"), uid(beats_db, "SHOWN")]
    assert beats_db.public_entries(set_id, now=later, beat="K1") == []
    assert len(beats_db.public_entries(set_id, now=later, limit=1, offset=1)) == 1


# ---- users, sign-in, audit --------------------------------------------------------------------
def test_users_are_added_updated_and_looked_up(db):
    user_id = db.add_user("b@example.test", "records", "hash-1", NOW)
    db.add_user("a@example.test", "admin", "hash-2", NOW)
    with pytest.raises(Conflict):
        db.add_user("b@example.test", "admin", "hash-3", NOW)
    user = db.user_by_email("b@example.test")
    assert user == db.user_by_id(user_id)
    assert (user.role, user.password_hash, user.disabled) == ("records", "hash-1", False)
    assert user.created_at == user.password_changed_at == NOW
    later = NOW + timedelta(days=1)
    db.update_user(
        "b@example.test",
        role="admin",
        disabled=True,
        password_hash="hash-4",
        password_changed_at=later,
        last_login_at=later,
    )
    user = db.user_by_id(user_id)
    assert (user.role, user.password_hash, user.disabled) == ("admin", "hash-4", True)
    assert user.password_changed_at == later
    assert [u.email for u in db.list_users()] == ["a@example.test", "b@example.test"]
    assert db.user_by_email("nobody@example.test") is None
    assert db.user_by_id(99_999) is None
    with pytest.raises(NotFound):
        db.update_user("nobody@example.test", disabled=True)


def test_failed_logins_are_counted_by_email_client_and_time(db):
    for minutes, email, client, ok in [
        (90, "a@x.test", "c1", False),
        (10, "a@x.test", "c1", False),
        (5, "a@x.test", "c2", False),
        (4, "a@x.test", "c1", True),
        (1, "b@x.test", "c1", False),
    ]:
        db.record_login_attempt(email, client, ok, NOW - timedelta(minutes=minutes))
    window = NOW - timedelta(minutes=15)
    assert db.failed_logins_since(window) == 3
    assert db.failed_logins_since(window, email="a@x.test") == 2
    assert db.failed_logins_since(window, client="c1") == 2
    assert db.failed_logins_since(window, email="a@x.test", client="c1") == 1
    assert db.failed_logins_since(NOW - timedelta(hours=2), email="a@x.test") == 3
    assert db.prune_login_attempts(NOW - timedelta(minutes=30)) == 1
    assert db.failed_logins_since(NOW - timedelta(days=1)) == 3


def test_audit_log_is_appended_newest_first_and_follows_transactions(db):
    db.audit(
        "admin@x.test", "users.add", "user:1", {"role": "records", "email": "b@x.test"}, now=NOW
    )
    db.audit("cli", "db.upgrade", now=NOW + timedelta(seconds=1))
    with db.transaction() as conn:
        db.audit("cli", "kept", now=NOW, conn=conn)
    with db.transaction(rollback=True) as conn:
        db.audit("cli", "rolled-back", now=NOW, conn=conn)
    log = db.audit_log()
    assert [e["action"] for e in log] == ["kept", "db.upgrade", "users.add"]
    first = log[-1]
    assert (first["actor"], first["target"], first["at"]) == ("admin@x.test", "user:1", NOW)
    assert first["detail"] == '{"email": "b@x.test", "role": "records"}'
    assert log[1]["target"] is None and log[1]["detail"] is None
    assert len(db.audit_log(limit=1)) == 1


def test_versions_of_one_incident_in_a_file_last_wins_and_a_rerun_updates_nothing(
    beats_db, cfg, tmp_path
):
    rows = [
        row("A"),
        row("B"),
        row("A", desc="THEFT - SHOPLIFT"),
        row("C"),
        row("B", addr="2000 E JEFFERSON ST"),
    ]
    first = import_rows(beats_db, cfg, tmp_path / "v.csv", rows)
    assert (first["read"], first["new"], first["duplicate"], first["updated"]) == (5, 3, 2, 0)
    assert beats_db.incident_private(SOURCE, "A")["description"] == "THEFT - SHOPLIFT"
    assert beats_db.incident_private(SOURCE, "B")["block_address"] == "20XX BLOCK OF E JEFFERSON ST"
    again = import_rows(beats_db, cfg, tmp_path / "v.csv")
    assert (again["new"], again["updated"], again["unchanged"], again["duplicate"]) == (0, 0, 3, 2)
    # Across chunk boundaries the last version still wins, inserted in bulk on every backend.
    fresh = [row(f"X{i}", where=(K3[0], K3[1]) if i % 3 else None) for i in range(7)]
    fresh += [row("X1", desc="THEFT - AUTO")]
    counters = import_rows(beats_db, cfg, tmp_path / "x.csv", fresh, chunk_rows=3)
    assert (counters["new"], counters["updated"], counters["unlocated"]) == (7, 1, 3)
    stored = beats_db.incident_private(SOURCE, "X1")
    assert stored["description"] == "THEFT - AUTO" and stored["uid"] == uid(beats_db, "X1")
    assert stored["occurred_at"] == NOW.replace(day=20, hour=18, minute=0)
    assert beats_db.incident_private(SOURCE, "X0")["lat"] is None
    assert list(beats_db.incident_private(SOURCE, "X2")["beats"].values()) == ["K3"]
