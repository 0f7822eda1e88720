"""Incident files -> validated, normalised rows and rejections, then stored in one transaction.

The flow of a run: read the CSV in chunks (`read_chunks`), validate each row into an
IncidentRow or a Rejection, apply the publication policy (`privacy`), join the chunk's points
to every beat map in one vectorised call (`spatial`), and hand the chunk to the store.
The whole run is one transaction: a crash leaves the database as it was.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from . import privacy, spatial
from .errors import InvalidInput, UnusableFile
from .models import ImportReport, IncidentRow, Rejection
from .presets import FIELDS, PRESETS, Preset, closest_preset, detect_preset

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000
MAX_FIELD_BYTES = 1_000_000  # a longer field rejects its row, never the file
_SNIFF_BYTES = 64 * 1024
csv.field_size_limit(64 * 1024 * 1024)


# ---- mappings ---------------------------------------------------------------------------------
@dataclass
class ColumnMapping:
    """How one file's columns map onto our fields."""

    columns: dict[str, str]
    source: str
    preset: Preset | None = None
    classification_columns: tuple[str, ...] = ()
    location_column: str | None = None
    key_fallback_columns: tuple[str, ...] = ()
    offset_is_local: bool = False
    strip_prefix: str = ""

    @classmethod
    def from_preset(cls, preset: Preset, source: str | None = None) -> ColumnMapping:
        return cls(columns=dict(preset.columns), source=source or preset.source, preset=preset,
                   classification_columns=preset.classification_columns,
                   location_column=preset.location_column,
                   key_fallback_columns=preset.key_fallback_columns,
                   offset_is_local=preset.offset_is_local, strip_prefix=preset.strip_prefix)

    def missing_columns(self, header: list[str]) -> list[str]:
        cols = set(header)
        wanted = list(self.columns.values()) + list(self.classification_columns)
        if self.location_column:
            wanted.append(self.location_column)
        return [c for c in dict.fromkeys(wanted) if c not in cols]


def parse_map_options(maps: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`FIELD=COLUMN` strings -> {field: column}, with unknown fields named."""
    out = {}
    for m in maps:
        fieldname, sep, column = m.partition("=")
        fieldname = fieldname.strip()
        if not sep or not column.strip():
            raise InvalidInput(f"--map {m!r}: expected FIELD=COLUMN")
        if fieldname not in FIELDS:
            raise InvalidInput(f"--map {m!r}: unknown field {fieldname!r}; fields are "
                               f"{', '.join(FIELDS)}")
        out[fieldname] = column.strip()
    return out


def resolve_mapping(header: list[str], *, preset: str | None = None,
                    maps: dict[str, str] | None = None, source: str | None = None
                    ) -> ColumnMapping:
    """The mapping for a file: a named preset, explicit --map columns, or auto-detection."""
    if preset and maps:
        raise InvalidInput("Give either a preset or --map columns, not both.")
    if preset:
        if preset not in PRESETS:
            raise InvalidInput(f"Unknown preset {preset!r}; presets are {', '.join(PRESETS)}.")
        mapping = ColumnMapping.from_preset(PRESETS[preset], source)
    elif maps:
        if not source:
            raise InvalidInput("With --map, name the dataset with --source so that incidents "
                               "from overlapping exports merge.")
        mapping = ColumnMapping(columns=dict(maps), source=source)
    else:
        found = detect_preset(header)
        if found is None:
            best, missing = closest_preset(header)
            raise UnusableFile(
                f"No preset matches this file's columns. The closest, {best.name}, needs "
                f"columns not found: {', '.join(missing)}. Map the columns with --map "
                f"FIELD=COLUMN (fields: {', '.join(FIELDS)}).")
        mapping = ColumnMapping.from_preset(found, source)
    if "external_id" not in mapping.columns and not mapping.key_fallback_columns:
        raise UnusableFile("The mapping names no external_id column (the incident's key).")
    if not ({"occurred_at", "reported_at"} & set(mapping.columns)):
        raise UnusableFile("The mapping names no occurred_at or reported_at column.")
    if ("lat" in mapping.columns) != ("lon" in mapping.columns):
        raise UnusableFile("Map both lat and lon, or neither.")
    missing = mapping.missing_columns(header)
    if missing:
        raise UnusableFile(f"The file lacks columns: {', '.join(missing)}.")
    return mapping


# ---- reading ----------------------------------------------------------------------------------
def sniff_text(path: Path) -> tuple[str, str]:
    """(encoding, delimiter) of a CSV file; UnusableFile when it is empty or binary."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head.strip():
        raise UnusableFile("The file is empty.")
    if b"\x00" in head:
        raise UnusableFile("The file is not text (it contains NUL bytes); export it as CSV.")
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    else:
        try:
            head.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the sniff boundary is still UTF-8.
            encoding = "utf-8" if exc.start >= len(head) - 3 else "cp1252"
    text = head.decode(encoding, errors="replace")
    first = text.replace("\r\n", "\n").replace("\r", "\n").split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=counts.get)
    if counts[delimiter] == 0:
        delimiter = ","
    return encoding, delimiter


