"""The records workflow: files are stored and queued, previewed, imported by the scheduler,
their rejected rows downloaded; column mappings are saved as presets; entries held back as
`needs review` are released; entries are retracted.

No Flask and no SQL here: the web views and the CLI call these functions with a store.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from beatfeeds.core.errors import (
    BeatfeedsError,
    Conflict,
    InvalidInput,
    UnusableFile,
    UploadTooLarge,
)
from beatfeeds.core.files import BLOCK_BYTES, Tally, private_dir, write_private
from beatfeeds.core.models import Upload
from beatfeeds.ingest.mapping import resolve_mapping
from beatfeeds.ingest.presets import FIELDS, PRESETS, detect_preset
from beatfeeds.ingest.reading import read_header
from beatfeeds.ingest.report import write_rejected_rows
from beatfeeds.services import imports, presets

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=10)  # a running import silent this long has lost its worker
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def uploads_dir(settings: Settings) -> Path:
    return Path(settings.instance_path) / "uploads"


def safe_filename(name: str) -> str:
    """A file name safe to keep on disk: no directories, no odd characters."""
    base = _SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip("._")
    return base[:120] or "upload.csv"


# ---- storing and queueing ------------------------------------------------------------------------
def store_upload(
    store: SQLStore,
    settings: Settings,
    fh: BinaryIO,
    filename: str,
    *,
    actor: str,
    now: datetime,
    max_bytes: int | None = None,
    import_source_id: int | None = None,
    preset: str | None = None,
) -> Upload:
    """Copy a file into the instance folder and queue it (or ask for a column mapping).

    Over `max_bytes` raises UploadTooLarge and keeps nothing.
    """
    folder = private_dir(uploads_dir(settings))
    tally = Tally()
    tmp = tempfile.NamedTemporaryFile(dir=folder, prefix=".incoming-", delete=False)
    try:
        with tmp:
            while chunk := fh.read(BLOCK_BYTES):
                if max_bytes is not None and tally.size + len(chunk) > max_bytes:
                    raise UploadTooLarge(
                        f"The file is larger than {max_bytes // (1024 * 1024)} "
                        "MB, the most this site accepts."
                    )
                tally.update(chunk)
                tmp.write(chunk)
        sha, size, lines = tally.hexdigest(), tally.size, tally.lines
        final = folder / f"{sha[:16]}-{safe_filename(filename)}"
        os.replace(tmp.name, final)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise
    return queue_file(
        store,
        settings,
        final,
        filename,
        sha,
        size,
        max(lines - 1, 0) or 1,
        actor=actor,
        now=now,
        import_source_id=import_source_id,
        preset=preset,
    )


def queue_file(
    store: SQLStore,
    settings: Settings,
    path: Path,
    filename: str,
    sha: str,
    size: int,
    rows_estimate: int | None,
    *,
    actor: str,
    now: datetime,
    import_source_id: int | None = None,
    preset: str | None = None,
) -> Upload:
    """Record a stored file in the queue with the mapping we can find for it."""
    status, error, maps, source = "queued", None, None, None
    try:
        header = read_header(path)
        if preset:
            preset, maps, source = _named_preset(store, preset)
        else:
            preset, maps, source = detect_mapping(store, header)
            if preset is None and maps is None:
                status = "needs-mapping"
    except UnusableFile as exc:
        status, error = "failed", exc.message
    upload_id = store.uploads.create_upload(
        filename=filename[:500],
        stored_path=str(path),
        file_sha256=sha,
        size_bytes=size,
        rows_estimate=rows_estimate,
        status=status,
        preset=preset,
        mapping=maps,
        source=source,
        uploaded_by=actor,
        now=now,
        import_source_id=import_source_id,
        error=error,
    )
    store.accounts.audit(
        actor,
        "incidents.upload",
        f"upload:{upload_id}",
        {"file": filename, "sha256": sha, "bytes": size, "status": status},
        now=now,
    )
    return store.uploads.get_upload(upload_id)


def detect_mapping(
    store: SQLStore, header: list[str]
) -> tuple[str | None, dict | None, str | None]:
    """(preset, columns, source) for a header: a built-in preset, then a saved one."""
    found = detect_preset(header)
    if found is not None:
        return found.name, None, None
    cols = set(header)
    matches = [p for p in store.uploads.saved_presets() if set(p.columns.values()) <= cols]
    if matches:
        best = max(matches, key=lambda p: len(p.columns))
        return best.name, dict(best.columns), best.source
    return None, None, None


def _named_preset(store: SQLStore, name: str) -> tuple[str, dict | None, str | None]:
    if name in PRESETS:
        return name, None, None
    saved = store.uploads.saved_preset(name)
    if saved is None:
        names = [*PRESETS, *(p.name for p in store.uploads.saved_presets())]
        raise InvalidInput(f"Unknown preset {name!r}; presets are {', '.join(names)}.")
    return name, dict(saved.columns), saved.source


def resolve_options(store: SQLStore, options: imports.ImportOptions) -> imports.ImportOptions:
    """Turn a saved preset's name into its columns and source (built-in presets pass)."""
    if not options.preset or options.preset in PRESETS:
        return options
    name, maps, source = _named_preset(store, options.preset)
    options.preset = None
    options.maps = maps or {}
    options.source = options.source or source
    return options


