"""The outbox: which entries go to which outbound accounts, when, and how.

Feeds stay primary; an area may also mirror its entries to accounts on outside services.
The `send-outbox` job enqueues each public entry once per account (and again only if a
correction changes its category), sends it after the publication delay within each
service's rate limits, retries transient failures with backoff and stops on permanent ones.
A crash between sending and recording is made harmless by each service's duplicate guard;
where a service has none (X) the item becomes `unknown` and waits for an admin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from beatfeeds.core.errors import (
    ConfigurationError,
    PermanentPostingError,
    PostingError,
    PostOutcomeUnknown,
    TransientPostingError,
)
from beatfeeds.core.models import OutboundAccount, OutboxItem
from beatfeeds.delivery import posts, queue
from beatfeeds.delivery.posting.base import (
    OutboundPost,
)
from beatfeeds.services.outbound_accounts import poster_for

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)


# ---- the outbox -------------------------------------------------------------------------------
def enqueue_due(store: SQLStore, settings: Settings, now: datetime) -> int:
    """Add an outbox item for every public entry due to each active account."""
    set_id = store.beatmaps.active_beat_set_id()
    if set_id is None:  # no beat map yet: nothing is public
        return 0
    oldest = now - timedelta(hours=settings.outbox_max_age)
    added = 0
    for account in store.outbox.list_outbound_accounts(active_only=True):
        rows = [
            {
                "account_id": account.id,
                "entry_uid": uid,
                "entry_kind": kind,
                "category": category,
                "status": "pending",
                "due_at": publish_at,
                "next_attempt_at": publish_at,
                "attempts": 0,
                "dry_run": False,
                "created_at": now,
            }
            for uid, kind, category, publish_at in store.outbox.due_entries_for_account(
                account, set_id, now=now, oldest_event=oldest
            )
        ]
        added += store.outbox.enqueue_outbox(rows)
    return added


def recover_interrupted(store: SQLStore, now: datetime) -> dict:
    """Items left `sending` by a process that died: retried where a duplicate guard makes
    that safe, `unknown` (for an admin) where not."""
    out = {"requeued": 0, "unknown": 0}
    for item in store.outbox.stale_sending_items(queue.stale_before(now)):
        values = queue.after_interruption(
            now,
            duplicate_guard=item.service != "x",
            unknown_error=(
                "Interrupted while sending. X has no duplicate guard, so it was not retried: "
                "check the account, then mark it sent or send it again."
            ),
        )
        store.outbox.finish_outbox_item(item.id, **values)
        out["unknown" if values["status"] == "unknown" else "requeued"] += 1
    return out


def _within_limits(store: SQLStore, poster, account_id: int, now: datetime) -> bool:
    return all(
        store.outbox.sends_since(account_id, now - timedelta(seconds=seconds)) < count
        for count, seconds in poster.limits
    )


def _current_entry(store: SQLStore, settings: Settings, item: OutboxItem, now: datetime):
    """(entry, urgent) if the item's entry is still public in the same category, else the
    status the item should take instead."""
    set_id = store.beatmaps.active_beat_set().id
    if item.entry_kind == "announcement":
        found = store.outbox.public_announcements(set_id, now=now, uid=item.entry_uid, limit=1)
        if not found:
            return None, "cancelled"
        if found[0].category != item.category:
            return None, "superseded"
        ann = store.outbox.announcement(item.entry_uid)
        return (found[0], ann.urgent), None
    entry = store.public.public_entry(set_id, item.entry_uid, now=now)
    if entry is None:
        return None, "cancelled"
    if entry.category != item.category:
        return None, "superseded"
    return (entry, False), None


def send_outbox(
    store: SQLStore,
    settings: Settings,
    now: datetime,
    *,
    clock: queue.Clock | None = None,
    posters: Callable | None = None,
    limit: int = 200,
) -> dict:
    """Enqueue what is due, then send pending items whose time has come."""
    clock = clock or queue.default_clock(now)
    summary = {
        "enqueued": enqueue_due(store, settings, now),
        "sent": 0,
        "retry": 0,
        "failed": 0,
        "unknown": 0,
        "deferred": 0,
        "cancelled": 0,
        "superseded": 0,
    }
    recovered = recover_interrupted(store, now)
    summary["unknown"] += recovered["unknown"]
    make = posters or poster_for
    accounts: dict[int, OutboundAccount] = {}
    cache: dict[int, object] = {}
    held: set[int] = set()  # accounts at their rate limit for this run
    for item in store.outbox.due_outbox_items(now, limit):
        if item.account_id in held:
            summary["deferred"] += 1
            continue
        account = accounts.setdefault(
            item.account_id, store.outbox.outbound_account(item.account_id)
        )
        try:
            poster = cache.get(account.id) or make(store, settings, account)
        except (ConfigurationError, PostingError) as exc:
            store.outbox.finish_outbox_item(item.id, status="failed", error=exc.message)
            summary["failed"] += 1
            continue
        cache[account.id] = poster
        at = clock()
        if not _within_limits(store, poster, account.id, at):
            held.add(account.id)
            summary["deferred"] += 1
            continue
        if not store.outbox.claim_outbox_item(item.id, at):
            continue  # another process is sending it
        outcome = _send_one(store, settings, account, poster, item, clock)
        if outcome == "rate-limited":  # the service said to wait: stop for this account
            held.add(account.id)
            outcome = "retry"
        summary[outcome] += 1
    log.info("send-outbox: %s", summary)
    return summary


def _send_one(
    store: SQLStore, settings: Settings, account, poster, item: OutboxItem, clock: queue.Clock
) -> str:
    at = clock()
    current, other = _current_entry(store, settings, item, at)
    if current is None:
        store.outbox.finish_outbox_item(
            item.id,
            status=other,
            error=(
                "The entry is no longer public."
                if other == "cancelled"
                else "A correction changed the category; the new category is posted instead."
            ),
        )
        return other
    entry, urgent = current
    try:
        fields = posts.entry_fields(settings, account, entry, item.entry_kind, urgent)
        text = posts.post_text(poster, account, fields)
        sent = poster.post(
            OutboundPost(
                text=text,
                link=fields["link"],
                key=f"beatfeeds-outbox-{item.id}",
                created_at=item.created_at,
                payload={"event": "entry.published", "entry": posts.payload(entry, item, fields)},
            )
        )
    except TransientPostingError as exc:
        at = clock()
        if exc.retry_at:
            store.outbox.update_outbound_account(account.id, blocked_until=exc.retry_at)
        values = queue.after_transient_failure(
            queue.attempt_number(item.attempts), exc.message, at, not_before=exc.retry_at
        )
        store.outbox.finish_outbox_item(item.id, **values)
        if values["status"] == "failed":
            return "failed"
        return "rate-limited" if exc.retry_at else "retry"
    except PostOutcomeUnknown as exc:
        store.outbox.finish_outbox_item(
            item.id,
            status="unknown",
            error=(
                f"{exc.message}. The post may or may not have been made; check the account, then "
                "mark it sent or send it again."
            ),
        )
        return "unknown"
    except (PermanentPostingError, ConfigurationError) as exc:
        store.outbox.finish_outbox_item(item.id, status="failed", error=exc.message)
        return "failed"
    store.outbox.finish_outbox_item(
        item.id,
        status="sent",
        sent_at=clock(),
        text=text,
        remote_id=sent.remote_id,
        remote_url=sent.url,
        dry_run=bool(settings.dry_run),
        error=None,
    )
    if account.service == "mastodon" and account.char_limit is None and not settings.dry_run:
        account.char_limit = poster.char_limit()  # read from the instance; keep it
        store.outbox.update_outbound_account(account.id, char_limit=account.char_limit)
    return "sent"


def retract_posts(
    store: SQLStore, settings: Settings, now: datetime, *, posters: Callable | None = None
) -> dict:
    """Delete posts whose entry was retracted, suppressed or withdrawn, where the service
    allows it."""
    make = posters or poster_for
    summary = {"deleted": 0, "retry": 0, "failed": 0}
    for item in store.outbox.sent_items_no_longer_public():
        account = store.outbox.outbound_account(item.account_id)
        if account.status != "active":
            continue  # a paused account deletes once resumed
        try:
            if item.dry_run or item.remote_id is None:
                store.outbox.mark_outbox_deleted(item.id, deleted_at=now)
                summary["deleted"] += 1
                continue
            poster = make(store, settings, account)
            if not _within_limits(store, poster, account.id, now):
                summary["retry"] += 1
                continue
            poster.delete(item.remote_id)
        except TransientPostingError as exc:
            store.outbox.finish_outbox_item(item.id, error=f"delete will be retried: {exc.message}")
            summary["retry"] += 1
            continue
        except (PostingError, ConfigurationError) as exc:
            store.outbox.finish_outbox_item(
                item.id, status="failed", error=f"could not delete the post: {exc.message}"
            )
            summary["failed"] += 1
            continue
        store.outbox.mark_outbox_deleted(item.id, deleted_at=now)
        summary["deleted"] += 1
    log.info("retract-posts: %s", summary)
    return summary


def resolve_unknown(
    store: SQLStore, item_id: int, outcome: str, *, actor: str, now: datetime
) -> None:
    """An admin's decision on an `unknown` item: it was `sent`, or `retry` it, or `drop` it."""
    item = store.outbox.outbox_item(item_id)
    queue.require_unknown(f"Outbox item {item_id}", item.status)
    store.outbox.finish_outbox_item(
        item_id, **queue.resolution(outcome, actor=actor, now=now, confirmed="posted")
    )
    store.accounts.audit(
        actor, "outbox.resolve", f"outbox {item_id}", {"outcome": outcome}, now=now
    )
