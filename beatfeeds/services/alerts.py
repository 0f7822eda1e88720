"""Email alerts for residents: sign-up with double opt-in, managing subscriptions, erasure.

Nothing is stored for a sign-up until the address confirms: the confirmation link carries the
request itself, encrypted with a key derived from the secret key and expiring after
`alert_link_hours`; no link reveals the address it serves. The only
trace of an unconfirmed sign-up is a keyed hash of the address, kept for the rate limit.
Every answer to a request is the same whether or not the address is already subscribed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from beatfeeds.core.errors import (
    ConfigurationError,
    InvalidInput,
    NotFound,
    PermanentPostingError,
    TooManySignups,
    TransientPostingError,
)
from beatfeeds.core.models import EmailDigest, EmailSubscription, FeedEntry
from beatfeeds.core.settings import WEEKDAYS, ensure_secret_key
from beatfeeds.core.text import single_line
from beatfeeds.delivery import mail, queue
from beatfeeds.publish import feeds, privacy
from beatfeeds.services import announcements, publishing

log = logging.getLogger(__name__)

FREQUENCIES = {
    "instant": "Each entry as it is published",
    "daily": "A daily digest",
    "weekly": "A weekly digest",
}
DIGESTS = ("daily", "weekly")
_ADDRESS = re.compile(
    r"^[^@\s<>(),;:\"\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)

# A digest lists at most this many entries (the rest as a count and a link to the area):
# mail clients clip long messages (Gmail at about 102 KB), and the footer must survive.
DIGEST_MAX_LISTED = 100
EMERGENCY = (
    "This service is not monitored. In an emergency call 911; to report a crime "
    "that is not an emergency, use the department's non-emergency line."
)


class InvalidLink(NotFound):
    http_status = 400
    user_message = (
        "This link is not valid or has expired. Ask for a new one from any area "
        'page or from "Manage my alerts".'
    )


LEGACY_LINK = (
    "This link comes from a message sent before this site changed how its links "
    "work, and it no longer works. The links in any newer alert or digest do; or "
    'ask for a new link from "Manage my alerts".'
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


# Links carry their content encrypted (Fernet: AES-128-CBC and HMAC-SHA256, with its time of
# making), so decoding one reveals nothing, not even the address, and a link cannot be forged
# or altered. Each purpose has its own key, so a link made for one cannot serve another.
# A confirmation link must carry the sign-up itself (nothing is stored before confirming),
# which is why these are sealed payloads rather than random ids kept in the database.
UNSUBSCRIBE_LINK_DAYS = 90  # every alert and digest brings a fresh link; older ones expire
_LEGACY = "eyJ"  # links of the first release: readable JSON (`{"...`), signed but not sealed


def _fernet(settings, purpose: str) -> Fernet:
    """Fernet keyed by HKDF-SHA256 of the secret key, one key per purpose of link."""
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"beatfeeds email alert links",
        info=f"{purpose} v2".encode(),
    ).derive(ensure_secret_key(settings).encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _stamp(now: datetime | None) -> int:
    return int((now.replace(tzinfo=UTC) if now else datetime.now(UTC)).timestamp())


def _seal(settings, purpose: str, data: dict, now: datetime | None = None) -> str:
    """An opaque, URL-safe token for `data` (its `=` padding dropped: links stay clean)."""
    token = _fernet(settings, purpose).encrypt_at_time(
        json.dumps(data, separators=(",", ":")).encode(), _stamp(now)
    )
    return token.decode().rstrip("=")


def _lifetime(settings, purpose: str) -> int:
    """Seconds a link of this purpose stays valid."""
    if purpose == "unsubscribe":
        return UNSUBSCRIBE_LINK_DAYS * 86400
    return settings.alert_link_hours * 3600


def _load(settings, purpose: str, token: str, now: datetime | None = None) -> dict:
    """The content of a link; InvalidLink when forged, altered, expired or of the old kind."""
    if token.startswith(_LEGACY):
        raise InvalidLink(LEGACY_LINK)
    fernet = _fernet(settings, purpose)
    raw = (token + "=" * (-len(token) % 4)).encode()
    try:
        return json.loads(fernet.decrypt_at_time(raw, _lifetime(settings, purpose), _stamp(now)))
    except InvalidToken:
        pass
    except ValueError:  # not JSON: cannot come from us, but never a 500
        raise InvalidLink() from None
    try:  # Authentic but refused: expired (or made in the future by a wrong clock).
        fernet.extract_timestamp(raw)
    except InvalidToken:
        raise InvalidLink() from None
    raise InvalidLink("This link has expired. Ask for a new one.")


def address_key(settings, address: str) -> str:
    """A keyed hash of the address: lets us count requests without storing the address."""
    return hmac.new(
        ensure_secret_key(settings).encode(), address.encode(), hashlib.sha256
    ).hexdigest()


def unsubscribe_token(
    settings, subscription: EmailSubscription, now: datetime | None = None
) -> str:
    """For the one-click unsubscribe link in every alert (RFC 8058): names one subscription
    of one address, and works for `UNSUBSCRIBE_LINK_DAYS` days."""
    return _seal(settings, "unsubscribe", {"s": subscription.id, "a": subscription.address}, now)


def manage_token(settings, address: str, now: datetime | None = None) -> str:
    """For a "manage my alerts" link: works for `alert_link_hours` hours."""
    return _seal(settings, "manage", {"a": address}, now)


def _url(settings, path: str) -> str:
    return settings.base_url.rstrip("/") + path


def area_url(settings, kind: str, code: str | None) -> str:
    paths = {"precinct": "/precincts/", "sector": "/sectors/", "beat": "/beats/"}
    return _url(settings, paths[kind] + code if kind != "city" else "/")


def schedule(settings, frequency: str) -> str:
    """`a daily digest at 07:00 (America/Los_Angeles time)`; the instant wording otherwise."""
    text = FREQUENCIES.get(frequency, frequency).lower()
    if frequency == "daily":
        return f"{text} at {settings.digest_time} ({settings.timezone} time)"
    if frequency == "weekly":
        return (
            f"{text} on {settings.digest_weekday.capitalize()}s at {settings.digest_time} "
            f"({settings.timezone} time)"
        )
    return text


def describe(
    kind: str, code: str | None, categories: tuple[str, ...], frequency: str, settings=None
) -> str:
    """`Beat K3: Burglary, Robbery; each entry as it is published` (with the send time of a
    digest when `settings` is given)."""
    what = (
        ", ".join(privacy.category_label(c) for c in categories)
        if categories
        else "all published categories"
    )
    when = (
        schedule(settings, frequency)
        if settings is not None
        else FREQUENCIES.get(frequency, frequency).lower()
    )
    return f"{feeds.area_label(kind, code)}: {what}; {when}"


# ---- rate limit -------------------------------------------------------------------------------
def _check_rate(store, settings, address: str, client: str, now: datetime) -> None:
    since = now - timedelta(minutes=settings.signup_window)
    key = address_key(settings, address)
    if (
        store.email_signups_since(since, client=client) >= settings.signup_max_per_client
        or store.email_signups_since(since, address_key=key) >= settings.signup_max_per_address
    ):
        raise TooManySignups()
    store.record_email_signup(key, client, now)


# ---- sign-up ----------------------------------------------------------------------------------
def parse_signup(
    store,
    settings,
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
    if frequency not in FREQUENCIES:
        raise InvalidInput(f"Choose one of: {', '.join(FREQUENCIES)}.")
    return SignupRequest(address, area.kind, area.code, filt.categories, frequency)


def request_subscription(
    store, settings, signup: SignupRequest, *, client: str, now: datetime
) -> None:
    """Mail a confirmation link. The same happens, and the caller answers the same, whether or
    not the address is already subscribed."""
    if not mail.enabled(settings):
        raise InvalidInput("Email alerts are not available on this site.")
    _check_rate(store, settings, signup.address, client, now)
    token = _seal(settings, "confirm", signup.as_token(), now)
    link = _url(settings, f"/alerts/confirm/{token}")
    what = describe(
        signup.area_kind, signup.area_code, signup.categories, signup.frequency, settings
    )
    text = (
        f"Someone, probably you, asked {settings.department_name} to email this address "
        f"about new police incidents in:\n\n  {what}\n\nTo start the alerts, open this "
        f"link within {settings.alert_link_hours} hours and press Confirm:\n\n  {link}\n\n"
        "If you did not ask for this, ignore this message: nothing will be sent and "
        f"this address is not stored.\n\n-- \n{EMERGENCY}\n"
    )
    body = (
        f"<p>Someone, probably you, asked {html.escape(settings.department_name)} to email "
        f"this address about new police incidents in:</p><p><strong>{html.escape(what)}"
        f'</strong></p><p><a href="{html.escape(link)}">Confirm your email alerts</a> '
        f"(the link works for {settings.alert_link_hours} hours).</p><p>If you did not ask "
        "for this, ignore this message: nothing will be sent and this address is not "
        f"stored.</p><hr><p><small>{html.escape(EMERGENCY)}</small></p>"
    )
    msg = mail.build(
        settings,
        to=signup.address,
        text=text,
        html=_page(body),
        subject=f"Confirm your email alerts for "
        f"{feeds.area_label(signup.area_kind, signup.area_code)}",
    )
    mail.send(settings, msg)


def read_confirmation(settings, token: str, now: datetime | None = None) -> SignupRequest:
    """The sign-up a confirmation link carries (InvalidLink when forged or expired)."""
    return SignupRequest.from_token(_load(settings, "confirm", token, now))


def confirm(store, settings, token: str, *, now: datetime) -> SignupRequest:
    """Store the confirmed subscription (confirming twice changes nothing)."""
    signup = read_confirmation(settings, token, now)
    store.save_email_subscription(
        address=signup.address,
        area_kind=signup.area_kind,
        area_code=signup.area_code,
        categories=signup.categories,
        frequency=signup.frequency,
        now=now,
    )
    return signup


# ---- managing ---------------------------------------------------------------------------------
def request_manage_link(store, settings, raw_address: str, *, client: str, now: datetime) -> None:
    """Mail a "manage my alerts" link if the address has subscriptions (the caller answers
    the same either way)."""
    address = normalize_address(raw_address)
    _check_rate(store, settings, address, client, now)
    if not store.email_subscriptions(address):
        return
    link = _url(settings, f"/alerts/manage/{manage_token(settings, address, now)}")
    text = (
        f"To see, change or remove your {settings.department_name} email alerts, or to "
        f"delete everything we hold about this address, open this link within "
        f"{settings.alert_link_hours} hours:\n\n  {link}\n\n-- \n{EMERGENCY}\n"
    )
    body = (
        f'<p><a href="{html.escape(link)}">Manage my alerts</a>: see, change or remove '
        f"your {html.escape(settings.department_name)} email alerts, or delete everything "
        f"we hold about this address (the link works for {settings.alert_link_hours} "
        f"hours).</p><hr><p><small>{html.escape(EMERGENCY)}</small></p>"
    )
    mail.send(
        settings,
        mail.build(
            settings, to=address, subject="Manage your email alerts", text=text, html=_page(body)
        ),
    )


def manage_address(settings, token: str, now: datetime | None = None) -> str:
    """The address a "manage my alerts" link is for (InvalidLink when forged or expired)."""
    return _load(settings, "manage", token, now)["a"]


def subscriptions(
    store, settings, token: str, now: datetime | None = None
) -> tuple[str, list[EmailSubscription]]:
    """The link's address and its subscriptions."""
    address = manage_address(settings, token, now)
    return address, store.email_subscriptions(address)


