"""Outbound accounts and the outbox: which entries go to which accounts, when, and how.

Feeds stay primary; an area may also mirror its entries to accounts on outside services.
The `send-outbox` job enqueues each public entry once per account (and again only if a
correction changes its category), sends it after the publication delay within each
service's rate limits, retries transient failures with backoff and stops on permanent ones.
A crash between sending and recording is made harmless by each service's duplicate guard;
where a service has none (X) the item becomes `unknown` and waits for an admin.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from beatfeeds.core.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    PermanentPostingError,
    PostingError,
    PostOutcomeUnknown,
    TransientPostingError,
)
from beatfeeds.core.models import ANNOUNCEMENT_KINDS, FeedEntry, OutboundAccount, OutboxItem
from beatfeeds.core.settings import ensure_secret_key
from beatfeeds.core.text import local_time_text, single_line
from beatfeeds.delivery.posting import (
    CREDENTIAL_FIELDS,
    DEFAULT_ENDPOINTS,
    SERVICES,
    OutboundPost,
    make_poster,
)
from beatfeeds.delivery.posting import text as posttext
from beatfeeds.delivery.posting.dryrun import DryRunPoster
from beatfeeds.publish import feeds, privacy
from beatfeeds.services import publishing

log = logging.getLogger(__name__)

AREA_KINDS = ("city", "precinct", "sector", "beat")
LEASE = timedelta(minutes=10)  # an item `sending` for longer belongs to a process that died
MAX_ATTEMPTS = 8
BACKOFF_START = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=6)

Clock = Callable[[], datetime]


# ---- credentials ----------------------------------------------------------------------------
def _fernet(settings) -> Fernet:
    """Fernet keyed by HKDF-SHA256 of the secret key (a key used for nothing else)."""
    secret = ensure_secret_key(settings).encode()
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"beatfeeds outbound accounts",
        info=b"credentials v1",
    ).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_credentials(settings, credentials: dict) -> str:
    return _fernet(settings).encrypt(json.dumps(credentials).encode()).decode()


def decrypt_credentials(settings, token: str) -> dict:
    try:
        return json.loads(_fernet(settings).decrypt(token.encode()))
    except InvalidToken:
        raise ConfigurationError(
            "The account's credentials cannot be decrypted: the secret key "
            "changed since they were entered. Remove the account and add "
            "it again."
        ) from None


# ---- accounts ---------------------------------------------------------------------------------
def add_account(
    store,
    settings,
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
    if area_kind not in AREA_KINDS:
        raise InvalidInput(f"Area must be one of {', '.join(AREA_KINDS)}.")
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
    account_id = store.add_outbound_account(
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
    store.audit(
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
    if kind not in AREA_KINDS:
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


def list_accounts(store) -> list[AccountSummary]:
    """Every outbound account with where it posts and its outbox counts; no credentials."""
    by_account = store.outbox_counts_by_account()
    out = []
    for account in store.list_outbound_accounts():
        c = by_account.get(account.id, {})
        counts = {
            "pending": c.get("pending", 0) + c.get("sending", 0),
            "sent": c.get("sent", 0),
            "failed": c.get("failed", 0),
            "unknown": c.get("unknown", 0),
        }
        spec = account.area_kind + (f":{account.area_code}" if account.area_code else "")
        out.append(
            AccountSummary(account, spec, area_label(account), public_target(account), counts)
        )
    return out


def set_account_paused(store, account_id: int, paused: bool, *, actor: str, now: datetime) -> None:
    """Pause (nothing is sent; items wait) or resume an account."""
    store.update_outbound_account(account_id, status="paused" if paused else "active")
    store.audit(
        actor, "outbound.pause" if paused else "outbound.resume", f"account {account_id}", now=now
    )


def remove_account(store, account_id: int, *, actor: str, now: datetime) -> None:
    """Forget an account, its credentials and its outbox (posts already made stay up)."""
    account = store.outbound_account(account_id)
    store.delete_outbound_account(account_id)
    store.audit(
        actor,
        "outbound.remove",
        f"account {account_id}",
        {"service": account.service, "label": account.label},
        now=now,
    )


def area_label(account: OutboundAccount) -> str:
    return feeds.area_label(account.area_kind, account.area_code)


def area_url(settings, account: OutboundAccount) -> str:
    kind = {"city": "", "precinct": "/precincts/", "sector": "/sectors/", "beat": "/beats/"}
    return settings.base_url + (kind[account.area_kind] + (account.area_code or "") or "/")


def profile_text(settings, account: OutboundAccount) -> str:
    """The account's profile (bio) text, with the not-monitored / call 911 notice."""
    return posttext.render(
        account.profile_template,
        {
            "department": settings.department_name,
            "area": area_label(account),
            "delay": str(settings.publication_delay),
            "feed": area_url(settings, account),
        },
    )


