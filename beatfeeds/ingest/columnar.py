"""The fast path of an import: whole chunks of rows validated column-wise.

`reading.iter_raw_frames` gives chunks of records as columns; this module turns each into
the valid rows held as columns (a pandas DataFrame), with the same results, line numbers and
rejection reasons as validating row by row (`rows.validate_row`), and their fingerprints
(`row_hashes`, as `fields.row_hash`). Rows the vectorised checks cannot settle (an odd date
format, hour 24, a bad number, a blank key...) are handed to that per-row validator, so the
common case is fast and the odd case is exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from beatfeeds.core import identifiers
from beatfeeds.core.models import IncidentRow, Rejection
from beatfeeds.ingest.fields import FIRST_YEAR, TRUE_WORDS, fingerprints, parse_coordinate
from beatfeeds.ingest.mapping import ColumnMapping
from beatfeeds.ingest.reading import RawFrame, raw_text

# Date layouts tried on a column's first value; the column is then parsed with the first that
# fits, and values it does not fit go to the per-row parser (which knows every layout).
_DATE_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %I:%M:%S %p",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
)
_OFFSET_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y/%m/%d %H:%M:%S%z",
    "%m/%d/%Y %I:%M:%S %p %z",
)
_OFFSET_SUFFIX = re.compile(r"\s*(Z|[+-]\d{2}:?\d{2})$")
# "+00" after a time (ArcGIS exports): written out as "+0000" so that strptime's %z reads it.
_SHORT_OFFSET = re.compile(r"(?<=:\d\d)([+-]\d{2})$")


# ---- column-wise validation ---------------------------------------------------------------
def _strip(values: np.ndarray) -> np.ndarray:
    """Values without surrounding spaces."""
    return np.array([v.strip() for v in values], dtype=object) if len(values) else values


def _truncate(values: np.ndarray, limit: int) -> np.ndarray:
    if len(values) and max(map(len, values)) > limit:
        return np.array([v[:limit] for v in values], dtype=object)
    return values


def parse_dates(
    values: np.ndarray, tz: ZoneInfo, *, offset_is_local: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(naive UTC datetime64[ns] with NaT for blanks, mask of values left to the per-row parser).

    The layout is taken from the first value; values that do not fit it, local times that
    fall in a DST gap and anything unusual are left to `fields.parse_datetime`.
    """
    n = len(values)
    blank = values == ""
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    if blank.all():
        return out, np.zeros(n, dtype=bool)
    sample = values[np.argmax(~blank)]
    series = pd.Series(values, dtype=object)
    if _SHORT_OFFSET.search(sample):
        series = series.str.replace(_SHORT_OFFSET, r"\g<1>00", regex=True)
        sample = series.iat[int(np.argmax(~blank))]
    has_offset = False
    fmt = _fitting_format(sample, _DATE_FORMATS)
    if fmt is None and offset_is_local and _OFFSET_SUFFIX.search(sample):
        fmt = _fitting_format(_OFFSET_SUFFIX.sub("", sample), _DATE_FORMATS)
        if fmt is not None:
            series = series.str.replace(_OFFSET_SUFFIX, "", regex=True)
    if fmt is None and not offset_is_local:
        fmt = _fitting_format(sample, _OFFSET_FORMATS)
        has_offset = fmt is not None
    if fmt is None:
        return out, ~blank
    naive = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    rest = ~blank
    if not has_offset and fmt in _FIXED:
        fast, ok = _fixed_width(series.to_numpy(dtype=object), _FIXED[fmt])
        naive[ok] = fast[ok]
        rest &= ~ok
    if rest.any():
        parsed = pd.to_datetime(series[rest], format=fmt, errors="coerce", utc=has_offset)
        # A year datetime64[ns] cannot hold would wrap round: the per-row parser words it.
        parsed = parsed.where((parsed.dt.year >= FIRST_YEAR) & (parsed.dt.year <= 2261))
        if has_offset:
            # Whole seconds, as the per-row parser reads them (it drops any fraction).
            parsed = parsed.dt.tz_convert(None).dt.floor("s")
            out[rest] = parsed.to_numpy(dtype="datetime64[ns]")
            rest[:] = False
        else:
            naive[rest] = parsed.to_numpy(dtype="datetime64[ns]")
    if not has_offset:
        local = pd.Series(naive).dt.tz_localize(
            tz, ambiguous=np.ones(n, dtype=bool), nonexistent="NaT"
        )
        out = local.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    return out, np.isnat(out) & ~blank