def remove_subscription(
    store, settings, token: str, subscription_id: int, now: datetime | None = None
) -> None:
    """Remove one of the link's address's subscriptions."""
    address = manage_address(settings, token, now)
    if not any(s.id == subscription_id for s in store.email_subscriptions(address)):
        raise NotFound("No such subscription.")
    store.delete_email_subscription(subscription_id)


def change_frequency(
    store, settings, token: str, subscription_id: int, frequency: str, now: datetime | None = None
) -> EmailSubscription:
    """Switch one of the link's address's subscriptions between instant alerts and a daily or
    weekly digest (the link proves the address, so no new confirmation is needed)."""
    address = manage_address(settings, token, now)
    sub = next((s for s in store.email_subscriptions(address) if s.id == subscription_id), None)
    if sub is None:
        raise NotFound("No such subscription.")
    if frequency not in FREQUENCIES:
        raise InvalidInput(f"Choose one of: {', '.join(FREQUENCIES)}.")
    store.save_email_subscription(
        address=address,
        area_kind=sub.area_kind,
        area_code=sub.area_code,
        categories=sub.categories,
        frequency=frequency,
        now=sub.created_at,
    )
    return store.email_subscription(sub.id)


def delete_everything(store, settings, token: str, now: datetime | None = None) -> None:
    """Erase the address, its subscriptions and what was sent to it."""
    store.delete_email_subscriber(manage_address(settings, token, now))


