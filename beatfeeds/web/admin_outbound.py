"""Admin pages for outbound accounts (add, test, pause, remove) and the outbox."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from beatfeeds.core import areas
from beatfeeds.core.clock import utcnow
from beatfeeds.core.errors import BeatfeedsError
from beatfeeds.core.models import OUTBOX_STATUSES
from beatfeeds.delivery import posts
from beatfeeds.delivery.posting import text as posttext
from beatfeeds.delivery.posting.base import CREDENTIAL_FIELDS, DEFAULT_ENDPOINTS, SERVICES
from beatfeeds.services import outbound_accounts
from beatfeeds.services import outbox as outbox_service
from beatfeeds.web import settings, store
from beatfeeds.web.auth import staff_required

bp = Blueprint("admin_outbound", __name__)


@bp.get("/admin/outbound")
@staff_required("admin")
def accounts():
    s = settings()
    rows = [
        (a, posts.area_label(a), posts.profile_text(s, a))
        for a in store().outbox.list_outbound_accounts()
    ]
    return render_template(
        "admin_outbound.html",
        rows=rows,
        services=SERVICES,
        credential_fields=CREDENTIAL_FIELDS,
        default_endpoints=DEFAULT_ENDPOINTS,
        area_kinds=areas.KINDS,
        template_fields=posttext.FIELDS,
        default_template=posttext.DEFAULT_TEMPLATE,
        default_profile=posttext.DEFAULT_PROFILE_TEMPLATE,
        counts=store().outbox.outbox_counts(),
        form=request.args,
    )


@bp.post("/admin/outbound")
@staff_required("admin")
def add_account():
    f = request.form
    service = f.get("service", "")
    creds = {
        name: f.get(f"{service}-{name}", "") for name, _, _ in CREDENTIAL_FIELDS.get(service, [])
    }
    try:
        outbound_accounts.add_account(
            store(),
            settings(),
            area_kind=f.get("area_kind", ""),
            area_code=f.get("area_code", "").strip() or None,
            service=service,
            label=f.get("label", ""),
            endpoint=f.get("endpoint", ""),
            credentials=creds,
            template=f.get("template", ""),
            profile_template=f.get("profile_template", ""),
            handle=f.get("handle", ""),
            actor=g.user.email,
            now=utcnow(),
        )
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    else:
        flash("Account added. Its credentials are stored encrypted and will not be shown again.")
    return redirect(url_for(".accounts"))


@bp.post("/admin/outbound/<int:account_id>/test")
@staff_required("admin")
def test(account_id):
    result = outbound_accounts.test_account(
        store(), settings(), account_id, actor=g.user.email, now=utcnow()
    )
    flash(f"Test post: {result}", "error" if result.startswith("failed") else "message")
    return redirect(url_for(".accounts"))


@bp.post("/admin/outbound/<int:account_id>/profile")
@staff_required("admin")
def profile(account_id):
    result = outbound_accounts.update_profile(
        store(), settings(), account_id, actor=g.user.email, now=utcnow()
    )
    flash(f"Profile: {result}", "error" if result.startswith("failed") else "message")
    return redirect(url_for(".accounts"))


@bp.post("/admin/outbound/<int:account_id>/pause")
@staff_required("admin")
def pause(account_id):
    paused = request.form.get("resume") != "1"
    outbound_accounts.set_account_paused(
        store(), account_id, paused, actor=g.user.email, now=utcnow()
    )
    flash("Paused: nothing is sent until you resume it." if paused else "Resumed.")
    return redirect(url_for(".accounts"))


@bp.post("/admin/outbound/<int:account_id>/remove")
@staff_required("admin")
def remove(account_id):
    outbound_accounts.remove_account(store(), account_id, actor=g.user.email, now=utcnow())
    flash("Account removed with its credentials and outbox. Posts already made stay up.")
    return redirect(url_for(".accounts"))


@bp.get("/admin/outbox")
@staff_required("admin")
def outbox():
    status = request.args.get("status") or None
    if status not in (None, *OUTBOX_STATUSES):
        status = None
    return render_template(
        "admin_outbox.html",
        items=store().outbox.list_outbox(status=status, limit=500),
        counts=store().outbox.outbox_counts(),
        statuses=OUTBOX_STATUSES,
        status=status,
    )


@bp.post("/admin/outbox/<int:item_id>/resolve")
@staff_required("admin")
def resolve(item_id):
    try:
        outbox_service.resolve_unknown(
            store(), item_id, request.form.get("outcome", ""), actor=g.user.email, now=utcnow()
        )
    except BeatfeedsError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Outbox item {item_id} updated.")
    return redirect(url_for(".outbox", status="unknown"))
