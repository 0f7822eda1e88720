"""Hashing and counting the lines of files beatfeeds reads (issue 15): one home, `core.files`,
used by uploads, polled sources and import runs."""

from __future__ import annotations

import hashlib

from beatfeeds.core import files


def test_sha256_file_is_the_digest_a_tally_gives_for_the_same_bytes(tmp_path):
    data = bytes(range(256)) * 5000 + b"tail"
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    tally = files.Tally()
    for i in range(0, len(data), 7777):
        tally.update(data[i : i + 7777])
    assert files.sha256_file(path) == tally.hexdigest() == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert files.sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_a_tally_counts_bytes_and_line_ends_block_by_block():
    tally = files.Tally()
    for block in (b"a,b\r\n1,2\r\n", b"3,4\n", b"old\rmac\r"):
        tally.update(block)
    assert tally.size == 22 and tally.lines == 5  # LF where there are any, else CR
    assert tally.hexdigest() == hashlib.sha256(b"a,b\r\n1,2\r\n3,4\nold\rmac\r").hexdigest()


def test_rows_are_estimated_from_the_first_block(tmp_path, monkeypatch):
    lf = tmp_path / "lf.csv"
    lf.write_bytes(b"header1\n" + b"1234567\n" * 1000)
    cr = tmp_path / "cr.csv"
    cr.write_bytes(b"header1\r" + b"1234567\r" * 1000)
    assert files.estimate_rows(lf) == files.estimate_rows(cr) == 1001
    monkeypatch.setattr(files, "BLOCK_BYTES", 800)  # the first 100 lines: the same estimate
    assert files.estimate_rows(lf) == 1001
    (tmp_path / "empty.csv").write_bytes(b"")
    assert files.estimate_rows(tmp_path / "empty.csv") == 0