def digest_unsubscribe_token(
    settings, address: str, frequency: str, now: datetime | None = None
) -> str:
    """For the one-click link of a digest: stops every subscription of the address that the
    digest serves (its daily or its weekly ones). Works for `UNSUBSCRIBE_LINK_DAYS` days."""
    return _seal(settings, "unsubscribe", {"a": address, "q": frequency}, now)


def check_unsubscribe_link(settings, token: str, now: datetime | None = None) -> None:
    """InvalidLink unless the unsubscribe link is authentic, current and of this release."""
    _load(settings, "unsubscribe", token, now)


def unsubscribe(store, settings, token: str, now: datetime | None = None) -> str | None:
    """One-click unsubscribe (RFC 8058): remove the subscription the link names (or, for a
    digest's link, the address's subscriptions of that frequency). Returns what stopped; a
    link used twice, or for a subscription already removed, succeeds quietly (None)."""
    data = _load(settings, "unsubscribe", token, now)
    if "q" in data:
        subs = [s for s in store.email_subscriptions(data["a"]) if s.frequency == data["q"]]
        for sub in subs:
            store.delete_email_subscription(sub.id)
        return (
            f"the {data['q']} digest for "
            + ", ".join(feeds.area_label(s.area_kind, s.area_code) for s in subs)
            if subs
            else None
        )
    try:
        sub = store.email_subscription(int(data["s"]))
    except NotFound:
        return None
    if sub.address != data["a"]:
        return None
    store.delete_email_subscription(sub.id)
    return feeds.area_label(sub.area_kind, sub.area_code)


