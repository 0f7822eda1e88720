"""Staff pages for department announcements (records and admin roles)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from beatfeeds.core.clock import utcnow
from beatfeeds.core.errors import BeatfeedsError, InvalidInput
from beatfeeds.core.models import ANNOUNCEMENT_KINDS, URGENT_KINDS
from beatfeeds.services import announcements
from beatfeeds.web import settings, store
from beatfeeds.web.auth import staff_required

bp = Blueprint("announcements", __name__)


def _local_to_utc(value: str) -> datetime | None:
    """A `datetime-local` field (department time) as naive UTC."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a date and time.") from None
    return local.replace(tzinfo=settings().tz).astimezone(UTC).replace(tzinfo=None)


@bp.get("/records/announcements")
@staff_required()
def index():
    now = utcnow()
    return render_template(
        "records_announcements.html",
        announcements=store().outbox.list_announcements(200),
        now=now,
        kinds=ANNOUNCEMENT_KINDS,
        urgent_kinds=URGENT_KINDS,
        form=request.args,
    )


@bp.post("/records/announcements")
@staff_required()
def create():
    f = request.form
    try:
        ann = announcements.create_announcement(
            store(),
            settings(),
            kind=f.get("kind", ""),
            title=f.get("title", ""),
            body=f.get("body", ""),
            beats=f.get("beats", ""),
            sectors=f.get("sectors", ""),
            precincts=f.get("precincts", ""),
            city=f.get("city") == "1",
            polygon=f.get("polygon", ""),
            urgent=f.get("urgent") == "1",
            starts_at=_local_to_utc(f.get("starts_at", "")),
            expires_at=_local_to_utc(f.get("expires_at", "")),
            actor=g.user.email,
            now=utcnow(),
        )
    except BeatfeedsError as exc:
        flash(exc.message, "error")
        return render_template(
            "records_announcements.html",
            announcements=store().outbox.list_announcements(200),
            now=utcnow(),
            kinds=ANNOUNCEMENT_KINDS,
            urgent_kinds=URGENT_KINDS,
            form=f,
        ), 400
    where = (
        "the whole city" if ann.citywide else f"{len(ann.beats)} beat(s): " + ", ".join(ann.beats)
    )
    flash(f"Announcement saved for {where}.")
    return redirect(url_for(".index"))


def _local_value(d: datetime | None) -> str:
    if d is None:
        return ""
    return d.replace(tzinfo=UTC).astimezone(settings().tz).strftime("%Y-%m-%dT%H:%M")


@bp.route("/records/announcements/<uid>/edit", methods=["GET", "POST"])
@staff_required()
def edit(uid):
    ann = store().outbox.announcement(uid)
    form = {
        "kind": ann.kind,
        "title": ann.title,
        "body": ann.body,
        "expires_at": _local_value(ann.expires_at),
    }
    if request.method == "POST":
        form = request.form
        try:
            announcements.edit_announcement(
                store(),
                settings(),
                uid,
                kind=form.get("kind", ""),
                title=form.get("title", ""),
                body=form.get("body", ""),
                expires_at=_local_to_utc(form.get("expires_at", "")),
                actor=g.user.email,
                now=utcnow(),
            )
        except BeatfeedsError as exc:
            flash(exc.message, "error")
            return render_template(
                "records_announcement_edit.html", ann=ann, form=form, kinds=ANNOUNCEMENT_KINDS
            ), 400
        flash("Announcement corrected.")
        return redirect(url_for(".index"))
    return render_template(
        "records_announcement_edit.html", ann=ann, form=form, kinds=ANNOUNCEMENT_KINDS
    )


@bp.post("/records/announcements/<uid>/withdraw")
@staff_required()
def withdraw(uid):
    try:
        announcements.withdraw_announcement(store(), uid, actor=g.user.email, now=utcnow())
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    else:
        flash("Withdrawn from every feed; its posts will be deleted where the service allows.")
    return redirect(url_for(".index"))
