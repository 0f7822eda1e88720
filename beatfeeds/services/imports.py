"""Incident files -> validated, normalised rows and rejections, then stored in one transaction.

The flow of a run: read the CSV in chunks (`read_chunks`), validate each row into an
IncidentRow or a Rejection, apply the publication policy (`privacy`), join the chunk's points
to every beat map in one vectorised call (`spatial`), and hand the chunk to the store.
The whole run is one transaction: a crash leaves the database as it was.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import logging
import math
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from beatfeeds.core import identifiers
from beatfeeds.core.errors import Conflict, InvalidInput, UnusableFile
from beatfeeds.core.files import open_private
from beatfeeds.core.models import ImportReport, IncidentRow, Rejection
from beatfeeds.core.text import xml_text
from beatfeeds.geo import spatial
from beatfeeds.ingest import columnar, forked
from beatfeeds.ingest.presets import FIELDS, PRESETS, Preset, closest_preset, detect_preset
from beatfeeds.publish import pii, privacy

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
MAX_FIELD_BYTES = 1_000_000  # a longer field rejects its row, never the file
PARSE_APART_ROWS = 50_000  # from this size on, a child process parses while this one writes
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
        return cls(
            columns=dict(preset.columns),
            source=source or preset.source,
            preset=preset,
            classification_columns=preset.classification_columns,
            location_column=preset.location_column,
            key_fallback_columns=preset.key_fallback_columns,
            offset_is_local=preset.offset_is_local,
            strip_prefix=preset.strip_prefix,
        )

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
            raise InvalidInput(
                f"--map {m!r}: unknown field {fieldname!r}; fields are {', '.join(FIELDS)}"
            )
        out[fieldname] = column.strip()
    return out


def resolve_mapping(
    header: list[str],
    *,
    preset: str | None = None,
    maps: dict[str, str] | None = None,
    source: str | None = None,
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
            raise InvalidInput(
                "With --map, name the dataset with --source so that incidents "
                "from overlapping exports merge."
            )
        mapping = ColumnMapping(columns=dict(maps), source=source)
    else:
        found = detect_preset(header)
        if found is None:
            best, missing = closest_preset(header)
            raise UnusableFile(
                f"No preset matches this file's columns. The closest, {best.name}, needs "
                f"columns not found: {', '.join(missing)}. Map the columns with --map "
                f"FIELD=COLUMN (fields: {', '.join(FIELDS)})."
            )
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
        records = columnar.csv_rows(fh, delimiter, first_line=1)
        _, first = next(records)
        header = [h.strip().lstrip("\ufeff") for h in first]
        width = len(header)
        for start, cells in records:
            if isinstance(cells, Exception):
                rejections.append(Rejection(start, f"unreadable CSV: {cells}"))
                continue
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            if len(cells) != width:
                rejections.append(
                    Rejection(
                        start, f"has {len(cells)} fields, the header has {width}", _raw(cells)
                    )
                )
                continue
            if any(len(c) > MAX_FIELD_BYTES for c in cells):
                rejections.append(
                    Rejection(
                        start,
                        f"a field is longer than {MAX_FIELD_BYTES} characters",
                        _raw(cells)[:200],
                    )
                )
                continue
            yield RawRow(start, dict(zip(header, cells, strict=True)))


def _raw(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(cells)
    return buf.getvalue().rstrip("\r\n")[:2000]


# ---- field parsing ----------------------------------------------------------------------------
_ISO = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_US = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"\s*([AaPp][Mm])?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
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
        return Rejection(raw.line, reason, _raw(list(v.values())))

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
        m = _LOCATION.match(v.get(mapping.location_column, "").strip())
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
        sensitive=get("sensitive").lower() in _TRUE,
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


def row_hash(row: IncidentRow) -> str:
    """Fingerprint of everything a row says, to tell unchanged rows from corrections."""
    parts = [
        row.external_id,
        _iso(row.occurred_at),
        _iso(row.reported_at),
        row.category_text,
        row.description,
        row.address,
        repr(row.lat),
        repr(row.lon),
        row.source_beat or "",
        str(row.sensitive),
        *row.classification_texts,
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


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


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(2**20):
            h.update(block)
    return h.hexdigest()


def _estimate_rows(path: Path) -> int:
    """Rows in a file, from the line length of its first MiB (enough to choose a strategy)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(2**20)
    lines = head.count(b"\n") or head.count(b"\r")
    return int(size * lines / len(head)) if head and lines else 0


