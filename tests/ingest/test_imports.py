"""Importing incident files: validation, counters, idempotency, atomicity, exit codes."""

import csv
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from beatfeeds.cli import main
from beatfeeds.core.errors import Conflict, UnusableFile
from beatfeeds.ingest.fields import parse_datetime
from beatfeeds.ingest.mapping import parse_map_options
from beatfeeds.services.import_chunks import Seen
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.imports import HEADER, K3, MAPS, good, run, write_csv
from tests.support.instance import DEFAULT_BEATS, NOW, shared

TZ = ZoneInfo("America/Los_Angeles")


def test_bad_rows_are_reported_with_line_and_reason_while_good_rows_import(
    tmp_path, beats_store, settings
):
    rows = [
        good(1),  # line 2
        ["", "03/25/2016 08:09:00 PM", "X", "X", "", *K3, "", ""],  # line 3: no key
        good(3, when="13/45/2016 99:00"),  # line 4: bad date
        good(4, desc="line one\nline two"),  # lines 5-6: quoted newline
        good(5, lat="abc"),  # line 7: not a number
        good(6, lat="95"),  # line 8: out of range
        good(7, lat="", lon=""),  # line 9: unlocated
        good(8, lat="0", lon="0"),  # line 10: unlocated
        good(9, lat="47.0", lon="-120.0"),  # line 11: outside every beat
        good(10, lat="nan", lon="-122.3"),  # line 12: NaN
        good(11, when=""),  # line 13: no time
    ]
    report = run(beats_store, settings, write_csv(tmp_path / "in.csv", rows))
    c = report.counters
    assert (c["read"], c["new"], c["rejected"], c["unlocated"], c["unassigned"]) == (11, 5, 6, 2, 1)
    reasons = {r.line: r.reason for r in report.rejections}
    assert set(reasons) == {3, 4, 7, 8, 12, 13}
    assert "missing key" in reasons[3]
    assert "13/45/2016" in reasons[4]
    assert "not a number" in reasons[7]
    assert "outside ±90" in reasons[8]
    assert "finite" in reasons[12]
    assert "no event time" in reasons[13]


def test_reimport_is_idempotent_and_corrections_update_in_place(tmp_path, beats_store, settings):
    path = write_csv(tmp_path / "a.csv", [good(1), good(2), good(2)])
    first = run(beats_store, settings, path)
    assert (first.counters["new"], first.counters["duplicate"]) == (2, 1)
    uid = beats_store.incident_private("test-source", "1")["uid"]
    again = run(beats_store, settings, path)
    assert (again.counters["new"], again.counters["unchanged"], again.counters["duplicate"]) == (
        0,
        2,
        1,
    )
    corrected = write_csv(tmp_path / "b.csv", [good(1, desc="THEFT - AUTO"), good(2)])
    third = run(beats_store, settings, corrected)
    assert (third.counters["new"], third.counters["updated"], third.counters["unchanged"]) == (
        0,
        1,
        1,
    )
    row = beats_store.incident_private("test-source", "1")
    assert row["uid"] == uid and row["description"] == "THEFT - AUTO"
    assert beats_store.incident_count() == 2