@dataclass
class RawRow:
    line: int
    values: dict[str, str]


def read_header(path: Path) -> list[str]:
    encoding, delimiter = sniff_text(path)
    with open(path, newline="", encoding=encoding, errors="replace") as fh:
        try:
            header = next(csv.reader(fh, delimiter=delimiter))
        except (StopIteration, csv.Error) as exc:
            raise UnusableFile(f"Cannot read a header line: {exc}") from exc
    return [h.strip().lstrip("\ufeff") for h in header]


def iter_raw_rows(path: Path, rejections: list[Rejection]) -> Iterator[RawRow]:
    """Rows as {column: text} with the file line each starts on; unreadable rows are rejected."""
    encoding, delimiter = sniff_text(path)
    with open(path, newline="", encoding=encoding, errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
        width = len(header)
        prev_end = reader.line_num
        while True:
            start = prev_end + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                prev_end = reader.line_num
                rejections.append(Rejection(start, f"unreadable CSV: {exc}"))
                continue
            prev_end = reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            if len(cells) != width:
                rejections.append(Rejection(start, f"has {len(cells)} fields, the header has "
                                                   f"{width}", _raw(cells)))
                continue
            if any(len(c) > MAX_FIELD_BYTES for c in cells):
                rejections.append(Rejection(start, f"a field is longer than {MAX_FIELD_BYTES} "
                                                   f"characters", _raw(cells)[:200]))
                continue
            yield RawRow(start, dict(zip(header, cells, strict=True)))


def _raw(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(cells)
    return buf.getvalue().rstrip("\r\n")[:2000]


# ---- field parsing ----------------------------------------------------------------------------
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
                  r"\s*(Z|[+-]\d{2}:?\d{2})?$")
_US = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
                 r"\s*([AaPp][Mm])?)?\s*(Z|[+-]\d{2}:?\d{2})?$")
_UTC = ZoneInfo("UTC")


