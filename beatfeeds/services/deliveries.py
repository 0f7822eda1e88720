"""Email deliveries: which public entries go to which address, queueing instant alerts, and
sending one message by the queue's rules.

Deliveries follow the rules of beatfeeds.delivery.queue, as the outbox does: same statuses,
lease, backoff and attempts. SMTP has no duplicate guard, so a delivery (or digest) left
`sending` by a process that died becomes `unknown` and is never resent blindly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING

from beatfeeds.core.errors import ConfigurationError, PermanentPostingError, TransientPostingError
from beatfeeds.core.models import EmailDelivery, EmailSubscription
from beatfeeds.delivery import messages, queue, smtp
from beatfeeds.delivery.messages import ALL_AREAS, PublicEntry
from beatfeeds.services import announcements

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

NARROW = {"beat": 0, "sector": 1, "precinct": 2, "city": 3}  # narrowest area first


def public_entry(
    store: SQLStore, set_id: int | None, uid: str, now: datetime
) -> PublicEntry | None:
    """The incident or announcement `uid` with its areas, if it is public at `now`."""
    if set_id is None:
        return None
    entry = store.public.public_entry(set_id, uid, now=now)
    if entry is not None:
        return PublicEntry(
            entry,
            {
                ("city", None),
                ("beat", entry.beat),
                ("sector", entry.sector),
                ("precinct", entry.precinct),
            },
        )
    entry = announcements.public_announcement(store, uid, now=now)
    if entry is None:
        return None
    ann = store.outbox.announcement(uid)
    if ann.citywide:
        return PublicEntry(entry, ALL_AREAS, ann.urgent)
    areas: set = {("city", None)}
    codes = set(ann.beats)
    for b in store.beatmaps.beats(set_id):
        if b.code in codes:
            areas |= {("beat", b.code), ("sector", b.sector), ("precinct", b.precinct)}
    return PublicEntry(entry, areas, ann.urgent)


def matches(sub: EmailSubscription, found: PublicEntry) -> bool:
    """Whether the entry is in the subscription's area and categories."""
    area = found.areas is ALL_AREAS or (sub.area_kind, sub.area_code) in found.areas
    return area and (not sub.categories or found.entry.category in sub.categories)


def narrowest(subs: list[EmailSubscription]) -> EmailSubscription:
    """The subscription with the smallest area (the oldest among equals)."""
    return min(subs, key=lambda s: (NARROW[s.area_kind], s.id))


def grace(settings: Settings) -> timedelta:
    """How long an entry is public before mail about it goes out (`alert_grace_minutes`).
    Sent mail cannot be recalled: a retraction or suppression within this time cancels the
    mail instead, because each is checked against the entry's state when it is sent."""
    return timedelta(minutes=settings.alert_grace_minutes)


def enqueue_alerts(store: SQLStore, settings: Settings, now: datetime) -> int:
    """Queue every newly public entry once per address, whatever its overlapping
    subscriptions (instant ones; urgent announcements for every subscription), due
    `alert_grace_minutes` after it became public. Urgent announcements do not wait: staff
    publish them on purpose for people to act on at once (a gas leak), and they carry no
    source row that a retraction would have to take back."""
    set_id = store.beatmaps.active_beat_set_id()
    if set_id is None:
        return 0
    oldest = now - timedelta(hours=settings.outbox_max_age)
    wait = grace(settings)
    rows = [
        {
            "subscriber_id": sid,
            "entry_uid": uid,
            "status": "pending",
            "due_at": at if urgent else at + wait,
            "next_attempt_at": at if urgent else at + wait,
            "attempts": 0,
            "created_at": now,
        }
        for sid, uid, at, urgent in store.email.due_entries_for_email(
            set_id, now=now, oldest_event=oldest
        )
    ]
    return store.email.enqueue_email_deliveries(rows)


def attempt(
    settings: Settings, msg: EmailMessage, attempts: int, clock: queue.Clock
) -> tuple[str, dict]:
    """Send one message (attempt number `attempts`); the outcome and the values to record."""
    try:
        smtp.send(settings, msg)
    except TransientPostingError as exc:
        values = queue.after_transient_failure(attempts, exc.message, clock())
        return ("failed" if values["status"] == "failed" else "retry"), values
    except (PermanentPostingError, ConfigurationError) as exc:
        return "failed", {"status": "failed", "error": exc.message}
    return "sent", {"status": "sent", "sent_at": clock(), "error": None}


def send_delivery(
    store: SQLStore, settings: Settings, d: EmailDelivery, set_id, at: datetime, clock: queue.Clock
) -> str:
    """Send one instant alert claimed at `at`, or cancel it when its entry is no longer public
    or no subscription of the address matches it any more; returns the outcome."""
    found = public_entry(store, set_id, d.entry_uid, at)
    # Digest subscriptions get an entry on its own only when it is an urgent announcement.
    subs = [
        s
        for s in store.email.email_subscriptions(d.address)
        if found and matches(s, found) and (s.frequency == "instant" or found.urgent)
    ]
    if found is None or not subs:
        store.email.finish_email_delivery(
            d.id,
            status="cancelled",
            error=(
                "The entry is no longer public."
                if found is None
                else "No subscription of the address matches the entry any more."
            ),
        )
        return "cancelled"
    # The narrowest matching subscription explains "why" and is the one-click target.
    outcome, values = attempt(
        settings,
        messages.alert_message(settings, found, narrowest(subs)),
        queue.attempt_number(d.attempts),
        clock,
    )
    store.email.finish_email_delivery(d.id, **values)
    return outcome