def test_a_crash_mid_import_leaves_the_database_as_it_was(
    tmp_path, beats_store, settings, monkeypatch
):
    path = write_csv(tmp_path / "c.csv", [good(i) for i in range(10)])
    calls = {"n": 0}
    real = beats_store.incidents.insert_prepared_incidents

    def failing(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(*a, **kw)

    monkeypatch.setattr(beats_store.incidents, "insert_prepared_incidents", failing)
    with pytest.raises(RuntimeError):
        run(beats_store, settings, path, chunk_rows=3)
    assert beats_store.incident_count() == 0
    assert beats_store.list_import_runs() == []
    monkeypatch.setattr(beats_store.incidents, "insert_prepared_incidents", real)
    assert run(beats_store, settings, path, chunk_rows=3).counters["new"] == 10


def test_a_new_sqlite_database_gets_16_kib_pages_and_keeps_them(tmp_path):
    from beatfeeds.storage import SQLStore

    store = SQLStore.from_url(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    store.upgrade()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 16384
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    old = tmp_path / "old.sqlite3"  # made with 4 KiB pages by something else: kept as it is
    import sqlite3

    sqlite3.connect(old).execute("CREATE TABLE t (x)").connection.close()
    store = SQLStore.from_url(f"sqlite:///{old}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 4096


def test_a_bulk_load_defers_the_time_indexes_and_rebuilds_them(
    tmp_path, beats_store, settings, monkeypatch
):
    import beatfeeds.storage.incidents as storage

    monkeypatch.setattr(storage, "_BULK_LOAD_ROWS", 5)
    calls = []
    real = beats_store.incidents.rebuild_incident_indexes
    monkeypatch.setattr(
        beats_store.incidents,
        "rebuild_incident_indexes",
        lambda conn: (calls.append(1), real(conn)),
    )
    report = run(
        beats_store,
        settings,
        write_csv(tmp_path / "b.csv", [good(i) for i in range(20)]),
        chunk_rows=3,
    )
    assert report.counters["new"] == 20 and calls == [1]
    with beats_store.engine.connect() as conn:
        names = {
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'incidents'"
            )
        }
        plan = " ".join(
            r[-1]
            for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM incidents WHERE publish_at > '2020'"
            )
        )
    assert {"ix_incidents_event_time", "ix_incidents_publish_at"} <= names
    assert "ix_incidents_publish_at" in plan
    # a smaller file into a bigger table keeps its indexes live
    calls.clear()
    run(beats_store, settings, write_csv(tmp_path / "s.csv", [good(i) for i in range(100, 106)]))
    assert calls == []


def test_dry_run_counts_but_changes_nothing(tmp_path, beats_store, settings):
    report = run(beats_store, settings, write_csv(tmp_path / "d.csv", [good(1)]), dry_run=True)
    assert report.counters["new"] == 1
    assert beats_store.incident_count() == 0 and beats_store.list_import_runs() == []


def test_sensitive_flag_always_suppresses(tmp_path, beats_store, settings):
    run(
        beats_store, settings, write_csv(tmp_path / "s.csv", [good(1, dv="Y"), good(2, dv="false")])
    )
    assert beats_store.incident_private("test-source", "1")["suppressed_reason"]
    assert beats_store.incident_private("test-source", "2")["suppressed_reason"] is None


def test_source_beat_is_kept_beside_our_join(tmp_path, beats_store, settings):
    run(beats_store, settings, write_csv(tmp_path / "b.csv", [good(1)]))
    row = beats_store.incident_private("test-source", "1")
    assert row["source_beat"] == "K3"
    assert list(row["beats"].values()) == ["K3"]


def test_encodings_bom_cp1252_and_semicolons(tmp_path, beats_store, settings):
    p1 = write_csv(tmp_path / "bom.csv", [good(1)], encoding="utf-8-sig")
    p2 = write_csv(
        tmp_path / "win.csv", [good(2, addr="1200 CAFÉ WAY")], encoding="cp1252", delimiter=";"
    )
    assert run(beats_store, settings, p1).counters["new"] == 1
    assert run(beats_store, settings, p2).counters["new"] == 1
    assert (
        beats_store.incident_private("test-source", "2")["block_address"]
        == "12XX BLOCK OF CAFÉ WAY"
    )


def test_unusable_files_name_the_problem(tmp_path, beats_store, settings):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(UnusableFile, match="empty"):
        run(beats_store, settings, empty)
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(UnusableFile, match="not text"):
        run(beats_store, settings, binary)
    missing = write_csv(
        tmp_path / "m.csv",
        [good(1)],
        header=["id", "when", "type", "desc", "addr", "LAT", "LON", "beat", "dv"],
    )
    with pytest.raises(UnusableFile, match="lat, lon"):
        run(beats_store, settings, missing)
    with pytest.raises(UnusableFile, match="No preset matches"):
        import_file(beats_store, missing, ImportOptions(), settings, now=NOW)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("03/25/2016 08:09:00 PM", datetime(2016, 3, 26, 3, 9)),  # PDT, UTC-7
        ("03/25/2016 12:05:00 AM", datetime(2016, 3, 25, 7, 5)),
        ("03/25/2016 12:05:00 PM", datetime(2016, 3, 25, 19, 5)),
        ("2016-01-15T10:00:00", datetime(2016, 1, 15, 18, 0)),  # PST, UTC-8
        ("2016-01-15T10:00:00Z", datetime(2016, 1, 15, 10, 0)),
        ("2016-01-15T10:00:00-0500", datetime(2016, 1, 15, 15, 0)),
        (
            " 2011-10-24T24:22:00+0000",
            datetime(2011, 10, 25, 7, 22),
        ),  # hour 24, local despite +0000
        ("2016-03-13T02:30:00", datetime(2016, 3, 13, 10, 30)),  # DST gap: pre-transition offset
        ("2016-11-06T01:30:00", datetime(2016, 11, 6, 8, 30)),  # DST overlap: first (PDT)
    ],
)
def test_parse_datetime(text, expected):
    assert parse_datetime(text, TZ, offset_is_local=text.endswith("+0000")) == expected


