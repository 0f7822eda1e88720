"""Email alerts for residents: sign-up with double opt-in, managing subscriptions, erasure;
the `send-alerts` job (instant alerts in beatfeeds.services.deliveries, digests in
beatfeeds.services.digests) and the admin's switch and decisions.

Nothing is stored for a sign-up until the address confirms: the confirmation link carries the
request itself, encrypted with a key derived from the secret key and expiring after
`alert_link_hours`; no link reveals the address it serves. The only
trace of an unconfirmed sign-up is a keyed hash of the address, kept for the rate limit.
Every answer to a request is the same whether or not the address is already subscribed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from beatfeeds.core import areas
from beatfeeds.core.errors import InvalidInput, NotFound, TooManySignups
from beatfeeds.core.models import EmailSubscription
from beatfeeds.core.settings import ensure_secret_key
from beatfeeds.delivery import links, messages, queue, smtp
from beatfeeds.services import deliveries, digests, publishing

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)

_ADDRESS = re.compile(
    r"^[^@\s<>(),;:\"\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


@dataclass(frozen=True)
class SignupRequest:
    address: str
    area_kind: str
    area_code: str | None
    categories: tuple[str, ...]
    frequency: str

    def as_token(self) -> dict:
        return {
            "a": self.address,
            "k": self.area_kind,
            "c": self.area_code,
            "f": list(self.categories),
            "q": self.frequency,
        }

    @classmethod
    def from_token(cls, data: dict) -> SignupRequest:
        return cls(data["a"], data["k"], data["c"], tuple(data["f"]), data["q"])


# ---- addresses and links ----------------------------------------------------------------------
def normalize_address(raw: str) -> str:
    """A usable address, lower-cased; InvalidInput otherwise."""
    address = (raw or "").strip().lower()
    if len(address) > 254 or not _ADDRESS.match(address):
        raise InvalidInput("Enter an email address such as name@example.com.")
    return address


def address_key(settings: Settings, address: str) -> str:
    """A keyed hash of the address: lets us count requests without storing the address."""
    return hmac.new(
        ensure_secret_key(settings).encode(), address.encode(), hashlib.sha256
    ).hexdigest()


# ---- rate limit -------------------------------------------------------------------------------
def _check_rate(
    store: SQLStore, settings: Settings, address: str, client: str, now: datetime
) -> None:
    since = now - timedelta(minutes=settings.signup_window)
    key = address_key(settings, address)
    if (
        store.email.email_signups_since(since, client=client) >= settings.signup_max_per_client
        or store.email.email_signups_since(since, address_key=key)
        >= settings.signup_max_per_address
    ):
        raise TooManySignups()
    store.email.record_email_signup(key, client, now)


# ---- sign-up ----------------------------------------------------------------------------------
def parse_signup(
    store: SQLStore,
    settings: Settings,
    *,
    address: str,
    area_kind: str,
    area_code: str | None,
    categories,
    frequency: str,
) -> SignupRequest:
    """Validate a sign-up form: a real area of the current map, known public categories."""
    address = normalize_address(address)
    if area_kind not in ("city", "precinct", "sector", "beat"):
        raise InvalidInput("Choose an area to follow.")
    area = publishing.resolve_area(store, area_kind, area_code if area_kind != "city" else None)
    filt = publishing.parse_filter(categories or [], [])
    hidden = sorted(set(filt.categories) & set(settings.suppressed_categories))
    if hidden:
        raise InvalidInput(f"{', '.join(hidden)} entries are never published.")
    if frequency not in messages.FREQUENCIES:
        raise InvalidInput(f"Choose one of: {', '.join(messages.FREQUENCIES)}.")
    return SignupRequest(address, area.kind, area.code, filt.categories, frequency)


def request_subscription(
    store: SQLStore, settings: Settings, signup: SignupRequest, *, client: str, now: datetime
) -> None:
    """Mail a confirmation link. The same happens, and the caller answers the same, whether or
    not the address is already subscribed."""
    if not smtp.enabled(settings):
        raise InvalidInput("Email alerts are not available on this site.")
    _check_rate(store, settings, signup.address, client, now)
    token = links.seal(settings, "confirm", signup.as_token(), now)
    smtp.send(
        settings,
        messages.confirmation_message(
            settings,
            to=signup.address,
            area_kind=signup.area_kind,
            area_code=signup.area_code,
            categories=signup.categories,
            frequency=signup.frequency,
            link=links.url(settings, f"/alerts/confirm/{token}"),
        ),
    )


def read_confirmation(settings: Settings, token: str, now: datetime | None = None) -> SignupRequest:
    """The sign-up a confirmation link carries (InvalidLink when forged or expired)."""
    return SignupRequest.from_token(links.load(settings, "confirm", token, now))


def confirm(store: SQLStore, settings: Settings, token: str, *, now: datetime) -> SignupRequest:
    """Store the confirmed subscription (confirming twice changes nothing)."""
    signup = read_confirmation(settings, token, now)
    store.email.save_email_subscription(
        address=signup.address,
        area_kind=signup.area_kind,
        area_code=signup.area_code,
        categories=signup.categories,
        frequency=signup.frequency,
        now=now,
    )
    return signup


# ---- managing ---------------------------------------------------------------------------------
def request_manage_link(
    store: SQLStore, settings: Settings, raw_address: str, *, client: str, now: datetime
) -> None:
    """Mail a "manage my alerts" link if the address has subscriptions (the caller answers
    the same either way)."""
    address = normalize_address(raw_address)
    _check_rate(store, settings, address, client, now)
    if not store.email.email_subscriptions(address):
        return
    link = links.url(settings, f"/alerts/manage/{links.manage_token(settings, address, now)}")
    smtp.send(settings, messages.manage_message(settings, address=address, link=link))


def manage_address(settings: Settings, token: str, now: datetime | None = None) -> str:
    """The address a "manage my alerts" link is for (InvalidLink when forged or expired)."""
    return links.load(settings, "manage", token, now)["a"]


def subscriptions(
    store: SQLStore, settings: Settings, token: str, now: datetime | None = None
) -> tuple[str, list[EmailSubscription]]:
    """The link's address and its subscriptions."""
    address = manage_address(settings, token, now)
    return address, store.email.email_subscriptions(address)


