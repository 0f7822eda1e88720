"""Public pages and feeds."""

from __future__ import annotations

import hashlib

from flask import (
    Blueprint,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from .. import publishing
from ..feeds import FORMATS
from . import settings, store, utcnow

bp = Blueprint("public", __name__)

KINDS = {"beats": "beat", "sectors": "sector", "precincts": "precinct"}
PAGE_SIZE = 25


@bp.get("/")
def index():
    directory = publishing.directory(store(), now=utcnow())
    return render_template("index.html", directory=directory)


@bp.get("/feed.<fmt>")
def city_feed(fmt):
    return _feed("city", None, fmt)


@bp.get("/<any(beats, sectors, precincts):kinds>/<code>/feed.<fmt>")
def area_feed(kinds, code, fmt):
    return _feed(KINDS[kinds], code, fmt)


@bp.get("/<any(beats, sectors, precincts):kinds>/<code>")
def area_page(kinds, code):
    area = publishing.resolve_area(store(), KINDS[kinds], code)
    if area.code != code:
        return redirect(url_for(".area_page", kinds=kinds, code=area.code), 301)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    entries = publishing.area_entries(store(), settings(), area, now=utcnow(),
                                      limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    beats = publishing.neighbours(store(), area)
    return render_template("area.html", area=area, kinds=kinds, entries=entries[:PAGE_SIZE],
                           page=page, has_next=len(entries) > PAGE_SIZE, beats=beats)


@bp.get("/entries/<uid>")
def entry(uid):
    e = publishing.public_entry(store(), settings(), uid, now=utcnow())
    return render_template("entry.html", entry=e)


@bp.get("/healthz")
def healthz():
    s = store()
    try:
        ok = s.is_current()
        body = {"status": "ok" if ok else "migrations pending", "database": s.dialect,
                "active_beat_map": s.active_beat_set_id()}
    except Exception as exc:  # the point of a health check is to answer when things fail
        current_app.logger.error("health check: database unreachable: %s", exc)
        return {"status": "database unreachable", "database": s.dialect}, 503
    return body, 200 if ok else 503


def _feed(kind: str, code: str | None, fmt: str):
    if fmt not in FORMATS:
        abort(404)
    area = publishing.resolve_area(store(), kind, code)
    if kind != "city" and area.code != code:
        return redirect(url_for(".area_feed", kinds=kind + "s", code=area.code, fmt=fmt), 301)
    feed = publishing.area_feed(store(), settings(), area, fmt, now=utcnow())
    resp = make_response(feed.body)
    resp.headers["Content-Type"] = feed.content_type
    resp.set_etag(hashlib.sha256(feed.body).hexdigest()[:32])
    resp.last_modified = feed.last_modified.replace(tzinfo=None)
    resp.cache_control.public = True
    resp.cache_control.max_age = 300
    return resp.make_conditional(request)