def _page(body: str) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        f'<body style="font-family: sans-serif; max-width: 40em">{body}</body></html>'
    )


# ---- sending (the email outbox) ---------------------------------------------------------------
# Deliveries follow the outbox's rules (beatfeeds.services.outbox): same statuses, lease, backoff and
# attempts. SMTP has no duplicate guard, so a delivery (or digest) left `sending` by a process
# that died becomes `unknown` and is never resent blindly.
ALL_AREAS = None  # a citywide announcement's areas: every area matches
_NARROW = {"beat": 0, "sector": 1, "precinct": 2, "city": 3}


@dataclass
class PublicEntry:
    """A public incident or announcement, with the areas it belongs to."""

    entry: FeedEntry
    areas: set | None  # {(kind, code)}; None: every area (citywide announcement)
    urgent: bool = False


def _public_entry(store, set_id: int | None, uid: str, now: datetime) -> PublicEntry | None:
    if set_id is None:
        return None
    entry = store.public_entry(set_id, uid, now=now)
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
    ann = store.announcement(uid)
    if ann.citywide:
        return PublicEntry(entry, ALL_AREAS, ann.urgent)
    areas: set = {("city", None)}
    codes = set(ann.beats)
    for b in store.beats(set_id):
        if b.code in codes:
            areas |= {("beat", b.code), ("sector", b.sector), ("precinct", b.precinct)}
    return PublicEntry(entry, areas, ann.urgent)


def _matches(sub: EmailSubscription, found: PublicEntry) -> bool:
    area = found.areas is ALL_AREAS or (sub.area_kind, sub.area_code) in found.areas
    return area and (not sub.categories or found.entry.category in sub.categories)