def poster_for(store, settings, account: OutboundAccount):
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
    store, settings, account_id: int, *, actor: str, now: datetime, posters: Callable | None = None
) -> str:
    """Send a test post now (it bypasses the outbox) and record the result on the account."""
    account = store.outbound_account(account_id)
    poster = (posters or poster_for)(store, settings, account)
    link = area_url(settings, account)
    fields = {
        "title": f"Test post from {settings.department_name}'s feeds for {area_label(account)}.",
        "body": profile_text(settings, account),
        "link": link,
    }
    try:
        limit = poster.char_limit()
        if account.service == "mastodon" and not settings.dry_run:
            store.update_outbound_account(account_id, char_limit=limit)
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
    store.update_outbound_account(account_id, last_test_at=now, last_test_result=result[:1000])
    store.audit(actor, "outbound.test", f"account {account_id}", {"result": result[:200]}, now=now)
    return result


def update_profile(
    store, settings, account_id: int, *, actor: str, now: datetime, posters: Callable | None = None
) -> str:
    """Write the profile text (with its not-monitored / call 911 notice) to the account's
    bio where the service's API allows it (Mastodon, Bluesky)."""
    account = store.outbound_account(account_id)
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
            poster.set_profile(profile_text(settings, account))
        except (PostingError, ConfigurationError) as exc:
            result = f"failed: {exc.message}"
        else:
            result = "profile updated"
    store.audit(
        actor, "outbound.profile", f"account {account_id}", {"result": result[:200]}, now=now
    )
    return result


# ---- post text --------------------------------------------------------------------------------
def entry_link(settings, uid: str) -> str:
    return f"{settings.base_url}/entries/{uid}"


def entry_fields(
    settings, account: OutboundAccount, entry: FeedEntry, kind: str, urgent: bool = False
) -> dict[str, str]:
    """What a post template can use, for one entry."""
    when = local_time_text(entry.event_time, settings.tz)
    if kind == "announcement":
        label = ANNOUNCEMENT_KINDS.get(entry.category_text, entry.category_text)
        title = single_line(("URGENT " if urgent else "") + f"{label}: {entry.title}")
        body, category = entry.description, label
    else:
        title = feeds._title(entry, settings)
        body, category = "", privacy.category_label(entry.category)
    return {
        "title": title,
        "body": body,
        "category": category,
        "address": entry.block_address,
        "when": when,
        "area": area_label(account),
        "beat": entry.beat or "",
        "sector": entry.sector or "",
        "precinct": feeds.area_label("precinct", entry.precinct) if entry.precinct else "",
        "department": settings.department_name,
        "link": entry_link(settings, entry.uid),
    }


def post_text(poster, account: OutboundAccount, fields: dict[str, str]) -> str:
    """The account's template filled and fitted to the service's limit."""
    return posttext.fit(account.template, fields, poster.measure, poster.char_limit())


# ---- the outbox -------------------------------------------------------------------------------
def _default_clock(now: datetime) -> Clock:
    start = time.monotonic()
    return lambda: now + timedelta(seconds=time.monotonic() - start)


