"""What an email alert says: the confirmation and "manage" messages, instant alerts and
digests, as multipart MIME (plain text first, then HTML) with RFC 8058 one-click unsubscribe
headers and a footer saying why it came, how to stop it, and that nobody monitors it.

No database here: the email services (beatfeeds.services.alerts, .deliveries, .digests)
decide what to send; beatfeeds.delivery.smtp sends it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from beatfeeds.core import areas
from beatfeeds.core.models import EmailDigest, EmailSubscription, FeedEntry
from beatfeeds.core.text import single_line
from beatfeeds.delivery import links
from beatfeeds.publish import feeds, privacy

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings

FREQUENCIES = {
    "instant": "Each entry as it is published",
    "daily": "A daily digest",
    "weekly": "A weekly digest",
}
# A digest lists at most this many entries (the rest as a count and a link to the area):
# mail clients clip long messages (Gmail at about 102 KB), and the footer must survive.
DIGEST_MAX_LISTED = 100
EMERGENCY = (
    "This service is not monitored. In an emergency call 911; to report a crime "
    "that is not an emergency, use the department's non-emergency line."
)
ALL_AREAS = None  # a citywide announcement's areas: every area matches


@dataclass
class PublicEntry:
    """A public incident or announcement, with the areas it belongs to."""

    entry: FeedEntry
    areas: set | None  # {(kind, code)}; None: every area (citywide announcement)
    urgent: bool = False


# ---- MIME -------------------------------------------------------------------------------------
def sender(settings: Settings) -> str:
    """The From address: `mail_from`, or alerts@ the site's host."""
    if settings.mail_from:
        return settings.mail_from
    host = urlsplit(settings.base_url).hostname or "localhost"
    return f"alerts@{host}"


def build(
    settings: Settings,
    *,
    to: str,
    subject: str,
    text: str,
    html: str,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A multipart/alternative message (plain text first, then HTML). Every header value is
    folded onto one line first: a line break from source text would make the message
    unsendable (or forge a header)."""
    msg = EmailMessage()
    msg["From"] = single_line(sender(settings))
    msg["To"] = single_line(to)
    msg["Subject"] = single_line(subject)
    msg["Date"] = format_datetime(datetime.now(UTC))
    domain = sender(settings).rsplit("@", 1)[-1].strip(" >") or "localhost"
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        msg[name] = single_line(value)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def page(body: str) -> str:
    """An HTML body as a whole document."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        f'<body style="font-family: sans-serif; max-width: 40em">{body}</body></html>'
    )


def list_headers(settings: Settings, unsub: str) -> dict[str, str]:
    """The RFC 2369 / RFC 8058 headers: one-click unsubscribe at `unsub`, and the list's id."""
    list_id = "alerts." + sender(settings).rsplit("@", 1)[-1].strip(" >")
    return {
        "List-Unsubscribe": f"<{unsub}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": f"{settings.department_name} alerts <{list_id}>",
    }


# ---- wording ----------------------------------------------------------------------------------
def schedule(settings: Settings, frequency: str) -> str:
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
    kind: str,
    code: str | None,
    categories: tuple[str, ...],
    frequency: str,
    settings: Settings = None,
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
    return f"{areas.area_label(kind, code)}: {what}; {when}"


def entry_text(settings: Settings, found: PublicEntry) -> tuple[str, str]:
    """(title, body): incidents in the hundred-block form; announcements with their text."""
    entry = found.entry
    if entry.source == "announcement":
        return (
            single_line(("URGENT " if found.urgent else "") + entry.title),
            entry.description or "",
        )
    return feeds._title(entry, settings), ""


# ---- messages ---------------------------------------------------------------------------------
def confirmation_message(
    settings: Settings,
    *,
    to: str,
    area_kind: str,
    area_code: str | None,
    categories: tuple[str, ...],
    frequency: str,
    link: str,
) -> EmailMessage:
    """The message with the link that confirms a sign-up (and says it stores nothing until
    then)."""
    what = describe(area_kind, area_code, categories, frequency, settings)
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
    return build(
        settings,
        to=to,
        text=text,
        html=page(body),
        subject=f"Confirm your email alerts for {areas.area_label(area_kind, area_code)}",
    )