def _narrowest(subs: list[EmailSubscription]) -> EmailSubscription:
    return min(subs, key=lambda s: (_NARROW[s.area_kind], s.id))


def _entry_text(settings, found: PublicEntry) -> tuple[str, str]:
    """(title, body): incidents in the hundred-block form; announcements with their text."""
    entry = found.entry
    if entry.source == "announcement":
        return (
            single_line(("URGENT " if found.urgent else "") + entry.title),
            entry.description or "",
        )
    return feeds._title(entry, settings), ""


def grace(settings) -> timedelta:
    """How long an entry is public before mail about it goes out (`alert_grace_minutes`).
    Sent mail cannot be recalled: a retraction or suppression within this time cancels the
    mail instead, because each is checked against the entry's state when it is sent."""
    return timedelta(minutes=settings.alert_grace_minutes)


def enqueue_alerts(store, settings, now: datetime) -> int:
    """Queue every newly public entry once per address, whatever its overlapping
    subscriptions (instant ones; urgent announcements for every subscription), due
    `alert_grace_minutes` after it became public. Urgent announcements do not wait: staff
    publish them on purpose for people to act on at once (a gas leak), and they carry no
    source row that a retraction would have to take back."""
    set_id = store.active_beat_set_id()
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
        for sid, uid, at, urgent in store.due_entries_for_email(
            set_id, now=now, oldest_event=oldest
        )
    ]
    return store.enqueue_email_deliveries(rows)


def _list_headers(settings, unsub: str) -> dict[str, str]:
    list_id = "alerts." + mail.sender(settings).rsplit("@", 1)[-1].strip(" >")
    return {
        "List-Unsubscribe": f"<{unsub}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": f"{settings.department_name} alerts <{list_id}>",
    }


def alert_message(settings, found, sub: EmailSubscription):
    """The instant alert for one entry: multipart, hundred-block text, links, RFC 8058
    headers and a footer saying why, how to stop, and that nobody monitors it."""
    if isinstance(found, FeedEntry):
        found = PublicEntry(found, ALL_AREAS)
    title, extra = _entry_text(settings, found)
    link = _url(settings, f"/entries/{found.entry.uid}")
    area = area_url(settings, sub.area_kind, sub.area_code)
    unsub = _url(settings, f"/alerts/unsubscribe/{unsubscribe_token(settings, sub)}")
    manage = _url(settings, "/alerts/manage")
    why = describe(sub.area_kind, sub.area_code, sub.categories, sub.frequency, settings)
    text = (
        f"{title}\n\n"
        + (f"{extra}\n\n" if extra else "")
        + f"{link}\n\nMore for {feeds.area_label(sub.area_kind, sub.area_code)}: "
        f"{area}\n\n-- \nYou receive this because you subscribed to {why}.\n"
        f"Stop these alerts: {unsub}\nManage all your alerts: {manage}\n{EMERGENCY}\n"
    )
    e = html.escape
    body = (
        f'<p><a href="{e(link)}">{e(title)}</a></p>'
        + (f"<p>{e(extra)}</p>" if extra else "")
        + f'<p><a href="{e(area)}">More for '
        f"{e(feeds.area_label(sub.area_kind, sub.area_code))}</a></p><hr>"
        f"<p><small>You receive this because you subscribed to {e(why)}. "
        f'<a href="{e(unsub)}">Stop these alerts</a> · '
        f'<a href="{e(manage)}">Manage all your alerts</a>. {e(EMERGENCY)}</small></p>'
    )
    return mail.build(
        settings,
        to=sub.address,
        subject=title,
        text=text,
        html=_page(body),
        headers=_list_headers(settings, unsub),
    )