# Zero-padded layouts read straight from the bytes: (length, {part: (offset, width)},
# {offset: literal byte}, 12-hour clock?).
_US12 = (
    22,
    {"m": (0, 2), "d": (3, 2), "Y": (6, 4), "H": (11, 2), "M": (14, 2), "S": (17, 2)},
    {2: b"/", 5: b"/", 10: b" ", 13: b":", 16: b":", 19: b" ", 21: b"M"},
    True,
)
_ISO = {"Y": (0, 4), "m": (5, 2), "d": (8, 2), "H": (11, 2), "M": (14, 2), "S": (17, 2)}
_FIXED = {
    "%m/%d/%Y %I:%M:%S %p": _US12,
    "%Y-%m-%dT%H:%M:%S": (19, _ISO, {4: b"-", 7: b"-", 10: b"T", 13: b":", 16: b":"}, False),
    "%Y-%m-%d %H:%M:%S": (19, _ISO, {4: b"-", 7: b"-", 10: b" ", 13: b":", 16: b":"}, False),
}


def _fixed_width(values: np.ndarray, layout) -> tuple[np.ndarray, np.ndarray]:
    """(naive datetime64[ns], mask of values read) for values in an exact zero-padded layout;
    anything else (another length, a bad digit, 31 April, hour 24) is left unread."""
    length, parts, literals, twelve = layout
    n = len(values)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    lens = np.fromiter(map(len, values), dtype=np.int64, count=n)
    ok = lens == length
    if not ok.any():
        return out, ok
    try:
        raw = np.array(values[ok].tolist(), dtype=f"S{length}")
    except UnicodeEncodeError:
        return out, np.zeros(n, dtype=bool)
    b = raw.view(np.uint8).reshape(-1, length)
    good = np.ones(len(b), dtype=bool)
    for offset, char in literals.items():
        good &= b[:, offset] == char[0]
    num = {}
    for name, (offset, width) in parts.items():
        digits = b[:, offset : offset + width].astype(np.int64) - 48
        good &= ((digits >= 0) & (digits <= 9)).all(axis=1)
        num[name] = (digits * (10 ** np.arange(width - 1, -1, -1))).sum(axis=1)
    hour = num["H"]
    if twelve:
        ampm = b[:, length - 2]
        good &= ((ampm == ord("A")) | (ampm == ord("P"))) & (hour >= 1) & (hour <= 12)
        hour = hour % 12 + np.where(ampm == ord("P"), 12, 0)
    good &= (hour <= 23) & (num["M"] <= 59) & (num["S"] <= 59)
    good &= (num["m"] >= 1) & (num["m"] <= 12) & (num["d"] >= 1) & (num["d"] <= 31)
    months = ((num["Y"] - 1970) * 12 + num["m"] - 1).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + (num["d"] - 1)
    good &= days.astype("datetime64[M]") == months  # 31 April is not a date
    stamp = (days.astype("datetime64[s]") + hour * 3600 + num["M"] * 60 + num["S"]).astype(
        "datetime64[ns]"
    )
    idx = np.flatnonzero(ok)
    out[idx[good]] = stamp[good]
    read = np.zeros(n, dtype=bool)
    read[idx[good]] = True
    return out, read


