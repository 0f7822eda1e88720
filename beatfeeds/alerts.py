"""Email alerts for residents: sign-up with double opt-in, managing subscriptions, erasure.

Nothing is stored for a sign-up until the address confirms: the confirmation link carries the
request itself, signed with the secret key and expiring after `alert_link_hours`. The only
trace of an unconfirmed sign-up is a keyed hash of the address, kept for the rate limit.
Every answer to a request is the same whether or not the address is already subscribed.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from . import feeds, mail, privacy, publishing
from .errors import (
    ConfigurationError,
    InvalidInput,
    NotFound,
    PermanentPostingError,
    TooManySignups,
    TransientPostingError,
)
from .models import EmailSubscription
from .settings import ensure_secret_key

log = logging.getLogger(__name__)

# Digests (daily, weekly) are a later step; until they are sent, they are not offered.
FREQUENCIES = {"instant": "Each entry as it is published"}
_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")

EMERGENCY = ("This service is not monitored. In an emergency call 911; to report a crime "
             "that is not an emergency, use the department's non-emergency line.")


class InvalidLink(NotFound):
    http_status = 400
    user_message = ("This link is not valid or has expired. Ask for a new one from any area "
                    "page or from \"Manage my alerts\".")


@dataclass(frozen=True)
class SignupRequest:
    address: str
    area_kind: str
    area_code: str | None
    categories: tuple[str, ...]
    frequency: str

    def as_token(self) -> dict:
        return {"a": self.address, "k": self.area_kind, "c": self.area_code,
                "f": list(self.categories), "q": self.frequency}

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


def _serializer(settings, purpose: str, timed: bool = True):
    cls = URLSafeTimedSerializer if timed else URLSafeSerializer
    return cls(ensure_secret_key(settings), salt=f"beatfeeds email alerts {purpose}")


def _load(settings, purpose: str, token: str, timed: bool = True):
    try:
        if timed:
            return _serializer(settings, purpose).loads(
                token, max_age=settings.alert_link_hours * 3600)
        return _serializer(settings, purpose, timed=False).loads(token)
    except SignatureExpired:
        raise InvalidLink("This link has expired. Ask for a new one.") from None
    except BadSignature:
        raise InvalidLink() from None


def address_key(settings, address: str) -> str:
    """A keyed hash of the address: lets us count requests without storing the address."""
    return hmac.new(ensure_secret_key(settings).encode(), address.encode(),
                    hashlib.sha256).hexdigest()


def unsubscribe_token(settings, subscription: EmailSubscription) -> str:
    """For the one-click unsubscribe link in every alert: it does not expire (RFC 8058), and
    names one subscription of one address."""
    return _serializer(settings, "unsubscribe", timed=False).dumps(
        {"s": subscription.id, "a": subscription.address})


def manage_token(settings, address: str) -> str:
    return _serializer(settings, "manage").dumps({"a": address})


def _url(settings, path: str) -> str:
    return settings.base_url.rstrip("/") + path


def area_url(settings, kind: str, code: str | None) -> str:
    paths = {"precinct": "/precincts/", "sector": "/sectors/", "beat": "/beats/"}
    return _url(settings, paths[kind] + code if kind != "city" else "/")


def describe(kind: str, code: str | None, categories: tuple[str, ...], frequency: str) -> str:
    """`Beat K3: Burglary, Robbery, each entry as it is published`."""
    what = (", ".join(privacy.category_label(c) for c in categories) if categories
            else "all published categories")
    return (f"{feeds.area_label(kind, code)}: {what}; "
            f"{FREQUENCIES.get(frequency, frequency).lower()}")


# ---- rate limit -------------------------------------------------------------------------------
def _check_rate(store, settings, address: str, client: str, now: datetime) -> None:
    since = now - timedelta(minutes=settings.signup_window)
    key = address_key(settings, address)
    if (store.email_signups_since(since, client=client) >= settings.signup_max_per_client
            or store.email_signups_since(since, address_key=key)
            >= settings.signup_max_per_address):
        raise TooManySignups()
    store.record_email_signup(key, client, now)


# ---- sign-up ----------------------------------------------------------------------------------
def parse_signup(store, settings, *, address: str, area_kind: str, area_code: str | None,
                 categories, frequency: str) -> SignupRequest:
    """Validate a sign-up form: a real area of the current map, known public categories."""
    address = normalize_address(address)
    if area_kind not in ("city", "precinct", "sector", "beat"):
        raise InvalidInput("Choose an area to follow.")
    area = publishing.resolve_area(store, area_kind, area_code if area_kind != "city" else None)
    filt = publishing.parse_filter(categories or [], [])
    hidden = sorted(set(filt.categories) & set(settings.suppressed_categories))
    if hidden:
        raise InvalidInput(f"{', '.join(hidden)} entries are never published.")
    if frequency not in FREQUENCIES:
        raise InvalidInput(f"Choose one of: {', '.join(FREQUENCIES)}.")
    return SignupRequest(address, area.kind, area.code, filt.categories, frequency)


def request_subscription(store, settings, signup: SignupRequest, *, client: str,
                         now: datetime) -> None:
    """Mail a confirmation link. The same happens, and the caller answers the same, whether or
    not the address is already subscribed."""
    if not mail.enabled(settings):
        raise InvalidInput("Email alerts are not available on this site.")
    _check_rate(store, settings, signup.address, client, now)
    token = _serializer(settings, "confirm").dumps(signup.as_token())
    link = _url(settings, f"/alerts/confirm/{token}")
    what = describe(signup.area_kind, signup.area_code, signup.categories, signup.frequency)
    text = (f"Someone, probably you, asked {settings.department_name} to email this address "
            f"about new police incidents in:\n\n  {what}\n\nTo start the alerts, open this "
            f"link within {settings.alert_link_hours} hours and press Confirm:\n\n  {link}\n\n"
            "If you did not ask for this, ignore this message: nothing will be sent and "
            f"this address is not stored.\n\n-- \n{EMERGENCY}\n")
    body = (f"<p>Someone, probably you, asked {html.escape(settings.department_name)} to email "
            f"this address about new police incidents in:</p><p><strong>{html.escape(what)}"
            f"</strong></p><p><a href=\"{html.escape(link)}\">Confirm your email alerts</a> "
            f"(the link works for {settings.alert_link_hours} hours).</p><p>If you did not ask "
            "for this, ignore this message: nothing will be sent and this address is not "
            f"stored.</p><hr><p><small>{html.escape(EMERGENCY)}</small></p>")
    msg = mail.build(settings, to=signup.address, text=text, html=_page(body),
                     subject=f"Confirm your email alerts for "
                             f"{feeds.area_label(signup.area_kind, signup.area_code)}")
    mail.send(settings, msg)


def read_confirmation(settings, token: str) -> SignupRequest:
    """The sign-up a confirmation link carries (InvalidLink when forged or expired)."""
    return SignupRequest.from_token(_load(settings, "confirm", token))


def confirm(store, settings, token: str, *, now: datetime) -> SignupRequest:
    """Store the confirmed subscription (confirming twice changes nothing)."""
    signup = read_confirmation(settings, token)
    store.save_email_subscription(
        address=signup.address, area_kind=signup.area_kind, area_code=signup.area_code,
        categories=signup.categories, frequency=signup.frequency, now=now)
    return signup


# ---- managing ---------------------------------------------------------------------------------
def request_manage_link(store, settings, raw_address: str, *, client: str,
                        now: datetime) -> None:
    """Mail a "manage my alerts" link if the address has subscriptions (the caller answers
    the same either way)."""
    address = normalize_address(raw_address)
    _check_rate(store, settings, address, client, now)
    if not store.email_subscriptions(address):
        return
    link = _url(settings, f"/alerts/manage/{manage_token(settings, address)}")
    text = (f"To see, change or remove your {settings.department_name} email alerts, or to "
            f"delete everything we hold about this address, open this link within "
            f"{settings.alert_link_hours} hours:\n\n  {link}\n\n-- \n{EMERGENCY}\n")
    body = (f"<p><a href=\"{html.escape(link)}\">Manage my alerts</a>: see, change or remove "
            f"your {html.escape(settings.department_name)} email alerts, or delete everything "
            f"we hold about this address (the link works for {settings.alert_link_hours} "
            f"hours).</p><hr><p><small>{html.escape(EMERGENCY)}</small></p>")
    mail.send(settings, mail.build(settings, to=address, subject="Manage your email alerts",
                                   text=text, html=_page(body)))


def manage_address(settings, token: str) -> str:
    return _load(settings, "manage", token)["a"]


def subscriptions(store, settings, token: str) -> tuple[str, list[EmailSubscription]]:
    address = manage_address(settings, token)
    return address, store.email_subscriptions(address)


def remove_subscription(store, settings, token: str, subscription_id: int) -> None:
    """Remove one of the link's address's subscriptions."""
    address = manage_address(settings, token)
    if not any(s.id == subscription_id for s in store.email_subscriptions(address)):
        raise NotFound("No such subscription.")
    store.delete_email_subscription(subscription_id)


def delete_everything(store, settings, token: str) -> None:
    """Erase the address, its subscriptions and what was sent to it."""
    store.delete_email_subscriber(manage_address(settings, token))


def unsubscribe(store, settings, token: str) -> EmailSubscription | None:
    """One-click unsubscribe (RFC 8058): remove the subscription the link names. A link used
    twice, or for a subscription already removed, succeeds quietly (returns None)."""
    data = _load(settings, "unsubscribe", token, timed=False)
    try:
        sub = store.email_subscription(int(data["s"]))
    except NotFound:
        return None
    if sub.address != data["a"]:
        return None
    store.delete_email_subscription(sub.id)
    return sub


def _page(body: str) -> str:
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head>"
            f"<body style=\"font-family: sans-serif; max-width: 40em\">{body}</body></html>")


# ---- sending (the email outbox) ---------------------------------------------------------------
# Deliveries follow the outbox's rules (beatfeeds.outbound): same statuses, lease, backoff and
# attempts. SMTP has no duplicate guard, so a delivery left `sending` by a process that died
# becomes `unknown` and is never resent blindly.
def _matches(sub: EmailSubscription, entry) -> bool:
    area = {"city": True, "beat": entry.beat == sub.area_code,
            "sector": entry.sector == sub.area_code,
            "precinct": entry.precinct == sub.area_code}[sub.area_kind]
    return area and (not sub.categories or entry.category in sub.categories)


def enqueue_alerts(store, settings, now: datetime) -> int:
    """Queue every newly public entry once per address, whatever its overlapping
    subscriptions."""
    set_id = store.active_beat_set_id()
    if set_id is None:
        return 0
    oldest = now - timedelta(hours=settings.outbox_max_age)
    rows = [{"subscriber_id": sid, "entry_uid": uid, "status": "pending", "due_at": at,
             "next_attempt_at": at, "attempts": 0, "created_at": now}
            for sid, uid, at in store.due_entries_for_email(set_id, now=now,
                                                            oldest_event=oldest)]
    return store.enqueue_email_deliveries(rows)


def alert_message(settings, entry, sub: EmailSubscription):
    """The instant alert for one entry: multipart, hundred-block text, links, RFC 8058
    headers and a footer saying why, how to stop, and that nobody monitors it."""
    title = feeds._title(entry, settings)
    link = _url(settings, f"/entries/{entry.uid}")
    area = area_url(settings, sub.area_kind, sub.area_code)
    unsub = _url(settings, f"/alerts/unsubscribe/{unsubscribe_token(settings, sub)}")
    manage = _url(settings, "/alerts/manage")
    why = describe(sub.area_kind, sub.area_code, sub.categories, sub.frequency)
    list_id = "alerts." + mail.sender(settings).rsplit("@", 1)[-1].strip(" >")
    text = (f"{title}\n\n{link}\n\nMore for {feeds.area_label(sub.area_kind, sub.area_code)}: "
            f"{area}\n\n-- \nYou receive this because you subscribed to {why}.\n"
            f"Stop these alerts: {unsub}\nManage all your alerts: {manage}\n{EMERGENCY}\n")
    e = html.escape
    body = (f"<p><a href=\"{e(link)}\">{e(title)}</a></p>"
            f"<p><a href=\"{e(area)}\">More for "
            f"{e(feeds.area_label(sub.area_kind, sub.area_code))}</a></p><hr>"
            f"<p><small>You receive this because you subscribed to {e(why)}. "
            f"<a href=\"{e(unsub)}\">Stop these alerts</a> · "
            f"<a href=\"{e(manage)}\">Manage all your alerts</a>. {e(EMERGENCY)}</small></p>")
    return mail.build(settings, to=sub.address, subject=title, text=text, html=_page(body),
                      headers={"List-Unsubscribe": f"<{unsub}>",
                               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                               "List-Id": f"{settings.department_name} alerts <{list_id}>"})


def send_alerts(store, settings, now: datetime, *, clock=None, limit: int = 200) -> dict:
    """Queue what is due, then mail pending deliveries whose time has come, within the SMTP
    server's rate limit (`smtp_max_per_minute`)."""
    from . import outbound

    clock = clock or outbound._default_clock(now)
    summary = {"enqueued": enqueue_alerts(store, settings, now), "sent": 0, "retry": 0,
               "failed": 0, "unknown": 0, "deferred": 0, "cancelled": 0}
    store.prune_email_signups(now - timedelta(days=1))  # they only serve the rate limit
    if not mail.enabled(settings):
        return summary
    for d in store.stale_email_deliveries(now - outbound.LEASE):
        store.finish_email_delivery(d.id, status="unknown", error=(
            "Interrupted while sending. SMTP has no duplicate guard, so it was not resent."))
        summary["unknown"] += 1
    set_id = store.active_beat_set_id()
    for d in store.due_email_deliveries(now, limit):
        at = clock()
        if store.email_sends_since(at - timedelta(minutes=1)) >= settings.smtp_max_per_minute:
            summary["deferred"] += 1
            continue
        if not store.claim_email_delivery(d.id, at):
            continue
        entry = store.public_entry(set_id, d.entry_uid, now=at) if set_id else None
        subs = [s for s in store.email_subscriptions(d.address) if entry and _matches(s, entry)]
        if entry is None or not subs:
            store.finish_email_delivery(d.id, status="cancelled", error=(
                "The entry is no longer public." if entry is None
                else "No subscription of the address matches the entry any more."))
            summary["cancelled"] += 1
            continue
        # The narrowest matching subscription explains "why" and is the one-click target.
        order = {"beat": 0, "sector": 1, "precinct": 2, "city": 3}
        sub = min(subs, key=lambda s: (order[s.area_kind], s.id))
        try:
            mail.send(settings, alert_message(settings, entry, sub))
        except TransientPostingError as exc:
            attempts = d.attempts + 1
            if attempts >= outbound.MAX_ATTEMPTS:
                store.finish_email_delivery(d.id, status="failed", error=(
                    f"gave up after {attempts} attempts: {exc.message}"))
                summary["failed"] += 1
            else:
                store.finish_email_delivery(d.id, status="pending", error=exc.message,
                                            next_attempt_at=clock() + outbound._backoff(attempts))
                summary["retry"] += 1
            continue
        except (PermanentPostingError, ConfigurationError) as exc:
            store.finish_email_delivery(d.id, status="failed", error=exc.message)
            summary["failed"] += 1
            continue
        store.finish_email_delivery(d.id, status="sent", sent_at=clock(), error=None)
        summary["sent"] += 1
    log.info("send-alerts: %s", summary)
    return summary