def _mapped_columns(mapping: ColumnMapping) -> list[str]:
    cols = [
        *mapping.columns.values(),
        *mapping.classification_columns,
        *mapping.key_fallback_columns,
    ]
    if mapping.location_column:
        cols.append(mapping.location_column)
    return cols


def import_file(
    store,
    path: str | Path,
    options: ImportOptions,
    settings,
    *,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import one incident file in a single transaction and report what happened.

    The file is streamed in chunks (`options.chunk_rows` rows): each is parsed and validated
    column-wise (`columnar`), joined to every beat map in one vectorised call, and written
    with one bulk insert, so memory stays bounded whatever the file's size.
    """
    path = Path(path)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    encoding, delimiter = sniff_text(path)
    header = read_header(path)
    mapping = resolve_mapping(
        header, preset=options.preset, maps=options.maps or None, source=options.source
    )
    report = ImportReport(
        source=mapping.source,
        preset=mapping.preset.name if mapping.preset else None,
        dry_run=options.dry_run,
    )
    counters = report.counters
    counters["swapped"] = 0
    counters["cleaned"] = 0  # rows whose text held characters no feed can carry (removed)
    tz = settings.tz
    join_sets = store.beat_sets_for_join()
    indexes = {s: spatial.BeatIndex(store.beats(s)) for s in join_sets}
    active = store.active_beat_set_id()
    primary = active if active in indexes else (join_sets[0] if join_sets else None)
    covers = indexes[primary].covers if primary is not None else None
    covers_one = (lambda x, y: bool(covers(np.array([x]), np.array([y]))[0])) if covers else None
    col_index = {name: i for i, name in enumerate(header)}  # a repeated name: the last wins
    needed = sorted({col_index[c] for c in _mapped_columns(mapping) if c in col_index})

    def per_row(line: int, cells: list[str]) -> IncidentRow | Rejection:
        return validate_row(
            RawRow(line, dict(zip(header, cells, strict=True))), mapping, tz, now, covers=covers_one
        )

    checks = columnar.Checks(
        mapping=mapping,
        col_index=col_index,
        tz=tz,
        now=now,
        validate_row=per_row,
        covers=covers,
        time_shift=options.time_shift,
    )
    ncls = len(mapping.classification_columns)

    with store.transaction(rollback=True) as conn:
        had_incidents = store.source_has_incidents(conn, mapping.source)
    planner = _Planner(
        store=store,
        source=mapping.source,
        settings=settings,
        indexes=indexes,
        primary=primary,
        ncls=ncls,
        now=now,
        had_incidents=had_incidents,
    )

    def chunks() -> Iterator[tuple]:
        """(planned chunk, records read, rejections) per chunk of the file: everything about
        a chunk that needs no database."""
        rejected: list[Rejection] = []
        for raw in columnar.iter_raw_frames(
            path,
            encoding=encoding,
            delimiter=delimiter,
            width=len(header),
            needed=needed,
            chunk_rows=options.chunk_rows,
            max_field=MAX_FIELD_BYTES,
            rejections=rejected,
        ):
            valid = columnar.validate_frame(raw, checks, rejected)
            yield _plan_chunk(planner, valid, _row_hashes(valid, ncls)), raw.records, rejected[:]
            rejected.clear()
        if rejected:
            yield None, 0, rejected[:]

    expected = _estimate_rows(path)
    uid_key = store.identifier_key()  # read (or made) before the run's write transaction
    # A big file is parsed in a child process while this one writes: two cores, not one.
    apart = forked.available() and expected >= PARSE_APART_ROWS
    with (
        forked.iterate(chunks) if apart else contextlib.nullcontext(chunks()) as parsed,
        store.transaction(rollback=options.dry_run, foreign_keys=False) as conn,
    ):
        run_id = store.start_import_run(
            conn,
            source=mapping.source,
            filename=path.name,
            file_sha256=_digest(path),
            preset=report.preset,
            user_email=options.actor,
            now=now,
        )
        report.run_id = None if options.dry_run else run_id
        run = _Run(
            store=store,
            conn=conn,
            source=mapping.source,
            counters=counters,
            settings=settings,
            run_id=run_id,
            now=now,
            ncls=ncls,
            had_incidents=had_incidents,
            writer=_Writer(),
            next_id=store.first_free_incident_id(conn),
            uid_key=uid_key,
        )
        if not had_incidents and store.source_has_incidents(conn, mapping.source):
            raise Conflict(
                f"Another import of {mapping.source} finished while this one "
                "started; nothing was imported. Import the file again."
            )
        if not store.beat_sets_exist(conn, indexes):  # rows will reference them unchecked
            raise Conflict(
                "A beat map was deleted while this import started; nothing was "
                "imported. Import the file again."
            )
        deferred = store.defer_incident_indexes(conn, expected)
        processed = 0
        try:
            for chunk, records, rejected in parsed:
                report.rejections.extend(rejected)
                _store_chunk(run, chunk)
                processed += records
                if progress:
                    progress(processed)
            run.writer.wait()
        finally:
            run.writer.shutdown()  # never leave a write running on the connection
        if deferred:
            store.rebuild_incident_indexes(conn)
        report.rejections.sort(key=lambda r: r.line)
        # Every row read ends in exactly one of these; unreadable lines are rejections too.
        counters["rejected"] = len(report.rejections)
        counters["read"] = sum(
            counters[k] for k in ("new", "updated", "unchanged", "duplicate", "rejected")
        )
        report.report_path = _write_report(report, header, settings, options, path, run_id, now)
        store.finish_import_run(
            conn,
            run_id,
            counters=counters,
            rejections=report.rejections,
            report_path=report.report_path,
            now=now,
        )
        if not options.dry_run:
            store.audit(
                options.actor,
                "incidents.import",
                f"import_run:{run_id}",
                {"file": path.name, "source": mapping.source} | counters,
                now=now,
                conn=conn,
            )
    if counters["swapped"]:
        log.warning(
            "import %s: latitude and longitude swapped in %d rows; read the right way round",
            path.name,
            counters["swapped"],
        )
    if counters["cleaned"]:
        log.warning(
            "import %s: control characters removed from the text of %d rows",
            path.name,
            counters["cleaned"],
        )
    log.info("import %s (%s): %s", path.name, mapping.source, report.line())
    return report


class _Writer:
    """The run's bulk inserts, on one background thread and one chunk behind: the database
    writes a chunk while the next one is parsed (the drivers release the GIL while they
    work). Only one thing uses the connection at a time: every other use waits first."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-writer")
        self._pending: Future | None = None

    def submit(self, fn: Callable, *args, **kwargs) -> None:
        self.wait()
        self._pending = self._pool.submit(fn, *args, **kwargs)

    def wait(self) -> None:
        """Wait for the write in progress; its error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class _Run:
    """What storing the chunks of one run shares."""

    store: object
    conn: object
    source: str
    counters: dict[str, int]
    settings: object
    run_id: int
    now: datetime
    ncls: int
    had_incidents: bool  # False: only keys seen earlier in this run can already be stored
    writer: _Writer
    next_id: int | None  # the next new incident's id, where the run numbers them itself
    uid_key: bytes  # the instance key new incidents' uids are derived under


class _Seen:
    """The keys this run stored, with 64 bits of their row hash, as a few sorted uint64
    arrays: 16 bytes a row and no Python objects, whatever the size of the file."""

    def __init__(self):
        self.keys: list[np.ndarray] = []
        self.hashes: list[np.ndarray] = []

    @staticmethod
    def key_hashes(keys: list[str]) -> np.ndarray:
        return pd.util.hash_array(np.asarray(keys, dtype=object), categorize=False)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(seen?, the row hash stored for it) for each key hash."""
        # Searched in sorted order: numpy then narrows each search from the previous one.
        order = np.argsort(keys)
        wanted = keys[order]
        found_sorted = np.zeros(len(keys), dtype=bool)
        hashes_sorted = np.zeros(len(keys), dtype=np.uint64)
        for ks, hs in zip(self.keys, self.hashes, strict=True):  # oldest first: newest wins
            pos = np.minimum(np.searchsorted(ks, wanted), len(ks) - 1)
            hit = ks[pos] == wanted
            found_sorted |= hit
            hashes_sorted[hit] = hs[pos[hit]]
        found = np.empty(len(keys), dtype=bool)
        hashes = np.empty(len(keys), dtype=np.uint64)
        found[order], hashes[order] = found_sorted, hashes_sorted
        return found, hashes

    def add(self, keys: np.ndarray, hashes: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys.append(keys[order])
        self.hashes.append(hashes[order])
        # Merge runs of similar size, so there are only O(log n) arrays to search.
        while len(self.keys) > 1 and len(self.keys[-1]) * 2 >= len(self.keys[-2]):
            ks = np.concatenate([self.keys.pop(-2), self.keys.pop()])
            hs = np.concatenate([self.hashes.pop(-2), self.hashes.pop()])
            order = np.argsort(ks, kind="stable")
            ks, hs = ks[order], hs[order]
            last = np.ones(len(ks), dtype=bool)  # of equal keys keep the newest
            last[:-1] = ks[1:] != ks[:-1]
            self.keys.append(ks[last])
            self.hashes.append(hs[last])


def _row_hashes(valid, ncls: int) -> list[bytes]:
    """SHA-256 of everything a row says (as `row_hash`), column-wise."""
    if not len(valid):
        return []

    def iso(values) -> list[str]:
        return [v or "" for v in columnar.format_datetimes(values.to_numpy(), unit="s")]

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
    sha = hashlib.sha256
    return [sha(b).digest() for b in map(str.encode, map("\x1f".join, zip(*parts, strict=True)))]


def _policy(batch, located: np.ndarray, ncls: int, source: str, suppressed) -> tuple:
    """(category, suppressed_reason, needs review?) arrays: privacy.prepare_row (and so the
    personal-data check) once per distinct wording."""
    arrays = [
        batch["category_text"].to_numpy(),
        batch["description"].to_numpy(),
        *(batch[f"cls{k}"].to_numpy() for k in range(ncls)),
        batch["sensitive"].to_numpy(),
        located,
    ]
    codes, first = _factorize_rows(arrays)
    cats, reasons, review = [], [], []
    for i in first:
        ct, desc, *cls, sens, loc = (a[i] for a in arrays)
        row = IncidentRow(
            line=0,
            source=source,
            external_id="",
            reported_at=None,
            occurred_at=None,
            category_text=ct,
            description=desc,
            address="",
            lat=0.0 if loc else None,
            lon=0.0 if loc else None,
            source_beat=None,
            sensitive=bool(sens),
            classification_texts=tuple(cls),
        )
        privacy.prepare_row(row, suppressed)
        cats.append(row.category)
        reasons.append(row.suppressed_reason)
        review.append(pii.is_review_reason(row.suppressed_reason))
    return (
        np.array(cats, dtype=object)[codes],
        np.array(reasons, dtype=object)[codes],
        np.array(review, dtype=bool)[codes],
    )


def _factorize_rows(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(code of each row's combination of values, first row of each combination)."""
    codes = np.zeros(len(arrays[0]), dtype=np.int64)
    for a in arrays:
        c, uniq = pd.factorize(a)
        codes, _ = pd.factorize(codes * max(len(uniq), 1) + c)
    _, first = np.unique(codes, return_index=True)
    return codes, first


@dataclass
class _Planner:
    """What the database-free half of storing chunks shares across a run (in the parsing
    child process for a big file): the in-run dedupe state, policy and beat maps."""

    store: object
    source: str
    settings: object
    indexes: dict
    primary: int | None
    ncls: int
    now: datetime
    had_incidents: bool  # False: only keys seen earlier in this run can be updated
    seen: _Seen = field(default_factory=lambda: _Seen())


@dataclass
class _Chunk:
    """A chunk's rows after in-run dedupe, with everything stored about them decided, and
    the columns of a new incident already converted for the driver."""

    counters: dict[str, int]  # duplicate, unlocated, unassigned, swapped
    batch: pd.DataFrame  # the rows that may be stored already (to update them)
    batch_rows: dict[int, int]  # position in keys -> row of batch
    keys: list[str]
    was_seen: np.ndarray  # per key: seen earlier in this run (maybe stored already)
    hashes: list[str]
    category: np.ndarray  # this and the next two: per row of batch
    suppressed_reason: np.ndarray
    block_address: np.ndarray
    beats: dict[int, np.ndarray]  # per key
    columns: dict[str, object]  # as store.bind_incident_columns returns them, run ids aside
    review: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per key


def _plan_chunk(p: _Planner, valid, digests: list[bytes]) -> _Chunk | None:
    """Dedupe within the run, classify, join and convert one chunk of valid rows (and their
    `_row_hashes`). Needs no database."""
    if not len(valid):
        return None
    counters = dict.fromkeys(("duplicate", "unlocated", "unassigned"), 0)
    counters["swapped"] = int(valid["swapped"].sum())
    keys = valid["external_id"].tolist()
    # Within the run: a key repeated in the file is one incident and the last version wins;
    # the repeats count as duplicates, so importing the same file again says `updated 0`.
    key_hashes = _Seen.key_hashes(keys)
    row_hashes = np.frombuffer(b"".join(digests), dtype=np.uint64).reshape(-1, 4)[:, 0]
    was_seen, seen_hash = p.seen.lookup(key_hashes)
    earlier = pd.Series(keys, dtype=object).duplicated(keep="last").to_numpy()
    pos = np.flatnonzero(~earlier)  # each key's last row
    stored = was_seen[pos] & (seen_hash[pos] == row_hashes[pos])  # as this run stored it
    counters["duplicate"] += int(earlier.sum()) + int(stored.sum())
    pos = pos[~stored]
    if not len(pos):
        return _Chunk(
            counters,
            valid.iloc[:0],
            {},
            [],
            np.zeros(0, dtype=bool),
            [],
            *(np.zeros(0, dtype=object),) * 3,
            {},
            {},
        )
    p.seen.add(key_hashes[pos], row_hashes[pos])
    batch = valid.iloc[pos].reset_index(drop=True)
    counters["cleaned"] = _drop_non_xml(batch)
    bkeys = [keys[i] for i in pos.tolist()]
    hashes = [digests[i].hex() for i in pos]
    lat, lon = batch["lat"].to_numpy(), batch["lon"].to_numpy()
    located = np.isfinite(lat) & np.isfinite(lon)
    counters["unlocated"] += int((~located).sum())
    category, suppressed_reason, review = _policy(
        batch, located, p.ncls, p.source, p.settings.suppressed_categories
    )
    codes_, uniq = pd.factorize(batch["address"].to_numpy())
    blocks = np.array([privacy.hundred_block(a) for a in uniq], dtype=object)
    block_address = blocks[codes_] if len(uniq) else np.full(len(batch), "", dtype=object)
    beats: dict[int, np.ndarray] = {}
    for set_id, index in p.indexes.items():
        codes = np.full(len(batch), None, dtype=object)
        if located.any():
            codes[located] = index.assign(lon[located], lat[located])
        beats[set_id] = codes
    if p.primary is None:
        counters["unassigned"] += int(located.sum())
    else:
        counters["unassigned"] += int((located & pd.isna(beats[p.primary])).sum())
    occurred = batch["occurred_at"].to_numpy()
    reported = batch["reported_at"].to_numpy()
    event_time = np.where(np.isnat(occurred), reported, occurred)
    source_beat = batch["source_beat"].to_numpy(dtype=object)
    # Not the uids: the writing process, the less busy one, adds them (_store_chunk).
    columns = p.store.bind_incident_columns(
        {
            "source": p.source,
            "external_id": bkeys,
            "reported_at": reported,
            "occurred_at": occurred,
            "event_time": event_time,
            "category": category,
            "category_text": batch["category_text"].to_numpy(),
            "description": batch["description"].to_numpy(),
            "address": batch["address"].to_numpy(),
            "block_address": block_address,
            "lat": lat,
            "lon": lon,
            "source_beat": np.where(source_beat == "", None, source_beat),
            "sensitive": batch["sensitive"].to_numpy(),
            "suppressed_reason": suppressed_reason,
            "row_hash": hashes,
            "created_at": p.now,
            "updated_at": p.now,
            # New incidents: first imported now. Updates take their stored first import time
            # (_store_chunk), so a re-import never restarts the delay.
            "publish_at": privacy.publish_at(
                p.settings.publication_delay, occurred, reported, p.now
            ),
        }
    )
    # Only rows that may already be stored travel with their values, to be updated.
    maybe = np.arange(len(batch)) if p.had_incidents else np.flatnonzero(was_seen[pos])
    # Keys and hashes are the bound columns themselves: they travel once, compactly.
    return _Chunk(
        counters,
        batch.iloc[maybe].reset_index(drop=True),
        dict(zip(maybe.tolist(), range(len(maybe)), strict=True)),
        columns["external_id"],
        was_seen[pos],
        columns["row_hash"],
        category[maybe],
        suppressed_reason[maybe],
        block_address[maybe],
        beats,
        columns,
        review,
    )


def _drop_non_xml(batch) -> int:
    """Remove from the text columns the characters no feed can carry (control characters;
    text.xml_text), once per distinct value; the number of rows that had any."""
    touched = np.zeros(len(batch), dtype=bool)
    for name in ("category_text", "description", "address"):
        codes, uniq = pd.factorize(batch[name].to_numpy())
        clean = np.array([xml_text(v) for v in uniq], dtype=object)
        differs = clean != np.asarray(uniq, dtype=object)
        if differs.any():
            batch[name] = clean[codes]
            touched |= differs[codes]
    return int(touched.sum())


def _take(columns: dict[str, object], rows: np.ndarray) -> dict[str, object]:
    """These rows of bound columns (values shared by every row stay as they are)."""
    return {
        k: v[rows]
        if isinstance(v, np.ndarray)
        else type(v)(v[i] for i in rows.tolist())
        if isinstance(v, list)
        else v
        for k, v in columns.items()
    }


def _store_chunk(run: _Run, chunk: _Chunk | None) -> None:
    """Write one planned chunk: look up which keys are stored, insert the new, update the
    changed."""
    if chunk is None:
        return
    counters = run.counters
    for k, v in chunk.counters.items():
        counters[k] += v
    bkeys, hashes = chunk.keys, chunk.hashes
    if not bkeys:
        return
    lookup = (
        bkeys
        if run.had_incidents
        else [k for k, seen in zip(bkeys, chunk.was_seen.tolist(), strict=True) if seen]
    )
    existing = {}
    if lookup:  # a first import of a dataset writes on while this chunk is prepared
        run.writer.wait()  # the previous chunk's rows must be visible to this lookup
        existing = run.store.existing_incidents(run.conn, run.source, lookup)
    is_new = np.array([k not in existing for k in bkeys], dtype=bool)
    changed = [i for i, k in enumerate(bkeys) if k in existing and existing[k][1] != hashes[i]]
    counters["new"] += int(is_new.sum())
    counters["updated"] += len(changed)
    counters["unchanged"] += len(bkeys) - int(is_new.sum()) - len(changed)

    new = np.flatnonzero(is_new)
    counters["needs_review"] += int(chunk.review[new].sum())
    if len(new):
        columns = chunk.columns if len(new) == len(bkeys) else _take(chunk.columns, new)
        columns = columns | {
            "first_run_id": run.run_id,
            "last_run_id": run.run_id,
            "uid": identifiers.entry_uids(run.source, columns["external_id"], run.uid_key),
        }
        new_beats = {s: codes[new] for s, codes in chunk.beats.items()}
        if run.next_id is None:  # the database numbers them, on the writer's turn
            run.writer.submit(run.store.insert_incident_columns, run.conn, columns, beats=new_beats)
        else:  # numbered here, while the writer still writes the previous chunk
            prepared = run.store.prepare_incident_columns(
                run.conn, columns, beats=new_beats, ids=range(run.next_id, run.next_id + len(new))
            )
            run.next_id += len(new)
            run.writer.submit(run.store.insert_prepared_incidents, run.conn, prepared)
    if changed:
        run.writer.wait()
        batch = chunk.batch
        at = chunk.batch_rows
        rows = [
            _incident_row(
                batch,
                at[i],
                run,
                chunk.category[at[i]],
                chunk.block_address[at[i]],
                chunk.suppressed_reason[at[i]],
                {s: c[i] for s, c in chunk.beats.items()},
            )
            for i in changed
        ]
        _apply_releases(run, [existing[bkeys[i]][0] for i in changed], rows)
        run.store.update_incidents(
            run.conn,
            [(existing[bkeys[i]][0], r) for i, r in zip(changed, rows, strict=True)],
            hashes=[hashes[i] for i in changed],
            publish_at=[
                privacy.keep_published(
                    privacy.publish_at(
                        run.settings.publication_delay,
                        r.occurred_at,
                        r.reported_at,
                        existing[bkeys[i]][2],
                    ),
                    existing[bkeys[i]][3],
                    run.now,
                )
                for i, r in zip(changed, rows, strict=True)
            ],
            run_id=run.run_id,
            now=run.now,
        )


def _apply_releases(run: _Run, ids: list[int], rows: list[IncidentRow]) -> None:
    """Keep the releases records staff gave: an updated row held back as `needs review`
    publishes if its texts are the ones released (pii.review_hold); counts the rest."""
    held = [
        (i, r) for i, r in zip(ids, rows, strict=True) if pii.is_review_reason(r.suppressed_reason)
    ]
    if not held:
        return
    released = run.store.released_digests(run.conn, [i for i, _ in held])
    for i, r in held:
        r.suppressed_reason = pii.review_hold(r.description, r.category_text, released.get(i))
        run.counters["needs_review"] += r.suppressed_reason is not None


def _incident_row(
    batch,
    i: int,
    run: _Run,
    category: str,
    block_address: str,
    suppressed_reason: str | None,
    beat_codes: dict,
) -> IncidentRow:
    r = batch.iloc[i]

    def dt(v):
        return None if pd.isna(v) else pd.Timestamp(v).to_pydatetime()

    return IncidentRow(
        line=int(r["line"]),
        source=run.source,
        external_id=r["external_id"],
        reported_at=dt(r["reported_at"]),
        occurred_at=dt(r["occurred_at"]),
        category_text=r["category_text"],
        description=r["description"],
        address=r["address"],
        lat=None if pd.isna(r["lat"]) else float(r["lat"]),
        lon=None if pd.isna(r["lon"]) else float(r["lon"]),
        source_beat=r["source_beat"] or None,
        sensitive=bool(r["sensitive"]),
        classification_texts=tuple(r[f"cls{k}"] for k in range(run.ncls)),
        category=category,
        block_address=block_address,
        suppressed_reason=suppressed_reason,
        beat_codes=beat_codes,
    )


def _write_report(
    report: ImportReport,
    header: list[str],
    settings,
    options: ImportOptions,
    source_path: Path,
    run_id: int,
    now: datetime,
) -> str | None:
    """Write rejected rows (line, reason, then the row's own columns) to a CSV.

    It goes to --report or the instance folder, never beside the input; staff can fix the
    rows in it and import it again. Formulas are neutralised in every cell.
    """
    if not report.rejections:
        return None
    if options.report_path:
        out = Path(options.report_path)
    else:
        out = (
            Path(settings.instance_path)
            / "reports"
            / (
                f"import-{now:%Y%m%dT%H%M%S}-{'dry-run' if options.dry_run else run_id}-"
                f"{source_path.stem}-rejected.csv"
            )
        )
    with open_private(out, "w", newline="", encoding="utf-8") as fh:
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
    status: str  # publishes / delayed / needs review / suppressed / unlocated / unassigned /
    #              rejected
    reason: str = ""
    external_id: str = ""
    description: str = ""
    category: str = ""
    block_address: str = ""
    beat: str | None = None
    event_time: datetime | None = None  # UTC, naive
    publish_at: datetime | None = None  # UTC, naive


def preview_rows(
    store, path: str | Path, options: ImportOptions, settings, *, now: datetime, limit: int = 20
) -> tuple[ColumnMapping, list[PreviewRow]]:
    """The first `limit` rows of a file as they would publish; nothing is stored."""
    path = Path(path)
    mapping = resolve_mapping(
        read_header(path), preset=options.preset, maps=options.maps or None, source=options.source
    )
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
    for rej in rejections[: max(limit - len(out), 0)]:
        out.append(PreviewRow(rej.line, "rejected", rej.reason))
    active = store.active_beat_set_id()
    located = [r for r in valid if r.located]
    codes: dict[int, str | None] = {}
    if active is not None and located:
        index = spatial.BeatIndex(store.beats(active))
        assigned = index.assign(
            np.array([r.lon for r in located], dtype="float64"),
            np.array([r.lat for r in located], dtype="float64"),
        )
        codes = {r.line: c for r, c in zip(located, assigned, strict=True)}
    by_line = {r.line: r for r in valid}
    for p in out:
        row = by_line.get(p.line)
        if row is None or p.status:
            continue
        p.external_id, p.description = row.external_id, row.description
        p.category, p.block_address = row.category, row.block_address
        p.event_time = row.event_time
        # as if imported now; an incident stored earlier keeps its own first import time
        p.publish_at = privacy.publish_at(
            settings.publication_delay, row.occurred_at, row.reported_at, now
        )
        p.beat = codes.get(row.line)
        if not row.located:
            p.status, p.reason = "unlocated", "no location: stored, never published"
        elif pii.is_review_reason(row.suppressed_reason):
            p.status = "needs review"
            p.reason = (
                row.suppressed_reason.partition(": ")[2] + "; held back until records "
                "staff release it (/records/review)"
            )
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
