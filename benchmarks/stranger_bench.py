"""What a stranger can do to feed serving: failed sign-ins, and sign-ins during a write lock.

    python benchmarks/stranger_bench.py [--rows 100000] [--seconds 5] [--clients 4]
                                        [--lock-seconds 8]

Sets up the demo (default beats and the shifted sample) in a temporary instance folder, adds
`--rows` synthetic incidents (import_bench's generator, published at once), starts
`beatfeeds serve` (waitress, 8 threads) as a subprocess, and measures in the same run:
  (a) the cached beat feed /beats/K3/feed.atom: req/s and p99 latency from `--clients`
      keep-alive clients, first alone (the floor), then while a stranger makes two failed
      sign-ins a second (each writes a login attempt and an audit row);
  (b) feed latency while another process holds SQLite's write lock (as a long import does)
      and the stranger keeps signing in twice a second: the warm beat feed, asked for again
      and again, and feeds nobody asked for yet (cold: built and their Last-Modified mark
      stored); the floor is the same reader with the stranger but without the lock.
Every figure is printed next to its floor. Whole run: under a minute.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

READER_ACCEPT = "application/atom+xml,application/rss+xml,application/xml;q=0.9,*/*;q=0.1"
FEED = "/beats/K3/feed.atom"
CITY = "/feed.atom"
COLD = [
    f"/beats/{b}/feed.{fmt}"
    for b in (
        "B1",
        "C1",
        "D1",
        "E1",
        "F1",
        "G1",
        "J1",
        "L1",
        "M1",
        "N1",
        "O1",
        "Q1",
        "R1",
        "S1",
        "U1",
        "W1",
    )
    for fmt in ("atom", "rss", "json")
]
TIMEOUT = 40.0  # client timeout: longer than the old 30 s busy wait


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one GET on a fresh connection."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers=headers or {"Accept": READER_ACCEPT})
        r = conn.getresponse()
        return r.status, r.read(), time.perf_counter() - start
    except OSError:
        return 0, b"", time.perf_counter() - start
    finally:
        conn.close()


def hammer(args) -> list[float]:
    """One keep-alive client asking for `path` for `seconds`: the latency of each answer."""
    port, path, seconds = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        conn.request("GET", path, headers={"Accept": READER_ACCEPT})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"{path}: {r.status}")
        times.append(time.perf_counter() - start)
    conn.close()
    return times


def failed_sign_in(port: int) -> tuple[int, float]:
    """A stranger's attempt: fetch the form (session cookie, CSRF token), post a wrong
    password. (status of the POST, seconds of both requests)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    start = time.perf_counter()
    try:
        conn.request("GET", "/login")
        r = conn.getresponse()
        page = r.read().decode()
        cookie = (r.getheader("Set-Cookie") or "").split(";", 1)[0]
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        body = urlencode(
            {
                "email": "stranger@example.org",
                "password": "not the password",
                "csrf_token": token.group(1) if token else "",
            }
        )
        conn.request(
            "POST",
            "/login",
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": cookie,
                "Origin": f"http://127.0.0.1:{port}",
                "Referer": f"http://127.0.0.1:{port}/login",
            },
        )
        r = conn.getresponse()
        r.read()
        return r.status, time.perf_counter() - start
    except OSError:
        return 0, time.perf_counter() - start
    finally:
        conn.close()


class Stranger:
    """Two failed sign-ins a second, each in its own thread (a stranger does not wait for
    the answer before trying again)."""

    def __init__(self, port: int, per_second: float = 2.0):
        self.port, self.interval = port, 1.0 / per_second
        self.results: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clock = threading.Thread(target=self._run, daemon=True)

    def _attempt(self) -> None:
        self.results.append(failed_sign_in(self.port))

    def _run(self) -> None:
        while not self._stop.is_set():
            t = threading.Thread(target=self._attempt, daemon=True)
            t.start()
            self._threads.append(t)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._clock.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._clock.join()
        for t in self._threads:
            t.join(TIMEOUT)


def throughput(pool, clients: int, port: int, path: str, seconds: float) -> tuple[float, float]:
    """(req/s, p99 seconds) of `clients` keep-alive clients asking for `path`."""
    started = time.perf_counter()
    results = pool.map(hammer, [(port, path, seconds)] * clients)
    elapsed = time.perf_counter() - started
    times = sorted(t for r in results for t in r)
    return len(times) / elapsed, times[int(len(times) * 0.99)] if times else float("nan")


def reader(port: int, seconds: float, cold: list[str]) -> tuple[list[float], list[float], int]:
    """The warm feed again and again, and one cold feed every half second: their latencies
    and how many answers were not 200."""
    warm, cold_times, bad = [], [], 0
    deadline = time.perf_counter() + seconds
    next_cold = time.perf_counter() + 0.25
    while time.perf_counter() < deadline:
        if cold and time.perf_counter() >= next_cold:
            status, _, took = get(port, cold.pop(0))
            cold_times.append(took)
            next_cold = time.perf_counter() + 0.5
        else:
            status, _, took = get(port, FEED)
            warm.append(took)
        bad += status != 200
    return warm, cold_times, bad


