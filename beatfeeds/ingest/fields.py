"""One cell's text -> a value, and a row's fingerprint: the parsers both validation paths use.

The per-row validator (`rows`) and the column-wise fast path (`columnar`) must agree exactly,
so each rule here has one implementation: `parse_datetime` and `parse_coordinate` (with their
wording of a bad value), the words that mean "true", and the row fingerprint that tells an
unchanged row from a correction (`fingerprints`; `row_hash` is its one-row case).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from beatfeeds.core.models import IncidentRow

TRUE_WORDS = frozenset({"true", "yes", "y", "1", "t", "x"})
# A "(lat, lon)" location column, latitude first.
LOCATION = re.compile(r"^\(?\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)?$")

# An offset is Z, +HH:MM, +HHMM or +HH (ArcGIS exports write "+00").
_OFFSET = r"(Z|[+-]\d{2}(?::?\d{2})?)"
_ISO = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
    rf"\s*{_OFFSET}?$"
)
# Year first with slashes (DC MPD, SFPD 2018-): 2025/04/14 16:26:33+00, 2018/12/01 12:25:00 AM.
_YMD = re.compile(
    r"^(\d{4})/(\d{1,2})/(\d{1,2})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    rf"\s*([AaPp][Mm])?)?\s*{_OFFSET}?$"
)
_US = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    rf"\s*([AaPp][Mm])?)?\s*{_OFFSET}?$"
)
# Earlier years are typing slips (DC's "1025/03/24"), and outside what a datetime64[ns]
# column holds, where the column-wise path would wrap them round to another century.
FIRST_YEAR = 1900
_UTC = ZoneInfo("UTC")


def parse_datetime(text: str, tz: ZoneInfo, *, offset_is_local: bool = False) -> datetime | None:
    """A date/time string -> naive UTC. None when blank; ValueError when unparseable.

    Accepts ISO 8601 (`2016-03-25T20:09:00`, `...+0000`, `...+00`, `...Z`), US style
    (`03/25/2016 08:09:00 PM`) and year first with slashes (`2018/12/01 12:25:00 AM`,
    `2025/04/14 16:26:33+00`). Years before FIRST_YEAR are refused. Hour 24 means midnight of the next day. Times without an
    offset (or with one the source writes on local times, `offset_is_local`) are local to
    `tz`. A local time in a DST gap keeps the pre-transition offset, so 02:30 on the spring-
    forward night becomes 03:30 PDT; a time in the repeated autumn hour is its first
    occurrence (PDT). Both are what `zoneinfo` does with fold=0.
    """
    s = text.strip()
    if not s:
        return None
    m = _ISO.match(s)
    if m:
        y, mo, d, hh, mi, ss, off = m.groups()
        ampm = None
    elif m := _YMD.match(s):
        y, mo, d, hh, mi, ss, ampm, off = m.groups()
    else:
        m = _US.match(s)
        if not m:
            raise ValueError(f"unrecognised date {text.strip()!r}")
        mo, d, y, hh, mi, ss, ampm, off = m.groups()
    if int(y) < FIRST_YEAR:
        raise ValueError(f"impossible date {s!r}: year {int(y)} is before {FIRST_YEAR}")
    hour = int(hh or 0)
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} with {ampm.upper()} in {s!r}")
        hour = hour % 12 + (12 if ampm.upper() == "PM" else 0)
    extra_day = hour == 24 and int(mi or 0) < 60
    if extra_day:
        hour = 0
    try:
        value = datetime(int(y), int(mo), int(d), hour, int(mi or 0), int(ss or 0))
    except ValueError as exc:
        raise ValueError(f"impossible date {s!r}: {exc}") from None
    if extra_day:
        value += timedelta(days=1)
    if off and not offset_is_local:
        if off == "Z":
            offset = timedelta(0)
        else:
            sign = -1 if off[0] == "-" else 1
            digits = off[1:].replace(":", "")
            offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        return value - offset
    return value.replace(tzinfo=tz).astimezone(_UTC).replace(tzinfo=None)


def parse_coordinate(text: str, what: str, limit: float) -> float | None:
    """A latitude/longitude -> float; None when blank; ValueError with a reason when bad."""
    s = text.strip()
    if not s:
        return None
    try:
        v = float(s)
    except ValueError:
        raise ValueError(f"{what} {s[:40]!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} {s[:40]!r} is not a finite number")
    if abs(v) > limit:
        raise ValueError(f"{what} {v:g} is outside ±{limit:g}")
    return v


# ---- the row fingerprint ----------------------------------------------------------------------
def fingerprints(columns: Sequence[Sequence[str]]) -> list[bytes]:
    """SHA-256 of each row of `columns` (texts in `row_texts` order), joined by US (0x1f)."""
    sha = hashlib.sha256
    return [sha(b).digest() for b in map(str.encode, map("\x1f".join, zip(*columns, strict=True)))]


def row_texts(row: IncidentRow) -> list[str]:
    """Everything a row says, as the texts its fingerprint is made of (in their order).

    The column-wise path (`columnar.row_hashes`) writes the same texts from columns: an
    ISO date without microseconds or "", `repr` of a coordinate ("None" when there is none),
    "True"/"False"."""
    return [
        row.external_id,
        row.occurred_at.isoformat() if row.occurred_at else "",
        row.reported_at.isoformat() if row.reported_at else "",
        row.category_text,
        row.description,
        row.address,
        repr(row.lat),
        repr(row.lon),
        row.source_beat or "",
        str(row.sensitive),
        *row.classification_texts,
    ]


def row_hash(row: IncidentRow) -> str:
    """Fingerprint of everything a row says, to tell unchanged rows from corrections."""
    return fingerprints([[t] for t in row_texts(row)])[0].hex()
