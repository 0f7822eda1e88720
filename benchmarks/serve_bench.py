"""Serving speed: requests per second on loopback under `beatfeeds serve`, side by side.

    python benchmarks/serve_bench.py [--seconds 5] [--clients 4] [--rounds 2] [--port 0]

Sets up the demo (default beats and the shifted sample) in a temporary instance folder, starts
`beatfeeds serve` (waitress) as a subprocess, and measures in the same run, interleaved:
  (a) the floor: the same bytes as the cached beat feed, served as a static file by the same
      server (a temporary file under /static/, removed afterwards);
  (b) the cached beat feed /beats/K3/feed.atom, as a feed reader asks for it;
  (c) a 304 answer to the same request with If-None-Match;
  (d) the beat page /beats/K3.
The load generator is Python: `--clients` processes, each with one keep-alive http.client
connection, for `--seconds` per measurement; the best of `--rounds` rounds is kept.
Prints req/s and the ratio of each to (a). Target: (b) >= 0.5 x (a).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READER_ACCEPT = "application/atom+xml,application/rss+xml,application/xml;q=0.9,*/*;q=0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hammer(args) -> tuple[int, int]:
    """One client: as many requests as it can in `seconds`; (ok count, unexpected count)."""
    port, path, headers, expect, seconds = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ok = bad = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status == expect:
            ok += 1
        else:
            bad += 1
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()
    return ok, bad


def measure(
    pool, clients: int, port: int, path: str, headers: dict, expect: int, seconds: float
) -> float:
    started = time.perf_counter()
    results = pool.map(hammer, [(port, path, headers, expect, seconds)] * clients)
    elapsed = time.perf_counter() - started
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    if bad:
        raise SystemExit(f"{path}: {bad} answers were not {expect}")
    return ok / elapsed


def get(port: int, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    r.body = r.read()
    conn.close()
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8, help="waitress threads")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    from beatfeeds.web.assets import OWN  # the folder /static/ serves

    beatfeeds = Path(sys.executable).with_name("beatfeeds")
    port = args.port or free_port()
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEATFEEDS_")}
    env.update(
        BEATFEEDS_INSTANCE_PATH=str(tmp / "instance"),
        BEATFEEDS_LOG_LEVEL="WARNING",
        BEATFEEDS_BASE_URL=f"http://127.0.0.1:{port}",
    )
    subprocess.run(
        [str(beatfeeds), "demo", "--no-serve"], env=env, check=True, stdout=subprocess.DEVNULL
    )
    server = subprocess.Popen(
        [str(beatfeeds), "serve", "--port", str(port), "--threads", str(args.threads)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    static_file = OWN / f".serve-bench-{os.getpid()}.atom"
    try:
        for _ in range(100):
            try:
                if get(port, "/healthz").status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("beatfeeds serve did not start: " + server.stderr.read().decode())
        feed = get(port, "/beats/K3/feed.atom", {"Accept": READER_ACCEPT})
        assert feed.status == 200, feed.status
        etag = feed.getheader("ETag")
        static_file.write_bytes(feed.body)
        static_path = f"/static/{static_file.name}"
        assert get(port, static_path).body == feed.body
        assert get(port, "/beats/K3/feed.atom", {"If-None-Match": etag}).status == 304

        targets = [
            ("static file, same bytes (floor)", static_path, {}, 200),
            ("cached beat feed", "/beats/K3/feed.atom", {"Accept": READER_ACCEPT}, 200),
            (
                "304 Not Modified",
                "/beats/K3/feed.atom",
                {"Accept": READER_ACCEPT, "If-None-Match": etag},
                304,
            ),
            ("beat page", "/beats/K3", {"Accept": "text/html"}, 200),
        ]
        best = {name: 0.0 for name, *_ in targets}
        with mp.get_context("spawn").Pool(args.clients) as pool:
            for _ in range(args.rounds):
                for name, path, headers, expect in targets:
                    best[name] = max(
                        best[name],
                        measure(pool, args.clients, port, path, headers, expect, args.seconds),
                    )
    finally:
        static_file.unlink(missing_ok=True)
        server.terminate()
        server.wait(timeout=10)

    floor = best[targets[0][0]]
    print(
        f"beatfeeds serve (waitress, {args.threads} threads) on loopback; {args.clients} "
        f"keep-alive clients, {args.seconds:g} s each, best of {args.rounds} rounds; "
        f"{os.cpu_count()} CPUs shared by server and clients"
    )
    print(f"feed size {len(feed.body)} bytes")
    print(f"{'what':<34}{'req/s':>10}{'x static':>10}")
    for name, *_ in targets:
        print(f"{name:<34}{best[name]:>10.0f}{best[name] / floor:>10.2f}")
    ratio = best["cached beat feed"] / floor
    verdict = "met" if ratio >= 0.5 else "NOT met"
    print(f"target: cached feed >= 0.5 x static file: {ratio:.2f} ({verdict})")


if __name__ == "__main__":
    main()
