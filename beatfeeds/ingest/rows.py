"""One raw row -> a validated, normalised IncidentRow, or a Rejection naming its line and reason.

This is the exact rule every row obeys; the column-wise fast path (`columnar`) settles the
common rows itself and hands every row it cannot settle to `validate_row`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from beatfeeds.core import identifiers
from beatfeeds.core.models import IncidentRow, Rejection
from beatfeeds.ingest.fields import LOCATION, TRUE_WORDS, parse_coordinate, parse_datetime
from beatfeeds.ingest.mapping import ColumnMapping
from beatfeeds.ingest.reading import RawRow, raw_text


def validate_row(
    raw: RawRow,
    mapping: ColumnMapping,
    tz: ZoneInfo,
    now: datetime,
    covers: Callable[[float, float], bool] | None = None,
) -> IncidentRow | Rejection:
    """One raw row -> an IncidentRow, or a Rejection naming the line and the reason.

    With `covers(lon, lat)` (is a point inside the beat map?), latitude and longitude given
    the wrong way round are put right when the point as given is impossible or outside the
    map and the swapped point is inside it.
    """
    v = raw.values
    cols = mapping.columns

    def get(fieldname: str) -> str:
        col = cols.get(fieldname)
        return v.get(col, "").strip() if col else ""

    def fail(reason: str) -> Rejection:
        return Rejection(raw.line, reason, raw_text(list(v.values())))

    external_id = get("external_id")
    if not external_id and mapping.key_fallback_columns:
        parts = [v.get(c, "").strip() for c in mapping.key_fallback_columns]
        if any(parts):
            external_id = identifiers.fallback_key(parts)
    if not external_id:
        return fail(f"missing key ({cols.get('external_id', 'external_id')} is blank)")
    if len(external_id) > 200:
        return fail("key longer than 200 characters")

    try:
        occurred = parse_datetime(get("occurred_at"), tz, offset_is_local=mapping.offset_is_local)
    except ValueError as exc:
        return fail(f"{cols['occurred_at']}: {exc}")
    try:
        reported = parse_datetime(get("reported_at"), tz, offset_is_local=mapping.offset_is_local)
    except ValueError as exc:
        return fail(f"{cols['reported_at']}: {exc}")
    if occurred is None and reported is None:
        names = " or ".join(cols[f] for f in ("occurred_at", "reported_at") if f in cols)
        return fail(f"no event time ({names} is blank)")
    latest = now + timedelta(days=1)
    for value, fieldname in ((occurred, "occurred_at"), (reported, "reported_at")):
        if value is not None and value > latest:
            return fail(f"{cols[fieldname]}: {value:%Y-%m-%d %H:%M} UTC is in the future")

    swapped = False
    try:
        lat = parse_coordinate(get("lat"), "latitude", 90)
        lon = parse_coordinate(get("lon"), "longitude", 180)
    except ValueError as exc:
        point = _swapped_point(get("lat"), get("lon"), covers)
        if point is None:
            return fail(str(exc))
        (lat, lon), swapped = point, True
    if (lat is None or lon is None) and mapping.location_column:
        m = LOCATION.match(v.get(mapping.location_column, "").strip())
        if m:
            try:
                lat = parse_coordinate(m.group(1), "latitude", 90)
                lon = parse_coordinate(m.group(2), "longitude", 180)
            except ValueError as exc:
                point = _swapped_point(m.group(1), m.group(2), covers)
                if point is None:
                    return fail(f"{mapping.location_column}: {exc}")
                (lat, lon), swapped = point, True
    if lat is None or lon is None or (lat == 0 and lon == 0):
        lat = lon = None  # blank or the 0,0 "no location" convention: stored, never published
    elif covers and not swapped and not covers(lon, lat) and abs(lon) <= 90 and covers(lat, lon):
        lat, lon, swapped = lon, lat, True

    def text(fieldname: str) -> str:
        s = get(fieldname)
        return s.lstrip(mapping.strip_prefix).strip() if mapping.strip_prefix else s

    return IncidentRow(
        line=raw.line,
        source=mapping.source,
        external_id=external_id,
        reported_at=reported,
        occurred_at=occurred,
        category_text=text("category")[:500],
        description=(text("description") or text("category"))[:2000],
        address=get("address")[:500],
        lat=lat,
        lon=lon,
        source_beat=get("beat")[:32] or None,
        sensitive=get("sensitive").lower() in TRUE_WORDS,
        classification_texts=tuple(
            v.get(c, "").strip()[:500] for c in mapping.classification_columns
        ),
        coordinates_swapped=swapped,
    )


def _swapped_point(
    lat_text: str, lon_text: str, covers: Callable[[float, float], bool] | None
) -> tuple[float, float] | None:
    """(lat, lon) read the other way round, when that point is inside the beat map."""
    if covers is None:
        return None
    try:
        lon = parse_coordinate(lat_text, "longitude", 180)
        lat = parse_coordinate(lon_text, "latitude", 90)
    except ValueError:
        return None
    if lat is None or lon is None or not covers(lon, lat):
        return None
    return lat, lon
