"""The publication policy: what may be published, when, and in what form."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from . import pii
from .categories import CATEGORIES, PUBLIC, SENSITIVE
from .models import IncidentRow
from .text import single_line

_SPACES = re.compile(r"\s+")
_HOUSE_NUMBER = re.compile(r"^(\d+)[A-Z]?(?:\s*[-/]\s*\d+[A-Z]?)?\s+(?!BLOCK\b)(.+)$")
_UNIT = re.compile(r"\s*(?:#\s*\S+|\b(?:APT|UNIT|STE|SUITE|RM|ROOM|FL|FLOOR)\b\.?\s*\S+)\s*$")
_ALREADY_BLOCK = re.compile(r"^\d*XX BLOCK OF ")
_INTERSECTION = re.compile(r" / | & |\bAND\b|\bAT\b")


@lru_cache(maxsize=65536)
def hundred_block(address: str) -> str:
    """The public form of an address: `1900 E JEFFERSON ST` -> `19XX BLOCK OF E JEFFERSON ST`.

    Intersections (`S KING ST / 8 AV S`) and addresses already in hundred-block form are kept;
    unit numbers are dropped.
    """
    a = _SPACES.sub(" ", (address or "").strip().upper())
    if not a:
        return ""
    if _ALREADY_BLOCK.match(a) or _INTERSECTION.search(a):
        return a  # numbers in an intersection are street names ("5 AV S / S KING ST")
    a = _UNIT.sub("", a)
    m = _HOUSE_NUMBER.match(a)
    if not m:
        return a
    hundreds = int(m.group(1)) // 100
    prefix = f"{hundreds}XX" if hundreds else "XX"
    return f"{prefix} BLOCK OF {m.group(2)}"


def classify(category_text: str, description: str, others: Iterable[str] = ()) -> tuple[str, bool]:
    """(public category slug, sensitive?) from a row's classification texts."""
    return _classify(category_text, description, tuple(others))


@lru_cache(maxsize=65536)  # a source uses a few hundred distinct wordings
def _classify(category_text: str, description: str, others: tuple[str, ...]) -> tuple[str, bool]:
    texts = [t.upper() for t in (category_text, description, *others) if t]
    for slug, rx in SENSITIVE:
        if any(rx.search(t) for t in texts):
            return slug, True
    # The source's own category decides first; the other texts only break an "other".
    for t in texts:
        for slug, rx in PUBLIC:
            if rx.search(t):
                return slug, False
    return "other", False


def prepare_row(row: IncidentRow, suppressed_categories: Iterable[str]) -> IncidentRow:
    """Fill the public fields of a row: category, hundred block, suppression reason.

    A row whose published texts look like personal data is held back as `needs review`
    (pii.review_reason); a release by staff is applied where the row is stored.
    """
    row.category, _ = classify(row.category_text, row.description, row.classification_texts)
    row.block_address = hundred_block(row.address)
    row.suppressed_reason = suppression_reason(
        row.sensitive, row.category, row.located, suppressed_categories,
        review=pii.review_reason(row.description, row.category_text))
    return row


def suppression_reason(sensitive: bool, category: str, located: bool,
                       suppressed_categories: Iterable[str], *,
                       review: str | None = None) -> str | None:
    """Why an incident is not published, or None when it may be.

    `review` is the row's `needs review` reason (pii.review_hold), if any: it comes last, so
    the staff review list holds only entries that a release would actually publish.
    """
    if sensitive:
        return "marked sensitive by the source"
    if category in suppressed_categories:
        return f"category {category} is never published"
    if not located:
        return "no location"
    return review


def policy_fingerprint(suppressed_categories: Iterable[str], delay_minutes: int) -> str:
    """Identifies a publication policy, so stored decisions can be redone when it changes.

    `review=` names the version of the `needs review` rule (pii.RULE_VERSION): an instance
    upgraded to a stricter rule redoes its stored decisions once.
    """
    return (f"delay={delay_minutes};suppressed={','.join(sorted(set(suppressed_categories)))}"
            f";review={pii.RULE_VERSION}")


def publish_at(event_time: datetime, delay_minutes: int) -> datetime:
    """When an incident may appear in feeds: its event time plus the publication delay."""
    return event_time + timedelta(minutes=delay_minutes)


def entry_title(description: str, block_address: str, event_time_utc: datetime, tz: ZoneInfo,
                beat: str | None = None) -> str:
    """Entry text in the Tweets by Beat form: `THEFT - CAR PROWL at 110XX BLOCK OF 8TH AVE NE,
    3/25/2016 8:09 PM` (local time)."""
    local = event_time_utc.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)
    when = f"{local.month}/{local.day}/{local.year} {local.strftime('%I:%M %p').lstrip('0')}"
    what = description or "Incident"
    if block_address:
        where = f" at {block_address}"
    elif beat:
        where = f" in beat {beat}"
    else:
        where = ""
    return single_line(f"{what}{where}, {when}")  # a title, a subject: one line


def snap_point(lat: float, lon: float, precision: float) -> tuple[float, float]:
    """The point as feeds may show it: moved to the nearest node of a `precision`-degree grid.

    Every incident in the same grid cell gets the same published point, so the raw position
    cannot be recovered from a feed.
    """
    decimals = max(0, -Decimal(repr(precision)).normalize().as_tuple().exponent)

    def snap(v: float) -> float:
        return round(math.floor(v / precision + 0.5) * precision, decimals) + 0.0  # no -0.0

    return snap(lat), snap(lon)


def category_label(slug: str) -> str:
    return CATEGORIES.get(slug, slug)