def remove_subscription(
    store: SQLStore,
    settings: Settings,
    token: str,
    subscription_id: int,
    now: datetime | None = None,
) -> None:
    """Remove one of the link's address's subscriptions."""
    address = manage_address(settings, token, now)
    if not any(s.id == subscription_id for s in store.email.email_subscriptions(address)):
        raise NotFound("No such subscription.")
    store.email.delete_email_subscription(subscription_id)


def change_frequency(
    store: SQLStore,
    settings: Settings,
    token: str,
    subscription_id: int,
    frequency: str,
    now: datetime | None = None,
) -> EmailSubscription:
    """Switch one of the link's address's subscriptions between instant alerts and a daily or
    weekly digest (the link proves the address, so no new confirmation is needed)."""
    address = manage_address(settings, token, now)
    sub = next(
        (s for s in store.email.email_subscriptions(address) if s.id == subscription_id), None
    )
    if sub is None:
        raise NotFound("No such subscription.")
    if frequency not in messages.FREQUENCIES:
        raise InvalidInput(f"Choose one of: {', '.join(messages.FREQUENCIES)}.")
    store.email.save_email_subscription(
        address=address,
        area_kind=sub.area_kind,
        area_code=sub.area_code,
        categories=sub.categories,
        frequency=frequency,
        now=sub.created_at,
    )
    return store.email.email_subscription(sub.id)


def delete_everything(
    store: SQLStore, settings: Settings, token: str, now: datetime | None = None
) -> None:
    """Erase the address, its subscriptions and what was sent to it."""
    store.email.delete_email_subscriber(manage_address(settings, token, now))


def check_unsubscribe_link(settings: Settings, token: str, now: datetime | None = None) -> None:
    """InvalidLink unless the unsubscribe link is authentic, current and of this release."""
    links.load(settings, "unsubscribe", token, now)


def unsubscribe(
    store: SQLStore, settings: Settings, token: str, now: datetime | None = None
) -> str | None:
    """One-click unsubscribe (RFC 8058): remove the subscription the link names (or, for a
    digest's link, the address's subscriptions of that frequency). Returns what stopped; a
    link used twice, or for a subscription already removed, succeeds quietly (None)."""
    data = links.load(settings, "unsubscribe", token, now)
    if "q" in data:
        subs = [s for s in store.email.email_subscriptions(data["a"]) if s.frequency == data["q"]]
        for sub in subs:
            store.email.delete_email_subscription(sub.id)
        return (
            f"the {data['q']} digest for "
            + ", ".join(areas.area_label(s.area_kind, s.area_code) for s in subs)
            if subs
            else None
        )
    try:
        sub = store.email.email_subscription(int(data["s"]))
    except NotFound:
        return None
    if sub.address != data["a"]:
        return None
    store.email.delete_email_subscription(sub.id)
    return areas.area_label(sub.area_kind, sub.area_code)


