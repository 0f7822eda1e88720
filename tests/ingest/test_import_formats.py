"""Each real export's quirks, on the real files; encodings, separators, quoted line breaks and
the DST rule on both the column-wise and the row-by-row path."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from beatfeeds.core.categories import CATEGORIES
from beatfeeds.geo.spatial import BeatIndex
from beatfeeds.ingest.fields import parse_datetime
from beatfeeds.services.imports import ImportOptions, import_file
from beatfeeds.storage import schema as t
from tests.support.imports import HEADER, MAPS, good, run, write_csv
from tests.support.instance import NOW, shared

TZ = ZoneInfo("America/Los_Angeles")
UTC = ZoneInfo("UTC")


def local_to_utc(text: str, fmt: str) -> datetime:
    return datetime.strptime(text, fmt).replace(tzinfo=TZ).astimezone(UTC).replace(tzinfo=None)


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def stored(store, source: str) -> list:
    with store.engine.connect() as conn:
        return conn.execute(select(t.incidents).where(t.incidents.c.source == source)).all()


@pytest.mark.shared_data
def test_spd_crime_bom_zero_zero_repeated_report_numbers_and_local_dates(beats_store, settings):
    path = shared("spd_crime_data_robbery_2008_2021.csv")
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    rows = rows_of(path)
    report = import_file(beats_store, path, ImportOptions(), settings, now=NOW)
    c = report.counters
    assert report.preset == "spd-crime"  # the BOM does not hide `Report Number`
    assert (c["read"], c["new"], c["rejected"], c["unlocated"]) == (21454, 21454, 0, 747)
    # One report, several offenses: each offense is its own incident.
    repeats = [n for n, k in Counter(r["Report Number"] for r in rows).items() if k > 1]
    assert repeats and beats_store.incident_count() == 21454
    same_report = [r for r in rows if r["Report Number"] == repeats[0]]
    ids = {
        beats_store.incident_private("spd-crime-data", r["Offense ID"])["uid"] for r in same_report
    }
    assert len(ids) == len(same_report)
    # 0,0 is "no location": stored, never published, not rejected.
    zero = next(r for r in rows if r["Latitude"] == "0" and r["Longitude"] == "0")
    inc = beats_store.incident_private("spd-crime-data", zero["Offense ID"])
    assert (inc["lat"], inc["lon"], inc["suppressed_reason"]) == (None, None, "no location")
    # `02/02/2020 08:30:00 PM` is Seattle local time.
    row = next(r for r in rows if r["Offense Start DateTime"] and r["Report DateTime"])
    inc = beats_store.incident_private("spd-crime-data", row["Offense ID"])
    fmt = "%m/%d/%Y %I:%M:%S %p"
    assert inc["occurred_at"] == local_to_utc(row["Offense Start DateTime"], fmt)
    assert inc["reported_at"] == local_to_utc(row["Report DateTime"], fmt)
    # A blank start: the report time is the event time.
    blank = next(r for r in rows if not r["Offense Start DateTime"])
    inc = beats_store.incident_private("spd-crime-data", blank["Offense ID"])
    assert inc["occurred_at"] is None and inc["event_time"] == inc["reported_at"]
    # The source's wording is the entry text; the category is one of the public list.
    assert inc["description"] == blank["Offense"] and inc["category"] == "robbery"
    assert {r.category for r in stored(beats_store, "spd-crime-data")} <= set(CATEGORIES)


@pytest.mark.shared_data
def test_spd_911_lat_lon_strings_latitude_first_and_quoted_commas(tmp_path, beats_store, settings):
    path = shared("spd_911_incident_response_2016-03-25.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, list(reader)
    # Blank the separate columns in some rows: the "(lat, lon)" string must be read, lat first.
    for r in rows[::7]:
        r["Latitude"] = r["Longitude"] = ""
    copy = tmp_path / "911.csv"
    with open(copy, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    report = import_file(beats_store, copy, ImportOptions(), settings, now=NOW)
    assert report.preset == "spd-911" and report.counters["rejected"] == 0
    assert report.counters["unlocated"] == 0
    for r in rows[::7][:20]:
        lat, lon = (float(v) for v in r["Incident Location"].strip("()").split(","))
        inc = beats_store.incident_private("spd-911-incident-response", r["CAD CDW ID"])
        assert (inc["lat"], inc["lon"]) == (lat, lon)
        assert 47 < inc["lat"] < 48 and -123 < inc["lon"] < -122
    comma = next(r for r in rows if "," in r["Event Clearance Description"])
    inc = beats_store.incident_private("spd-911-incident-response", comma["CAD CDW ID"])
    assert inc["description"] == comma["Event Clearance Description"]
    when = local_to_utc(comma["Event Clearance Date"], "%m/%d/%Y %I:%M:%S %p")
    assert inc["occurred_at"] == when


@pytest.mark.shared_data
def test_spd_call_data_prefix_dashes_bom_and_no_address(beats_store, settings):
    path = shared("spd_call_data_blurred_sector_c_2010_2023.csv")
    rows = rows_of(path)
    report = import_file(beats_store, path, ImportOptions(), settings, now=NOW)
    assert report.preset == "spd-call-data"
    assert (report.counters["new"], report.counters["rejected"]) == (275, 0)
    r = next(r for r in rows if r["Final Call Type"].startswith("--"))
    inc = beats_store.incident_private("spd-call-data", r["CAD Event Number"])
    assert inc["description"] == r["Final Call Type"].lstrip("-").strip()
    assert inc["address"] == "" and inc["block_address"] == ""


@pytest.mark.shared_data
def test_fire_local_offsets_hour_24_hashed_keys_and_hundred_blocks(beats_store, settings):
    path = shared("seattle_fire_911_calls_mva_2010_2015.csv")
    rows = rows_of(path)
    first = import_file(beats_store, path, ImportOptions(), settings, now=NOW)
    assert first.preset == "seattle-fire-911" and first.counters["rejected"] == 0
    # `+0000` on local times: read as local.
    row = next(
        r
        for r in rows
        if r["Datetime"].endswith("PM +0000")
        and r["Incident Number"]
        and Counter([r["Incident Number"]])
        and sum(1 for x in rows if x["Incident Number"] == r["Incident Number"]) == 1
    )
    inc = beats_store.incident_private("seattle-fire-911", row["Incident Number"])
    assert inc["occurred_at"] == local_to_utc(row["Datetime"][:-6], "%m/%d/%Y %I:%M:%S %p")
    # Every hour-24 row: 00:xx local the next day.
    hour24 = [r for r in rows if "T24:" in r["Datetime"]]
    assert len(hour24) == 25
    for r in hour24:
        if (
            not r["Incident Number"]
            or sum(1 for x in rows if x["Incident Number"] == r["Incident Number"]) > 1
        ):
            continue
        inc = beats_store.incident_private("seattle-fire-911", r["Incident Number"])
        text = r["Datetime"].strip()[:19].replace("T24:", "T00:")
        expected = datetime.fromisoformat(text).replace(tzinfo=TZ)
        got = inc["occurred_at"].replace(tzinfo=UTC).astimezone(TZ)
        assert (got.date() - expected.date()).days == 1 and got.strftime("%H:%M") == text[11:16]
    # Blank Incident Number (1,154 rows): keyed by a hash of Datetime, Address and Type.
    blank = [r for r in rows if not r["Incident Number"].strip()]
    assert len(blank) == 1154
    keys = {r.external_id for r in stored(beats_store, "seattle-fire-911")}
    hashed = {k for k in keys if k.startswith("h:")}
    assert len(hashed) == len({(r["Datetime"], r["Address"], r["Type"]) for r in blank})
    # Exact house numbers are published only as the hundred block.
    for r in stored(beats_store, "seattle-fire-911"):
        if re.match(r"^\d+ [A-Za-z]", r.address) and not re.search(
            r" / | & | AT ", r.address.upper()
        ):
            assert r.block_address.split()[0].endswith("XX"), (r.address, r.block_address)
            assert " BLOCK OF " in r.block_address
    # The source's wording stays in the entry text.
    assert {r.description for r in stored(beats_store, "seattle-fire-911")} <= {
        x["Type"] for x in rows
    }
    again = import_file(beats_store, path, ImportOptions(), settings, now=NOW)
    assert (again.counters["new"], again.counters["updated"]) == (0, 0)


# ---- encodings, separators, line breaks -----------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_encodings_and_separators(tmp_path, beats_store, settings, encoding, delimiter):
    rows = [good(1, addr="1200 CAFÉ “CORNER” WAY"), good(2, desc="THEFT, OTHER; “A|B”")]
    path = write_csv(tmp_path / "e.csv", rows, encoding=encoding, delimiter=delimiter)
    report = run(beats_store, settings, path)
    assert (report.counters["new"], report.counters["rejected"]) == (2, 0)
    assert (
        beats_store.incident_private("test-source", "1")["block_address"]
        == "12XX BLOCK OF CAFÉ “CORNER” WAY"
    )
    assert beats_store.incident_private("test-source", "2")["description"] == "THEFT, OTHER; “A|B”"


def test_utf8_character_cut_by_the_encoding_sniff_is_still_utf8(tmp_path, beats_store, settings):
    filler = ["x" * 100] * 700  # pushes a multi-byte character across the 64 KiB sniff window
    rows = [good(i, desc=f"{filler[i % 700]} É") for i in range(700)]
    path = write_csv(tmp_path / "u.csv", rows)
    report = run(beats_store, settings, path)
    assert report.counters["new"] == 700
    assert beats_store.incident_private("test-source", "699")["description"].endswith(" É")


def test_quoted_line_breaks_of_every_kind_are_kept(tmp_path, beats_store, settings):
    path = tmp_path / "q.csv"
    lines = [
        ",".join(HEADER),
        ",".join(good(1, desc='"A\r\nB"')),
        ",".join(good(2, desc='"A\nB ""quoted"""')),
        ",".join(good(3, when="later")),
        ",".join(good(4, desc='"A\rB"')),
    ]
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    report = run(beats_store, settings, path)
    assert (report.counters["new"], report.counters["rejected"]) == (3, 1)
    assert report.rejections[0].line == 6
    got = {k: beats_store.incident_private("test-source", k)["description"] for k in "124"}
    assert got == {"1": "A\r\nB", "2": 'A\nB "quoted"', "4": "A\rB"}


