"""Entries staff take back or let through: retraction with an audited reason, and the
`needs review` queue of text that looks like personal data."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from beatfeeds.core import models
from beatfeeds.core.errors import (
    Conflict,
    InvalidInput,
)
from beatfeeds.core.models import StaffIncident
from beatfeeds.publish import pii

if TYPE_CHECKING:
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)


RETRACTION_REASONS = ("wrong address", "sealed record", "victim request", "other")


def retract_entry(
    store: SQLStore, uid: str, reason: str, *, actor: str, now: datetime, note: str = ""
) -> StaffIncident:
    """Withdraw a published entry from every feed and page at once, with an audited reason."""
    reason = (reason or "").strip()
    note = (note or "").strip()
    if not reason:
        raise InvalidInput("Give the reason for the retraction.")
    text = f"{reason}: {note}" if note and note != reason else reason
    store.records.retract_incident(uid.strip().lower(), text[:2000], actor=actor, now=now)
    return store.records.staff_incident(uid.strip().lower())


def entries_for_review(store: SQLStore, limit: int = 200) -> tuple[list[StaffIncident], int]:
    """(entries held back because their text looks like personal data, newest first; how
    many there are in all). Each is released (`release_entry`) or retracted by staff."""
    return (
        store.records.incidents_for_review(models.NEEDS_REVIEW, limit),
        store.records.count_incidents_for_review(models.NEEDS_REVIEW),
    )


def release_entry(store: SQLStore, uid: str, *, actor: str, now: datetime) -> StaffIncident:
    """Publish an entry held back as `needs review` as it is, audited with who and when.

    The release covers the entry's present texts: it outlasts re-imports of the same texts
    and the publication-policy job, and a re-import that changes them holds it back again.
    """
    uid = (uid or "").strip().lower()
    e = store.records.staff_incident(uid)
    if e.retracted_at:
        raise Conflict(f"Entry {uid} was retracted; it cannot be released.")
    if not models.is_review_reason(e.suppressed_reason):
        raise Conflict(
            f"Entry {uid} is not held back for review"
            + (f" ({e.suppressed_reason})." if e.suppressed_reason else ".")
        )
    store.records.release_incident(
        uid,
        held_reason=e.suppressed_reason,
        digest=pii.text_digest(e.description, e.category_text),
        actor=actor,
        now=now,
    )
    log.info("entry %s released by %s", uid, actor)
    return store.records.staff_incident(uid)