@pytest.mark.parametrize(
    "text", ["13/45/2016", "2016-02-30T10:00:00", "yesterday", "03/25/2016 13:00:00 PM"]
)
def test_parse_datetime_rejects(text):
    with pytest.raises(ValueError):
        parse_datetime(text, TZ)


def test_cli_exit_codes_and_report_location(tmp_path, runner):
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    ok = write_csv(inbox / "ok.csv", [good(1)])
    maps = [f"--map={k}={v}" for k, v in MAPS.items()]
    r = runner.invoke(main, ["incidents", "import", str(ok), *maps, "--source", "t"])
    assert r.exit_code == 0, r.output
    assert (
        "read 1 new 1 updated 0 unchanged 0 duplicate 0 unlocated 0 unassigned 1 rejected 0"
        in r.output
    )
    bad = write_csv(inbox / "bad.csv", [good(2), good(3, when="soon")])
    r = runner.invoke(main, ["incidents", "import", str(bad), *maps, "--source", "t"])
    assert r.exit_code == 1
    assert list(inbox.iterdir()) == [ok, bad] or sorted(inbox.iterdir()) == sorted([ok, bad])
    reports = list((tmp_path / "instance" / "reports").glob("*.csv"))
    assert len(reports) == 1
    lines = list(csv.reader(reports[0].open()))
    assert lines[0] == ["line", "reason", *HEADER]
    assert lines[1][:3] == ["3", "when: unrecognised date 'soon'", "3"]
    explicit = tmp_path / "rej.csv"
    r = runner.invoke(
        main, ["incidents", "import", str(bad), *maps, "--source", "t", "--report", str(explicit)]
    )
    assert r.exit_code == 1 and explicit.exists()
    cols = write_csv(inbox / "cols.csv", [["1"]], header=["nothing"])
    r = runner.invoke(main, ["incidents", "import", str(cols)])
    assert r.exit_code == 2
    assert "columns not found" in r.output


def test_formulas_are_neutralised_in_reports(tmp_path, beats_store, settings):
    formula = "=cmd|' /C calc'!A0"
    path = write_csv(tmp_path / "f.csv", [good(1, when=formula, desc="@SUM(A1)")])
    report = run(beats_store, settings, path)
    cells = list(csv.reader(Path(report.report_path).open()))[1]
    assert cells[3] == "'" + formula and cells[5] == "'@SUM(A1)"
    assert cells[8] == "-122.32245"  # numbers stay numbers
    assert not any(c.startswith(("=", "@")) for c in cells)