def options_for_file(
    store: SQLStore, path: Path, options: imports.ImportOptions
) -> tuple[imports.ImportOptions, str | None]:
    """The options a file imports with, and the preset detected for it (None when the
    options named a preset or columns): a saved preset's name becomes its columns, and a
    file with neither is detected by `detect_mapping`, as a web upload is, so the CLI and
    the web find the same built-in or saved layout."""
    if options.preset or options.maps:
        return resolve_options(store, options), None
    preset, maps, source = detect_mapping(store, read_header(Path(path)))
    if maps is not None:  # a saved preset: its columns and dataset
        options.maps = maps
        options.source = options.source or source
    elif preset is not None:
        options.preset = preset
    return options, preset  # nothing found: the import names the closest preset


def upload_options(upload: Upload) -> imports.ImportOptions:
    """The import options an upload runs with."""
    if upload.mapping:
        return imports.ImportOptions(
            maps=dict(upload.mapping), source=upload.source, actor=upload.uploaded_by
        )
    return imports.ImportOptions(
        preset=upload.preset, source=upload.source, actor=upload.uploaded_by
    )


def upload_header(upload: Upload) -> list[str]:
    if upload.file_removed:
        return []
    try:
        return read_header(Path(upload.stored_path))
    except (OSError, UnusableFile):
        return []


def set_mapping(
    store: SQLStore,
    upload_id: int,
    columns: dict[str, str],
    *,
    source: str,
    save_as: str | None,
    actor: str,
    now: datetime,
) -> Upload:
    """Give an upload a hand-made column mapping (checked against its file) and queue it;
    optionally save the mapping as a named preset for later files."""
    upload = store.uploads.get_upload(upload_id)
    columns = {f: c for f, c in columns.items() if f in FIELDS and c}
    source = (source or "").strip().lower()
    if not presets.SOURCE_NAME.fullmatch(source):
        raise InvalidInput(
            "Name the dataset (letters, digits, dashes), for example "
            "'county-sheriff-cad': incidents from later files of the same "
            "dataset merge by it."
        )
    header = upload_header(upload)
    resolve_mapping(header, maps=columns, source=source)
    # The preset, the upload's mapping and their audit entries: all of them or none.
    with store.db.unit_of_work():
        name = None
        if save_as:
            name = presets.check_preset(save_as, source, columns, header)[0]
            # (what save_preset returns is read outside this unit of work: not used here)
            presets.save_preset(store, name, source, columns, actor=actor, now=now, header=header)
        store.uploads.set_upload_mapping(upload_id, preset=name, mapping=columns, source=source)
        store.accounts.audit(
            actor, "incidents.map", f"upload:{upload_id}", {"columns": columns}, now=now
        )
    return store.uploads.get_upload(upload_id)


# ---- preview, progress -------------------------------------------------------------------
def preview_upload(
    store: SQLStore, settings: Settings, upload: Upload, *, now: datetime, limit: int = 20
) -> list[imports.PreviewRow]:
    """The first rows of a queued upload as they will publish."""
    _, rows = imports.preview_rows(
        store, upload.stored_path, upload_options(upload), settings, now=now, limit=limit
    )
    return rows


@dataclass
class Progress:
    rows: int
    estimate: int | None
    at: datetime | None

    @property
    def percent(self) -> int | None:
        if not self.estimate:
            return None
        return min(99, round(100 * self.rows / self.estimate))


def _progress_path(settings: Settings, upload_id: int) -> Path:
    return uploads_dir(settings) / f".progress-{upload_id}.json"


def read_progress(settings: Settings, upload: Upload) -> Progress:
    """Rows processed so far by a running import (written by the worker to a small file,
    because the import's own transaction holds the database until it commits)."""
    try:
        data = json.loads(_progress_path(settings, upload.id).read_text())
        return Progress(int(data["rows"]), upload.rows_estimate, datetime.fromisoformat(data["at"]))
    except (OSError, ValueError, KeyError):
        return Progress(0, upload.rows_estimate, None)


def _wall_clock() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _progress_writer(settings: Settings, upload_id: int, clock: Callable[[], datetime]):
    path = _progress_path(settings, upload_id)

    def write(rows: int) -> None:
        tmp = path.with_suffix(".tmp")
        write_private(tmp, json.dumps({"rows": rows, "at": clock().isoformat()}))
        os.replace(tmp, path)

    return write


