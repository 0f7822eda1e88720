"""Scheduled sources: a watched folder or an HTTP(S) URL (for example a Socrata CSV export),
polled on an interval by the scheduler. Each new file is one import run; the same content
(by sha256) is never imported twice from a source; every poll, failed ones included, is
recorded and shown on /records/imports.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from beatfeeds import __version__
from beatfeeds.core.errors import BeatfeedsError, InvalidInput, UploadTooLarge
from beatfeeds.core.files import private_dir, sha256_file
from beatfeeds.core.models import ImportSource, Upload
from beatfeeds.ingest.presets import PRESETS
from beatfeeds.services import records

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)

DONE, FAILED = "done", "failed"  # subfolders of a watched folder
FETCH_TIMEOUT = 60  # seconds without data before a download is abandoned
_CHUNK = 1024 * 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_SKIP_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial")


@dataclass
class PollResult:
    source: str
    status: str  # imported / unchanged / failed / empty
    filename: str | None = None
    upload: Upload | None = None
    error: str | None = None


# ---- managing sources ------------------------------------------------------------------------
def add_source(
    store: SQLStore,
    name: str,
    *,
    folder: str | None = None,
    url: str | None = None,
    preset: str | None = None,
    interval_minutes: int = 15,
    actor: str,
    now: datetime,
) -> ImportSource:
    """Register a watched folder or a URL to poll every `interval_minutes`."""
    name = (name or "").strip().lower()
    if not _NAME.match(name):
        raise InvalidInput(
            "A source name is letters, digits, dots or dashes, for example 'spd-911-daily'."
        )
    if bool(folder) == bool(url):
        raise InvalidInput("Give either --folder DIR or --url URL.")
    if interval_minutes < 1:
        raise InvalidInput("The interval is at least 1 minute.")
    if preset and preset not in PRESETS and store.uploads.saved_preset(preset) is None:
        names = [*PRESETS, *(p.name for p in store.uploads.saved_presets())]
        raise InvalidInput(f"Unknown preset {preset!r}; presets are {', '.join(names)}.")
    if folder:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise InvalidInput(f"{folder} is not a folder.")
        kind, location = "folder", str(path)
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput("The URL must start with http:// or https://.")
        kind, location = "url", url
    store.uploads.add_source(
        name=name,
        kind=kind,
        location=location,
        preset=preset,
        interval_minutes=interval_minutes,
        created_by=actor,
        now=now,
    )
    store.accounts.audit(
        actor,
        "sources.add",
        f"source:{name}",
        {
            "kind": kind,
            "location": location,
            "preset": preset,
            "interval_minutes": interval_minutes,
        },
        now=now,
    )
    return store.uploads.get_source(name)


def remove_source(store: SQLStore, name: str, *, actor: str, now: datetime) -> None:
    """Stop polling a source (its imported incidents stay)."""
    store.uploads.remove_source(name)
    store.accounts.audit(actor, "sources.remove", f"source:{name}", now=now)


def is_due(source: ImportSource, now: datetime) -> bool:
    return source.last_polled_at is None or now >= source.last_polled_at + timedelta(
        minutes=source.interval_minutes
    )


# ---- polling ---------------------------------------------------------------------------------
def poll_sources(
    store: SQLStore,
    settings: Settings,
    now: datetime,
    *,
    names: list[str] | None = None,
    force: bool = False,
) -> dict:
    """Poll every source that is due (or the named ones, or all with `force`)."""
    results: list[PollResult] = []
    for source in store.uploads.list_sources():
        if names is not None and source.name not in names:
            continue
        if force or names is not None or is_due(source, now):
            results.extend(poll_source(store, settings, source, now))
    summary = {
        s: sum(1 for r in results if r.status == s) for s in ("imported", "unchanged", "failed")
    }
    summary["polled"] = len({r.source for r in results})
    return summary


def poll_source(
    store: SQLStore, settings: Settings, source: ImportSource, now: datetime
) -> list[PollResult]:
    """Poll one source now; every outcome is recorded."""
    try:
        if source.kind == "folder":
            results = _poll_folder(store, settings, source, now)
        else:
            results = [_poll_url(store, settings, source, now)]
    except (OSError, BeatfeedsError) as exc:  # the folder vanished, a preset was deleted...
        error = (
            exc.message
            if isinstance(exc, BeatfeedsError)
            else f"{type(exc).__name__}: {exc.strerror or exc}"
        )
        store.uploads.record_poll(source.id, status="failed", now=now, error=error)
        results = [PollResult(source.name, "failed", error=error)]
    if not results:
        store.uploads.record_poll(source.id, status="unchanged", now=now)
    for r in results:
        if r.status == "failed":
            log.warning(
                "source %s: %s%s", source.name, f"{r.filename}: " if r.filename else "", r.error
            )
    return results


def _poll_folder(
    store: SQLStore, settings: Settings, source: ImportSource, now: datetime
) -> list[PollResult]:
    folder = Path(source.location)
    if not folder.is_dir():
        raise FileNotFoundError(2, f"the folder {folder} does not exist", str(folder))
    out = []
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and not p.name.lower().endswith(_SKIP_SUFFIXES)
    )
    for path in files:
        sha = sha256_file(path)
        if store.uploads.source_has_imported(source.id, sha):
            store.uploads.record_poll(
                source.id, status="unchanged", now=now, filename=path.name, file_sha256=sha
            )
            _move(path, folder / DONE)
            out.append(PollResult(source.name, "unchanged", path.name))
            continue
        with open(path, "rb") as fh:
            upload = records.store_upload(
                store,
                settings,
                fh,
                path.name,
                actor=f"source:{source.name}",
                now=now,
                import_source_id=source.id,
                **_preset_kw(store, source),
            )
        result = _import(store, settings, source, upload, now)
        _move(path, folder / (DONE if result.status == "imported" else FAILED))
        out.append(result)
    return out


def _poll_url(
    store: SQLStore, settings: Settings, source: ImportSource, now: datetime
) -> PollResult:
    headers = {
        "User-Agent": f"beatfeeds/{__version__} (+{settings.base_url})",
        "Accept": "text/csv, */*;q=0.5",
    }
    if source.etag:
        headers["If-None-Match"] = source.etag
    if source.last_modified:
        headers["If-Modified-Since"] = source.last_modified
    folder = private_dir(records.uploads_dir(settings))
    if urlsplit(source.location).scheme not in ("http", "https"):  # add_source checks it too
        raise InvalidInput(f"Source {source.name}: only http:// and https:// URLs are polled.")
    request = urllib.request.Request(source.location, headers=headers)
    try:
        # the scheme is http or https (checked above), never file: or ftp:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as resp:  # nosec B310
            etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
            tmp_path = _download(resp, folder, settings.source_max_mb, _host(source.location))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            store.uploads.record_poll(source.id, status="unchanged", now=now)
            return PollResult(source.name, "unchanged")
        error = f"HTTP {exc.code} {exc.reason} from {_host(source.location)}"
        store.uploads.record_poll(source.id, status="failed", now=now, error=error)
        return PollResult(source.name, "failed", error=error)
    except UploadTooLarge as exc:
        store.uploads.record_poll(source.id, status="failed", now=now, error=exc.message)
        return PollResult(source.name, "failed", error=exc.message)
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        error = f"cannot fetch from {_host(source.location)}: {reason}"
        store.uploads.record_poll(source.id, status="failed", now=now, error=error)
        return PollResult(source.name, "failed", error=error)
    try:
        sha = sha256_file(tmp_path)
        filename = f"{source.name}-{now:%Y%m%dT%H%M%S}.csv"
        if store.uploads.source_has_imported(source.id, sha):
            store.uploads.record_poll(
                source.id,
                status="unchanged",
                now=now,
                filename=filename,
                file_sha256=sha,
                etag=etag,
                last_modified=modified,
            )
            return PollResult(source.name, "unchanged", filename)
        with open(tmp_path, "rb") as fh:
            upload = records.store_upload(
                store,
                settings,
                fh,
                filename,
                actor=f"source:{source.name}",
                now=now,
                import_source_id=source.id,
                **_preset_kw(store, source),
            )
    finally:
        tmp_path.unlink(missing_ok=True)
    return _import(store, settings, source, upload, now, etag=etag, last_modified=modified)


def _download(resp, folder: Path, max_mb: int, host: str) -> Path:
    """Stream a response into a temporary file in `folder`, at most `max_mb` megabytes.

    A bigger announced Content-Length is refused before reading; a body that grows past the
    limit is abandoned (UploadTooLarge); a body shorter than announced is a ConnectionError.
    No partial file is left behind.
    """
    limit = max_mb * 1024 * 1024
    announced = (resp.headers.get("Content-Length") or "").strip()
    if announced.isdigit() and int(announced) > limit:
        raise UploadTooLarge(
            f"The file at {host} is {_mb(int(announced))} MB, more than the "
            f"{max_mb} MB a source may download (BEATFEEDS_SOURCE_MAX_MB); "
            "nothing was downloaded or imported."
        )
    tmp = tempfile.NamedTemporaryFile(dir=folder, prefix=".fetch-", delete=False)
    try:
        with tmp:
            size = 0
            while chunk := resp.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(
                        f"The file at {host} grew past the {max_mb} MB a "
                        "source may download (BEATFEEDS_SOURCE_MAX_MB); the "
                        "download was stopped and nothing was imported."
                    )
                tmp.write(chunk)
        # http.client does not notice a body cut short when it is read in chunks.
        if announced.isdigit() and size != int(announced):
            raise ConnectionError(
                f"the connection closed after {size:,} of the {int(announced):,} bytes announced"
            )
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise
    return Path(tmp.name)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.1f}".removesuffix(".0")


def _import(
    store: SQLStore,
    settings: Settings,
    source: ImportSource,
    upload: Upload,
    now: datetime,
    **validators,
) -> PollResult:
    """Import a source's stored file now, as one run, and record the poll's outcome."""
    if upload.status == "needs-mapping":
        error = (
            "No preset matches this file's columns; give the source a preset "
            "(beatfeeds sources add NAME ... --preset P)."
        )
        store.uploads.finish_upload(upload.id, status="failed", error=error, now=now)
        upload = store.uploads.get_upload(upload.id)
    elif upload.status == "queued":
        claimed = store.uploads.claim_upload(upload.id, now)
        if claimed is not None:
            upload = records.run_upload(store, settings, claimed, now=now)
    if upload.status == "done":
        store.uploads.record_poll(
            source.id,
            status="imported",
            now=now,
            filename=upload.filename,
            file_sha256=upload.file_sha256,
            upload_id=upload.id,
            **validators,
        )
        return PollResult(source.name, "imported", upload.filename, upload)
    error = upload.error or f"the import ended {upload.status}"
    # Validators are not kept: the next poll fetches the file again and retries.
    store.uploads.record_poll(
        source.id,
        status="failed",
        now=now,
        filename=upload.filename,
        file_sha256=upload.file_sha256,
        upload_id=upload.id,
        error=error,
    )
    return PollResult(source.name, "failed", upload.filename, upload, error)


def _preset_kw(store: SQLStore, source: ImportSource) -> dict:
    return {"preset": source.preset} if source.preset else {}


def _move(path: Path, folder: Path) -> None:
    """Move a handled file aside; if that is not allowed, its sha256 still prevents a
    second import."""
    try:
        private_dir(folder)
        target = folder / path.name
        if target.exists():
            target = folder / f"{path.stem}-{os.urandom(4).hex()}{path.suffix}"
        path.rename(target)
    except OSError as exc:
        log.warning("cannot move %s to %s: %s", path, folder, exc)


def _host(url: str) -> str:
    return urlsplit(url).netloc or url
