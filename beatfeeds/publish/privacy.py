"""The publication policy: what may be published, when, and in what form."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from beatfeeds.core.categories import CATEGORIES, PUBLIC, SENSITIVE
from beatfeeds.core.models import UNCLASSIFIED, IncidentRow
from beatfeeds.core.text import local_time_text, single_line
from beatfeeds.publish import pii

# ---- the public form of an address --------------------------------------------------------------
# The generaliser recognises the two forms that may be published - a hundred block of a street
# (`19XX BLOCK OF E JEFFERSON ST`) and two streets of an intersection (`S KING ST / 8 AV S`) -
# and rebuilds them from recognised tokens only. Whatever it cannot read as one of those forms
# is withheld (""), so a house number, unit, ZIP code or name never reaches a feed by being
# overlooked: a digit is published only as the hundreds of a block or inside a street name.

#: Bump when the generaliser or the classification rules change: stored incidents are then
#: re-derived by the apply-publication-policy job (the version is part of the fingerprint).
RULES_VERSION = 3

STREET_TYPES = frozenset(
    """
    AL ALY ALLEY AV AVE AVENUE BL BLVD BOULEVARD BR BRG BRIDGE BV BYP CIR CIRCLE CR CRES
    CRESCENT CT COURT CRK DR DRIVE EXPY EXPRESSWAY EXT FRWY FWY FREEWAY HWY HY HIGHWAY LN LANE
    LOOP MALL PKWY PKY PARKWAY PL PLACE PLZ PLAZA PT RD ROAD RP RAMP ROW SPAN SQ SQUARE ST
    STREET TER TERRACE TL TN TR TRL TRAIL TUNNEL VIADUCT WALK WAY WY
""".split()
)
DIRECTIONS = frozenset("N S E W NE NW SE SW NB SB EB WB NORTH SOUTH EAST WEST".split())
#: Streets that carry no type word.
TYPELESS_STREETS = frozenset({"BROADWAY"})
#: Words after which a number is a route number (`SR 99`, `HWY 99`, `I 5`).
ROUTE_WORDS = frozenset({"I", "SR", "US", "HWY", "ROUTE", "INTERSTATE"})
#: Words that are never part of a street name: a unit, box, block or person follows them.
_NOT_STREET_WORDS = frozenset(
    """
    APT APARTMENT UNIT STE SUITE FL FLOOR RM ROOM LOT SPACE SPC BLDG BUILDING TRLR DEPT
    PO BOX BLOCK RESIDENCE RES AT AND
