"""Admin pages for beat maps: upload with field confirmation, map editor, preview, publish."""

from __future__ import annotations

import json
import secrets
import shutil
from datetime import date
from pathlib import Path

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.utils import secure_filename

from beatfeeds.core.clock import utcnow
from beatfeeds.core.errors import BeatfeedsError, InvalidBoundary, InvalidInput
from beatfeeds.core.files import open_private, private_dir
from beatfeeds.geo import beatfiles, checks
from beatfeeds.services import beatmaps
from beatfeeds.web import settings, store
from beatfeeds.web.auth import staff_required

bp = Blueprint("admin_beats", __name__, url_prefix="/admin/beats")

MAP_SUFFIXES = beatfiles.SUFFIXES


def _tolerances() -> checks.Tolerances:
    return checks.Tolerances.from_settings(settings())


def _upload_dir() -> Path:
    return Path(settings().instance_path) / "beat-map-uploads"


def _uploaded(token: str, filename: str) -> Path:
    if not token.isalnum() or secure_filename(filename) != filename or not filename:
        raise InvalidInput("That upload has expired; choose the file again.")
    path = _upload_dir() / token / filename
    if not path.is_file():
        raise InvalidInput("That upload has expired; choose the file again.")
    return path


@bp.get("")
@staff_required("admin")
def index():
    return render_template(
        "admin_beats.html",
        beat_sets=store().beatmaps.list_beat_sets(),
        active=store().beatmaps.active_beat_set_id(),
    )


@bp.post("/upload")
@staff_required("admin")
def upload():
    f = request.files.get("file")
    name = secure_filename(f.filename or "") if f else ""
    if not name or not name.lower().endswith(MAP_SUFFIXES):
        flash("Choose a GeoJSON, zipped shapefile, GeoPackage or KML file.", "error")
        return redirect(url_for(".index"))
    token = secrets.token_hex(8)
    folder = private_dir(_upload_dir() / token)
    with open_private(folder / name) as fh:
        f.save(fh)
    try:
        preview = beatfiles.inspect_beat_map(folder / name, protected=store().db.database_files())
    except BeatfeedsError as exc:
        flash(exc.message, "error")
        return redirect(url_for(".index"))
    return render_template(
        "admin_beats_confirm.html",
        preview=preview,
        token=token,
        filename=name,
        name=Path(name).stem,
        problems=[],
        templates={},
    )


@bp.post("/load")
@staff_required("admin")
def load():
    form = request.form
    path = _uploaded(form.get("token", ""), form.get("filename", ""))
    effective = form.get("effective") or None
    try:
        report = beatmaps.load_beat_map_report(
            store(),
            path,
            code_field=_field(form, "code"),
            sector_field=_field(form, "sector"),
            precinct_field=_field(form, "precinct"),
            name=form.get("name") or None,
            effective=date.fromisoformat(effective) if effective else None,
            actor=g.user.email,
            now=utcnow(),
        )
    except (BeatfeedsError, ValueError) as exc:
        problems = exc.problems if isinstance(exc, InvalidBoundary) else []
        message = exc.message if isinstance(exc, BeatfeedsError) else "Give the date as YYYY-MM-DD."
        flash(message, "error")
        return render_template(
            "admin_beats_confirm.html",
            preview=beatfiles.inspect_beat_map(path, protected=store().db.database_files()),
            token=form["token"],
            filename=form["filename"],
            name=form.get("name"),
            problems=problems,
            templates={k: form.get(f"{k}_template", "") for k in ("code", "sector", "precinct")},
        ), 422
    shutil.rmtree(path.parent, ignore_errors=True)  # the map is in the database now
    flash(f"Loaded beat map {report.set_id} as a draft ({report.beats} beats).")
    for note in report.notes:
        flash(note, "warning" if note.startswith("warning:") else "info")
    return redirect(url_for(".show", set_id=report.set_id))


def _field(form, level: str) -> str | None:
    """A level's field: the template typed for it, else the property chosen."""
    return (form.get(f"{level}_template") or "").strip() or form.get(f"{level}_field") or None


@bp.get("/<int:set_id>")
@staff_required("admin")
def show(set_id):
    s = store()
    bs = s.beatmaps.get_beat_set(set_id)
    problems = beatmaps.validate_beat_set(s, set_id, _tolerances())
    active = s.beatmaps.active_beat_set_id()
    diff = None
    if active is not None and active != set_id:
        diff = beatmaps.review_diff(s, settings(), set_id, active, now=utcnow())
    return render_template(
        "admin_beat_map.html",
        bs=bs,
        problems=problems,
        diff=diff,
        active=active,
        beat_sets=s.beatmaps.list_beat_sets(),
        blocking=checks.blocking(problems),
    )


@bp.get("/<int:set_id>/map.json")
@staff_required("admin")
def map_json(set_id):
    """The map's beats with their change against the active map, removed beats and problems."""
    return beatmaps.editor_geojson(store(), set_id, _tolerances())


@bp.post("/<int:set_id>/edit")
@staff_required("admin")
def edit(set_id):
    op = request.get_json(silent=True)
    draft_id = beatmaps.edit_beat_map(store(), set_id, op, actor=g.user.email, now=utcnow())
    return {
        "set_id": draft_id,
        "url": url_for(".show", set_id=draft_id),
        **beatmaps.editor_geojson(store(), draft_id, _tolerances()),
    }


@bp.post("/<int:set_id>/publish")
@staff_required("admin")
def publish(set_id):
    at = request.form.get("at") or None
    try:
        if at:
            beatmaps.schedule_beat_map(
                store(),
                set_id,
                date.fromisoformat(at),
                actor=g.user.email,
                now=utcnow(),
                tolerances=_tolerances(),
            )
            flash(f"Beat map {set_id} is scheduled for {at}.")
        else:
            joined = beatmaps.publish_beat_map(
                store(), set_id, actor=g.user.email, now=utcnow(), tolerances=_tolerances()
            )
            flash(f"Beat map {set_id} is active; {joined} incidents joined to it.")
    except ValueError:
        flash("Give the date as YYYY-MM-DD.", "error")
    except InvalidBoundary as exc:
        flash(f"{exc.message}: " + "; ".join(exc.problems[:5]), "error")
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    return redirect(url_for(".show", set_id=set_id))


@bp.post("/rollback")
@staff_required("admin")
def rollback():
    try:
        set_id = beatmaps.rollback_beat_map(
            store(), actor=g.user.email, now=utcnow(), tolerances=_tolerances()
        )
    except BeatfeedsError as exc:
        flash(exc.message, "error")
        return redirect(url_for(".index"))
    flash(f"Rolled back: beat map {set_id} is active again.")
    return redirect(url_for(".index"))


@bp.get("/<int:set_id>/export.geojson")
@staff_required("admin")
def export(set_id):
    doc = beatmaps.area_geojson(store(), set_id, "beats")
    return (
        json.dumps(doc),
        200,
        {
            "Content-Type": "application/geo+json",
            "Content-Disposition": f'attachment; filename="beat-map-{set_id}.geojson"',
        },
    )


@bp.errorhandler(BeatfeedsError)
def _error(exc: BeatfeedsError):
    """The editor's requests get JSON errors it can show; pages get the error page."""
    if request.is_json:
        return {"error": exc.message, "status": exc.http_status}, exc.http_status
    return render_template(
        "error.html", status=exc.http_status, message=exc.message
    ), exc.http_status