def enqueue_due(store, settings, now: datetime) -> int:
    """Add an outbox item for every public entry due to each active account."""
    set_id = store.active_beat_set_id()
    if set_id is None:  # no beat map yet: nothing is public
        return 0
    oldest = now - timedelta(hours=settings.outbox_max_age)
    added = 0
    for account in store.list_outbound_accounts(active_only=True):
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
            for uid, kind, category, publish_at in store.due_entries_for_account(
                account, set_id, now=now, oldest_event=oldest
            )
        ]
        added += store.enqueue_outbox(rows)
    return added


def recover_interrupted(store, now: datetime) -> dict:
    """Items left `sending` by a process that died: retried where a duplicate guard makes
    that safe, `unknown` (for an admin) where not."""
    out = {"requeued": 0, "unknown": 0}
    for item in store.stale_sending_items(now - LEASE):
        if item.service == "x":
            store.finish_outbox_item(
                item.id,
                status="unknown",
                error=(
                    "Interrupted while sending. X has no duplicate guard, so it was not retried: "
                    "check the account, then mark it sent or send it again."
                ),
            )
            out["unknown"] += 1
        else:
            store.finish_outbox_item(
                item.id,
                status="pending",
                next_attempt_at=now,
                error=("Interrupted while sending; retried with the same duplicate guard."),
            )
            out["requeued"] += 1
    return out


def _within_limits(store, poster, account_id: int, now: datetime) -> bool:
    return all(
        store.sends_since(account_id, now - timedelta(seconds=seconds)) < count
        for count, seconds in poster.limits
    )