def digest_message(
    settings, digest: EmailDigest, groups: list[tuple[EmailSubscription, list[PublicEntry]]]
):
    """One digest: each entry once, under the narrowest of the address's subscriptions it
    matches; RFC 8058 headers that stop the digest, and a footer per subscription."""
    n = sum(len(found) for _, found in groups)
    local = digest.period_end.replace(tzinfo=UTC).astimezone(settings.tz)
    day = f"{local:%A} {local.month}/{local.day}/{local.year}"
    subject = (
        f"{settings.department_name} {digest.frequency} digest, {day}: {n} new "
        f"entr{'y' if n == 1 else 'ies'}"
    )
    unsub = _url(
        settings,
        "/alerts/unsubscribe/"
        + digest_unsubscribe_token(settings, digest.address, digest.frequency),
    )
    manage = _url(settings, "/alerts/manage")
    e = html.escape
    text, body = [subject, ""], [f'<h1 style="font-size: 1.2em">{e(subject)}</h1>']
    room = DIGEST_MAX_LISTED
    for sub, found in groups:
        label = feeds.area_label(sub.area_kind, sub.area_code)
        area = area_url(settings, sub.area_kind, sub.area_code)
        text += [f"== {label} ({len(found)}) ==", area, ""]
        body.append(
            f'<h2 style="font-size: 1.1em"><a href="{e(area)}">{e(label)}</a> '
            f"({len(found)})</h2><ul>"
        )
        # Urgent announcements first, then the newest: what a clipped list must not lose.
        ordered = sorted(found, key=lambda f: (not f.urgent, -f.entry.event_time.timestamp()))
        for f in ordered[: max(room, 0)]:
            title, extra = _entry_text(settings, f)
            link = _url(settings, f"/entries/{f.entry.uid}")
            text += [f"* {title}"] + ([f"  {extra}"] if extra else []) + [f"  {link}", ""]
            body.append(
                f'<li><a href="{e(link)}">{e(title)}</a>'
                + (f"<br>{e(extra)}" if extra else "")
                + "</li>"
            )
        body.append("</ul>")
        if (more := len(found) - max(room, 0)) > 0:
            text += [f"... and {more:,} more for {label}: {area}", ""]
            body.append(f'<p>… and {more:,} more for <a href="{e(area)}">{e(label)}</a>.</p>')
        room -= len(found)
    whys = [
        (
            describe(s.area_kind, s.area_code, s.categories, s.frequency, settings),
            _url(settings, f"/alerts/unsubscribe/{unsubscribe_token(settings, s)}"),
        )
        for s, _ in groups
    ]
    text += ["-- ", "You receive this because you subscribed to:"]
    text += [f"  {why} (stop: {link})" for why, link in whys]
    text += [
        f"Stop this {digest.frequency} digest: {unsub}",
        f"Manage all your alerts: {manage}",
        EMERGENCY,
        "",
    ]
    body.append(
        "<hr><p><small>You receive this because you subscribed to:</small></p><ul>"
        + "".join(
            f'<li><small>{e(why)} (<a href="{e(link)}">stop</a>)</small></li>' for why, link in whys
        )
        + f'</ul><p><small><a href="{e(unsub)}">Stop this {digest.frequency} '
        f'digest</a> · <a href="{e(manage)}">Manage all your alerts</a>. '
        f"{e(EMERGENCY)}</small></p>"
    )
    return mail.build(
        settings,
        to=digest.address,
        subject=subject,
        text="\n".join(text),
        html=_page("".join(body)),
        headers=_list_headers(settings, unsub),
    )


# ---- digests ----------------------------------------------------------------------------------
def scheduled_send(settings, frequency: str, now: datetime) -> datetime:
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