def format_datetimes(values: np.ndarray, *, sep: str = "T", unit: str = "us") -> list[str | None]:
    """datetime64 values as the text `np.datetime_as_string(values, unit)` writes (with `sep`
    between date and time), NaT as None, at a third of its cost: each distinct day is
    written once and the time of day looked up in a table. unit: "us" or "s" (truncating,
    as numpy's cast does)."""
    width = {"us": 26, "s": 19}[unit]
    nat = np.isnat(values)
    micros = np.where(nat, 0, values.astype("datetime64[us]").view(np.int64))
    days, in_day = np.divmod(micros, 86_400_000_000)
    if len(days) and not (_FIRST_DAY <= days.min() and days.max() <= _LAST_DAY):
        text = np.datetime_as_string(values.astype(f"datetime64[{unit}]"), unit=unit)
        out = [str(v).replace("T", sep, 1) for v in text.tolist()]
    else:
        seconds, fraction = np.divmod(in_day, 1_000_000)
        distinct, which = np.unique(days, return_inverse=True)
        day_text = np.datetime_as_string(distinct.astype("datetime64[D]")).astype("S10")
        chars = np.empty((len(values), width + 1), dtype=np.uint8)
        chars[:, width] = ord("\n")  # one string split in lines: cheaper than n decodes
        chars[:, :10] = day_text.view(np.uint8).reshape(-1, 10)[which]
        chars[:, 10] = ord(sep)
        chars[:, 11:19] = _times_of_day()[seconds]
        if unit == "us":
            chars[:, 19] = ord(".")
            if not fraction.any():  # whole seconds, as most sources write
                chars[:, 20:width] = ord("0")
            for col in range(25, 19, -1) if fraction.any() else ():
                fraction, digit = np.divmod(fraction, 10)
                chars[:, col] = digit + ord("0")
        out = chars.tobytes().decode("ascii").split("\n")[:-1] if len(values) else []
    for i in np.flatnonzero(nat).tolist():
        out[i] = None
    return out


_FIRST_DAY = (np.datetime64("0001-01-01") - np.datetime64("1970-01-01")).astype(int)
_LAST_DAY = (np.datetime64("9999-12-31") - np.datetime64("1970-01-01")).astype(int)
_TIMES_OF_DAY: np.ndarray | None = None


