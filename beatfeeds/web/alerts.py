"""Email alerts for residents: sign-up, confirmation, managing and unsubscribing.

Residents' pages set no cookie (the README promises it, and it keeps area pages cacheable), so
their forms carry no session-bound CSRF token. Nothing a resident's form does rests on ambient
authority: a sign-up only mails a link, and every other action needs the secret link itself.
What a cross-site form could still do is make visitors' browsers send sign-ups from their IP
addresses (around the per-client rate limit); so these POSTs must come from this site's own
pages, by their `Origin` (or, failing that, `Referer`) header. The RFC 8058 one-click POST is
the exception: mail clients send it from nowhere, and the sealed link is the authority.
Staff pages keep the session and Flask-WTF's CSRF tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for

from beatfeeds.core.clock import utcnow
from beatfeeds.core.errors import Forbidden
from beatfeeds.delivery import links, messages, smtp
from beatfeeds.services import alerts
from beatfeeds.web import settings, store
from beatfeeds.web.auth import staff_required

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings

bp = Blueprint("alerts", __name__, url_prefix="/alerts")

# The residents' forms: no CSRF token (no cookie), the same-origin check instead.
RESIDENT_POSTS = (
    "subscribe",
    "confirm",
    "manage_request",
    "remove",
    "change_frequency",
    "delete_everything",
)


class ForeignOrigin(Forbidden):
    user_message = (
        "This form was not sent from this site's own pages. Open the page on this "
        "site and send it from there."
    )


def _origin(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc.lower()) if parts.scheme and parts.netloc else None


@bp.before_request
def same_origin():
    """Refuse a resident's form POST that another site made the browser send."""
    if request.method != "POST" or request.endpoint not in {
        f"{bp.name}.{name}" for name in RESIDENT_POSTS
    }:
        return
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return  # the same switch that turns CSRF checks off (tests with a bare client)
    sent = request.headers.get("Origin") or request.headers.get("Referer") or ""
    ours = {_origin(settings().base_url), _origin(request.host_url)}
    if sent == "null" or _origin(sent) not in ours:
        raise ForeignOrigin()


@bp.after_request
def no_referrer_elsewhere(response):
    """A link's token is in the page's address: never send it to another site."""
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@bp.post("/subscribe")
def subscribe():
    signup = alerts.parse_signup(
        store(),
        settings(),
        address=request.form.get("address", ""),
        area_kind=request.form.get("area_kind", ""),
        area_code=request.form.get("area_code"),
        categories=request.form.getlist("category"),
        frequency=request.form.get("frequency", "instant"),
    )
    alerts.request_subscription(
        store(), settings(), signup, client=request.remote_addr or "", now=utcnow()
    )
    return render_template(
        "alerts_message.html",
        heading="Check your email",
        message=(
            f"If {signup.address} can receive email, a message with a confirmation link is on its "
            f"way. Nothing will be sent until you follow that link within "
            f"{settings().alert_link_hours} hours."
        ),
    )


@bp.get("/confirm/<token>")
def confirm_form(token):
    signup = alerts.read_confirmation(settings(), token, utcnow())
    return render_template(
        "alerts_confirm.html",
        token=token,
        signup=signup,
        what=messages.describe(
            signup.area_kind, signup.area_code, signup.categories, signup.frequency, settings()
        ),
    )


@bp.post("/confirm/<token>")
def confirm(token):
    signup = alerts.confirm(store(), settings(), token, now=utcnow())
    what = messages.describe(
        signup.area_kind, signup.area_code, signup.categories, signup.frequency, settings()
    )
    return render_template(
        "alerts_message.html",
        heading="Your alerts are on",
        message=(f"{signup.address} will receive {what}. Every message has a link to stop it."),
    )


@bp.get("/manage")
def manage_request_form():
    return render_template("alerts_manage_request.html")


@bp.post("/manage")
def manage_request():
    alerts.request_manage_link(
        store(),
        settings(),
        request.form.get("address", ""),
        client=request.remote_addr or "",
        now=utcnow(),
    )
    return render_template(
        "alerts_message.html",
        heading="Check your email",
        message=(
            "If that address has email alerts, a message with a link to manage them is on its "
            f"way. The link works for {settings().alert_link_hours} hours."
        ),
    )


@bp.get("/manage/<token>")
def manage(token):
    address, subs = alerts.subscriptions(store(), settings(), token, utcnow())
    rows = [
        (
            s,
            messages.describe(s.area_kind, s.area_code, s.categories, s.frequency, settings()),
            links.area_url(settings(), s.area_kind, s.area_code),
        )
        for s in subs
    ]
    return render_template("alerts_manage.html", token=token, address=address, rows=rows)


@bp.post("/manage/<token>/remove/<int:subscription_id>")
def remove(token, subscription_id):
    alerts.remove_subscription(store(), settings(), token, subscription_id, utcnow())
    return redirect(url_for(".manage", token=token), 303)


@bp.post("/manage/<token>/frequency/<int:subscription_id>")
def change_frequency(token, subscription_id):
    alerts.change_frequency(
        store(), settings(), token, subscription_id, request.form.get("frequency", ""), utcnow()
    )
    return redirect(url_for(".manage", token=token), 303)


@bp.post("/manage/<token>/delete")
def delete_everything(token):
    alerts.delete_everything(store(), settings(), token, utcnow())
    return render_template(
        "alerts_message.html",
        heading="Deleted",
        message=(
            "Your address, its subscriptions and the record of what was sent to it are deleted. "
            "Nothing more will be sent."
        ),
    )


@bp.get("/unsubscribe/<token>")
def unsubscribe_form(token):
    alerts.check_unsubscribe_link(settings(), token, utcnow())
    return render_template("alerts_unsubscribe.html", token=token)


@bp.post("/unsubscribe/<token>")
def unsubscribe(token):
    """RFC 8058 one-click: mail clients POST `List-Unsubscribe=One-Click` here, with no
    session, CSRF token or Origin; the sealed link is the authority."""
    what = alerts.unsubscribe(store(), settings(), token, utcnow()) or "this area"
    return render_template(
        "alerts_message.html",
        heading="Unsubscribed",
        message=(f"You will receive no more email alerts for {what}."),
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]  # str.capitalize() would lower-case "Sundays"


def template_globals(settings: Settings) -> dict:
    """What the sign-up form on area pages needs (app-wide template globals)."""
    from beatfeeds.core.categories import CATEGORIES

    suppressed = set(settings.suppressed_categories)
    return {
        "email_alerts": smtp.enabled(settings),
        "alert_frequencies": {
            k: _sentence(messages.schedule(settings, k)) for k in messages.FREQUENCIES
        },
        "alert_categories": [(s, label) for s, label in CATEGORIES.items() if s not in suppressed],
    }


@bp.get("/admin", endpoint="admin")
@staff_required("admin")
def admin_page():
    return render_template(
        "admin_alerts.html", **alerts.overview(store()), enabled=smtp.enabled(settings())
    )


@bp.post("/admin/deliveries/<int:delivery_id>")
@staff_required("admin")
def resolve(delivery_id):
    alerts.resolve_delivery(
        store(), delivery_id, request.form.get("outcome", ""), actor=g.user.email, now=utcnow()
    )
    return redirect(url_for(".admin"), 303)


@bp.post("/admin/pause")
@staff_required("admin")
def pause():
    """Pause all mail (or resume it: `paused=0`); audited."""
    alerts.set_paused(
        store(), request.form.get("paused", "1") == "1", actor=g.user.email, now=utcnow()
    )
    return redirect(url_for(".admin"), 303)
