"""The clock: the one `utcnow()` the faces hand to services."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, in UTC, as a naive datetime (the form the database stores)."""
    return datetime.now(UTC).replace(tzinfo=None)
