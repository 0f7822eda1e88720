"""Outbound accounts and the outbox: which entries go to which accounts, when, and how.

Feeds stay primary; an area may also mirror its entries to accounts on outside services.
The `send-outbox` job enqueues each public entry once per account (and again only if a
correction changes its category), sends it after the publication delay within each
service's rate limits, retries transient failures with backoff and stops on permanent ones.
A crash between sending and recording is made harmless by each service's duplicate guard;
where a service has none (X) the item becomes `unknown` and waits for an admin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from beatfeeds.core import areas
from beatfeeds.core.errors import (
    ConfigurationError,
    InvalidInput,
    PermanentPostingError,
    PostingError,
    PostOutcomeUnknown,
    TransientPostingError,
)
from beatfeeds.core.models import OutboundAccount, OutboxItem
from beatfeeds.delivery import posts, queue
from beatfeeds.delivery.credentials import decrypt_credentials, encrypt_credentials
from beatfeeds.delivery.posting import make_poster
from beatfeeds.delivery.posting import text as posttext
from beatfeeds.delivery.posting.base import (
    CREDENTIAL_FIELDS,
    DEFAULT_ENDPOINTS,
    SERVICES,
    OutboundPost,
)
from beatfeeds.delivery.posting.dryrun import DryRunPoster
from beatfeeds.services import publishing

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)


# ---- accounts ---------------------------------------------------------------------------------
def add_account(
    store: SQLStore,
    settings: Settings,
    *,
    area_kind: str,
    area_code: str | None,
    service: str,
    label: str,
    endpoint: str,
    credentials: dict,
    template: str = "",
    profile_template: str = "",
    handle: str | None = None,
    actor: str,
    now: datetime,
) -> int:
    """Connect an area to an account; the credentials are stored encrypted, never shown."""
    if service not in SERVICES:
        raise InvalidInput(f"Service must be one of {', '.join(SERVICES)}.")
    if area_kind not in areas.KINDS:
        raise InvalidInput(f"Area must be one of {', '.join(areas.KINDS)}.")
    area = publishing.resolve_area(store, area_kind, area_code if area_kind != "city" else None)
    endpoint = (endpoint or DEFAULT_ENDPOINTS[service]).strip().rstrip("/")
    if not endpoint.startswith(("https://", "http://")):
        raise InvalidInput("The server or webhook URL must start with https://.")
    creds = {}
    for name, title, _secret in CREDENTIAL_FIELDS[service]:
        value = (credentials.get(name) or "").strip()
        if not value:
            raise InvalidInput(f"{title} is required for {SERVICES[service]}.")
        creds[name] = value
    template = (template or posttext.DEFAULT_TEMPLATE).replace("\r\n", "\n")
    posttext.check_template(template)
    profile_template = (profile_template or posttext.DEFAULT_PROFILE_TEMPLATE).strip()
    posttext.check_profile_template(profile_template)
    label = (label or "").strip() or f"{SERVICES[service]} for {area.label}"
    handle = (handle or creds.get("identifier") or "").strip() or None
    account_id = store.outbox.add_outbound_account(
        area_kind=area.kind,
        area_code=area.code,
        service=service,
        label=label[:200],
        endpoint=endpoint,
        handle=handle,
        credentials=encrypt_credentials(settings, creds),
        template=template,
        profile_template=profile_template,
        status="active",
        created_at=now,
        created_by=actor,
    )
    store.accounts.audit(
        actor,
        "outbound.add",
        f"account {account_id}",
        {"service": service, "area": area.label, "endpoint": _without_userinfo(endpoint)},
        now=now,
    )
    return account_id


def parse_area(spec: str) -> tuple[str, str | None]:
    """`city`, `precinct:W`, `sector:K` or `beat:K3` as (kind, code)."""
    kind, _, code = (spec or "").strip().partition(":")
    kind, code = kind.strip().lower(), code.strip()
    if kind not in areas.KINDS:
        raise InvalidInput(
            f"Area must be city, precinct:CODE, sector:CODE or beat:CODE, not {spec!r}."
        )
    if kind == "city":
        if code:
            raise InvalidInput("The city area takes no code: write `city`.")
        return kind, None
    if not code:
        raise InvalidInput(f"Name the {kind}: {kind}:CODE.")
    return kind, code


def public_target(account: OutboundAccount) -> str:
    """Where an account posts (server or webhook URL, handle), with any user name or password
    written into the URL left out: safe to print."""
    return _without_userinfo(account.endpoint) + (f" ({account.handle})" if account.handle else "")


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@dataclass
class AccountSummary:
    account: OutboundAccount
    area: str  # as `outbound add` takes it: "sector:K", "city"
    area_label: str  # "Sector K"
    target: str  # public_target()
    counts: dict[str, int]  # pending (including sending), sent, failed, unknown


def list_accounts(store: SQLStore) -> list[AccountSummary]:
    """Every outbound account with where it posts and its outbox counts; no credentials."""
    by_account = store.outbox.outbox_counts_by_account()
    out = []
    for account in store.outbox.list_outbound_accounts():
        c = by_account.get(account.id, {})
        counts = {
            "pending": c.get("pending", 0) + c.get("sending", 0),
            "sent": c.get("sent", 0),
            "failed": c.get("failed", 0),
            "unknown": c.get("unknown", 0),
        }
        spec = account.area_kind + (f":{account.area_code}" if account.area_code else "")
        out.append(
            AccountSummary(account, spec, posts.area_label(account), public_target(account), counts)
        )
    return out


def set_account_paused(
    store: SQLStore, account_id: int, paused: bool, *, actor: str, now: datetime
) -> None:
    """Pause (nothing is sent; items wait) or resume an account."""
    store.outbox.update_outbound_account(account_id, status="paused" if paused else "active")
    store.accounts.audit(
        actor, "outbound.pause" if paused else "outbound.resume", f"account {account_id}", now=now
    )


def remove_account(store: SQLStore, account_id: int, *, actor: str, now: datetime) -> None:
    """Forget an account, its credentials and its outbox (posts already made stay up)."""
    account = store.outbox.outbound_account(account_id)
    store.outbox.delete_outbound_account(account_id)
    store.accounts.audit(
        actor,
        "outbound.remove",
        f"account {account_id}",
        {"service": account.service, "label": account.label},
        now=now,
    )


def poster_for(store: SQLStore, settings: Settings, account: OutboundAccount):
    """The adapter for an account (a dry-run stand-in under BEATFEEDS_DRY_RUN)."""
    creds = decrypt_credentials(settings, account.credentials)
    poster = make_poster(
        account.service,
        account.endpoint,
        creds,
        timeout=settings.outbound_timeout,
        char_limit=account.char_limit,
    )
    if settings.dry_run:
        return DryRunPoster(poster, account.char_limit)
    return poster


def test_account(
    store: SQLStore,
    settings: Settings,
    account_id: int,
    *,
    actor: str,
    now: datetime,
    posters: Callable | None = None,
) -> str:
    """Send a test post now (it bypasses the outbox) and record the result on the account."""
    account = store.outbox.outbound_account(account_id)
    poster = (posters or poster_for)(store, settings, account)
    link = posts.area_url(settings, account)
    fields = {
        "title": f"Test post from {settings.department_name}'s feeds for {posts.area_label(account)}.",
        "body": posts.profile_text(settings, account),
        "link": link,
    }
    try:
        limit = poster.char_limit()
        if account.service == "mastodon" and not settings.dry_run:
            store.outbox.update_outbound_account(account_id, char_limit=limit)
        text = posttext.fit("{title}\n{body}\n{link}", fields, poster.measure, limit)
        sent = poster.post(
            OutboundPost(
                text=text,
                link=link,
                key=f"beatfeeds-test-{account_id}-{int(time.time())}",
                created_at=now,
                payload={"event": "test", "entry": {}},
            )
        )
    except PostingError as exc:
        result = f"failed: {exc.message}"
    except ConfigurationError as exc:
        result = f"failed: {exc.message}"
    else:
        where = sent.url or sent.remote_id
        result = "dry run: nothing was sent" if settings.dry_run else f"sent: {where}"
    store.outbox.update_outbound_account(
        account_id, last_test_at=now, last_test_result=result[:1000]
    )
    store.accounts.audit(
        actor, "outbound.test", f"account {account_id}", {"result": result[:200]}, now=now
    )
    return result


def update_profile(
    store: SQLStore,
    settings: Settings,
    account_id: int,
    *,
    actor: str,
    now: datetime,
    posters: Callable | None = None,
) -> str:
    """Write the profile text (with its not-monitored / call 911 notice) to the account's
    bio where the service's API allows it (Mastodon, Bluesky)."""
    account = store.outbox.outbound_account(account_id)
    poster = (posters or poster_for)(store, settings, account)
    if settings.dry_run:
        result = "dry run: the profile was not changed"
    elif not hasattr(poster, "set_profile"):
        result = (
            f"failed: {SERVICES[account.service]} has no API for this; paste the text "
            "into the profile by hand"
        )
    else:
        try:
            poster.set_profile(posts.profile_text(settings, account))
        except (PostingError, ConfigurationError) as exc:
            result = f"failed: {exc.message}"
        else:
            result = "profile updated"
    store.accounts.audit(
        actor, "outbound.profile", f"account {account_id}", {"result": result[:200]}, now=now
    )
    return result


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
