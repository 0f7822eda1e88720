"""Scheduled sources in tests: what a loopback Socrata-like server answers."""

from __future__ import annotations


class Feed:
    """What the loopback server answers: a body, an optional ETag, or an error status."""

    def __init__(self):
        self.body = b""
        self.etag = None
        self.status = 200
        self.lie = 0  # bytes announced in Content-Length but never sent
        self.requests: list[dict] = []