# ---- the worker --------------------------------------------------------------------------
def run_upload(
    store: SQLStore,
    settings: Settings,
    upload: Upload,
    *,
    now: datetime,
    clock: Callable[[], datetime] | None = None,
) -> Upload:
    """Import one claimed upload; the upload ends `done` or `failed` with its run."""
    # The heartbeat uses the wall clock, not the job's `now`: other workers judge by it
    # whether this import is still alive.
    clock = clock or _wall_clock
    write = _progress_writer(settings, upload.id, clock)
    write(0)
    try:
        report = imports.import_file(
            store, upload.stored_path, upload_options(upload), settings, now=now, progress=write
        )
    except BeatfeedsError as exc:
        store.uploads.finish_upload(upload.id, status="failed", error=exc.message, now=clock())
        log.info("import of upload %d (%s) failed: %s", upload.id, upload.filename, exc.message)
    except OSError as exc:
        store.uploads.finish_upload(
            upload.id,
            status="failed",
            error=f"cannot read the stored file: {exc.strerror or exc}",
            now=clock(),
        )
    else:
        store.uploads.finish_upload(
            upload.id,
            status="done",
            run_id=report.run_id,
            now=clock(),
            source=report.source,
            preset=upload.preset or report.preset,
        )
    finally:
        _progress_path(settings, upload.id).unlink(missing_ok=True)
    return store.uploads.get_upload(upload.id)


def process_queue(
    store: SQLStore,
    settings: Settings,
    now: datetime,
    *,
    limit: int = 20,
    clock: Callable[[], datetime] | None = None,
) -> dict:
    """Import queued uploads, oldest first; requeue those whose worker died."""
    requeued = 0
    for upload in store.uploads.list_uploads(1000, status="running"):
        p = read_progress(settings, upload)
        last = p.at or upload.started_at
        if last is None or now - last > STALE_AFTER:
            store.uploads.requeue_upload(upload.id)
            requeued += 1
    done = failed = 0
    for _ in range(limit):
        upload = store.uploads.claim_next_upload(now)
        if upload is None:
            break
        result = run_upload(store, settings, upload, now=now, clock=clock)
        if result.status == "done":
            done += 1
        else:
            failed += 1
    return {"imported": done, "failed": failed, "requeued": requeued}


# ---- retention -----------------------------------------------------------------------------
def prune_upload_files(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Delete the stored files of uploads that finished (or failed, or were cancelled) more
    than `upload_retention_days` ago; their history rows stay, marked `file removed`.

    Waiting and running uploads are never touched, nor a file that a newer upload of the same
    content still uses. 0 days keeps every file. Partial copies a killed process left behind
    are removed after a day (counted in `files`).
    """
    days = settings.upload_retention_days
    if days <= 0:
        return {"uploads": 0, "files": 0, "bytes": 0}
    cutoff = now - timedelta(days=days)
    uploads = files = freed = 0
    while batch := store.uploads.uploads_past_retention(cutoff, 500):
        ids = [u.id for u in batch]
        # Files first: a crash before the rows are marked only means the next run retries.
        for path in sorted({u.stored_path for u in batch}):
            if store.uploads.uploads_keeping_file(path, ids):
                continue
            p = Path(path)
            try:
                size = p.stat().st_size
                p.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot remove the stored upload %s: %s", p, exc)
                continue
            files += 1
            freed += size
        uploads += store.uploads.mark_upload_files_removed(ids)
    files += _remove_abandoned_temporaries(settings, now)
    if uploads:
        store.accounts.audit(
            "scheduler",
            "incidents.remove-files",
            None,
            {"uploads": uploads, "files": files, "bytes": freed, "retention_days": days},
            now=now,
        )
    return {"uploads": uploads, "files": files, "bytes": freed}


def _remove_abandoned_temporaries(settings: Settings, now: datetime) -> int:
    """Partial copies and downloads a killed process left behind (over a day old)."""
    folder = uploads_dir(settings)
    if not folder.is_dir():
        return 0
    cutoff = (now - timedelta(days=1)).replace(tzinfo=UTC).timestamp()
    removed = 0
    for p in folder.iterdir():
        if p.name.startswith((".incoming-", ".fetch-")) and p.is_file():
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
            except OSError as exc:
                log.warning("cannot remove the abandoned file %s: %s", p, exc)
    return removed


# ---- rejected rows -----------------------------------------------------------------------
def rejected_rows_csv(store: SQLStore, run_id: int) -> tuple[str, str]:
    """(file name, CSV text) of a run's rejected rows: line, reason, then the row's own
    columns when the uploaded file is still at hand (else the row as one field).
    Formulas are neutralised in every cell."""
    run = store.records.get_import_run(run_id)
    rejections = store.records.run_rejections(run_id)
    upload = store.uploads.upload_for_run(run_id)
    header = upload_header(upload) if upload else []
    buf = io.StringIO()
    write_rejected_rows(buf, header or None, rejections)
    stem = Path(safe_filename(run.filename)).stem
    return f"import-{run_id}-{stem}-rejected.csv", buf.getvalue()


def cancel_upload(store: SQLStore, upload_id: int, *, actor: str, now: datetime) -> Upload:
    """Withdraw a file that is waiting (queued or awaiting a mapping); nothing is imported."""
    if not store.uploads.cancel_upload(upload_id, error=f"cancelled by {actor}", now=now):
        raise Conflict("This import has already started or finished; it cannot be cancelled.")
    store.accounts.audit(actor, "incidents.cancel", f"upload:{upload_id}", now=now)
    return store.uploads.get_upload(upload_id)
