"""The built wheel is complete: installed on its own, it runs the demo and serves feeds.

The wheel goes into a fresh virtualenv with `--no-deps`; its dependencies come from the
running interpreter's site-packages through a .pth file, which Python reads after the fresh
venv's own site-packages, so `beatfeeds` itself is imported from the wheel and nothing is
downloaded (except hatchling for the isolated build, when it is not installed here).
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import feedparser
import pytest

from tests.support.instance import REPO

pytestmark = pytest.mark.slow

REQUIRED = (
    "beatfeeds/__init__.py",
    "beatfeeds/templates/base.html",
    "beatfeeds/data/beats.geojson",
    "beatfeeds/data/sample_incidents.csv",
    "beatfeeds/data/given_names.txt",  # the personal-data check reads it
    "beatfeeds/storage/migrations/env.py",
    "beatfeeds/storage/migrations/versions/0001_initial_schema.py",
    "beatfeeds/static/site.css",
)


def run(args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def build_wheel(out: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, REPO]
    if importlib.util.find_spec("hatchling"):
        cmd.insert(4, "--no-build-isolation")  # the backend is here: build offline
    run(cmd)
    wheels = list(out.glob("beatfeeds-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def make_venv(path: Path, wheel: Path) -> Path:
    """A venv holding only our wheel; dependencies are borrowed from this interpreter."""
    run([sys.executable, "-m", "venv", "--without-pip", path])
    python = path / "bin" / "python"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            wheel,
        ]
    )
    site = Path(
        run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    # Plain paths, not `import site; site.addsitedir(...)`: that would also run this
    # interpreter's .pth files, among them an editable install pointing at the repository.
    (site / "zz_borrowed_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return path / "bin"


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BEATFEEDS_") and k not in ("PYTHONPATH", "PYTHONHOME")
    }
    return env | {"PYTHONNOUSERSITE": "1"} | extra


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                assert "atom" in response.headers["Content-Type"]
                return response.read()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                pytest.fail(f"no answer from {url} in {timeout}s:\n{log.read_text()}")
            time.sleep(0.2)


def test_wheel_installs_and_serves_feeds(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    # every asset a template serves from our static folder ships in the wheel
    served = {
        f"beatfeeds/static/{m}"
        for t in (REPO / "templates").glob("*.html")
        for m in re.findall(r"assets\.own', filename='([^']+)'", t.read_text())
    }
    assert "beatfeeds/static/beat-editor.js" in served
    missing = [n for n in (*REQUIRED, *sorted(served)) if n not in names]
    assert not missing, f"{wheel.name} lacks {missing}"
    assert not any(n.startswith(("tests/", "docs/")) for n in names)

    bin_dir = make_venv(tmp_path / "venv", wheel)
    env = clean_env(BEATFEEDS_INSTANCE_PATH=str(tmp_path / "instance"))
    where = run(
        [
            bin_dir / "python",
            "-c",
            "import beatfeeds, beatfeeds.app as a; "
            "print(beatfeeds.__file__); print(a.resource_dir('templates'))",
        ],
        cwd=tmp_path,
        env=env,
    ).stdout.split()
    for path in map(Path, where):
        assert path.is_relative_to(tmp_path / "venv"), f"{path} is not the installed copy"
        assert not path.is_relative_to(REPO)

    demo = run([bin_dir / "beatfeeds", "demo", "--no-serve"], cwd=tmp_path, env=env)
    assert "imported the sample incidents" in demo.stdout
    assert (tmp_path / "instance" / "beatfeeds.sqlite3").exists()

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [bin_dir / "beatfeeds", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        body = fetch(f"http://127.0.0.1:{port}/beats/K3/feed.atom", proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.bozo_exception
    assert len(feed.entries) >= 1
    assert all(e.id.startswith("tag:") for e in feed.entries)