""".split()
)
_UNIT = re.compile(
    r"(?:#|\b(?:APT|APARTMENT|UNIT|STE|SUITE|FL|FLOOR|RM|ROOM|LOT|SPACE|SPC|BLDG"
    r"|BUILDING|TRLR)\b)\s*#?\s*(?:[A-Z]?\d[\w-]*|[A-Z]\b)?"
)
_PO_BOX = re.compile(r"\bP\s*O\s+BOX\b|\bPOST OFFICE BOX\b|\bPOB\b")
_FRACTION = re.compile(r"\b(\d+)(?:\s+|\s*-\s*)([1-7])\s*/\s*([2-8])\b|\b(\d+)\s*½")
_RANGE = re.compile(r"\b(\d+)[A-Z]?\s*-\s*\d+[A-Z]?\b")
_SUFFIX = re.compile(r"\b(\d+)-?[A-WYZ]\b")  # 1234B, 1234-B (not 19XX, not 0000X)
_SEPARATOR = re.compile(r"\s*(?:/|\\|&|\bAT\b|\bAND\b)\s*")
_HOUSE = re.compile(r"^\d{1,6}$")
_MASKED = re.compile(r"^(\d*)(X{1,4})$")  # 19XX, XX, 1XX; Chicago's 055XX and 0000X
_ORDINAL = re.compile(r"^\d{1,3}(?:ST|ND|RD|TH)$")
_ROUTE = re.compile(r"^(?:I|SR|US|HWY)-?\d{1,3}$")
_WORD = re.compile(r"^[“\"']?[^\W\d_]+(?:['’-][^\W\d_]+)*[”\"']?$")  # letters, no digit
_NUMBER = re.compile(r"^\d{1,3}$")


def _is_street_token(tokens: list[str], k: int) -> bool:
    """Whether tokens[k] can be part of a street name where it stands."""
    tok = tokens[k]
    if _ORDINAL.match(tok) or _ROUTE.match(tok):
        return True
    if _NUMBER.match(tok):  # `N 50 ST`, `5 AV S`, `SR 99`: a number names a street only there
        before = tokens[k - 1] if k else ""
        after = tokens[k + 1] if k + 1 < len(tokens) else ""
        beyond = tokens[k + 2] if k + 2 < len(tokens) else ""
        if after in STREET_TYPES:
            # but `1 HWY 99` is house 1 on HWY 99, `123 COURT ST` house 123 on COURT ST
            return not (after in ROUTE_WORDS and _NUMBER.match(beyond)) and (
                beyond not in STREET_TYPES
            )
        return before in ROUTE_WORDS
    return bool(_WORD.match(tok)) and tok not in _NOT_STREET_WORDS


def _street(tokens: list[str]) -> str | None:
    """The longest street name at the start of tokens (`N 50 ST`, `BROADWAY E`, `SR 99`):
    [direction] name [type] [direction], where a type or a route number ends the name."""
    best = None
    for k in range(min(len(tokens), 8)):
        if not _is_street_token(tokens, k):
            break
        tok = tokens[k]
        prev = tokens[k - 1] if k else ""
        if (
            best == k
            and tok not in STREET_TYPES
            and tok not in DIRECTIONS
            and not (_NUMBER.match(tok) and prev in ROUTE_WORDS)
        ):
            break  # a complete street goes on only with a type or direction (`S LANE ST`)
        if (
            (tok in STREET_TYPES and k > 0)
            or tok in TYPELESS_STREETS
            or _ROUTE.match(tok)
            or (_NUMBER.match(tok) and prev in ROUTE_WORDS)
        ):
            best = k + 1
        elif tok in DIRECTIONS and best == k:  # a direction after a complete street: `AV S`
            best = k + 1
    if best is None:
        return None
    name = tokens[:best]
    core = name[:-1] if name[-1] in DIRECTIONS and len(name) > 1 else name
    if core[-1] in STREET_TYPES and len(core) < 2:
        return None  # `AV S` alone names nothing
    return " ".join(name)


def _hundreds(tok: str) -> int | None:
    """The hundreds of a house number or masked block number, or None if tok is neither."""
    if _HOUSE.match(tok):
        return int(tok) // 100
    m = _MASKED.match(tok)
    if m and (m.group(1) or len(m.group(2)) >= 2):
        return int(m.group(1) or 0) * 10 ** len(m.group(2)) // 100
    return None


def _block(tokens: list[str]) -> str | None:
    """`HXX BLOCK OF <street>` from the first house or block number followed by a street."""
    for i, tok in enumerate(tokens):
        hundreds = _hundreds(tok)
        if hundreds is None:
            continue
        rest = tokens[i + 1 :]
        if rest[:1] == ["BLOCK"]:
            rest = rest[2:] if rest[1:2] == ["OF"] else rest[1:]
        street = _street(rest)
        if street:
            return f"{hundreds}XX BLOCK OF {street}" if hundreds else f"XX BLOCK OF {street}"
    return None


def _segment_form(segment: str) -> str | None:
    """The public form of one comma-free part of an address, or None."""
    parts = [p.split() for p in _SEPARATOR.split(segment)]
    parts = [p for p in parts if p]
    if len(parts) >= 2:
        streets = [_street(p) for p in parts[:2]]
        if all(streets):  # a leading number was read as part of a street only before a type
            return f"{streets[0]} / {streets[1]}"
        # `1234 5TH AVE AT UNION ST`: a numbered address with its cross street
        for p in parts:
            if (block := _block(p)) is not None:
                return block
        return None
    return _block(parts[0]) if parts else None


def _whole(m: re.Match) -> str:
    """`607 1/2` -> `607`: the whole part of a fractional house number."""
    if m.group(4) is not None:
        return m.group(4)
    return m.group(1) if int(m.group(2)) < int(m.group(3)) else m.group(0)


@lru_cache(maxsize=65536)
def hundred_block(address: str) -> str:
    """The public form of an address, or "" (location withheld) when none can be proven safe.

    `1900 E JEFFERSON ST` -> `19XX BLOCK OF E JEFFERSON ST`; intersections of two streets are
    kept (`S KING ST / 8 AV S`). Fractions, letter suffixes and ranges of house numbers, units,
    city/state/ZIP tails, PO boxes and names are never part of the result.
    """
    a = (address or "").upper().replace(".", " ").replace("\u00a0", " ")
    if not a.strip() or _PO_BOX.search(a):
        return ""
    a = _UNIT.sub(",", a)
    a = _FRACTION.sub(_whole, a)
    a = _RANGE.sub(r"\1", a)
    a = _SUFFIX.sub(r"\1", a)
    for segment in re.split(r"[,;:()\r\n\t]+", a):
        if segment.strip() and (form := _segment_form(segment)) is not None:
            return form
    return ""


def classify(category_text: str, description: str, others: Iterable[str] = ()) -> tuple[str, bool]:
    """(public category slug, sensitive?) from a row's classification texts."""
    return _classify(category_text, description, tuple(others))[:2]


