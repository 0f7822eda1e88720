"""What an outbound post says: the fields a post template can use for one entry, the
template filled and fitted to the service, the webhook payload, and an account's profile
text. No database here: the outbox (beatfeeds.services.outbox) decides what to post."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING

from beatfeeds.core import areas
from beatfeeds.core.models import ANNOUNCEMENT_KINDS, FeedEntry, OutboundAccount, OutboxItem
from beatfeeds.core.text import local_time_text, single_line
from beatfeeds.delivery.posting import text as posttext
from beatfeeds.publish import feeds, privacy

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings


def area_label(account: OutboundAccount) -> str:
    """`Sector K`: the area an account posts for."""
    return areas.area_label(account.area_kind, account.area_code)


def area_url(settings: Settings, account: OutboundAccount) -> str:
    """The page of the account's area."""
    return settings.base_url + areas.page_path(account.area_kind, account.area_code)


def profile_text(settings: Settings, account: OutboundAccount) -> str:
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


def entry_link(settings: Settings, uid: str) -> str:
    """The entry's page."""
    return f"{settings.base_url}/entries/{uid}"


def entry_fields(
    settings: Settings, account: OutboundAccount, entry: FeedEntry, kind: str, urgent: bool = False
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
        "precinct": areas.area_label("precinct", entry.precinct) if entry.precinct else "",
        "department": settings.department_name,
        "link": entry_link(settings, entry.uid),
    }


def post_text(poster, account: OutboundAccount, fields: dict[str, str]) -> str:
    """The account's template filled and fitted to the service's limit."""
    return posttext.fit(account.template, fields, poster.measure, poster.char_limit())


def payload(entry: FeedEntry, item: OutboxItem, fields: dict[str, str]) -> dict:
    """The entry as a webhook receives it."""
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