# ---- administration ---------------------------------------------------------------------------
def masked(address: str) -> str:
    """`r•••@example.org`: enough for an admin to tell deliveries apart, not to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"


def overview(store) -> dict:
    """What the admin page shows: subscriptions per area (never addresses), deliveries by
    status, and the deliveries that need a look (failed, unknown)."""
    needs = [d for status in ("unknown", "failed") for d in store.email_deliveries(status=status)]
    return {"areas": [(feeds.area_label(k, c), n) for k, c, n in store.email_subscriber_counts()],
            "counts": store.email_delivery_counts(),
            "attention": [(d, masked(d.address)) for d in needs[-200:]]}


def resolve_delivery(store, delivery_id: int, outcome: str, *, actor: str,
                     now: datetime) -> None:
    """An admin's decision on an `unknown` delivery: it was `sent`, `retry` it, or `drop` it."""
    from .errors import Conflict

    d = store.email_delivery(delivery_id)
    if d.status != "unknown":
        raise Conflict(f"Email delivery {delivery_id} is {d.status}, not unknown.")
    if outcome == "sent":
        store.finish_email_delivery(d.id, status="sent", sent_at=now,
                                    error=f"confirmed as sent by {actor}")
    elif outcome == "retry":
        store.finish_email_delivery(d.id, status="pending", next_attempt_at=now,
                                    error=f"sent again on request of {actor}")
    elif outcome == "drop":
        store.finish_email_delivery(d.id, status="failed", error=f"dropped by {actor}")
    else:
        raise InvalidInput("Choose sent, retry or drop.")
    store.audit(actor, "alerts.resolve", f"email delivery {delivery_id}",
                {"outcome": outcome}, now=now)