# ---- daylight saving time: one rule, both paths -------------------------------------------------
DST_CASES = [
    # spring forward: 02:30 does not exist; read with the standard offset (= 03:30 PDT)
    ("03/13/2016 02:30:00 AM", "2016-03-13T02:30:00", datetime(2016, 3, 13, 10, 30)),
    ("03/13/2016 01:59:00 AM", "2016-03-13T01:59:00", datetime(2016, 3, 13, 9, 59)),
    ("03/13/2016 03:00:00 AM", "2016-03-13T03:00:00", datetime(2016, 3, 13, 10, 0)),
    # fall back: 01:30 happens twice; the first (PDT) is meant
    ("11/06/2016 01:30:00 AM", "2016-11-06T01:30:00", datetime(2016, 11, 6, 8, 30)),
    ("11/06/2016 12:59:00 AM", "2016-11-06T00:59:00", datetime(2016, 11, 6, 7, 59)),
    ("11/06/2016 02:00:00 AM", "2016-11-06T02:00:00", datetime(2016, 11, 6, 10, 0)),
]


@pytest.mark.parametrize("us,iso,utc", DST_CASES)
def test_dst_rule_is_the_same_row_by_row_and_column_wise(
    tmp_path, beats_store, settings, us, iso, utc
):
    assert parse_datetime(us, TZ) == utc and parse_datetime(iso, TZ) == utc
    # Column-wise: a column of normal values with the odd one among them.
    rows = [good(i, when="03/25/2016 08:09:00 PM") for i in range(5)]
    rows += [good(10, when=us), good(11, when=us.replace("AM", "AM"))]
    report = run(beats_store, settings, write_csv(tmp_path / "d.csv", rows))
    assert report.counters["rejected"] == 0
    assert beats_store.incident_private("test-source", "10")["occurred_at"] == utc
    iso_rows = [good(20 + i, when="2016-03-25T20:09:00") for i in range(5)] + [good(30, when=iso)]
    run(beats_store, settings, write_csv(tmp_path / "i.csv", iso_rows))
    assert beats_store.incident_private("test-source", "30")["occurred_at"] == utc


