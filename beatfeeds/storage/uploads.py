"""The upload queue, saved presets and scheduled sources with their polls."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import (
    delete,
    func,
    insert,
    select,
    update,
)

from beatfeeds.core.errors import Conflict, NotFound
from beatfeeds.core.models import (
    ImportSource,
    SavedPreset,
    SourcePoll,
    Upload,
)
from beatfeeds.storage import schema as t
from beatfeeds.storage.engine import Repository


def _upload(r) -> Upload:
    return Upload(
        id=r.id,
        filename=r.filename,
        stored_path=r.stored_path,
        file_sha256=r.file_sha256,
        size_bytes=r.size_bytes,
        status=r.status,
        uploaded_by=r.uploaded_by,
        uploaded_at=r.uploaded_at,
        rows_estimate=r.rows_estimate,
        preset=r.preset,
        mapping=json.loads(r.mapping) if r.mapping else None,
        source=r.source,
        started_at=r.started_at,
        finished_at=r.finished_at,
        run_id=r.run_id,
        import_source_id=r.import_source_id,
        error=r.error,
    )


def _source(r) -> ImportSource:
    return ImportSource(
        id=r.id,
        name=r.name,
        kind=r.kind,
        location=r.location,
        preset=r.preset,
        interval_minutes=r.interval_minutes,
        created_at=r.created_at,
        created_by=r.created_by,
        last_polled_at=r.last_polled_at,
        last_status=r.last_status,
        last_error=r.last_error,
        etag=r.etag,
        last_modified=r.last_modified,
    )


class UploadRepository(Repository):
    """The import_uploads, import_presets, import_sources and source_polls tables."""

    def create_upload(
        self,
        *,
        filename: str,
        stored_path: str,
        file_sha256: str,
        size_bytes: int,
        rows_estimate: int | None,
        status: str,
        preset: str | None,
        mapping: dict[str, str] | None,
        source: str | None,
        uploaded_by: str,
        now: datetime,
        import_source_id: int | None = None,
        error: str | None = None,
    ) -> int:
        with self.db.begin() as conn:
            return conn.execute(
                insert(t.import_uploads)
                .values(
                    filename=filename,
                    stored_path=stored_path,
                    file_sha256=file_sha256,
                    size_bytes=size_bytes,
                    rows_estimate=rows_estimate,
                    status=status,
                    preset=preset,
                    mapping=json.dumps(mapping) if mapping else None,
                    source=source,
                    uploaded_by=uploaded_by,
                    uploaded_at=now,
                    import_source_id=import_source_id,
                    error=error,
                    finished_at=now if status == "failed" else None,
                )
                .returning(t.import_uploads.c.id)
            ).scalar_one()

    def get_upload(self, upload_id: int) -> Upload:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.import_uploads).where(t.import_uploads.c.id == upload_id)
            ).first()
        if row is None:
            raise NotFound(f"No upload {upload_id}.")
        return _upload(row)

    def list_uploads(self, limit: int = 100, *, status: str | None = None) -> list[Upload]:
        q = select(t.import_uploads).order_by(t.import_uploads.c.id.desc()).limit(limit)
        if status is not None:
            q = q.where(t.import_uploads.c.status == status)
        with self.engine.connect() as conn:
            return [_upload(r) for r in conn.execute(q)]

    def uploads_with_sha256(self, sha256: str) -> list[Upload]:
        with self.engine.connect() as conn:
            return [
                _upload(r)
                for r in conn.execute(
                    select(t.import_uploads)
                    .where(t.import_uploads.c.file_sha256 == sha256)
                    .order_by(t.import_uploads.c.id)
                )
            ]

    def upload_for_run(self, run_id: int) -> Upload | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.import_uploads).where(t.import_uploads.c.run_id == run_id)
            ).first()
        return _upload(row) if row else None

    def set_upload_mapping(
        self,
        upload_id: int,
        *,
        preset: str | None,
        mapping: dict[str, str] | None,
        source: str | None,
    ) -> None:
        """Give a waiting upload its mapping and queue it."""
        c = t.import_uploads.c
        with self.db.begin() as conn:
            n = conn.execute(
                update(t.import_uploads)
                .where(c.id == upload_id)
                .where(c.status.in_(("needs-mapping", "queued")))
                .values(
                    preset=preset,
                    source=source,
                    status="queued",
                    mapping=json.dumps(mapping) if mapping else None,
                )
            ).rowcount
        if n == 0:
            raise Conflict(
                "This import has already started; upload the file again to change its mapping."
            )

    def claim_next_upload(self, now: datetime) -> Upload | None:
        """Mark the oldest queued upload running and return it; None when the queue is empty.

        The conditional UPDATE makes the claim safe when two workers poll at once.
        """
        c = t.import_uploads.c
        while True:
            with self.db.begin() as conn:
                upload_id = conn.execute(
                    select(c.id).where(c.status == "queued").order_by(c.id).limit(1)
                ).scalar()
                if upload_id is None:
                    return None
                claimed = conn.execute(
                    update(t.import_uploads)
                    .where(c.id == upload_id)
                    .where(c.status == "queued")
                    .values(status="running", started_at=now, error=None)
                ).rowcount
            if claimed:
                return self.get_upload(upload_id)

    def finish_upload(
        self,
        upload_id: int,
        *,
        status: str,
        now: datetime,
        run_id: int | None = None,
        error: str | None = None,
        source: str | None = None,
        preset: str | None = None,
    ) -> None:
        values = {"status": status, "finished_at": now, "run_id": run_id, "error": error}
        if source:
            values["source"] = source
        if preset:
            values["preset"] = preset
        with self.db.begin() as conn:
            conn.execute(
                update(t.import_uploads).where(t.import_uploads.c.id == upload_id).values(**values)
            )

    def requeue_upload(self, upload_id: int) -> None:
        """Put an upload whose worker died back in the queue (its run was rolled back)."""
        c = t.import_uploads.c
        with self.db.begin() as conn:
            conn.execute(
                update(t.import_uploads)
                .where(c.id == upload_id)
                .where(c.status == "running")
                .values(status="queued", started_at=None)
            )

    def uploads_past_retention(self, before: datetime, limit: int = 1000) -> list[Upload]:
        """Finished or failed uploads (cancelled ones are failed) that ended before `before`
        and still have their file; never a waiting or running one."""
        c = t.import_uploads.c
        with self.engine.connect() as conn:
            return [
                _upload(r)
                for r in conn.execute(
                    select(t.import_uploads)
                    .where(c.status.in_(("done", "failed")))
                    .where(c.stored_path != "")
                    .where(func.coalesce(c.finished_at, c.uploaded_at) < before)
                    .order_by(c.id)
                    .limit(limit)
                )
            ]

    def uploads_keeping_file(self, stored_path: str, excluding: list[int]) -> int:
        """How many other uploads still rely on this stored file (same content and name)."""
        c = t.import_uploads.c
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count())
                .select_from(t.import_uploads)
                .where(c.stored_path == stored_path)
                .where(c.id.not_in(excluding))
            ).scalar_one()

    def mark_upload_files_removed(self, upload_ids: list[int]) -> int:
        """Forget the stored file of finished uploads (their history rows stay)."""
        c = t.import_uploads.c
        with self.db.begin() as conn:
            return conn.execute(
                update(t.import_uploads)
                .where(c.id.in_(upload_ids))
                .where(c.status.in_(("done", "failed")))
                .values(stored_path="")
            ).rowcount

    def save_preset(
        self,
        name: str,
        source: str,
        columns: dict[str, str],
        *,
        created_by: str | None,
        now: datetime,
    ) -> None:
        with self.db.begin() as conn:
            if conn.execute(
                select(t.import_presets.c.id).where(t.import_presets.c.name == name)
            ).first():
                raise Conflict(f"A saved preset named {name!r} already exists.")
            conn.execute(
                insert(t.import_presets).values(
                    name=name,
                    source=source,
                    columns=json.dumps(columns, sort_keys=True),
                    created_by=created_by,
                    created_at=now,
                )
            )

    def saved_presets(self) -> list[SavedPreset]:
        with self.engine.connect() as conn:
            return [
                SavedPreset(
                    name=r.name,
                    source=r.source,
                    columns=json.loads(r.columns),
                    created_by=r.created_by,
                    created_at=r.created_at,
                )
                for r in conn.execute(select(t.import_presets).order_by(t.import_presets.c.name))
            ]

    def saved_preset(self, name: str) -> SavedPreset | None:
        return next((p for p in self.saved_presets() if p.name == name), None)

    def delete_saved_preset(self, name: str) -> None:
        with self.db.begin() as conn:
            n = conn.execute(
                delete(t.import_presets).where(t.import_presets.c.name == name)
            ).rowcount
        if n == 0:
            raise NotFound(f"No saved preset {name!r}.")

    def add_source(
        self,
        *,
        name: str,
        kind: str,
        location: str,
        preset: str | None,
        interval_minutes: int,
        created_by: str | None,
        now: datetime,
    ) -> int:
        with self.db.begin() as conn:
            if conn.execute(
                select(t.import_sources.c.id).where(t.import_sources.c.name == name)
            ).first():
                raise Conflict(f"A source named {name!r} already exists.")
            return conn.execute(
                insert(t.import_sources)
                .values(
                    name=name,
                    kind=kind,
                    location=location,
                    preset=preset,
                    interval_minutes=interval_minutes,
                    created_by=created_by,
                    created_at=now,
                )
                .returning(t.import_sources.c.id)
            ).scalar_one()

    def list_sources(self) -> list[ImportSource]:
        with self.engine.connect() as conn:
            return [
                _source(r)
                for r in conn.execute(select(t.import_sources).order_by(t.import_sources.c.name))
            ]

    def get_source(self, name: str) -> ImportSource:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(t.import_sources).where(t.import_sources.c.name == name)
            ).first()
        if r is None:
            raise NotFound(f"No source named {name!r}.")
        return _source(r)

    def remove_source(self, name: str) -> None:
        with self.db.begin() as conn:
            n = conn.execute(
                delete(t.import_sources).where(t.import_sources.c.name == name)
            ).rowcount
        if n == 0:
            raise NotFound(f"No source named {name!r}.")

    def source_has_imported(self, source_id: int, sha256: str) -> bool:
        """Whether this content was already imported from this source."""
        c = t.source_polls.c
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(c.id)
                    .where(c.source_id == source_id)
                    .where(c.file_sha256 == sha256)
                    .where(c.status == "imported")
                    .limit(1)
                ).first()
                is not None
            )

    def record_poll(
        self,
        source_id: int,
        *,
        status: str,
        now: datetime,
        filename: str | None = None,
        file_sha256: str | None = None,
        upload_id: int | None = None,
        error: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        """One poll of a source: its outcome, and the source's last status."""
        values = {"last_polled_at": now, "last_status": status, "last_error": error}
        if etag is not None or last_modified is not None:
            values |= {"etag": etag, "last_modified": last_modified}
        with self.db.begin() as conn:
            conn.execute(
                insert(t.source_polls).values(
                    source_id=source_id,
                    at=now,
                    status=status,
                    filename=filename,
                    file_sha256=file_sha256,
                    upload_id=upload_id,
                    error=error,
                )
            )
            conn.execute(
                update(t.import_sources).where(t.import_sources.c.id == source_id).values(**values)
            )

    def source_polls(
        self, limit: int = 50, *, source_id: int | None = None, status: str | None = None
    ) -> list[SourcePoll]:
        p, s = t.source_polls.c, t.import_sources.c
        q = (
            select(t.source_polls, s.name.label("source_name"))
            .join(t.import_sources, s.id == p.source_id)
            .order_by(p.id.desc())
            .limit(limit)
        )
        if source_id is not None:
            q = q.where(p.source_id == source_id)
        if status is not None:
            q = q.where(p.status == status)
        with self.engine.connect() as conn:
            return [
                SourcePoll(
                    id=r.id,
                    source_id=r.source_id,
                    source_name=r.source_name,
                    at=r.at,
                    status=r.status,
                    filename=r.filename,
                    file_sha256=r.file_sha256,
                    upload_id=r.upload_id,
                    error=r.error,
                )
                for r in conn.execute(q)
            ]

    def claim_upload(self, upload_id: int, now: datetime) -> Upload | None:
        """Mark one queued upload running (a scheduled source imports its file at once)."""
        c = t.import_uploads.c
        with self.db.begin() as conn:
            claimed = conn.execute(
                update(t.import_uploads)
                .where(c.id == upload_id)
                .where(c.status == "queued")
                .values(status="running", started_at=now)
            ).rowcount
        return self.get_upload(upload_id) if claimed else None

    def cancel_upload(self, upload_id: int, *, error: str, now: datetime) -> bool:
        """Withdraw an upload that has not started; False when it already has."""
        c = t.import_uploads.c
        with self.db.begin() as conn:
            return (
                conn.execute(
                    update(t.import_uploads)
                    .where(c.id == upload_id)
                    .where(c.status.in_(("needs-mapping", "queued")))
                    .values(status="failed", finished_at=now, error=error)
                ).rowcount
                == 1
            )
