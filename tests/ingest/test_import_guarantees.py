"""Import guarantees: atomic per run under SIGKILL, and hostile input never crashes nor loses
the good rows."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from lxml import html

from beatfeeds.core.errors import UnusableFile
from beatfeeds.core.identifiers import entry_uid
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.imports import HEADER, K3, MAPS, good, run, write_csv
from tests.support.instance import NOW, load_default_beats, make_settings, make_store
from tests.support.web import make_app

REPO = Path(__file__).resolve().parents[2]


def _cli_env(instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEATFEEDS_")}
    env |= {"BEATFEEDS_INSTANCE_PATH": str(instance), "BEATFEEDS_SECRET_KEY": "test-secret-key"}
    return env


def _cli(*args: str, env: dict[str, str]) -> list[str]:
    return [sys.executable, "-m", "beatfeeds.cli", *args]


def _big_file(path: Path, rows: int) -> Path:
    lines = [",".join(HEADER)]
    lines += [
        f"{i},03/25/2016 08:09:00 PM,CAR PROWL,THEFT - CAR PROWL,{1100 + i % 900} 8TH AVE NE,"
        f"{K3[0]},{K3[1]},K3,"
        for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_sigkill_mid_import_keeps_none_of_the_run_and_a_rerun_completes_it(tmp_path):
    instance = tmp_path / "instance"
    env = _cli_env(instance)
    subprocess.run(_cli("db", "upgrade", env=env), env=env, check=True, capture_output=True)
    rows = 160_000  # four chunks
    path = _big_file(tmp_path / "big.csv", rows)
    maps = [f"--map={k}={v}" for k, v in MAPS.items()]
    args = _cli("incidents", "import", str(path), *maps, "--source", "t", env=env)
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # Piped, the CLI prints a progress line after each chunk: the first chunk is stored in
    # the open transaction. Kill it there, without any chance to clean up.
    line = proc.stderr.readline()
    assert "of about" in line, line
    assert proc.poll() is None, "the import finished before it could be killed; use more rows"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = make_store(make_settings(tmp_path))
    assert store.incident_count() == 0
    assert store.list_import_runs() == []

    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"read {rows} new {rows} " in done.stdout
    assert store.incident_count() == rows
    assert [r.status for r in store.list_import_runs()] == ["done"]


# ---- hostile input --------------------------------------------------------------------------
def test_empty_header_only_and_binary_files_are_refused_cleanly(tmp_path, beats_store, settings):
    cases = {
        "empty.csv": b"",
        "spaces.csv": b"  \r\n\n \n",
        "zip.csv": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)) * 40,
        "png.csv": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40,
        "utf16.csv": ",".join(HEADER).encode("utf-16"),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnusableFile):
            run(beats_store, settings, tmp_path / name)
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(HEADER) + "\n")
    assert run(beats_store, settings, header_only).counters["read"] == 0
    # Random bytes without NULs are decoded as Windows-1252 and their rows rejected, not a crash.
    noise = tmp_path / "noise.csv"
    noise.write_bytes((",".join(HEADER) + "\n").encode() + bytes(range(1, 256)) * 50)
    report = run(beats_store, settings, noise)
    assert report.counters["new"] == 0 and report.counters["rejected"] >= 1
    assert beats_store.incident_count() == 0


def test_a_20_mb_field_rejects_its_row_only(tmp_path, beats_store, settings):
    path = write_csv(tmp_path / "huge.csv", [good(1), good(2, desc="A" * 20_000_000), good(3)])
    report = run(beats_store, settings, path)
    assert (report.counters["new"], report.counters["rejected"]) == (2, 1)
    assert report.rejections[0].line == 3
    assert "longer than" in report.rejections[0].reason
    assert len(report.rejections[0].raw) <= 2000
    assert beats_store.incident_count() == 2


def test_thousands_of_columns(tmp_path, beats_store, settings):
    extra = [f"extra {i}" for i in range(5000)]
    rows = [[*good(i), *(["x"] * 5000)] for i in range(3)]
    report = run(
        beats_store, settings, write_csv(tmp_path / "wide.csv", rows, header=[*HEADER, *extra])
    )
    assert report.counters["new"] == 3 and report.counters["rejected"] == 0
    short = [good(9)]  # a row with the 9 mapped columns only: the field count is wrong
    report = run(
        beats_store,
        settings,
        write_csv(tmp_path / "wide2.csv", [rows[0], *short], header=[*HEADER, *extra]),
    )
    assert report.counters["rejected"] == 1
    assert "has 9 fields, the header has 5009" in report.rejections[0].reason


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_line_endings_including_cr_only(tmp_path, beats_store, settings, newline):
    path = tmp_path / "cr.csv"
    lines = [
        ",".join(HEADER),
        ",".join(good(1)),
        "",
        ",".join(good(2, when="soon")),
        ",".join(good(3)),
    ]
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    report = run(beats_store, settings, path)
    assert (report.counters["new"], report.counters["rejected"]) == (2, 1)
    assert report.rejections[0].line == 4  # the blank line still counts as a line


def test_quoted_newlines_keep_line_numbers_across_chunks(tmp_path, beats_store, settings):
    rows = []
    for i in range(40):
        rows.append(good(i, desc=f"two\nlines {i}") if i % 3 == 0 else good(i))
    rows[25] = good(25, when="never")
    path = write_csv(tmp_path / "q.csv", rows)
    text = path.read_text()
    expected_line = text[: text.index("\n25,never")].count("\n") + 2
    for chunk_rows in (1, 7, 5000):
        report = run(beats_store, settings, path, chunk_rows=chunk_rows, dry_run=True)
        assert [r.line for r in report.rejections] == [expected_line]
        assert report.counters["new"] == 39
    run(beats_store, settings, path)
    assert beats_store.incident_private("test-source", "3")["description"] == "two\nlines 3"


@pytest.mark.parametrize(
    "lat,lon,reason",
    [
        ("nan", "-122.3", "finite"),
        ("47.6", "inf", "finite"),
        ("-inf", "-122.3", "finite"),
        ("1e308", "-122.3", "outside ±90"),
        ("47.6", "-1e308", "outside ±180"),
        ("47.6", "1e999", "finite"),
        ("0x2F", "-122.3", "not a number"),
    ],
)
def test_absurd_coordinates_reject_the_row_with_a_reason(
    tmp_path, beats_store, settings, lat, lon, reason
):
    report = run(
        beats_store, settings, write_csv(tmp_path / "c.csv", [good(1), good(2, lat=lat, lon=lon)])
    )
    assert report.counters["new"] == 1 and report.counters["rejected"] == 1
    assert reason in report.rejections[0].reason and report.rejections[0].line == 3


def test_swapped_latitude_and_longitude_are_put_right_when_only_the_swap_is_in_the_map(
    tmp_path, beats_store, settings
):
    rows = [
        good(1),
        good(2, lat=K3[1], lon=K3[0]),  # swapped: -122 is not a latitude
        good(3, lat="-150", lon="12"),
    ]  # swapped, but still outside the map
    report = run(beats_store, settings, write_csv(tmp_path / "s.csv", rows))
    c = report.counters
    assert (c["new"], c["rejected"], c["swapped"]) == (2, 1, 1)
    assert "outside ±90" in report.rejections[0].reason and report.rejections[0].line == 4
    fixed = beats_store.incident_private("test-source", "2")
    assert (fixed["lat"], fixed["lon"]) == (float(K3[0]), float(K3[1]))
    assert list(fixed["beats"].values()) == ["K3"]
    # Valid both ways round and outside the map either way: kept as given, unassigned.
    both = run(
        beats_store, settings, write_csv(tmp_path / "s2.csv", [good(5, lat="12.5", lon="47.6")])
    )
    assert both.counters["swapped"] == 0 and both.counters["unassigned"] == 1
    assert beats_store.incident_private("test-source", "5")["lat"] == 12.5


def test_formulas_are_neutralised_in_every_cell_of_the_report(tmp_path, beats_store, settings):
    evil = ["=cmd|' /C calc'!A0", "+1+2", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    header = ['=HYPERLINK("x")', *HEADER[1:]]
    maps = dict(MAPS, external_id=header[0])
    rows = [[e, "soon", e, e, e, *K3, e, e] for e in evil]
    path = write_csv(tmp_path / "f.csv", rows, header=header)
    report = import_file(beats_store, path, ImportOptions(maps=maps, source="t"), settings, now=NOW)
    assert report.counters["rejected"] == len(evil)
    with open(report.report_path, newline="", encoding="utf-8") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert not [
        c
        for c in cells
        if c[:1] in ("=", "+", "@", "\t", "\r")
        or (c[:1] == "-" and not c.lstrip("-").replace(".", "").isdigit())
    ]


def test_html_in_text_fields_is_escaped_in_pages_and_feeds(tmp_path):
    settings = make_settings(tmp_path)
    store = make_store(settings)
    load_default_beats(store)
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    path = write_csv(tmp_path / "h.csv", [good(1, desc=f"THEFT {evil}", addr=f"1100 {evil} AVE")])
    report = import_file(store, path, ImportOptions(maps=dict(MAPS), source="s"), settings, now=NOW)
    assert report.counters["new"] == 1
    client = make_app(settings, store).test_client()
    uid = entry_uid("s", "1", store.identifier_key())
    for url in (f"/entries/{uid}", "/beats/K3"):
        body = client.get(url).get_data(as_text=True)
        low = body.lower()
        assert "<script>alert" not in low and "<img src=x" not in low
        doc = html.fromstring(body)
        assert not doc.xpath("//script[contains(., 'alert')]") and not doc.xpath("//img[@onerror]")
        assert "THEFT &lt;script&gt;" in body
    for fmt in ("rss", "atom"):
        parsed = feedparser.parse(client.get(f"/beats/K3/feed.{fmt}").data, sanitize_html=False)
        # Text, not markup: RSS titles are HTML (escaped), Atom titles plain text.
        titles = [
            html.fragment_fromstring(e.title, create_parent="div").text_content()
            if e.title_detail.type == "text/html"
            else e.title
            for e in parsed.entries
        ]
        assert any("<script>alert" in t for t in titles), titles
        assert all(
            "<script" not in e.title for e in parsed.entries if e.title_detail.type == "text/html"
        )
        assert not parsed.bozo
    feed = json.loads(client.get("/beats/K3/feed.json").data)
    item = next(i for i in feed["items"] if "alert" in i.get("title", ""))
    assert "<script>" not in item.get("content_html", "").replace("&lt;script&gt;", "")


def test_the_cli_notes_swapped_coordinates(tmp_path, beats_store, runner):
    from beatfeeds.cli import main

    path = write_csv(tmp_path / "s.csv", [good(1), good(2, lat=K3[1], lon=K3[0])])
    maps = [f"--map={k}={v}" for k, v in MAPS.items()]
    r = runner.invoke(main, ["incidents", "import", str(path), *maps, "--source", "t"])
    assert r.exit_code == 0, r.output
    assert "read 2 new 2 " in r.output
    assert "latitude and longitude were swapped in 1 rows" in r.output
    runs = beats_store.list_import_runs()
    assert runs[0].counters["swapped"] == 1


def test_an_unmatched_quote_loses_one_line_not_the_rest_of_the_file(tmp_path):
    """Reading stays bounded: a quote that never closes is cut off after MAX_RECORD_BYTES
    (small here) and the rows after its line are read normally."""
    from beatfeeds.ingest.reading import iter_raw_frames

    lines = [",".join(HEADER), ",".join(good(1)), '2,"03/25/2016 08:09:00 PM,never closed,x']
    lines += [",".join(good(i)) for i in range(3, 400)]
    path = tmp_path / "q.csv"
    path.write_text("\n".join(lines) + "\n")
    rejections = []
    frames = list(
        iter_raw_frames(
            path,
            encoding="utf-8",
            delimiter=",",
            width=len(HEADER),
            needed=list(range(len(HEADER))),
            chunk_rows=50,
            max_field=1_000_000,
            rejections=rejections,
            block_bytes=1024,
            max_record=4096,
        )
    )
    keys = [k for f in frames for k in f.frame[0].tolist()]
    lines_read = [int(n) for f in frames for n in f.lines]
    assert keys == ["1", *map(str, range(3, 400))]
    assert lines_read == [2, *range(4, 401)]
    assert [r.line for r in rejections] == [3]
    assert "unreadable" in rejections[0].reason or "fields" in rejections[0].reason
