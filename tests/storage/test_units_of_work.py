"""The store's shape (a facade over repositories) and its units of work, over every backend:
write transactions that lock as they begin, one active beat map kept by the database itself,
and integrity errors that reach users as Conflict."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError

from beatfeeds.core.errors import Conflict
from beatfeeds.storage import REPOSITORIES, SQLStore, schema
from beatfeeds.storage.engine import unavailable_reason, write_wait
from tests.support.instance import NOW
from tests.support.storage import load_beats


def _active_ids(store) -> list[int]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                select(schema.beat_sets.c.id).where(schema.beat_sets.c.status == "active")
            ).scalars()
        )


# ---- the facade ---------------------------------------------------------------------------------
def test_the_store_forwards_each_name_to_the_one_repository_defining_it(db):  # noqa: F811
    owners: dict[str, list[str]] = {}
    for attr in REPOSITORIES:
        repo = getattr(db, attr)
        for name, value in vars(type(repo)).items():
            if not name.startswith("_") and callable(value) and name not in vars(SQLStore):
                owners.setdefault(name, []).append(attr)
    assert {n: a for n, a in owners.items() if len(a) > 1} == {}
    assert len(owners) > 100
    for name, (attr,) in owners.items():
        assert getattr(db, name) == getattr(getattr(db, attr), name), name
    with pytest.raises(AttributeError, match="no_such_method"):
        db.no_such_method  # noqa: B018
    with pytest.raises(AttributeError):
        db._public_entries_query  # noqa: B018 (private helpers are not forwarded)


# ---- write transactions ---------------------------------------------------------------------------
def test_a_write_transaction_holds_the_write_lock_from_its_start(db, cfg):  # noqa: F811
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL writers lock rows, not the database")
    other = SQLStore.from_url(cfg.database_url)
    try:
        with db.db.begin() as conn:
            conn.execute(select(func.count()).select_from(schema.beat_sets))  # a read only
            with write_wait(0.1), pytest.raises(DBAPIError) as refused:
                other.set_meta("k", "v")
        assert unavailable_reason(refused.value) == "locked by another writer"
        other.set_meta("k", "v")  # and once it is committed, the other writes
        assert db.get_meta("k") == "v"
    finally:
        other.dispose()


def test_the_database_refuses_a_second_active_beat_map(db):  # noqa: F811
    first = load_beats(db, publish=True)
    second = load_beats(db, publish=False, now=NOW + timedelta(hours=1))
    with pytest.raises(Conflict, match="Another beat map was published at the same time"):
        with db.db.begin() as conn:
            conn.execute(
                schema.beat_sets.update()
                .where(schema.beat_sets.c.id == second)
                .values(status="active")
            )
    assert _active_ids(db) == [first]


def test_a_duplicate_key_is_a_conflict_with_a_clear_message(db):  # noqa: F811
    db.set_meta("once", "one")
    with pytest.raises(Conflict) as err:
        with db.db.begin() as conn:
            conn.execute(schema.meta.insert().values(key="once", value="two"))
    assert "conflicts with data already stored" in err.value.message
    assert err.value.http_status == 409


def test_two_stores_publishing_two_maps_at_once_leave_one_active(db, cfg):  # noqa: F811
    old = load_beats(db, publish=True)
    one_map = load_beats(db, publish=False, now=NOW + timedelta(hours=1))
    two_map = load_beats(db, publish=False, now=NOW + timedelta(hours=2))
    one = SQLStore.from_url(cfg.database_url)
    two = SQLStore.from_url(cfg.database_url)
    inside = threading.Event()
    outcomes: dict[str, object] = {}

    # `one` stops just before it activates its map, with the old map already retired in
    # its transaction; `two` publishes then, on the state it can see.
    @event.listens_for(one.engine, "before_cursor_execute")
    def pause(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE beat_sets") and "retired_at" in statement:
            if not inside.is_set() and parameters and "active" in str(parameters):
                inside.set()
                threading.Event().wait(0.5)  # `two` starts and reaches the database

    def publish(name, store, set_id):
        try:
            outcomes[name] = store.publish_beat_set(set_id, now=NOW + timedelta(hours=3))
        except Exception as exc:  # noqa: BLE001 (the test reports what each one met)
            outcomes[name] = exc

    first = threading.Thread(target=publish, args=("one", one, one_map))
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=publish, args=("two", two, two_map))
    second.start()
    first.join(30)
    second.join(30)
    try:
        assert len(_active_ids(db)) == 1
        for name, outcome in outcomes.items():
            assert not isinstance(outcome, Exception) or isinstance(outcome, Conflict), (
                name,
                outcome,
            )
        assert outcomes["one"] == old  # `one` retired the map active when it began
        if db.dialect == "sqlite":
            # Serialised by BEGIN IMMEDIATE: `two` waited, then retired `one`'s map.
            assert outcomes["two"] == one_map
            assert _active_ids(db) == [two_map]
        elif isinstance(outcomes["two"], Conflict):
            assert _active_ids(db) == [one_map]
        assert {bs.status for bs in db.list_beat_sets() if bs.id == old} == {"retired"}
    finally:
        one.dispose()
        two.dispose()