def is_classified(category_text: str, description: str, others: Iterable[str] = ()) -> bool:
    """Whether a sensitive or public rule matches any of a row's classification texts (the
    source's category text, its description and the preset's extra classification columns).

    A row no rule matches is unclassified: not proven safe, so held back unless
    BEATFEEDS_UNCLASSIFIED=publish. Known safe wordings that fit no category have a rule onto
    "other" (core.categories), so "other" alone does not mean unclassified."""
    return _classify(category_text, description, tuple(others))[2]


@lru_cache(maxsize=65536)  # a source uses a few hundred distinct wordings
def _classify(
    category_text: str, description: str, others: tuple[str, ...]
) -> tuple[str, bool, bool]:
    """(slug, sensitive?, classified?)."""
    texts = [t.upper() for t in (category_text, description, *others) if t]
    for slug, rx in SENSITIVE:
        if any(rx.search(t) for t in texts):
            return slug, True, True
    # The source's own category decides first; the other texts only break an "other" (a
    # rule's "other" as much as no match at all).
    matched = False
    for t in texts:
        for slug, rx in PUBLIC:
            if rx.search(t):
                if slug != "other":
                    return slug, False, True
                matched = True
                break
    return "other", False, matched


def prepare_row(
    row: IncidentRow, suppressed_categories: Iterable[str], *, hold_unclassified: bool = True
) -> IncidentRow:
    """Fill the public fields of a row: category, hundred block, suppression reason.

    A row whose published texts look like personal data is held back as `needs review`
    (pii.review_reason); a release by staff is applied where the row is stored. A row no rule
    classifies is held back as `unclassified` unless hold_unclassified is False
    (BEATFEEDS_UNCLASSIFIED=publish), when it is published as "other".
    """
    texts = (row.category_text, row.description, tuple(row.classification_texts))
    row.category, _, classified = _classify(*texts)
    row.block_address = hundred_block(row.address)
    row.suppressed_reason = suppression_reason(
        row.sensitive,
        row.category,
        row.located,
        suppressed_categories,
        review=pii.review_reason(row.description, row.category_text),
        unclassified=hold_unclassified and not classified,
    )
    return row