def hold_lock(db: str, seconds: float) -> subprocess.Popen:
    """Another process takes SQLite's write lock and keeps it for `seconds`."""
    code = (
        f"import sqlite3,time,sys; c=sqlite3.connect({db!r}, isolation_level=None); "
        f"c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); "
        f"time.sleep({seconds}); c.execute('ROLLBACK')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def fmt_s(values: list[float], q: float) -> str:
    if not values:
        return "-"
    v = sorted(values)[min(int(len(values) * q), len(values) - 1)]
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="synthetic incidents added")
    ap.add_argument("--seconds", type=float, default=5.0, help="per throughput measurement")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--lock-seconds", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=8, help="waitress threads")
    args = ap.parse_args()

    from beatfeeds.core.settings import load_settings

    beatfeeds = Path(sys.executable).with_name("beatfeeds")
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="stranger-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEATFEEDS_")}
    env.update(
        BEATFEEDS_INSTANCE_PATH=str(tmp / "instance"),
        BEATFEEDS_LOG_LEVEL="ERROR",
        BEATFEEDS_BASE_URL=f"http://127.0.0.1:{port}",
    )
    db = load_settings({}, environ=env).database_url.removeprefix("sqlite:///")
    subprocess.run(
        [str(beatfeeds), "demo", "--no-serve"], env=env, check=True, stdout=subprocess.DEVNULL
    )
    if args.rows:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from import_bench import generate

        synthetic = tmp / "synthetic.csv"
        generate(synthetic, args.rows)
        subprocess.run(
            [str(beatfeeds), "incidents", "import", str(synthetic)],
            env=dict(env, BEATFEEDS_PUBLICATION_DELAY="0"),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    server = subprocess.Popen(
        [str(beatfeeds), "serve", "--port", str(port), "--threads", str(args.threads)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if get(port, "/healthz")[0] == 200:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("beatfeeds serve did not start")
        assert get(port, FEED)[0] == 200
        assert failed_sign_in(port)[0] in (200, 401), "the sign-in form did not answer"

        part_a = {}
        with mp.get_context("spawn").Pool(args.clients) as pool:
            for path in (FEED, CITY):
                assert get(port, path)[0] == 200
                floor_a = throughput(pool, args.clients, port, path, args.seconds)
                with Stranger(port) as stranger_a:
                    busy_a = throughput(pool, args.clients, port, path, args.seconds)
                part_a[path] = (floor_a, busy_a, stranger_a.results)

        with Stranger(port):
            floor_b = reader(port, 3.0, COLD[:6])
        with Stranger(port) as stranger_b:
            locker = hold_lock(db, args.lock_seconds)
            locked_b = reader(port, args.lock_seconds - 1.0, COLD[6:])
            locker.wait()
        after = get(port, FEED)
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(
        f"beatfeeds serve (waitress, {args.threads} threads) on loopback, the demo data and "
        f"{args.rows} synthetic incidents; "
        f"{os.cpu_count()} CPUs shared by server and clients"
    )
    print(f"(a) cached feeds, {args.clients} keep-alive clients, {args.seconds:g} s each")
    print(f"    {'':<40}{'req/s':>8}{'p99':>10}{'ratio':>7}")
    for path, (floor_a, busy_a, attempts) in part_a.items():
        print(f"    {path + ' alone (floor)':<40}{floor_a[0]:>8.0f}{floor_a[1] * 1000:>8.1f}ms")
        print(
            f"    {path + ' + 2 failed sign-ins/s':<40}{busy_a[0]:>8.0f}"
            f"{busy_a[1] * 1000:>8.1f}ms{busy_a[0] / floor_a[0]:>7.2f}"
        )
        print(
            f"    (sign-ins answered {sorted({s for s, _ in attempts})}, {len(attempts)} attempts)"
        )
    print(
        f"(b) feed latency while another process holds the write lock for "
        f"{args.lock_seconds:g} s, 2 failed sign-ins/s throughout"
    )
    print(f"    {'':<40}{'p50':>8}{'p99/max':>10}{'not 200':>9}")
    for name, (warm, cold, bad) in (("no lock (floor)", floor_b), ("lock held", locked_b)):
        print(f"    {name + ', warm feed':<40}{fmt_s(warm, 0.5):>8}{fmt_s(warm, 0.99):>10}{bad:>9}")
        print(f"    {name + ', cold feeds':<40}{fmt_s(cold, 0.5):>8}{fmt_s(cold, 1.0):>10}")
    during = stranger_b.results
    print(
        f"    sign-ins during the lock: statuses {sorted({s for s, _ in during})}, "
        f"median {statistics.median(t for _, t in during):.1f} s, max "
        f"{max(t for _, t in during):.1f} s ({len(during)} attempts)"
    )
    print(f"    after the lock: feed {after[0]} in {after[2] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