def send_alerts(
    store: SQLStore,
    settings: Settings,
    now: datetime,
    *,
    clock: queue.Clock | None = None,
    limit: int = 200,
) -> dict:
    """Queue what is due, record the digests whose time has come, then mail pending alerts
    and digests within the SMTP server's rate limit (`smtp_max_per_minute`). While an admin
    has paused all mail, everything waits (queued, nothing lost)."""
    clock = clock or queue.default_clock(now)
    summary = {
        "enqueued": deliveries.enqueue_alerts(store, settings, now),
        "digests": 0,
        "sent": 0,
        "retry": 0,
        "failed": 0,
        "unknown": 0,
        "deferred": 0,
        "cancelled": 0,
    }
    store.email.prune_email_signups(now - timedelta(days=1))  # they only serve the rate limit
    if not smtp.enabled(settings):
        return summary
    interrupted = queue.after_interruption(
        now,
        duplicate_guard=False,  # SMTP has none
        unknown_error="Interrupted while sending. SMTP has no duplicate guard, so it was not "
        "resent.",
    )
    for d in store.email.stale_email_deliveries(queue.stale_before(now)):
        store.email.finish_email_delivery(d.id, **interrupted)
        summary["unknown"] += 1
    for g in store.digests.stale_email_digests(queue.stale_before(now)):
        store.digests.finish_email_digest(g.id, **interrupted)
        summary["unknown"] += 1
    if store.digests.email_paused():
        summary["paused"] = True
        log.info("send-alerts: %s", summary)
        return summary
    summary["digests"] = digests.assemble_digests(store, settings, now)
    set_id = store.beatmaps.active_beat_set_id()

    def room(at: datetime) -> bool:
        return (
            store.email.email_sends_since(at - timedelta(minutes=1)) < settings.smtp_max_per_minute
        )

    for d in store.email.due_email_deliveries(now, limit):
        at = clock()
        if not room(at):
            summary["deferred"] += 1
            continue
        if not store.email.claim_email_delivery(d.id, at):
            continue
        summary[deliveries.send_delivery(store, settings, d, set_id, at, clock)] += 1
    for g in store.digests.due_email_digests(now, limit):
        at = clock()
        if not room(at):
            summary["deferred"] += 1
            continue
        if not store.digests.claim_email_digest(g.id, at):
            continue
        summary[digests.send_digest(store, settings, g, set_id, clock)] += 1
    log.info("send-alerts: %s", summary)
    return summary


def set_paused(store: SQLStore, paused: bool, *, actor: str, now: datetime) -> None:
    """Pause all email (alerts and digests wait, queued) or resume it. Kept in the database,
    so the scheduler and every web process see it."""
    store.digests.set_email_paused(
        json.dumps({"by": actor, "at": now.isoformat(timespec="seconds")}) if paused else None
    )
    store.accounts.audit(
        actor, "alerts.pause" if paused else "alerts.resume", "email alerts", now=now
    )


def paused_state(store: SQLStore) -> dict | None:
    """{"by": actor, "at": iso time} while all mail is paused, else None."""
    raw = store.digests.email_paused()
    return json.loads(raw) if raw else None


# ---- administration ---------------------------------------------------------------------------
def masked(address: str) -> str:
    """`r•••@example.org`: enough for an admin to tell deliveries apart, not to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"


def overview(store: SQLStore) -> dict:
    """What the admin page shows: subscriptions per area (never addresses), deliveries by
    status, and the deliveries that need a look (failed, unknown)."""
    needs = [
        d for status in ("unknown", "failed") for d in store.email.email_deliveries(status=status)
    ]
    return {
        "areas": [(areas.area_label(k, c), n) for k, c, n in store.email.email_subscriber_counts()],
        "counts": store.email.email_delivery_counts(),
        "digest_counts": store.digests.email_digest_counts(),
        "paused": paused_state(store),
        "attention": [(d, masked(d.address)) for d in needs[-200:]],
    }


def resolve_delivery(
    store: SQLStore, delivery_id: int, outcome: str, *, actor: str, now: datetime
) -> None:
    """An admin's decision on an `unknown` delivery: it was `sent`, `retry` it, or `drop` it."""
    d = store.email.email_delivery(delivery_id)
    queue.require_unknown(f"Email delivery {delivery_id}", d.status)
    values = queue.resolution(outcome, actor=actor, now=now)
    if d.digest_id is not None:  # one message: the decision applies to the whole digest
        store.digests.finish_email_digest(d.digest_id, **values)
    else:
        store.email.finish_email_delivery(d.id, **values)
    store.accounts.audit(
        actor, "alerts.resolve", f"email delivery {delivery_id}", {"outcome": outcome}, now=now
    )
