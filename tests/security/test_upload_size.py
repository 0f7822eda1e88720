"""Bodies are refused by their announced size before they are read (issue 14, point 8): a
900 MB anonymous POST was once received whole before the 413."""

from __future__ import annotations

import io
import re
import socket
import threading
from pathlib import Path

import pytest

from beatfeeds.cli.serve import waitress_options
from beatfeeds.core import limits
from beatfeeds.core.settings import load_settings
from beatfeeds.web.guards import upload_body_limit

DEPLOYMENT = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
MB = 1024 * 1024


class CountingStream(io.BytesIO):
    """A request body that counts what the app reads of it."""

    def __init__(self, size: int):
        super().__init__(b"a" * size)
        self.size, self.read_bytes = size, 0

    def read(self, n: int | None = -1) -> bytes:
        out = super().read(n)
        self.read_bytes += len(out)
        return out

    def read1(self, n: int = -1) -> bytes:
        return self.read(n)

    def readline(self, limit: int | None = -1) -> bytes:
        out = super().readline(limit)
        self.read_bytes += len(out)
        return out

    def readinto(self, buffer) -> int:
        n = super().readinto(buffer)
        self.read_bytes += n
        return n


@pytest.fixture
def served(app, settings):
    """The app under waitress with `beatfeeds serve`'s options, on a loopback port."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=2, **waitress_options(settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield server.effective_port
    server.close()


@pytest.mark.parametrize("path", ["/records/imports", "/login", "/api/locate"])
def test_waitress_answers_413_to_a_900_mb_announcement_before_the_body_is_sent(served, path):
    with socket.create_connection(("127.0.0.1", served), timeout=10) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: localhost\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n"
                f"Content-Length: {900 * MB}\r\n\r\n"
            ).encode()
        )
        sock.settimeout(5)  # no body is ever sent: the answer must not wait for one
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_serve_caps_waitress_at_the_upload_limit(settings):
    assert waitress_options(settings)["max_request_body_size"] == upload_body_limit(settings)
    assert upload_body_limit(settings) < (settings.max_upload_mb + 1) * MB


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/login", "application/x-www-form-urlencoded"),
        ("/alerts/subscribe", "application/x-www-form-urlencoded"),
        ("/alerts/manage", "multipart/form-data; boundary=x"),
        ("/api/locate", "application/json"),
        ("/records/announcements", "application/x-www-form-urlencoded"),  # staff: no session here
        ("/admin/beats/1/edit", "application/json"),
        ("/no/such/page", "application/json"),
    ],
)
def test_a_body_over_the_route_limit_is_refused_unread(app, path, content_type):
    body = CountingStream(limits.SMALL_BODY + 1)
    r = app.test_client().post(
        path, input_stream=body, content_length=body.size, content_type=content_type
    )
    assert r.status_code == 413
    assert body.read_bytes == 0


def test_a_body_within_the_small_limit_is_read(client):
    r = client.post("/api/locate", json={"lat": 47.6, "lon": -122.33, "pad": "x" * 1000})
    assert r.status_code in (200, 404)


def test_the_deployment_docs_nginx_limits_agree_with_the_app():
    """The nginx example's small limit is the app's; its upload locations take the upload
    limit (default BEATFEEDS_MAX_UPLOAD_MB) and at most 1 MB more."""
    text = DEPLOYMENT.read_text()
    nginx = re.search(r"```nginx\n(server \{.*?)```", text, re.S).group(1)
    sizes = re.findall(r"client_max_body_size (\d+)([km]);", nginx)
    in_bytes = [int(n) * (1024 if unit == "k" else MB) for n, unit in sizes]
    defaults = load_settings({}, environ={})
    assert min(in_bytes) == limits.SMALL_BODY
    uploads = re.findall(r"location = (\S+) \{\s*client_max_body_size (\d+)m;", nginx)
    assert {p for p, _ in uploads} == {"/records/imports", "/admin/beats/upload"}
    for _, mb in uploads:
        assert upload_body_limit(defaults) <= int(mb) * MB <= upload_body_limit(defaults) + MB
