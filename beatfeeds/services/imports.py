"""Incident files -> validated, normalised rows and rejections, then stored in one transaction.

The flow of a run: read the CSV in chunks (`ingest.reading`), validate each chunk column-wise
into rows and rejections (`ingest.columnar`, with `ingest.rows` for the rows it cannot
settle), apply the publication policy (`privacy`), join the chunk's points to every beat map
in one vectorised call (`spatial`), and hand the chunk to the store (`import_chunks`).
The whole run is one transaction: a crash leaves the database as it was.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from beatfeeds.core import models
from beatfeeds.core.errors import Conflict
from beatfeeds.core.files import estimate_rows, open_private, sha256_file
from beatfeeds.core.models import ImportReport, IncidentRow, Rejection
from beatfeeds.geo import spatial
from beatfeeds.ingest import columnar, forked
from beatfeeds.ingest.mapping import ColumnMapping, mapped_columns, resolve_mapping
from beatfeeds.ingest.reading import (
    MAX_FIELD_BYTES,
    RawRow,
    iter_raw_frames,
    iter_raw_rows,
    read_header,
    sniff_text,
)
from beatfeeds.ingest.report import write_rejected_rows
from beatfeeds.ingest.rows import validate_row
from beatfeeds.publish import privacy
from beatfeeds.services.import_chunks import Planner, Run, Writer, plan_chunk, store_chunk

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
PARSE_APART_ROWS = 50_000  # from this size on, a child process parses while this one writes


# ---- a run ------------------------------------------------------------------------------------
@dataclass
class ImportOptions:
    """How to import one file: its mapping, a dry run or not, where the report goes."""

    preset: str | None = None
    maps: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    dry_run: bool = False
    report_path: str | None = None
    actor: str = "cli"
    time_shift: timedelta | None = None  # the demo moves sample data to the present
    chunk_rows: int = CHUNK_ROWS


def import_file(
    store: SQLStore,
    path: str | Path,
    options: ImportOptions,
    settings: Settings,
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
    join_sets = store.beatmaps.beat_sets_for_join()
    indexes = {s: spatial.BeatIndex(store.beatmaps.beats(s)) for s in join_sets}
    active = store.beatmaps.active_beat_set_id()
    primary = active if active in indexes else (join_sets[0] if join_sets else None)
    covers = indexes[primary].covers if primary is not None else None
    covers_one = (lambda x, y: bool(covers(np.array([x]), np.array([y]))[0])) if covers else None
    col_index = {name: i for i, name in enumerate(header)}  # a repeated name: the last wins
    needed = sorted({col_index[c] for c in mapped_columns(mapping) if c in col_index})

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

    with store.db.transaction(rollback=True) as conn:
        had_incidents = store.incidents.source_has_incidents(conn, mapping.source)
    planner = Planner(
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
        for raw in iter_raw_frames(
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
            yield (
                plan_chunk(planner, valid, columnar.row_hashes(valid, ncls)),
                raw.records,
                rejected[:],
            )
            rejected.clear()
        if rejected:
            yield None, 0, rejected[:]

    expected = estimate_rows(path)
    uid_key = store.db.identifier_key()  # read (or made) before the run's write transaction
    # A big file is parsed in a child process while this one writes: two cores, not one.
    apart = forked.available() and expected >= PARSE_APART_ROWS
    with (
        forked.iterate(chunks) if apart else contextlib.nullcontext(chunks()) as parsed,
        store.db.transaction(rollback=options.dry_run, foreign_keys=False) as conn,
    ):
        run_id = store.records.start_import_run(
            conn,
            source=mapping.source,
            filename=path.name,
            file_sha256=sha256_file(path),
            preset=report.preset,
            user_email=options.actor,
            now=now,
        )
        report.run_id = None if options.dry_run else run_id
        run = Run(
            store=store,
            conn=conn,
            source=mapping.source,
            counters=counters,
            settings=settings,
            run_id=run_id,
            now=now,
            ncls=ncls,
            had_incidents=had_incidents,
            writer=Writer(),
            next_id=store.incidents.first_free_incident_id(conn),
            uid_key=uid_key,
        )
        if not had_incidents and store.incidents.source_has_incidents(conn, mapping.source):
            raise Conflict(
                f"Another import of {mapping.source} finished while this one "
                "started; nothing was imported. Import the file again."
            )
        if not store.beatmaps.beat_sets_exist(conn, indexes):  # rows will reference them unchecked
            raise Conflict(
                "A beat map was deleted while this import started; nothing was "
                "imported. Import the file again."
            )
        deferred = store.incidents.defer_incident_indexes(conn, expected)
        processed = 0
        try:
            for chunk, records, rejected in parsed:
                report.rejections.extend(rejected)
                store_chunk(run, chunk)
                processed += records
                if progress:
                    progress(processed)
            run.writer.wait()
        finally:
            run.writer.shutdown()  # never leave a write running on the connection
        if deferred:
            store.incidents.rebuild_incident_indexes(conn)
        report.rejections.sort(key=lambda r: r.line)
        # Every row read ends in exactly one of these; unreadable lines are rejections too.
        counters["rejected"] = len(report.rejections)
        counters["read"] = sum(
            counters[k] for k in ("new", "updated", "unchanged", "duplicate", "rejected")
        )
        report.report_path = _write_report(report, header, settings, options, path, run_id, now)
        store.records.finish_import_run(
            conn,
            run_id,
            counters=counters,
            rejections=report.rejections,
            report_path=report.report_path,
            now=now,
        )
        if not options.dry_run:
            store.accounts.audit(
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


def _write_report(
    report: ImportReport,
    header: list[str],
    settings: Settings,
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
        write_rejected_rows(fh, header, report.rejections)
    return str(out)


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
    store: SQLStore,
    path: str | Path,
    options: ImportOptions,
    settings: Settings,
    *,
    now: datetime,
    limit: int = 20,
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
            privacy.prepare_row(
                result,
                settings.suppressed_categories,
                hold_unclassified=settings.hold_unclassified,
            )
            valid.append(result)
            out.append(PreviewRow(result.line, ""))
        if len(out) >= limit:
            break
    for rej in rejections[: max(limit - len(out), 0)]:
        out.append(PreviewRow(rej.line, "rejected", rej.reason))
    active = store.beatmaps.active_beat_set_id()
    located = [r for r in valid if r.located]
    codes: dict[int, str | None] = {}
    if active is not None and located:
        index = spatial.BeatIndex(store.beatmaps.beats(active))
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
        elif models.is_review_reason(row.suppressed_reason):
            p.status = "needs review"
            p.reason = (
                row.suppressed_reason.partition(": ")[2] + "; held back until records "
                "staff release it (/records/review)"
            )
        elif row.suppressed_reason == models.UNCLASSIFIED:
            p.status = "suppressed"
            p.reason = "unclassified: no category rule classifies it; stored, never published"
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