def parse_datetime(text: str, tz: ZoneInfo, *, offset_is_local: bool = False) -> datetime | None:
    """A date/time string -> naive UTC. None when blank; ValueError when unparseable.

    Accepts ISO 8601 (`2016-03-25T20:09:00`, `...+0000`, `...Z`) and US style
    (`03/25/2016 08:09:00 PM`). Hour 24 means midnight of the next day. Times without an
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
    else:
        m = _US.match(s)
        if not m:
            raise ValueError(f"unrecognised date {text.strip()!r}")
        mo, d, y, hh, mi, ss, ampm, off = m.groups()
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
            offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
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


_LOCATION = re.compile(r"^\(?\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)?$")
_TRUE = {"true", "yes", "y", "1", "t", "x"}


def validate_row(raw: RawRow, mapping: ColumnMapping, tz: ZoneInfo,
                 now: datetime) -> IncidentRow | Rejection:
    """One raw row -> an IncidentRow, or a Rejection naming the line and the reason."""
    v = raw.values
    cols = mapping.columns

    def get(fieldname: str) -> str:
        col = cols.get(fieldname)
        return v.get(col, "").strip() if col else ""

    def fail(reason: str) -> Rejection:
        return Rejection(raw.line, reason, _raw(list(v.values())))

    external_id = get("external_id")
    if not external_id and mapping.key_fallback_columns:
        parts = [v.get(c, "").strip() for c in mapping.key_fallback_columns]
        if any(parts):
            external_id = "h:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]
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

    try:
        lat = parse_coordinate(get("lat"), "latitude", 90)
        lon = parse_coordinate(get("lon"), "longitude", 180)
    except ValueError as exc:
        return fail(str(exc))
    if (lat is None or lon is None) and mapping.location_column:
        m = _LOCATION.match(v.get(mapping.location_column, "").strip())
        if m:
            try:
                lat = parse_coordinate(m.group(1), "latitude", 90)
                lon = parse_coordinate(m.group(2), "longitude", 180)
            except ValueError as exc:
                return fail(f"{mapping.location_column}: {exc}")
    if lat is None or lon is None or (lat == 0 and lon == 0):
        lat = lon = None  # blank or the 0,0 "no location" convention: stored, never published

    def text(fieldname: str) -> str:
        s = get(fieldname)
        return s.lstrip(mapping.strip_prefix).strip() if mapping.strip_prefix else s

    return IncidentRow(
        line=raw.line, source=mapping.source, external_id=external_id, reported_at=reported,
        occurred_at=occurred, category_text=text("category")[:500],
        description=(text("description") or text("category"))[:2000],
        address=get("address")[:500], lat=lat, lon=lon, source_beat=get("beat")[:32] or None,
        sensitive=get("sensitive").lower() in _TRUE,
        classification_texts=tuple(v.get(c, "").strip()[:500]
                                   for c in mapping.classification_columns),
    )


def row_hash(row: IncidentRow) -> str:
    """Fingerprint of everything a row says, to tell unchanged rows from corrections."""
    parts = [row.external_id, _iso(row.occurred_at), _iso(row.reported_at), row.category_text,
             row.description, row.address, repr(row.lat), repr(row.lon), row.source_beat or "",
             str(row.sensitive), *row.classification_texts]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def entry_uid(source: str, external_id: str) -> str:
    """The public, opaque id of an incident's entry: stable across re-imports and hosts."""
    return hashlib.sha256(f"{source}\x1f{external_id}".encode()).hexdigest()[:20]


def _iso(d: datetime | None) -> str:
    return d.isoformat() if d else ""


# ---- a run ------------------------------------------------------------------------------------
@dataclass
class ImportOptions:
    preset: str | None = None
    maps: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    dry_run: bool = False
    report_path: str | None = None
    actor: str = "cli"
    time_shift: timedelta | None = None  # the demo moves sample data to the present
    chunk_rows: int = CHUNK_ROWS


def read_chunks(path: Path, mapping: ColumnMapping, tz: ZoneInfo, now: datetime,
                rejections: list[Rejection], chunk_rows: int,
                time_shift: timedelta | None = None) -> Iterator[tuple[int, list[IncidentRow]]]:
    """(rows read, valid rows) per chunk; invalid rows go to `rejections`."""
    chunk: list[IncidentRow] = []
    read = 0
    for raw in iter_raw_rows(path, rejections):
        read += 1
        result = validate_row(raw, mapping, tz, now)
        if isinstance(result, Rejection):
            rejections.append(result)
        else:
            if time_shift:
                result.occurred_at = result.occurred_at and result.occurred_at + time_shift
                result.reported_at = result.reported_at and result.reported_at + time_shift
            chunk.append(result)
        if read % chunk_rows == 0:
            yield read, chunk
            chunk, read = [], 0
    yield read, chunk