def _backoff(attempts: int) -> timedelta:
    return min(BACKOFF_START * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def _current_entry(store, settings, item: OutboxItem, now: datetime):
    """(entry, urgent) if the item's entry is still public in the same category, else the
    status the item should take instead."""
    set_id = store.active_beat_set().id
    if item.entry_kind == "announcement":
        found = store.public_announcements(set_id, now=now, uid=item.entry_uid, limit=1)
        if not found:
            return None, "cancelled"
        if found[0].category != item.category:
            return None, "superseded"
        ann = store.announcement(item.entry_uid)
        return (found[0], ann.urgent), None
    entry = store.public_entry(set_id, item.entry_uid, now=now)
    if entry is None:
        return None, "cancelled"
    if entry.category != item.category:
        return None, "superseded"
    return (entry, False), None


def send_outbox(
    store,
    settings,
    now: datetime,
    *,
    clock: Clock | None = None,
    posters: Callable | None = None,
    limit: int = 200,
) -> dict:
    """Enqueue what is due, then send pending items whose time has come."""
    clock = clock or _default_clock(now)
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
    for item in store.due_outbox_items(now, limit):
        if item.account_id in held:
            summary["deferred"] += 1
            continue
        account = accounts.setdefault(item.account_id, store.outbound_account(item.account_id))
        try:
            poster = cache.get(account.id) or make(store, settings, account)
        except (ConfigurationError, PostingError) as exc:
            store.finish_outbox_item(item.id, status="failed", error=exc.message)
            summary["failed"] += 1
            continue
        cache[account.id] = poster
        at = clock()
        if not _within_limits(store, poster, account.id, at):
            held.add(account.id)
            summary["deferred"] += 1
            continue
        if not store.claim_outbox_item(item.id, at):
            continue  # another process is sending it
        outcome = _send_one(store, settings, account, poster, item, clock)
        if outcome == "rate-limited":  # the service said to wait: stop for this account
            held.add(account.id)
            outcome = "retry"
        summary[outcome] += 1
    log.info("send-outbox: %s", summary)
    return summary


def _send_one(store, settings, account, poster, item: OutboxItem, clock: Clock) -> str:
    at = clock()
    current, other = _current_entry(store, settings, item, at)
    if current is None:
        store.finish_outbox_item(
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
        fields = entry_fields(settings, account, entry, item.entry_kind, urgent)
        text = post_text(poster, account, fields)
        sent = poster.post(
            OutboundPost(
                text=text,
                link=fields["link"],
                key=f"beatfeeds-outbox-{item.id}",
                created_at=item.created_at,
                payload={"event": "entry.published", "entry": _payload(entry, item, fields)},
            )
        )
    except TransientPostingError as exc:
        at = clock()
        attempts = item.attempts + 1
        if exc.retry_at:
            store.update_outbound_account(account.id, blocked_until=exc.retry_at)
        if attempts >= MAX_ATTEMPTS:
            store.finish_outbox_item(
                item.id, status="failed", error=f"gave up after {attempts} attempts: {exc.message}"
            )
            return "failed"
        retry = max(exc.retry_at or at, at + _backoff(attempts))
        store.finish_outbox_item(
            item.id, status="pending", next_attempt_at=retry, error=exc.message
        )
        return "rate-limited" if exc.retry_at else "retry"
    except PostOutcomeUnknown as exc:
        store.finish_outbox_item(
            item.id,
            status="unknown",
            error=(
                f"{exc.message}. The post may or may not have been made; check the account, then "
                "mark it sent or send it again."
            ),
        )
        return "unknown"
    except (PermanentPostingError, ConfigurationError) as exc:
        store.finish_outbox_item(item.id, status="failed", error=exc.message)
        return "failed"
    store.finish_outbox_item(
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
        store.update_outbound_account(account.id, char_limit=account.char_limit)
    return "sent"


def _payload(entry: FeedEntry, item: OutboxItem, fields: dict[str, str]) -> dict:
    return {
        "uid": entry.uid,
        "kind": item.entry_kind,
        "category": entry.category,
        "title": fields["title"],
        "body": fields["body"],
        "address": entry.block_address,
        "event_time": entry.event_time.replace(tzinfo=UTC).isoformat(),
        "beat": entry.beat,
        "sector": entry.sector,
        "precinct": entry.precinct,
        "url": fields["link"],
    }


def retract_posts(store, settings, now: datetime, *, posters: Callable | None = None) -> dict:
    """Delete posts whose entry was retracted, suppressed or withdrawn, where the service
    allows it."""
    make = posters or poster_for
    summary = {"deleted": 0, "retry": 0, "failed": 0}
    for item in store.sent_items_no_longer_public():
        account = store.outbound_account(item.account_id)
        if account.status != "active":
            continue  # a paused account deletes once resumed
        try:
            if item.dry_run or item.remote_id is None:
                store.mark_outbox_deleted(item.id, deleted_at=now)
                summary["deleted"] += 1
                continue
            poster = make(store, settings, account)
            if not _within_limits(store, poster, account.id, now):
                summary["retry"] += 1
                continue
            poster.delete(item.remote_id)
        except TransientPostingError as exc:
            store.finish_outbox_item(item.id, error=f"delete will be retried: {exc.message}")
            summary["retry"] += 1
            continue
        except (PostingError, ConfigurationError) as exc:
            store.finish_outbox_item(
                item.id, status="failed", error=f"could not delete the post: {exc.message}"
            )
            summary["failed"] += 1
            continue
        store.mark_outbox_deleted(item.id, deleted_at=now)
        summary["deleted"] += 1
    log.info("retract-posts: %s", summary)
    return summary


def resolve_unknown(store, item_id: int, outcome: str, *, actor: str, now: datetime) -> None:
    """An admin's decision on an `unknown` item: it was `sent`, or `retry` it, or `drop` it."""
    item = store.outbox_item(item_id)
    if item.status != "unknown":
        raise Conflict(f"Outbox item {item_id} is {item.status}, not unknown.")
    if outcome == "sent":
        store.finish_outbox_item(
            item_id, status="sent", sent_at=now, error=f"confirmed as posted by {actor}"
        )
    elif outcome == "retry":
        store.finish_outbox_item(
            item_id,
            status="pending",
            next_attempt_at=now,
            error=f"sent again on request of {actor}",
        )
    elif outcome == "drop":
        store.finish_outbox_item(item_id, status="failed", error=f"dropped by {actor}")
    else:
        raise InvalidInput("Choose sent, retry or drop.")
    store.audit(actor, "outbox.resolve", f"outbox {item_id}", {"outcome": outcome}, now=now)
