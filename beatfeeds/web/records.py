"""Records staff pages: upload and queue incident files, follow their import, download the
rejected rows, map unknown columns, find and retract entries, release entries held back for
review."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from beatfeeds.core.clock import utcnow
from beatfeeds.core.errors import BeatfeedsError
from beatfeeds.ingest.presets import FIELDS, PRESETS
from beatfeeds.publish.privacy import entry_title
from beatfeeds.services import presets, records
from beatfeeds.services import review as review_service
from beatfeeds.web import settings, store
from beatfeeds.web.auth import staff_required

bp = Blueprint("records", __name__, url_prefix="/records")

FIELD_HELP = {
    "external_id": "the incident's unique key (required)",
    "occurred_at": "when it happened",
    "reported_at": "when it was reported",
    "category": "type of incident",
    "description": "text shown in the entry",
    "address": "street address (published only as the hundred block)",
    "lat": "latitude",
    "lon": "longitude",
    "beat": "the source's own beat code (for comparison only)",
    "sensitive": "a yes/no column that marks rows never to publish",
}


@bp.get("/imports")
@staff_required()
def imports_page():
    s = store()
    return render_template(
        "records_imports.html",
        uploads=s.uploads.list_uploads(50),
        runs=s.records.list_import_runs(100),
        sources=s.uploads.list_sources(),
        failures=s.uploads.source_polls(20, status="failed"),
        presets=list(PRESETS),
        saved=s.uploads.saved_presets(),
        max_mb=settings().max_upload_mb,
    )


@bp.post("/imports")
@staff_required()
def upload():
    f = request.files.get("file")
    if f is None or not f.filename:
        flash("Choose a CSV file to upload.", "error")
        return redirect(url_for(".imports_page"))
    preset = request.form.get("preset") or None
    up = records.store_upload(
        store(),
        settings(),
        f.stream,
        f.filename,
        actor=g.user.email,
        now=utcnow(),
        max_bytes=settings().max_upload_mb * 1024 * 1024,
        preset=preset,
    )
    if up.status == "needs-mapping":
        flash("No preset matches this file's columns: choose a column for each field.")
    elif up.status == "queued":
        flash(f"{up.filename} is queued; it will be imported within seconds.")
    return redirect(url_for(".upload_page", upload_id=up.id))


@bp.get("/imports/<int:upload_id>")
@staff_required()
def upload_page(upload_id):
    s = store()
    up = s.uploads.get_upload(upload_id)
    preview = preview_error = progress = run = None
    if up.status == "queued":
        try:
            preview = records.preview_upload(s, settings(), up, now=utcnow())
        except BeatfeedsError as exc:
            preview_error = exc.message
    elif up.status == "running":
        progress = records.read_progress(settings(), up)
    if up.run_id:
        run = s.records.get_import_run(up.run_id)
    header = records.upload_header(up) if up.status == "needs-mapping" else []
    same = [u for u in s.uploads.uploads_with_sha256(up.file_sha256) if u.id != up.id]
    return render_template(
        "records_upload.html",
        up=up,
        preview=preview,
        preview_error=preview_error,
        progress=progress,
        run=run,
        header=header,
        fields=FIELDS,
        field_help=FIELD_HELP,
        same=same,
        retention_days=settings().upload_retention_days,
    )


@bp.post("/imports/<int:upload_id>/mapping")
@staff_required()
def set_mapping(upload_id):
    form = request.form
    columns = {f: form.get(f"map_{f}", "") for f in FIELDS}
    try:
        records.set_mapping(
            store(),
            upload_id,
            columns,
            source=form.get("source", ""),
            save_as=form.get("save_as") or None,
            actor=g.user.email,
            now=utcnow(),
        )
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    else:
        flash("Mapping saved; the file is queued.")
    return redirect(url_for(".upload_page", upload_id=upload_id))


@bp.post("/imports/<int:upload_id>/cancel")
@staff_required()
def cancel(upload_id):
    try:
        records.cancel_upload(store(), upload_id, actor=g.user.email, now=utcnow())
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    else:
        flash("The upload was cancelled; nothing from it was imported.")
    return redirect(url_for(".upload_page", upload_id=upload_id))


@bp.get("/presets")
@staff_required()
def presets_page():
    return render_template(
        "records_presets.html", uses=presets.list_presets(store()), builtin=list(PRESETS)
    )


@bp.get("/presets/<name>/delete")
@staff_required()
def confirm_delete_preset(name):
    return render_template("records_preset_delete.html", use=presets.preset_use(store(), name))


@bp.post("/presets/<name>/delete")
@staff_required()
def delete_preset(name):
    try:
        presets.delete_preset(store(), name, actor=g.user.email, now=utcnow())
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    else:
        flash(
            f"The saved preset {name} was deleted. Files with its layout will ask for a "
            "column mapping again."
        )
    return redirect(url_for(".presets_page"))


@bp.get("/imports/runs/<int:run_id>/rejected.csv")
@staff_required()
def rejected_csv(run_id):
    name, text = records.rejected_rows_csv(store(), run_id)
    return Response(
        text.encode("utf-8-sig"),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@bp.get("/entries")
@staff_required()
def entries():
    q = request.args.get("q", "").strip()
    found = store().records.find_incidents(q, 100) if q else []
    return render_template("records_entries.html", q=q, found=found, now=utcnow())


@bp.get("/entries/<uid>")
@staff_required()
def entry(uid):
    e = store().records.staff_incident(uid.lower())
    return render_template(
        "records_entry.html",
        e=e,
        now=utcnow(),
        reasons=review_service.RETRACTION_REASONS,
        title=entry_title(e.description, e.block_address, e.event_time, settings().tz, e.beat),
    )


@bp.get("/review")
@staff_required()
def review():
    held, total = review_service.entries_for_review(store())
    return render_template(
        "records_review.html",
        held=held,
        total=total,
        now=utcnow(),
        reasons=review_service.RETRACTION_REASONS,
    )


@bp.post("/entries/<uid>/release")
@staff_required()
def release(uid):
    try:
        review_service.release_entry(store(), uid, actor=g.user.email, now=utcnow())
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    else:
        flash("The entry was released: it publishes as it is (recorded in the audit log).")
    if request.form.get("back") == "review":
        return redirect(url_for(".review"))
    return redirect(url_for(".entry", uid=uid))


@bp.post("/entries/<uid>/retract")
@staff_required()
def retract(uid):
    try:
        review_service.retract_entry(
            store(),
            uid,
            request.form.get("reason", ""),
            actor=g.user.email,
            now=utcnow(),
            note=request.form.get("note", ""),
        )
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    else:
        flash("The entry was retracted: it has left every feed and page.")
    if request.form.get("back") == "review":
        return redirect(url_for(".review"))
    return redirect(url_for(".entry", uid=uid))