def redo_decisions(
    stored: dict,
    suppressed_categories: Iterable[str],
    delay_minutes: int,
    *,
    hold_unclassified: bool = True,
) -> dict:
    """category, block_address, suppressed_reason and publish_at of a stored incident, derived
    again from its stored raw fields under the current rules (`store.policy_inputs` rows).

    The extra classification columns of a row are not stored, so the category is re-derived
    from the category and description texts only, and never loosened: a new sensitive match
    wins, a stored sensitive category stays, and a stored category another column decided
    stays when these two texts alone say "other". A row that no rule classifies by these two
    texts and whose stored category is "other" is unclassified (held back unless
    hold_unclassified is False): a row stored before fail-closed, as "other", is held.
    """
    category, sensitive, classified = _classify(stored["category_text"], stored["description"], ())
    old = stored["category"]
    if not sensitive and (old in _SENSITIVE_SLUGS or category == "other"):
        if old != "other":  # decided by another column (or a sensitive match): classified
            classified = True
        category = old
    return {
        "category": category,
        "block_address": hundred_block(stored["address"]),
        "suppressed_reason": suppression_reason(
            stored["sensitive"],
            category,
            stored["located"],
            suppressed_categories,
            review=pii.review_hold(
                stored["description"], stored["category_text"], stored.get("released_digest")
            ),
            unclassified=hold_unclassified and not classified,
        ),
        "publish_at": publish_at(
            delay_minutes, stored["occurred_at"], stored["reported_at"], stored["created_at"]
        ),
    }


_SENSITIVE_SLUGS = frozenset(slug for slug, _ in SENSITIVE)


def suppression_reason(
    sensitive: bool,
    category: str,
    located: bool,
    suppressed_categories: Iterable[str],
    *,
    review: str | None = None,
    unclassified: bool = False,
) -> str | None:
    """Why an incident is not published, or None when it may be.

    `unclassified` says that no rule classified the row and unclassified rows are held
    (models.UNCLASSIFIED, never published). `review` is the row's `needs review` reason
    (pii.review_hold), if any: it comes last, so the staff review list holds only entries that
    a release would actually publish.
    """
    if sensitive:
        return "marked sensitive by the source"
    if category in suppressed_categories:
        return f"category {category} is never published"
    if unclassified:
        return UNCLASSIFIED
    if not located:
        return "no location"
    return review


def policy_fingerprint(
    suppressed_categories: Iterable[str], delay_minutes: int, *, hold_unclassified: bool = True
) -> str:
    """Identifies a publication policy - the settings and the version of the rules, the
    address generaliser and the `needs review` rule (pii.RULE_VERSION) - so stored decisions
    can be redone when it changes."""
    return (
        f"rules={RULES_VERSION};delay={delay_minutes};"
        f"suppressed={','.join(sorted(set(suppressed_categories)))}"
        f";review={pii.RULE_VERSION}"
        f";unclassified={'hold' if hold_unclassified else 'publish'}"
    )


def publish_at(delay_minutes: int, occurred_at, reported_at, first_imported_at):
    """When an incident may appear in feeds: `delay_minutes` after the latest of its event
    time, report time and first import, whichever are known.

    An incident that happened two hours ago but was reported (or reached beatfeeds) five
    minutes ago is not published at once: every entry is at least the delay past the moment
    the department could first have acted on it. Takes naive UTC datetimes (None when unknown)
    or, for a whole chunk of an import, numpy datetime64 arrays (NaT when unknown) with
    `first_imported_at` one datetime or an array.
    """
    times = (occurred_at, reported_at, first_imported_at)
    if any(isinstance(t, np.ndarray) for t in times):
        arrays = [t if isinstance(t, np.ndarray) else np.datetime64(t, "us") for t in times]
        latest = np.fmax(np.fmax(arrays[0], arrays[1]), arrays[2])  # fmax skips NaT
        return latest + np.timedelta64(int(delay_minutes), "m")
    known = [t for t in times if t is not None]
    if not known:
        raise ValueError("an incident needs an event, report or import time")
    return max(known) + timedelta(minutes=delay_minutes)


def keep_published(
    new_publish_at: datetime, old_publish_at: datetime | None, now: datetime
) -> datetime:
    """publish_at of a re-imported incident: an entry already public stays public (a
    correction never moves it later); one still held back takes the new time."""
    if old_publish_at is not None and old_publish_at <= now:
        return min(new_publish_at, old_publish_at)
    return new_publish_at


def entry_title(
    description: str,
    block_address: str,
    event_time_utc: datetime,
    tz: ZoneInfo,
    beat: str | None = None,
) -> str:
    """Entry text in the Tweets by Beat form: `THEFT - CAR PROWL at 110XX BLOCK OF 8TH AVE NE,
    3/25/2016 8:09 PM` (local time)."""
    when = local_time_text(event_time_utc, tz)
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