def _times_of_day() -> np.ndarray:
    """ "HH:MM:SS" of each second of a day, as an (86400, 8) array of ASCII codes."""
    global _TIMES_OF_DAY
    if _TIMES_OF_DAY is None:
        s = np.arange(86_400)
        table = np.full((86_400, 8), ord(":"), dtype=np.uint8)
        for col, part in ((0, s // 3600), (3, s // 60 % 60), (6, s % 60)):
            table[:, col] = part // 10 + ord("0")
            table[:, col + 1] = part % 10 + ord("0")
        _TIMES_OF_DAY = table
    return _TIMES_OF_DAY


def _fitting_format(sample: str, formats) -> str | None:
    for fmt in formats:
        try:
            datetime.strptime(sample, fmt)
        except ValueError:
            continue
        return fmt
    return None


def _coordinates(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(numbers with NaN for blanks, blank mask, mask of values that are not finite numbers)."""
    blank = values == ""
    nums = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
        dtype="float64", copy=True
    )
    return nums, blank, ~blank & ~np.isfinite(nums)


@dataclass
class Checks:
    """What column-wise validation needs from the run."""

    mapping: ColumnMapping
    col_index: dict[str, int]
    tz: ZoneInfo
    now: datetime
    # The per-row validator: (line, cells) -> IncidentRow | Rejection.
    validate_row: Callable[[int, list[str]], IncidentRow | Rejection]
    covers: Callable[[np.ndarray, np.ndarray], np.ndarray] | None  # in the active beat map?
    time_shift: timedelta | None = None


VALID_COLUMNS = (
    "line",
    "external_id",
    "occurred_at",
    "reported_at",
    "category_text",
    "description",
    "address",
    "lat",
    "lon",
    "source_beat",
    "sensitive",
    "swapped",
)


def validate_frame(raw: RawFrame, checks: Checks, rejections: list[Rejection]) -> pd.DataFrame:
    """Valid rows of a chunk as columns (VALID_COLUMNS plus `cls0`... for classification
    texts); rejected rows go to `rejections`."""
    m = checks.mapping
    cols = m.columns
    frame = raw.frame
    n = len(frame)

    def column(name: str | None) -> np.ndarray:
        if name is None or name not in checks.col_index:
            return np.full(n, "", dtype=object)
        return frame[checks.col_index[name]].to_numpy(dtype=object)

    def field(fieldname: str) -> np.ndarray:
        return _strip(column(cols.get(fieldname)))

    slow = np.zeros(n, dtype=bool)  # rows for the per-row validator
    key = field("external_id").copy()
    blank_key = key == ""
    if blank_key.any() and m.key_fallback_columns:
        parts = [_strip(column(c)) for c in m.key_fallback_columns]
        for i in np.flatnonzero(blank_key):
            p = [c[i] for c in parts]
            if any(p):
                key[i] = identifiers.fallback_key(p)
        blank_key = key == ""
    slow |= blank_key
    if n:
        slow |= np.fromiter(map(len, key), dtype=np.int64, count=n) > 200

    times = {}
    for fieldname in ("occurred_at", "reported_at"):
        if fieldname in cols:
            times[fieldname], bad = parse_dates(
                field(fieldname), checks.tz, offset_is_local=m.offset_is_local
            )
            slow |= bad
        else:
            times[fieldname] = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    occurred, reported = times["occurred_at"], times["reported_at"]
    slow |= np.isnat(occurred) & np.isnat(reported)
    latest = np.datetime64(checks.now + timedelta(days=1), "ns")
    slow |= (occurred > latest) | (reported > latest)

    lat, lat_blank, lat_bad = _coordinates(field("lat"))
    lon, lon_blank, lon_bad = _coordinates(field("lon"))
    slow |= lat_bad | lon_bad
    if m.location_column:
        slow |= lat_blank | lon_blank  # the "(lat, lon)" column decides, row by row
    out_of_range = (np.abs(lat) > 90) | (np.abs(lon) > 180)
    swappable = (np.abs(lat) <= 180) & (np.abs(lon) <= 90)
    if checks.covers is None:
        slow |= out_of_range
    else:
        slow |= out_of_range & ~swappable
    unlocated = lat_blank | lon_blank | ((lat == 0) & (lon == 0))
    lat[unlocated] = np.nan
    lon[unlocated] = np.nan

    def text(fieldname: str) -> np.ndarray:
        values = field(fieldname)
        if m.strip_prefix:
            values = np.array([v.lstrip(m.strip_prefix).strip() for v in values], dtype=object)
        return values

    category = text("category")
    description = text("description")
    description = np.where(description == "", category, description)
    sens_values = field("sensitive")
    if n and "sensitive" in cols:
        uniq = pd.unique(sens_values)
        truth = {u: u.lower() in TRUE_WORDS for u in uniq}
        sensitive = np.fromiter((truth[v] for v in sens_values), dtype=bool, count=n)
    else:
        sensitive = np.zeros(n, dtype=bool)
    source_beat = _truncate(field("beat"), 32)  # "" for none: pandas would make None a NaN
    valid = pd.DataFrame(
        {
            "line": raw.lines,
            "external_id": key,
            "occurred_at": occurred,
            "reported_at": reported,
            "category_text": _truncate(category, 500),
            "description": _truncate(description, 2000),
            "address": _truncate(field("address"), 500),
            "lat": lat,
            "lon": lon,
            "source_beat": source_beat,
            "sensitive": sensitive,
            "swapped": np.zeros(n, dtype=bool),
            "_oor": out_of_range,
        }
    )
    for k, c in enumerate(m.classification_columns):
        valid[f"cls{k}"] = _truncate(_strip(column(c)), 500)

    fixed = []
    for i in np.flatnonzero(slow):
        result = checks.validate_row(int(raw.lines[i]), raw.cells(i))
        if isinstance(result, Rejection):
            rejections.append(result)
        else:
            fixed.append(result)
    if slow.any():
        valid = valid[~slow]
        if fixed:
            valid = pd.concat(
                [valid, _rows_frame(fixed, len(m.classification_columns))], ignore_index=True
            ).sort_values("line", kind="stable")
    valid = valid.reset_index(drop=True)
    valid = _swap_coordinates(valid, checks, raw, rejections)
    if checks.time_shift:
        valid["occurred_at"] += checks.time_shift
        valid["reported_at"] += checks.time_shift
    return valid.drop(columns="_oor")


def _rows_frame(rows: list[IncidentRow], ncls: int) -> pd.DataFrame:
    def dt(values):
        return np.array(
            [np.datetime64(v, "ns") if v else np.datetime64("NaT") for v in values],
            dtype="datetime64[ns]",
        )

    data = {
        "line": np.array([r.line for r in rows], dtype=np.int64),
        "external_id": np.array([r.external_id for r in rows], dtype=object),
        "occurred_at": dt([r.occurred_at for r in rows]),
        "reported_at": dt([r.reported_at for r in rows]),
        "category_text": np.array([r.category_text for r in rows], dtype=object),
        "description": np.array([r.description for r in rows], dtype=object),
        "address": np.array([r.address for r in rows], dtype=object),
        "lat": np.array([np.nan if r.lat is None else r.lat for r in rows], dtype="float64"),
        "lon": np.array([np.nan if r.lon is None else r.lon for r in rows], dtype="float64"),
        "source_beat": np.array([r.source_beat or "" for r in rows], dtype=object),
        "sensitive": np.array([r.sensitive for r in rows], dtype=bool),
        "swapped": np.array([r.coordinates_swapped for r in rows], dtype=bool),
        "_oor": np.zeros(len(rows), dtype=bool),
    }
    for k in range(ncls):
        data[f"cls{k}"] = np.array([r.classification_texts[k] for r in rows], dtype=object)
    return pd.DataFrame(data)


def _swap_coordinates(
    valid: pd.DataFrame, checks: Checks, raw: RawFrame, rejections: list[Rejection]
) -> pd.DataFrame:
    """Put right latitude/longitude given the wrong way round: only when the point as given
    is outside the beat map (or impossible) and the swapped point is inside it."""
    if checks.covers is None or not len(valid):
        return valid
    lat = valid["lat"].to_numpy(copy=True)
    lon = valid["lon"].to_numpy(copy=True)
    oor = valid["_oor"].to_numpy()
    located = np.isfinite(lat) & np.isfinite(lon)
    inside = np.zeros(len(valid), dtype=bool)
    ok = located & ~oor
    inside[ok] = checks.covers(lon[ok], lat[ok])
    cand = located & ~inside & (np.abs(lat) <= 180) & (np.abs(lon) <= 90)
    hit = np.zeros(len(valid), dtype=bool)
    if cand.any():
        hit[cand] = checks.covers(lat[cand], lon[cand])
    if hit.any():
        lat[hit], lon[hit] = lon[hit], lat[hit].copy()
        valid["lat"], valid["lon"] = lat, lon
        valid.loc[hit, "swapped"] = True
    bad = oor & ~hit
    if bad.any():
        lines = set(valid.loc[bad, "line"].tolist())
        by_line = {
            int(raw.lines[i]): i for i in range(len(raw.lines)) if int(raw.lines[i]) in lines
        }
        for i in np.flatnonzero(bad):
            reason = ""
            for v, what, limit in ((lat[i], "latitude", 90), (lon[i], "longitude", 180)):
                try:  # the reason exactly as the per-row check words it
                    parse_coordinate(repr(float(v)), what, limit)
                except ValueError as exc:
                    reason = str(exc)
                    break
            line = int(valid["line"].iat[i])
            rejections.append(Rejection(line, reason, raw_text(raw.cells(by_line[line]))))
        valid = valid[~bad].reset_index(drop=True)
    return valid


def row_hashes(valid, ncls: int) -> list[bytes]:
    """The fingerprint of each valid row (`fields.fingerprints` of the texts
    `fields.row_texts` gives a row), column-wise."""
    if not len(valid):
        return []

    def iso(values) -> list[str]:
        return [v or "" for v in format_datetimes(values.to_numpy(), unit="s")]

    def num(values) -> list[str]:
        out = list(map(repr, values.tolist()))
        for i in np.flatnonzero(np.isnan(values.to_numpy())).tolist():
            out[i] = "None"
        return out

    parts = [
        valid["external_id"].tolist(),
        iso(valid["occurred_at"]),
        iso(valid["reported_at"]),
        valid["category_text"].tolist(),
        valid["description"].tolist(),
        valid["address"].tolist(),
        num(valid["lat"]),
        num(valid["lon"]),
        [b or "" for b in valid["source_beat"].tolist()],
        ["True" if v else "False" for v in valid["sensitive"].tolist()],
        *(valid[f"cls{k}"].tolist() for k in range(ncls)),
    ]
    return fingerprints(parts)
