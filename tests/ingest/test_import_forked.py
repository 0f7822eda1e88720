"""Big files are parsed in a forked child process while the parent writes: same result as
in one process, errors reach the parent, and a child never outlives its parent's run."""

import os
import pickle
import signal
import subprocess
import sys
import time

import pytest

from beatfeeds.core import identifiers
from beatfeeds.ingest import columnar, forked
from beatfeeds.services import imports
from beatfeeds.storage import SQLStore
from tests.support.imports import K3, good, run, write_csv
from tests.support.instance import load_default_beats

pytestmark = pytest.mark.skipif(not forked.available(), reason="this platform cannot fork")


def rows():
    out = [good(i, addr=f"{100 + i} PINE ST") for i in range(40)]
    out[5] = good(5, when="13/45/2016 99:00")  # bad date
    out[9] = good(9, lat="abc")  # not a number
    out[12] = ["", "03/25/2016 08:09:00 PM", "X", "X", "", *K3, "", ""]  # no key
    out.append(good(3, desc="a later version of 3"))  # duplicate key: the last wins
    out.append(good(50, desc="line one\nline two"))  # a quoted newline
    return out


def snapshot(store: SQLStore):
    with store.engine.connect() as conn:
        incidents = conn.exec_driver_sql(
            "SELECT uid, external_id, event_time, category, description, block_address, lat, "
            "lon, suppressed_reason, row_hash, publish_at FROM incidents ORDER BY id"
        ).all()
        beats = conn.exec_driver_sql(
            "SELECT i.uid, b.beat_code FROM incident_beats b "
            "JOIN incidents i ON i.id = b.incident_id "
            "ORDER BY i.id"
        ).all()
    return incidents, beats


def test_a_child_process_parses_with_exactly_the_in_process_result(
    tmp_path, beats_store, settings, monkeypatch
):
    path = write_csv(tmp_path / "big.csv", rows())
    used = []
    real = forked.iterate
    monkeypatch.setattr(forked, "iterate", lambda make: used.append(1) or real(make))

    monkeypatch.setattr(imports, "PARSE_APART_ROWS", 10**9)
    alone = run(beats_store, settings, path, chunk_rows=7)
    assert used == []

    other = SQLStore.from_url(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    other.upgrade()
    # uids derive from the database's identifier key: the same key, for the same uids
    other.set_meta(identifiers.KEY_META, beats_store.get_meta(identifiers.KEY_META))
    load_default_beats(other)
    monkeypatch.setattr(imports, "PARSE_APART_ROWS", 0)
    apart = run(other, settings, path, chunk_rows=7)
    assert used == [1]

    assert apart.counters == alone.counters
    assert alone.counters["new"] == 38 and alone.counters["rejected"] == 3
    assert [(r.line, r.reason) for r in apart.rejections] == [
        (r.line, r.reason) for r in alone.rejections
    ]
    assert [r.line for r in alone.rejections] == [7, 11, 14]
    assert snapshot(other) == snapshot(beats_store)
    # and again: nothing new, in either way
    assert run(other, settings, path, chunk_rows=7).counters["new"] == 0


def test_an_error_in_the_child_is_raised_in_the_parent_and_nothing_is_stored(
    tmp_path, beats_store, settings, monkeypatch
):
    path = write_csv(tmp_path / "big.csv", rows())
    calls = {"n": 0}
    real = columnar.validate_frame

    def failing(*a, **kw):  # runs in the child, which inherits this patch by forking
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("parser on fire")
        return real(*a, **kw)

    monkeypatch.setattr(columnar, "validate_frame", failing)
    monkeypatch.setattr(imports, "PARSE_APART_ROWS", 0)
    with pytest.raises(ValueError, match="parser on fire"):
        run(beats_store, settings, path, chunk_rows=7)
    assert beats_store.incident_count() == 0 and beats_store.list_import_runs() == []


def _dies():
    yield 1
    os._exit(3)


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def _raises_unpicklable():
    yield 1
    raise Unpicklable("deep trouble")


def test_a_child_that_dies_or_raises_what_cannot_travel_is_reported():
    with forked.iterate(_dies) as items:
        assert next(items) == 1
        with pytest.raises(forked.ChildFailed, match="exit code 3"):
            next(items)
    with pytest.raises(TypeError):
        pickle.dumps(Unpicklable("x"))
    with forked.iterate(_raises_unpicklable) as items:
        assert next(items) == 1
        with pytest.raises(RuntimeError, match="deep trouble"):
            next(items)


def test_leaving_early_stops_the_child():
    def endless():
        n = 0
        while True:
            n += 1
            yield n

    it = forked.iterate(endless)
    with it as items:
        assert next(items) == 1
    assert not it._child.is_alive()


SCRIPT = """
import sys, time
from beatfeeds.ingest import forked
def slow():
    n = 0
    while True:
        n += 1
        yield n
with forked.iterate(slow) as items:
    next(items)
    print(forked.multiprocessing.active_children()[0].pid, flush=True)
    time.sleep(60)
"""


def test_a_child_whose_parent_is_killed_exits():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:  # reap it if it became ours (it is re-parented to init or to this process)
            os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    pytest.fail("the parsing child outlived its killed parent")


@pytest.mark.parametrize(
    "values",
    [
        [],
        [""],
        ["a"],
        ["a", "", "b"],
        ["x\x00y", "z"],
        ["a", None],
        [1.5, None, 2],
        ["é", "漢字", "=cmd|' /C calc'!A0"],
    ],
)
def test_bound_columns_travel_between_processes_unchanged(values):
    from beatfeeds.storage.bulk import BoundValues

    back = pickle.loads(pickle.dumps(BoundValues(values)))
    assert back == values and type(back) is BoundValues