def assemble_digests(store, settings, now: datetime) -> int:
    """Record the digest of every address whose send time has come since its last one: the
    entries matching its digest subscriptions that became public since then (or since it
    subscribed), each once and never one already mailed to the address."""
    set_id = store.active_beat_set_id()
    if set_id is None:
        return 0
    subs = [s for s in store.email_subscriptions() if s.frequency in DIGESTS]
    made = 0
    for frequency in DIGESTS:
        due = scheduled_send(settings, frequency, now)
        groups: dict[int, list[EmailSubscription]] = {}
        for s in subs:
            if s.frequency == frequency and s.created_at <= due:
                groups.setdefault(s.subscriber_id, []).append(s)
        if not groups:
            continue
        last = store.latest_email_digest_ends(frequency)
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
            wait = grace(settings)
            entries = store.entries_for_email_digest(
                set_id,
                sid,
                frequency,
                now=now - wait,
                since=start - wait,
                oldest_event=start - timedelta(hours=settings.outbox_max_age),
            )
            if (
                store.create_email_digest(
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


def _attempt(settings, msg, attempts: int, clock) -> tuple[str, dict]:
    """Send one message; the outcome and the values to record (outbox rules)."""
    try:
        mail.send(settings, msg)
    except TransientPostingError as exc:
        values = queue.after_transient_failure(attempts, exc.message, clock())
        return ("failed" if values["status"] == "failed" else "retry"), values
    except (PermanentPostingError, ConfigurationError) as exc:
        return "failed", {"status": "failed", "error": exc.message}
    return "sent", {"status": "sent", "sent_at": clock(), "error": None}


def _send_digest(store, settings, digest: EmailDigest, set_id, clock) -> str:
    at = clock()
    subs = [s for s in store.email_subscriptions(digest.address) if s.frequency == digest.frequency]
    grouped: dict[int, tuple[EmailSubscription, list[PublicEntry]]] = {}
    for d in store.email_digest_entries(digest.id):
        if d.status == "cancelled":
            continue
        found = _public_entry(store, set_id, d.entry_uid, at)
        matching = [s for s in subs if found and _matches(s, found)]
        if not matching:
            store.cancel_email_digest_entry(
                d.id,
                "The entry is no longer public."
                if found is None
                else "No subscription of the address matches it any more.",
            )
            continue
        sub = _narrowest(matching)
        grouped.setdefault(sub.id, (sub, []))[1].append(found)
    if not grouped:
        store.finish_email_digest(
            digest.id, status="cancelled", error="Nothing in it is public or subscribed any more."
        )
        return "cancelled"
    groups = sorted(grouped.values(), key=lambda g: (_NARROW[g[0].area_kind], g[0].area_code or ""))
    for _, found in groups:
        found.sort(key=lambda f: (f.entry.event_time, f.entry.uid))
    outcome, values = _attempt(
        settings, digest_message(settings, digest, groups), digest.attempts + 1, clock
    )
    store.finish_email_digest(digest.id, **values)
    return outcome


def send_alerts(store, settings, now: datetime, *, clock=None, limit: int = 200) -> dict:
    """Queue what is due, record the digests whose time has come, then mail pending alerts
    and digests within the SMTP server's rate limit (`smtp_max_per_minute`). While an admin
    has paused all mail, everything waits (queued, nothing lost)."""
    clock = clock or queue.default_clock(now)
    summary = {
        "enqueued": enqueue_alerts(store, settings, now),
        "digests": 0,
        "sent": 0,
        "retry": 0,
        "failed": 0,
        "unknown": 0,
        "deferred": 0,
        "cancelled": 0,
    }
    store.prune_email_signups(now - timedelta(days=1))  # they only serve the rate limit
    if not mail.enabled(settings):
        return summary
    interrupted = "Interrupted while sending. SMTP has no duplicate guard, so it was not resent."
    for d in store.stale_email_deliveries(queue.stale_before(now)):
        store.finish_email_delivery(d.id, status="unknown", error=interrupted)
        summary["unknown"] += 1
    for g in store.stale_email_digests(queue.stale_before(now)):
        store.finish_email_digest(g.id, status="unknown", error=interrupted)
        summary["unknown"] += 1
    if store.email_paused():
        summary["paused"] = True
        log.info("send-alerts: %s", summary)
        return summary
    summary["digests"] = assemble_digests(store, settings, now)
    set_id = store.active_beat_set_id()

    def room(at: datetime) -> bool:
        return store.email_sends_since(at - timedelta(minutes=1)) < settings.smtp_max_per_minute

    for d in store.due_email_deliveries(now, limit):
        at = clock()
        if not room(at):
            summary["deferred"] += 1
            continue
        if not store.claim_email_delivery(d.id, at):
            continue
        found = _public_entry(store, set_id, d.entry_uid, at)
        # Digest subscriptions get an entry on its own only when it is an urgent announcement.
        subs = [
            s
            for s in store.email_subscriptions(d.address)
            if found and _matches(s, found) and (s.frequency == "instant" or found.urgent)
        ]
        if found is None or not subs:
            store.finish_email_delivery(
                d.id,
                status="cancelled",
                error=(
                    "The entry is no longer public."
                    if found is None
                    else "No subscription of the address matches the entry any more."
                ),
            )
            summary["cancelled"] += 1
            continue
        # The narrowest matching subscription explains "why" and is the one-click target.
        outcome, values = _attempt(
            settings, alert_message(settings, found, _narrowest(subs)), d.attempts + 1, clock
        )
        store.finish_email_delivery(d.id, **values)
        summary[outcome] += 1
    for g in store.due_email_digests(now, limit):
        at = clock()
        if not room(at):
            summary["deferred"] += 1
            continue
        if not store.claim_email_digest(g.id, at):
            continue
        summary[_send_digest(store, settings, g, set_id, clock)] += 1
    log.info("send-alerts: %s", summary)
    return summary


def set_paused(store, paused: bool, *, actor: str, now: datetime) -> None:
    """Pause all email (alerts and digests wait, queued) or resume it. Kept in the database,
    so the scheduler and every web process see it."""
    store.set_email_paused(
        json.dumps({"by": actor, "at": now.isoformat(timespec="seconds")}) if paused else None
    )
    store.audit(actor, "alerts.pause" if paused else "alerts.resume", "email alerts", now=now)


def paused_state(store) -> dict | None:
    """{"by": actor, "at": iso time} while all mail is paused, else None."""
    raw = store.email_paused()
    return json.loads(raw) if raw else None


# ---- administration ---------------------------------------------------------------------------
def masked(address: str) -> str:
    """`r•••@example.org`: enough for an admin to tell deliveries apart, not to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"


def overview(store) -> dict:
    """What the admin page shows: subscriptions per area (never addresses), deliveries by
    status, and the deliveries that need a look (failed, unknown)."""
    needs = [d for status in ("unknown", "failed") for d in store.email_deliveries(status=status)]
    return {
        "areas": [(feeds.area_label(k, c), n) for k, c, n in store.email_subscriber_counts()],
        "counts": store.email_delivery_counts(),
        "digest_counts": store.email_digest_counts(),
        "paused": paused_state(store),
        "attention": [(d, masked(d.address)) for d in needs[-200:]],
    }


def resolve_delivery(store, delivery_id: int, outcome: str, *, actor: str, now: datetime) -> None:
    """An admin's decision on an `unknown` delivery: it was `sent`, `retry` it, or `drop` it."""
    from beatfeeds.core.errors import Conflict

    d = store.email_delivery(delivery_id)
    if d.status != "unknown":
        raise Conflict(f"Email delivery {delivery_id} is {d.status}, not unknown.")
    if d.digest_id is not None:  # one message: the decision applies to the whole digest
        _resolve_digest(store, d.digest_id, outcome, actor=actor, now=now)
    elif outcome == "sent":
        store.finish_email_delivery(
            d.id, status="sent", sent_at=now, error=f"confirmed as sent by {actor}"
        )
    elif outcome == "retry":
        store.finish_email_delivery(
            d.id, status="pending", next_attempt_at=now, error=f"sent again on request of {actor}"
        )
    elif outcome == "drop":
        store.finish_email_delivery(d.id, status="failed", error=f"dropped by {actor}")
    else:
        raise InvalidInput("Choose sent, retry or drop.")
    store.audit(
        actor, "alerts.resolve", f"email delivery {delivery_id}", {"outcome": outcome}, now=now
    )


def _resolve_digest(store, digest_id: int, outcome: str, *, actor: str, now: datetime) -> None:
    if outcome == "sent":
        store.finish_email_digest(
            digest_id, status="sent", sent_at=now, error=f"confirmed as sent by {actor}"
        )
    elif outcome == "retry":
        store.finish_email_digest(
            digest_id,
            status="pending",
            next_attempt_at=now,
            error=f"sent again on request of {actor}",
        )
    elif outcome == "drop":
        store.finish_email_digest(digest_id, status="failed", error=f"dropped by {actor}")
    else:
        raise InvalidInput("Choose sent, retry or drop.")
