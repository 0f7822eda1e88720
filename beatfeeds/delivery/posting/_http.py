"""Shared HTTP helpers for the adapters: mapping status codes to transient/permanent errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from beatfeeds.core.errors import PermanentPostingError, TransientPostingError


def retry_at_from_headers(headers, now: datetime | None = None) -> datetime | None:
    """When the service said to come back: Retry-After, or an epoch reset header."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    for name in ("ratelimit-reset", "x-ratelimit-reset", "x-rate-limit-reset"):
        value = headers.get(name)
        if value and str(value).strip().isdigit():
            n = int(value)
            # Some services send seconds to wait, most an epoch time.
            if n > 10**9:
                return datetime.fromtimestamp(n, UTC).replace(tzinfo=None)
            return now + timedelta(seconds=n)
    value = headers.get("retry-after")
    if value:
        if str(value).strip().isdigit():
            return now + timedelta(seconds=int(value))
        try:
            return parsedate_to_datetime(value).astimezone(UTC).replace(tzinfo=None)
        except (TypeError, ValueError):
            return None
    return None


def raise_for_status(status: int, headers, detail: str, service: str) -> None:
    """Nothing for 2xx; a transient error for 408/425/429/5xx; a permanent one otherwise."""
    if 200 <= status < 300:
        return
    message = f"{service} answered {status}: {detail[:300]}".rstrip(": ")
    if status in (408, 425, 429) or status >= 500:
        raise TransientPostingError(message, retry_at=retry_at_from_headers(headers))
    raise PermanentPostingError(message)