@pytest.mark.shared_data
def test_spd_911_twice_second_run_has_no_new(tmp_path, runner):
    path = shared("spd_911_incident_response_2016-03-25.csv")
    runner.invoke(main, ["db", "upgrade"])
    first = runner.invoke(main, ["incidents", "import", str(path), "--preset", "spd-911"])
    second = runner.invoke(main, ["incidents", "import", str(path), "--preset", "spd-911"])
    assert first.exit_code == 0 and " new 706 " in first.output
    assert second.exit_code == 0 and " new 0 " in second.output and "unchanged 706" in second.output


@pytest.mark.shared_data
def test_real_files_import_by_auto_detection(beats_store, settings):
    expected = {
        "spd_911_incident_response_2016-03-02.csv": ("spd-911", 673, 0),
        "spd_crime_data_robbery_2008_2021.csv": ("spd-crime", 21454, 747),
        "spd_call_data_blurred_sector_c_2010_2023.csv": ("spd-call-data", 275, 0),
        "seattle_fire_911_calls_mva_2010_2015.csv": ("seattle-fire-911", 13771, 25),
    }
    for name, (preset, read, unlocated) in expected.items():
        report = import_file(beats_store, shared(name), ImportOptions(), settings, now=NOW)
        assert report.preset == preset
        assert report.counters["read"] == read
        assert report.counters["rejected"] == 0, report.rejections[:3]
        assert report.counters["unlocated"] == unlocated


@pytest.mark.shared_data
def test_fire_quirks_hour_24_and_house_numbers(beats_store, settings):
    import_file(
        beats_store,
        shared("seattle_fire_911_calls_mva_2010_2015.csv"),
        ImportOptions(preset="seattle-fire-911"),
        settings,
        now=NOW,
    )
    rows = list(csv.DictReader(shared("seattle_fire_911_calls_mva_2010_2015.csv").open()))
    hour24 = next(r for r in rows if "T24:" in r["Datetime"] and r["Incident Number"])
    stored = beats_store.incident_private("seattle-fire-911", hour24["Incident Number"])
    day = int(hour24["Datetime"].strip()[8:10])
    local = stored["occurred_at"].replace(tzinfo=ZoneInfo("UTC")).astimezone(TZ)
    assert (local.day, local.hour) == (day + 1, 0)
    house = next(
        r
        for r in rows
        if r["Address"][:1].isdigit() and "/" not in r["Address"] and r["Incident Number"]
    )
    public = beats_store.incident_private("seattle-fire-911", house["Incident Number"])[
        "block_address"
    ]
    assert "XX BLOCK OF" in public
    assert house["Address"].split()[0] not in public.split()


def test_map_options_are_checked():
    with pytest.raises(Exception, match="unknown field"):
        parse_map_options(["colour=Type"])


def test_each_incident_gets_one_beat_row_per_map_null_outside_every_beat(
    tmp_path, beats_store, settings
):
    rows = [good(1), good(2, lat="47.0", lon="-120.0"), good(3, lat="", lon=""), good(4)]
    run(beats_store, settings, write_csv(tmp_path / "b.csv", rows))
    with beats_store.engine.connect() as conn:
        got = conn.exec_driver_sql(
            "SELECT i.external_id, b.beat_set_id, b.beat_code FROM incidents i "
            "JOIN incident_beats b ON b.incident_id = i.id ORDER BY i.external_id"
        ).all()
    set_id = beats_store.active_beat_set_id()
    assert [tuple(r) for r in got] == [
        ("1", set_id, "K3"),
        ("2", set_id, None),
        ("3", set_id, None),
        ("4", set_id, "K3"),
    ]


def test_imports_write_unchecked_but_leave_no_broken_reference(tmp_path, beats_store, settings):
    # Imports skip SQLite's per-row foreign key lookups; what they wrote must still hold, and
    # the connection must enforce foreign keys again for whatever uses it next.
    path = write_csv(tmp_path / "a.csv", [good(1), good(2, lat="", lon=""), good(3)])
    assert run(beats_store, settings, path).counters["new"] == 3
    corrected = write_csv(tmp_path / "b.csv", [good(1, desc="THEFT - AUTO"), good(4)])
    assert run(beats_store, settings, corrected).counters["updated"] == 1
    with beats_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM incident_beats").scalar() == 4


