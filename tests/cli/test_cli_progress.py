"""Import progress on the command line: a tqdm bar on a real terminal (a pty), plain lines
when output is piped or captured."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys

import pytest

from beatfeeds.cli import main
from beatfeeds.cli.progress import row_progress
from beatfeeds.core.files import count_rows
from tests.support.exports import local, spd911_row, write_rows
from tests.support.instance import utcnow


@pytest.mark.parametrize(
    "content, rows",
    [
        (b"a,b\n1,2\n3,4\n", 2),
        (b"a,b\r\n1,2\r\n3,4\r\n", 2),
        (b"a,b\r1,2\r3,4\r", 2),  # CR-only line ends
        (b"a,b\n1,2\n3,4", 2),  # no line end after the last row
        (b"a,b\n", 0),
        (b"", 0),
    ],
)
def test_rows_are_estimated_from_line_ends(tmp_path, content, rows):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    assert count_rows(path) == rows


def test_piped_output_gets_plain_lines(runner, tmp_path):
    from datetime import timedelta

    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    when = local(utcnow() - timedelta(days=1))
    path = write_rows(tmp_path / "export.csv", [spd911_row(i, when) for i in range(3)])
    r = runner.invoke(main, ["incidents", "import", str(path)])
    assert r.exit_code == 0, r.output
    assert "export.csv: 3 of about 3 rows (100%)" in r.output
    assert "\r" not in r.output and "\x1b" not in r.output


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_bar(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 100)
    out = FakeTerminal()
    show = row_progress(path, out)
    show(0)
    show(60)
    show(100)
    show(None)
    text = out.getvalue()
    assert "f.csv" in text and "100%" in text and "100/100" in text and "\r" in text


def test_the_cli_draws_a_bar_on_a_real_terminal(tmp_path):
    from datetime import timedelta

    when = local(utcnow() - timedelta(days=1))
    path = write_rows(tmp_path / "export.csv", [spd911_row(i, when) for i in range(50)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEATFEEDS_")}
    env |= {
        "BEATFEEDS_INSTANCE_PATH": str(tmp_path / "instance"),
        "BEATFEEDS_SECRET_KEY": "test",
        "COLUMNS": "100",
    }
    beatfeeds = [sys.executable, "-m", "beatfeeds.cli"]
    subprocess.run([*beatfeeds, "db", "upgrade"], env=env, check=True, capture_output=True)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*beatfeeds, "incidents", "import", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    stdout, _ = proc.communicate(timeout=60)
    os.close(primary)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, terminal
    assert "export.csv" in terminal and "50/50" in terminal and "100%" in terminal
    assert "rows" in terminal and "\r" in terminal
    assert "of about" not in terminal  # the bar, not the plain lines
    assert "new 50" in stdout.decode()