def import_file(store, path: str | Path, options: ImportOptions, settings, *,
                now: datetime | None = None,
                progress: Callable[[int], None] | None = None) -> ImportReport:
    """Import one incident file in a single transaction and report what happened."""
    path = Path(path)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    header = read_header(path)
    mapping = resolve_mapping(header, preset=options.preset, maps=options.maps or None,
                              source=options.source)
    report = ImportReport(source=mapping.source,
                          preset=mapping.preset.name if mapping.preset else None,
                          dry_run=options.dry_run)
    counters = report.counters
    tz = settings.tz
    join_sets = store.beat_sets_for_join()
    indexes = {s: spatial.BeatIndex(store.beats(s)) for s in join_sets}
    active = store.active_beat_set_id()
    primary = active if active in indexes else (join_sets[0] if join_sets else None)
    seen: dict[str, str] = {}  # external_id -> row hash, for this run
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.stat().st_size < 2**30 else None

    with store.transaction(rollback=options.dry_run) as conn:
        run_id = store.start_import_run(conn, source=mapping.source, filename=path.name,
                                        file_sha256=digest, preset=report.preset,
                                        user_email=options.actor, now=now)
        report.run_id = None if options.dry_run else run_id
        processed = 0
        for read, rows in read_chunks(path, mapping, tz, now, report.rejections,
                                      options.chunk_rows, options.time_shift):
            _store_chunk(store, conn, rows, seen, counters, indexes, primary, settings,
                         run_id, now)
            processed += read
            if progress:
                progress(processed)
        # Every row read ends in exactly one of these; unreadable lines are rejections too.
        counters["rejected"] = len(report.rejections)
        counters["read"] = sum(counters[k] for k in
                               ("new", "updated", "unchanged", "duplicate", "rejected"))
        report.report_path = _write_report(report, header, settings, options, path, run_id, now)
        store.finish_import_run(conn, run_id, counters=counters, rejections=report.rejections,
                                report_path=report.report_path, now=now)
        if not options.dry_run:
            store.audit(options.actor, "incidents.import", f"import_run:{run_id}",
                        {"file": path.name, "source": mapping.source} | counters, now=now,
                        conn=conn)
    log.info("import %s (%s): %s", path.name, mapping.source, report.line())
    return report


def _store_chunk(store, conn, rows: list[IncidentRow], seen: dict[str, str],
                 counters: dict[str, int], indexes: dict, primary: int | None, settings,
                 run_id: int, now: datetime) -> None:
    # Within the run: identical repeats are duplicates; a changed repeat replaces the row.
    latest: dict[str, tuple[IncidentRow, str]] = {}
    for row in rows:
        h = row_hash(row)
        key = row.external_id
        if seen.get(key) == h or (key in latest and latest[key][1] == h):
            counters["duplicate"] += 1
            continue
        if key in latest:
            counters["updated"] += 1  # the earlier version of this key, superseded in-chunk
        latest[key] = (row, h)
    if not latest:
        return
    batch = [r for r, _ in latest.values()]
    hashes = {r.external_id: h for r, h in latest.values()}

    for r in batch:
        privacy.prepare_row(r, settings.suppressed_categories)
    located = [r for r in batch if r.located]
    counters["unlocated"] += len(batch) - len(located)
    if located:
        lon = np.fromiter((r.lon for r in located), dtype="float64", count=len(located))
        lat = np.fromiter((r.lat for r in located), dtype="float64", count=len(located))
        for set_id, index in indexes.items():
            codes = index.assign(lon, lat)
            for r, code in zip(located, codes, strict=True):
                r.beat_codes[set_id] = code
        if primary is None:
            counters["unassigned"] += len(located)
        else:
            counters["unassigned"] += sum(1 for r in located if r.beat_codes[primary] is None)

    existing = store.existing_incidents(conn, batch[0].source, list(latest))
    new = [r for r in batch if r.external_id not in existing]
    changed = [(existing[r.external_id][0], r) for r in batch
               if r.external_id in existing and existing[r.external_id][1] != hashes[r.external_id]]
    counters["new"] += len(new)
    counters["updated"] += len(changed)
    counters["unchanged"] += len(batch) - len(new) - len(changed)
    delay = settings.publication_delay
    store.insert_incidents(
        conn, new, hashes=[hashes[r.external_id] for r in new],
        uids=[entry_uid(r.source, r.external_id) for r in new],
        publish_at=[privacy.publish_at(r.event_time, delay) for r in new],
        run_id=run_id, now=now)
    store.update_incidents(
        conn, changed, hashes=[hashes[r.external_id] for _, r in changed],
        publish_at=[privacy.publish_at(r.event_time, delay) for _, r in changed],
        run_id=run_id, now=now)
    for key, h in hashes.items():
        seen[key] = h


