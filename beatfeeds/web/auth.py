"""Staff sign-in, sign-out, own password; the `staff_required` guard."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for

from beatfeeds.core.clock import utcnow
from beatfeeds.core.errors import AuthError, Forbidden, InvalidInput, TooManyAttempts
from beatfeeds.services import accounts
from beatfeeds.web import settings, store
from beatfeeds.web.guards import safe_next

bp = Blueprint("auth", __name__)


@bp.before_app_request
def load_user():
    g.user = None
    if request.blueprint in ("api", "assets") or (request.endpoint or "").endswith("_feed"):
        return  # anonymous, cacheable answers: reading the session would add Vary: Cookie
    user_id = session.get("user_id")
    if user_id is None:
        return
    user = store().accounts.user_by_id(user_id)
    stamp = session.get("pw_stamp")
    signed_in = session.get("signed_in_at", 0)
    lifetime = settings().session_lifetime * 60
    if (
        user is None
        or user.disabled
        or stamp != _stamp(user.password_changed_at)
        or not isinstance(signed_in, int | float)
        or time.time() - signed_in > lifetime
    ):
        # Disabled, deleted, password changed elsewhere, or signed in too long ago (an
        # absolute limit: the cookie's own expiry is refreshed by every request).
        session.clear()
        return
    g.user = user


def _stamp(d: datetime | None) -> str:
    return d.replace(tzinfo=UTC).isoformat() if d else ""


def staff_required(role: str | None = None):
    """Refuse anonymous users (to the sign-in page) and users without the role (403)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if g.user is None:
                here = request.full_path if request.query_string else request.path
                return redirect(url_for("auth.login", next=here))
            if role == "admin" and g.user.role != "admin":
                raise Forbidden("This page is for administrators.")
            return view(*args, **kwargs)

        return wrapped

    return decorate


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    status = 200
    if request.method == "POST":
        try:
            user = accounts.authenticate(
                store(),
                settings(),
                request.form.get("email", ""),
                request.form.get("password", ""),
                remote_addr=request.remote_addr,
                now=utcnow(),
            )
        except (AuthError, TooManyAttempts) as exc:
            error, status = exc.message, exc.http_status
        else:
            session.clear()
            session.permanent = True
            session["user_id"] = user.id
            session["pw_stamp"] = _stamp(user.password_changed_at)
            session["signed_in_at"] = time.time()
            return redirect(safe_next(request.args.get("next"), url_for("staff.home")))
    return render_template("login.html", error=error), status


@bp.post("/logout")
def logout():
    if g.user is not None:
        accounts.sign_out(store(), g.user, now=utcnow())
    session.clear()
    return redirect(url_for("public.index"))


@bp.route("/account/password", methods=["GET", "POST"])
@staff_required()
def change_password():
    error = None
    if request.method == "POST":
        new = request.form.get("new_password", "")
        if new != request.form.get("confirm_password", ""):
            error = "The new passwords do not match."
        else:
            try:
                accounts.change_own_password(
                    store(), g.user, request.form.get("password", ""), new, now=utcnow()
                )
            except (AuthError, InvalidInput) as exc:
                error = exc.message
            else:
                user = store().accounts.user_by_id(g.user.id)
                session["pw_stamp"] = _stamp(user.password_changed_at)
                flash("Your password was changed.")
                return redirect(url_for("staff.home"))
    return render_template("account_password.html", error=error), 400 if error else 200