def test_a_beat_map_deleted_as_an_import_starts_stops_it_with_nothing_stored(
    tmp_path, beats_store, settings, monkeypatch
):
    from beatfeeds.services import beatmaps

    draft = beatmaps.load_beat_map(
        beats_store, DEFAULT_BEATS, code_field="beat", name="draft", now=NOW
    )
    real = type(beats_store.incidents).source_has_incidents

    def deleting_the_draft(self, conn, source):
        with self.engine.begin() as c:  # another admin's hand, between read and write
            c.exec_driver_sql("DELETE FROM beats WHERE beat_set_id = ?", (draft,))
            c.exec_driver_sql("DELETE FROM beat_sets WHERE id = ?", (draft,))
        monkeypatch.setattr(type(beats_store.incidents), "source_has_incidents", real)
        return real(self, conn, source)

    monkeypatch.setattr(type(beats_store.incidents), "source_has_incidents", deleting_the_draft)
    with pytest.raises(Conflict, match="beat map was deleted"):
        run(beats_store, settings, write_csv(tmp_path / "a.csv", [good(1)]))
    assert beats_store.incident_private("test-source", "1") is None
    assert run(beats_store, settings, tmp_path / "a.csv").counters["new"] == 1


@pytest.mark.parametrize("unit", ["us", "s"])
@pytest.mark.parametrize(
    "first, span_days, whole_seconds",
    [
        ("2008-01-01", 18 * 365, True),
        ("2008-01-01", 18 * 365, False),
        ("1850-06-01", 200 * 365, False),
        ("0001-01-01", 30, True),
        ("9999-12-01", 30, False),
    ],
)
def test_datetimes_are_written_exactly_as_numpy_writes_them(unit, first, span_days, whole_seconds):
    # Stored timestamps and row hashes are made from this text: one character off and every
    # re-import would report each row as changed.
    import numpy as np

    from beatfeeds.ingest.columnar import format_datetimes

    rng = np.random.default_rng(7)
    step = 1_000_000 if whole_seconds else 1
    offsets = rng.integers(0, span_days * 86_400_000_000 // step, 20_000) * step
    values = np.datetime64(first, "us") + offsets.astype("timedelta64[us]")
    values[::9] = np.datetime64("NaT")
    expected = [
        None
        if np.isnat(v)
        else str(np.datetime_as_string(v.astype(f"datetime64[{unit}]"), unit=unit)).replace(
            "T", " "
        )
        for v in values
    ]
    assert format_datetimes(values, sep=" ", unit=unit) == expected
    if first.startswith("2008"):  # as parsed: nanoseconds
        assert format_datetimes(values.astype("datetime64[ns]"), sep=" ", unit=unit) == expected
    beyond = np.array(["10000-01-01T00:00", "-0001-05-05T01:02:03"], dtype="datetime64[us]")
    assert format_datetimes(beyond, unit=unit) == np.datetime_as_string(beyond, unit=unit).tolist()
    assert format_datetimes(values[:0], unit=unit) == []


def test_keys_seen_in_a_run_are_found_with_their_newest_hash():
    import numpy as np

    rng = np.random.default_rng(11)
    seen, reference = Seen(), {}
    for _ in range(40):  # chunks of a run, keys repeating across chunks
        keys = rng.integers(0, 5_000, rng.integers(0, 400)).astype(np.uint64)
        keys = np.unique(keys)
        rng.shuffle(keys)
        hashes = rng.integers(0, 2**63, len(keys)).astype(np.uint64)
        queries = rng.integers(0, 5_000, 300).astype(np.uint64)
        found, stored = seen.lookup(queries)
        assert found.tolist() == [int(q) in reference for q in queries]
        assert [int(h) for h, f in zip(stored, found, strict=False) if f] == [
            reference[int(q)] for q in queries if int(q) in reference
        ]
        seen.add(keys, hashes)
        reference.update(zip(keys.tolist(), hashes.tolist(), strict=False))
