"""Daily and weekly digests: when each is due (a local send time that follows daylight
saving), which entries a period's digest holds, and sending it as one message.

A digest is recorded when its send time has come, with the entries that became public in its
period; when sent, each entry is checked again (still public, still subscribed) and listed
once, under the narrowest of the address's subscriptions it matches.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from beatfeeds.core.models import EmailDigest, EmailSubscription
from beatfeeds.core.settings import WEEKDAYS
from beatfeeds.delivery import messages, queue
from beatfeeds.delivery.messages import PublicEntry
from beatfeeds.services import deliveries

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

DIGESTS = ("daily", "weekly")


def scheduled_send(settings: Settings, frequency: str, now: datetime) -> datetime:
    """The latest scheduled send time of a daily or weekly digest at or before `now` (naive
    UTC): `digest_time` local (in `timezone`), on `digest_weekday` for weekly ones. Local
    times follow daylight saving: 07:00 stays 07:00 on both sides of a change."""
    tz = settings.tz
    hour, minute = (int(x) for x in settings.digest_time.split(":"))
    today: date = now.replace(tzinfo=UTC).astimezone(tz).date()
    weekday = WEEKDAYS.index(settings.digest_weekday)
    for back in range(9):
        day = today - timedelta(days=back)
        if frequency == "weekly" and day.weekday() != weekday:
            continue
        # A time skipped by spring-forward comes out an hour later (fold=0 keeps the offset
        # from before the change); a repeated one is its first occurrence.
        at = datetime.combine(day, time(hour, minute), tzinfo=tz)
        at = at.astimezone(UTC).replace(tzinfo=None)
        if at <= now:
            return at
    raise AssertionError("unreachable: a week always has the weekday")


def assemble_digests(store: SQLStore, settings: Settings, now: datetime) -> int:
    """Record the digest of every address whose send time has come since its last one: the
    entries matching its digest subscriptions that became public since then (or since it
    subscribed), each once and never one already mailed to the address."""
    set_id = store.beatmaps.active_beat_set_id()
    if set_id is None:
        return 0
    subs = [s for s in store.email.email_subscriptions() if s.frequency in DIGESTS]
    made = 0
    for frequency in DIGESTS:
        due = scheduled_send(settings, frequency, now)
        groups: dict[int, list[EmailSubscription]] = {}
        for s in subs:
            if s.frequency == frequency and s.created_at <= due:
                groups.setdefault(s.subscriber_id, []).append(s)
        if not groups:
            continue
        last = store.digests.latest_email_digest_ends(frequency)
        for sid, group in groups.items():
            previous = last.get(sid)
            if previous is not None and previous >= due:
                continue  # this period's digest exists
            # The first digest covers the time since subscribing, at most one period back
            # (a subscription switched from instant alerts does not dig up the past).
            start = previous or max(
                min(s.created_at for s in group),
                scheduled_send(settings, frequency, due - timedelta(seconds=1)),
            )
            # A backfill of old incidents is not news: as for instant alerts, an event must be
            # recent (`outbox_max_age` hours) when its period begins. Only entries public for
            # the grace time are listed: the window of publication times runs `grace` behind
            # the period, so one that became public just before the send time waits for the
            # next digest instead of being lost or listed before a retraction could stop it.
            wait = deliveries.grace(settings)
            entries = store.digests.entries_for_email_digest(
                set_id,
                sid,
                frequency,
                now=now - wait,
                since=start - wait,
                oldest_event=start - timedelta(hours=settings.outbox_max_age),
            )
            if (
                store.digests.create_email_digest(
                    subscriber_id=sid,
                    frequency=frequency,
                    period_start=start,
                    period_end=due,
                    entries=entries,
                    now=now,
                )
                is not None
            ):
                made += 1
    return made


def send_digest(
    store: SQLStore, settings: Settings, digest: EmailDigest, set_id, clock: queue.Clock
) -> str:
    """Send one claimed digest with what in it is still public and subscribed (or cancel it
    when nothing is); returns the outcome."""
    at = clock()
    subs = [
        s
        for s in store.email.email_subscriptions(digest.address)
        if s.frequency == digest.frequency
    ]
    grouped: dict[int, tuple[EmailSubscription, list[PublicEntry]]] = {}
    for d in store.digests.email_digest_entries(digest.id):
        if d.status == "cancelled":
            continue
        found = deliveries.public_entry(store, set_id, d.entry_uid, at)
        matching = [s for s in subs if found and deliveries.matches(s, found)]
        if not matching:
            store.digests.cancel_email_digest_entry(
                d.id,
                "The entry is no longer public."
                if found is None
                else "No subscription of the address matches it any more.",
            )
            continue
        sub = deliveries.narrowest(matching)
        grouped.setdefault(sub.id, (sub, []))[1].append(found)
    if not grouped:
        store.digests.finish_email_digest(
            digest.id, status="cancelled", error="Nothing in it is public or subscribed any more."
        )
        return "cancelled"
    groups = sorted(
        grouped.values(), key=lambda g: (deliveries.NARROW[g[0].area_kind], g[0].area_code or "")
    )
    for _, found in groups:
        found.sort(key=lambda f: (f.entry.event_time, f.entry.uid))
    outcome, values = deliveries.attempt(
        settings,
        messages.digest_message(settings, digest, groups),
        queue.attempt_number(digest.attempts),
        clock,
    )
    store.digests.finish_email_digest(digest.id, **values)
    return outcome