def _write_report(report: ImportReport, header: list[str], settings, options: ImportOptions,
                  source_path: Path, run_id: int, now: datetime) -> str | None:
    """Write rejected rows (line, reason, then the row's own columns) to a CSV.

    It goes to --report or the instance folder, never beside the input; staff can fix the
    rows in it and import it again. Formulas are neutralised in every cell.
    """
    if not report.rejections:
        return None
    if options.report_path:
        out = Path(options.report_path)
    else:
        out = Path(settings.instance_path) / "reports" / (
            f"import-{now:%Y%m%dT%H%M%S}-{'dry-run' if options.dry_run else run_id}-"
            f"{source_path.stem}-rejected.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["line", "reason", *map(csv_safe, header)])
        for r in report.rejections:
            cells = next(csv.reader([r.raw]), []) if r.raw else []
            w.writerow([r.line, csv_safe(r.reason), *map(csv_safe, cells)])
    return str(out)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas in text we write to CSV (`=cmd|...` -> `'=cmd|...`).

    Plain numbers such as a longitude `-122.3` stay as they are.
    """
    if value and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


# ---- preview ------------------------------------------------------------------------------------
@dataclass
class PreviewRow:
    """How one row of a file will publish, before the file is imported."""

    line: int
    status: str  # publishes / delayed / suppressed / unlocated / unassigned / rejected
    reason: str = ""
    external_id: str = ""
    description: str = ""
    category: str = ""
    block_address: str = ""
    beat: str | None = None
    event_time: datetime | None = None  # UTC, naive
    publish_at: datetime | None = None  # UTC, naive


def preview_rows(store, path: str | Path, options: ImportOptions, settings, *,
                 now: datetime, limit: int = 20) -> tuple[ColumnMapping, list[PreviewRow]]:
    """The first `limit` rows of a file as they would publish; nothing is stored."""
    path = Path(path)
    mapping = resolve_mapping(read_header(path), preset=options.preset,
                              maps=options.maps or None, source=options.source)
    rejections: list[Rejection] = []
    out: list[PreviewRow] = []
    valid: list[IncidentRow] = []
    for raw in iter_raw_rows(path, rejections):
        for rej in rejections:
            out.append(PreviewRow(rej.line, "rejected", rej.reason))
        rejections.clear()
        result = validate_row(raw, mapping, settings.tz, now)
        if isinstance(result, Rejection):
            out.append(PreviewRow(result.line, "rejected", result.reason))
        else:
            if options.time_shift:
                result.occurred_at = result.occurred_at and result.occurred_at + options.time_shift
                result.reported_at = result.reported_at and result.reported_at + options.time_shift
            privacy.prepare_row(result, settings.suppressed_categories)
            valid.append(result)
            out.append(PreviewRow(result.line, ""))
        if len(out) >= limit:
            break
    for rej in rejections[:max(limit - len(out), 0)]:
        out.append(PreviewRow(rej.line, "rejected", rej.reason))
    active = store.active_beat_set_id()
    located = [r for r in valid if r.located]
    codes: dict[int, str | None] = {}
    if active is not None and located:
        index = spatial.BeatIndex(store.beats(active))
        assigned = index.assign(np.array([r.lon for r in located], dtype="float64"),
                                np.array([r.lat for r in located], dtype="float64"))
        codes = {r.line: c for r, c in zip(located, assigned, strict=True)}
    by_line = {r.line: r for r in valid}
    for p in out:
        row = by_line.get(p.line)
        if row is None or p.status:
            continue
        p.external_id, p.description = row.external_id, row.description
        p.category, p.block_address = row.category, row.block_address
        p.event_time = row.event_time
        p.publish_at = privacy.publish_at(row.event_time, settings.publication_delay)
        p.beat = codes.get(row.line)
        if not row.located:
            p.status, p.reason = "unlocated", "no location: stored, never published"
        elif row.suppressed_reason:
            p.status, p.reason = "suppressed", row.suppressed_reason
        elif p.beat is None:
            p.status, p.reason = "unassigned", "outside every beat"
        elif p.publish_at > now:
            p.status, p.reason = "delayed", "held back until the publication delay has passed"
        else:
            p.status = "publishes"
    out.sort(key=lambda p: p.line)
    return mapping, out[:limit]
