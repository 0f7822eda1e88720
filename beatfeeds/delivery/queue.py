"""The retry rules of every queue that sends: the outbox (posts), email deliveries and digests.

One set of rules, so a post and a mail are retried, given up on and left `unknown` alike:
- a claim marks an item `sending` and counts the attempt (in SQL, `attempts + 1`); a claim
  older than `LEASE` belongs to a process that died before it recorded the result;
- such an item is sent again only where the service has a duplicate guard; without one (X,
  SMTP) it becomes `unknown` and waits for an admin, who marks it sent, retries or drops it;
- a transient failure is retried after a backoff that doubles from `BACKOFF_START` up to
  `BACKOFF_MAX`, and the item fails once `MAX_ATTEMPTS` attempts were made.
The storage layer takes these values as parameters; it writes no rule of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from beatfeeds.core.errors import Conflict, InvalidInput

LEASE = timedelta(minutes=10)  # an item `sending` for longer belongs to a process that died
MAX_ATTEMPTS = 8
BACKOFF_START = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=6)
RESOLUTIONS = ("sent", "retry", "drop")  # an admin's choices for an `unknown` item

Clock = Callable[[], datetime]


def default_clock(now: datetime) -> Clock:
    """A clock that starts at `now` (naive UTC) and runs on with the monotonic clock."""
    start = time.monotonic()
    return lambda: now + timedelta(seconds=time.monotonic() - start)


def stale_before(now: datetime) -> datetime:
    """Items claimed before this time and still `sending` were interrupted."""
    return now - LEASE


def attempt_number(recorded: int) -> int:
    """The number of the attempt being made on an item read before its claim: the claim
    counts it (`attempts + 1` in SQL)."""
    return recorded + 1


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th attempt failed for a transient reason."""
    return min(BACKOFF_START * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def after_transient_failure(
    attempts: int, error: str, at: datetime, *, not_before: datetime | None = None
) -> dict:
    """The values to record after attempt number `attempts` failed for a transient reason:
    pending again after the backoff (and not before `not_before`, a wait the service asked
    for), or failed once `MAX_ATTEMPTS` attempts were made."""
    if attempts >= MAX_ATTEMPTS:
        return {"status": "failed", "error": f"gave up after {attempts} attempts: {error}"}
    return {
        "status": "pending",
        "next_attempt_at": max(not_before or at, at + backoff(attempts)),
        "error": error,
    }


def after_interruption(now: datetime, *, duplicate_guard: bool, unknown_error: str) -> dict:
    """The values to record for an item left `sending` past its lease: sent again at once
    where a duplicate guard makes that harmless, else `unknown` (with `unknown_error`)."""
    if duplicate_guard:
        return {
            "status": "pending",
            "next_attempt_at": now,
            "error": "Interrupted while sending; retried with the same duplicate guard.",
        }
    return {"status": "unknown", "error": unknown_error}


def require_unknown(what: str, status: str) -> None:
    """Conflict unless the item (`what`, as an admin reads it) is `unknown`."""
    if status != "unknown":
        raise Conflict(f"{what} is {status}, not unknown.")


def resolution(outcome: str, *, actor: str, now: datetime, confirmed: str = "sent") -> dict:
    """The values to record for an admin's decision on an `unknown` item: it was `sent`
    ("confirmed as {confirmed} by ..."), `retry` it now, or `drop` it."""
    if outcome == "sent":
        return {"status": "sent", "sent_at": now, "error": f"confirmed as {confirmed} by {actor}"}
    if outcome == "retry":
        return {
            "status": "pending",
            "next_attempt_at": now,
            "error": f"sent again on request of {actor}",
        }
    if outcome == "drop":
        return {"status": "failed", "error": f"dropped by {actor}"}
    raise InvalidInput("Choose sent, retry or drop.")
