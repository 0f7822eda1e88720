"""Staff pages: the staff home, users, beat maps and audit log (admin). Records pages are in
web/records.py."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from beatfeeds.core.clock import utcnow
from beatfeeds.core.errors import BeatfeedsError, Conflict, Forbidden
from beatfeeds.services import accounts
from beatfeeds.web import store
from beatfeeds.web.auth import staff_required

bp = Blueprint("staff", __name__)


@bp.get("/staff")
@staff_required()
def home():
    return render_template("staff_home.html")


@bp.get("/admin/users")
@staff_required("admin")
def users():
    return render_template(
        "admin_users.html", users=store().accounts.list_users(), roles=accounts.ROLES
    )


@bp.post("/admin/users")
@staff_required("admin")
def add_user():
    f = request.form
    try:
        accounts.add_user(
            store(),
            f.get("email", ""),
            f.get("role", ""),
            f.get("password", ""),
            actor=g.user.email,
            now=utcnow(),
        )
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Added {accounts.normalise_email(f.get('email', ''))}.")
    return redirect(url_for(".users"))


@bp.post("/admin/users/<email>/disable")
@staff_required("admin")
def disable_user(email):
    try:
        accounts.set_disabled(
            store(), email, request.form.get("enable") != "1", actor=g.user.email, now=utcnow()
        )
    except (Forbidden, Conflict) as exc:  # a rule refused it; a missing user is still a 404
        flash(exc.message, "error")
    else:
        flash(f"Updated {email}.")
    return redirect(url_for(".users"))


@bp.post("/admin/users/<email>/password")
@staff_required("admin")
def reset_password(email):
    try:
        accounts.set_password(
            store(), email, request.form.get("password", ""), actor=g.user.email, now=utcnow()
        )
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Password reset for {email}; they are signed out everywhere.")
    return redirect(url_for(".users"))


@bp.get("/admin/audit")
@staff_required("admin")
def audit():
    return render_template("admin_audit.html", rows=store().accounts.audit_log(500))