def manage_message(settings: Settings, *, address: str, link: str) -> EmailMessage:
    """The message with a "manage my alerts" link."""
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
    return build(
        settings, to=address, subject="Manage your email alerts", text=text, html=page(body)
    )


def alert_message(settings: Settings, found, sub: EmailSubscription) -> EmailMessage:
    """The instant alert for one entry: multipart, hundred-block text, links, RFC 8058
    headers and a footer saying why, how to stop, and that nobody monitors it."""
    if isinstance(found, FeedEntry):
        found = PublicEntry(found, ALL_AREAS)
    title, extra = entry_text(settings, found)
    link = links.url(settings, f"/entries/{found.entry.uid}")
    area = links.area_url(settings, sub.area_kind, sub.area_code)
    unsub = links.url(settings, f"/alerts/unsubscribe/{links.unsubscribe_token(settings, sub)}")
    manage = links.url(settings, "/alerts/manage")
    why = describe(sub.area_kind, sub.area_code, sub.categories, sub.frequency, settings)
    text = (
        f"{title}\n\n"
        + (f"{extra}\n\n" if extra else "")
        + f"{link}\n\nMore for {areas.area_label(sub.area_kind, sub.area_code)}: "
        f"{area}\n\n-- \nYou receive this because you subscribed to {why}.\n"
        f"Stop these alerts: {unsub}\nManage all your alerts: {manage}\n{EMERGENCY}\n"
    )
    e = html.escape
    body = (
        f'<p><a href="{e(link)}">{e(title)}</a></p>'
        + (f"<p>{e(extra)}</p>" if extra else "")
        + f'<p><a href="{e(area)}">More for '
        f"{e(areas.area_label(sub.area_kind, sub.area_code))}</a></p><hr>"
        f"<p><small>You receive this because you subscribed to {e(why)}. "
        f'<a href="{e(unsub)}">Stop these alerts</a> · '
        f'<a href="{e(manage)}">Manage all your alerts</a>. {e(EMERGENCY)}</small></p>'
    )
    return build(
        settings,
        to=sub.address,
        subject=title,
        text=text,
        html=page(body),
        headers=list_headers(settings, unsub),
    )


def digest_message(
    settings: Settings,
    digest: EmailDigest,
    groups: list[tuple[EmailSubscription, list[PublicEntry]]],
) -> EmailMessage:
    """One digest: each entry once, under the narrowest of the address's subscriptions it
    matches; RFC 8058 headers that stop the digest, and a footer per subscription."""
    n = sum(len(found) for _, found in groups)
    local = digest.period_end.replace(tzinfo=UTC).astimezone(settings.tz)
    day = f"{local:%A} {local.month}/{local.day}/{local.year}"
    subject = (
        f"{settings.department_name} {digest.frequency} digest, {day}: {n} new "
        f"entr{'y' if n == 1 else 'ies'}"
    )
    unsub = links.url(
        settings,
        "/alerts/unsubscribe/"
        + links.digest_unsubscribe_token(settings, digest.address, digest.frequency),
    )
    manage = links.url(settings, "/alerts/manage")
    e = html.escape
    text, body = [subject, ""], [f'<h1 style="font-size: 1.2em">{e(subject)}</h1>']
    room = DIGEST_MAX_LISTED
    for sub, found in groups:
        label = areas.area_label(sub.area_kind, sub.area_code)
        area = links.area_url(settings, sub.area_kind, sub.area_code)
        text += [f"== {label} ({len(found)}) ==", area, ""]
        body.append(
            f'<h2 style="font-size: 1.1em"><a href="{e(area)}">{e(label)}</a> '
            f"({len(found)})</h2><ul>"
        )
        # Urgent announcements first, then the newest: what a clipped list must not lose.
        ordered = sorted(found, key=lambda f: (not f.urgent, -f.entry.event_time.timestamp()))
        for f in ordered[: max(room, 0)]:
            title, extra = entry_text(settings, f)
            link = links.url(settings, f"/entries/{f.entry.uid}")
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
            links.url(settings, f"/alerts/unsubscribe/{links.unsubscribe_token(settings, s)}"),
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
    return build(
        settings,
        to=digest.address,
        subject=subject,
        text="\n".join(text),
        html=page("".join(body)),
        headers=list_headers(settings, unsub),
    )