def test_stored_times_are_utc_for_every_layout(tmp_path, beats_store, settings):
    layouts = [
        "03/25/2016 08:09:00 PM",
        "3/25/2016 8:09 PM",
        "03/25/2016 20:09",
        "2016-03-25T20:09:00",
        "2016-03-25 20:09",
        "2016-03-26T03:09:00Z",
        "2016-03-25T20:09:00-07:00",
        "2016-03-26T03:09:00+0000",
    ]
    for k, layout in enumerate(layouts):
        rows = [good(100 * k + i, when=layout) for i in range(3)]
        run(beats_store, settings, write_csv(tmp_path / f"l{k}.csv", rows))
    with beats_store.engine.connect() as conn:
        times = conn.execute(
            select(func.count(), t.incidents.c.occurred_at).group_by(t.incidents.c.occurred_at)
        ).all()
    assert times == [(3 * len(layouts), datetime(2016, 3, 26, 3, 9))]


# ---- the column-wise path agrees with the row-by-row validator ------------------------------
def test_column_wise_validation_matches_the_row_by_row_validator(tmp_path, beats_store, settings):
    """Every row of a deliberately messy file is stored (or rejected) exactly as
    `rows.validate_row` alone would have it."""
    import random

    from beatfeeds.core.models import Rejection
    from beatfeeds.ingest.fields import row_hash
    from beatfeeds.ingest.mapping import resolve_mapping
    from beatfeeds.ingest.reading import RawRow, iter_raw_rows
    from beatfeeds.ingest.rows import validate_row

    rnd = random.Random(4)
    whens = [
        "03/25/2016 08:09:00 PM",
        "3/25/2016 8:09 PM",
        " 03/25/2016 08:09:00 PM ",
        "2016-03-25T20:09:00",
        "2016-03-25 20:09:00",
        "2016-03-25T24:10:00",
        "02/30/2016 08:09:00 PM",
        "03/13/2016 02:30:00 AM",
        "11/06/2016 01:30:00 AM",
        "2016-03-25T20:09:00.5",
        "12/31/1999 11:59:59 PM",
        "01/01/2030 00:00:00 AM",
        "",
        "03/25/2016 13:09:00 PM",
        "2016-3-5T1:02:03",
        "tomorrow",
    ]
    lats = [
        "47.598347",
        " 47.598347",
        "47.6000000001",
        "",
        "0",
        "nan",
        "95",
        "-122.32245",
        "4.7e1",
        "47,6",
    ]
    lons = ["-122.32245", "-122.32245 ", "", "0", "inf", "47.598347", "-1e3"]
    descs = [
        "THEFT - CAR PROWL",
        "  padded  ",
        "",
        "CHILD - LURING",
        "=cmd|' /C calc'!A0",
        "x" * 2100,
        "DISTURBANCE, OTHER",
        "é “quoted”",
    ]
    rows = []
    for i in range(600):
        key = rnd.choice([str(i), f" {i} ", "", "k" * 201, str(i)])
        rows.append(
            [
                key,
                rnd.choice(whens),
                rnd.choice(["CAR PROWL", "", "ROBBERY", "-X"]),
                rnd.choice(descs),
                rnd.choice(["1100 8TH AVE NE", "", " 45 MAIN ST #3 "]),
                rnd.choice(lats),
                rnd.choice(lons),
                rnd.choice(["K3", "", "x" * 40]),
                rnd.choice(["", "Y", "no", "TRUE", " x "]),
            ]
        )
    path = write_csv(tmp_path / "messy.csv", rows)
    report = run(beats_store, settings, path, chunk_rows=97)

    mapping = resolve_mapping(HEADER, maps=dict(MAPS), source="test-source")
    index = BeatIndex(beats_store.beats(beats_store.active_beat_set_id()))

    def covers(x, y):
        return bool(index.covers([x], [y])[0])

    expected_rejections, expected = {}, {}
    for raw in iter_raw_rows(path, []):
        result = validate_row(RawRow(raw.line, raw.values), mapping, TZ, NOW, covers=covers)
        if isinstance(result, Rejection):
            expected_rejections[result.line] = result.reason
        else:
            expected[result.external_id] = result  # the last version of a key wins
    assert {r.line: r.reason for r in report.rejections} == expected_rejections
    assert report.counters["rejected"] == len(expected_rejections)
    assert beats_store.incident_count() == len(expected)
    for key, want in expected.items():
        got = beats_store.incident_private("test-source", key)
        assert (got["occurred_at"], got["reported_at"]) == (want.occurred_at, want.reported_at), key
        assert (got["lat"], got["lon"]) == (want.lat, want.lon), key
        assert (got["description"], got["category_text"], got["address"]) == (
            want.description,
            want.category_text,
            want.address,
        ), key
        assert (got["source_beat"], got["sensitive"]) == (want.source_beat, want.sensitive), key
        assert got["row_hash"] == row_hash(want), key  # databases filled row by row agree
