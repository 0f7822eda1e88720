"""Public pages and feeds."""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import urlencode

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from beatfeeds.core.areas import KIND_OF_SEGMENT, SEGMENTS
from beatfeeds.core.clock import utcnow
from beatfeeds.core.errors import AreaNotFound, InvalidInput
from beatfeeds.publish import feeds
from beatfeeds.publish.cache import FeedCache, RenderedFeed
from beatfeeds.publish.feeds import FORMATS
from beatfeeds.services import publishing
from beatfeeds.web import settings, store

bp = Blueprint("public", __name__)

HEALTH_WRITE_TIMEOUT = 1.0  # seconds a health check waits for the write lock
PAGE_SIZE = 25
MAX_PAGE = 10_000  # offsets beyond any real archive (and inside every integer type)


@bp.get("/")
def index():
    directory = publishing.directory(store(), now=utcnow())
    return render_template("index.html", directory=directory)


@bp.get("/feed.<fmt>")
def city_feed(fmt):
    return _feed("city", None, fmt)


@bp.get("/<any(beats, sectors, precincts):kinds>/<code>/feed.<fmt>")
def area_feed(kinds, code, fmt):
    return _feed(KIND_OF_SEGMENT[kinds], code, fmt)


@bp.get("/<any(beats, sectors, precincts):kinds>/<code>")
def area_page(kinds, code):
    area = publishing.resolve_area(store(), KIND_OF_SEGMENT[kinds], code)
    if area.code != code:
        return redirect(url_for(".area_page", kinds=kinds, code=area.code), 301)
    page = _page_number()
    entries = publishing.area_entries(
        store(), settings(), area, now=utcnow(), limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    page_info = publishing.area_page_info(store(), settings(), area, now=utcnow())
    personal = _personal()  # read before rendering: rendering takes the flashed messages
    body = render_template(
        "area.html",
        area=area,
        entries=entries[:PAGE_SIZE],
        page=page,
        has_next=len(entries) > PAGE_SIZE,
        **page_info,
    )
    if page > 1 or personal:  # later pages shift with every entry; no marks for them
        return body
    return _conditional_page(
        body, ("page", area.kind, area.code or ""), first=feeds.feed_updated(entries, utcnow())
    )


def _page_number() -> int:
    """`?page=`: 1 when missing, not a number or below 1; a 400 past MAX_PAGE."""
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    if page > MAX_PAGE:
        raise InvalidInput(f"There are at most {MAX_PAGE:,} pages.")
    return page


@bp.get("/entries/<uid>")
def entry(uid):
    e = publishing.public_entry(store(), settings(), uid, now=utcnow())
    personal = _personal()
    body = render_template("entry.html", entry=e)
    return body if personal else _conditional_page(body, ("entry", uid), first=e.changed_at)


# The per-visitor part of an anonymous page: the form token (its value changes per session).
_CSRF_INPUT = re.compile(r'<input type="hidden" name="csrf_token" value="[^"]*">')


def _personal() -> bool:
    """True when the page shows something of this visitor's: staff signed in, or messages."""
    return g.get("user") is not None or bool(session.get("_flashes"))


def _conditional_page(body: str, name: tuple[str, ...], *, first):
    """A public page with validators from its content mark: Last-Modified never goes back and
    moves whenever what the page shows changes (an entry retracted included), so a browser
    or cache revalidating gets the page again, not a 304, after any change."""
    content = _CSRF_INPUT.sub("", body).encode()
    changed = publishing.document_mark(store(), name, content, first=first, now=utcnow())
    resp = make_response(body)
    resp.set_etag(hashlib.sha256(content + changed.isoformat().encode()).hexdigest()[:32])
    resp.last_modified = changed
    resp.cache_control.no_cache = True  # revalidate every time: retractions show at once
    resp.vary.add("Cookie")
    return resp.make_conditional(request)


@bp.get("/healthz")
def healthz():
    s = store()
    try:
        ok = s.db.is_current()
        body = {
            "status": "ok" if ok else "migrations pending",
            "database": s.dialect,
            "active_beat_map": s.beatmaps.active_beat_set_id(),
        }
        # Reads alone would pass with a read-only or locked database, where sign-in,
        # imports and sign-ups fail: a write must be able to start.
        unwritable = s.db.check_writable(timeout=HEALTH_WRITE_TIMEOUT) if ok else None
    except Exception as exc:  # the point of a health check is to answer when things fail
        current_app.logger.error("health check: database unreachable: %s", exc)
        return {"status": "database unreachable", "database": s.dialect}, 503
    if unwritable:
        current_app.logger.warning("health check: database %s", unwritable)
        return {**body, "status": f"database {unwritable}"}, 503, {"Retry-After": "5"}
    return body, 200 if ok else 503


def _feed(kind: str, code: str | None, fmt: str):
    if fmt not in FORMATS:
        abort(404)
    filt = publishing.parse_filter(
        request.args.getlist("category"), request.args.getlist("exclude")
    )
    area, feed = publishing.serve_area_feed(
        store(), settings(), kind, code, fmt, now=utcnow(), filt=filt, cache=feed_cache()
    )
    if feed is None:
        # The query string is carried over as it came, never as url_for keywords: `?code=`,
        # `?fmt=`, `?endpoint=` or `?_anchor=` would collide with url_for's own arguments.
        query = urlencode(list(request.args.items(multi=True)))
        return redirect(
            url_for(".area_feed", kinds=SEGMENTS[kind], code=area.code, fmt=fmt)
            + (f"?{query}" if query else ""),
            301,
        )
    resp = make_response(feed.body)
    etag = feed.etag
    if _browser_wants_page(feed.content_type):
        # Same bytes, a type browsers display: RSS/Atom come with our XSL stylesheet.
        resp.headers["Content-Type"] = BROWSER_TYPES[fmt]
        etag += "-page"  # a different representation needs a different validator
    else:
        resp.headers["Content-Type"] = feed.content_type
    resp.vary.add("Accept")
    resp.set_etag(etag)
    resp.last_modified = feed.last_modified.replace(tzinfo=None)
    resp.cache_control.public = True
    resp.cache_control.max_age = settings().feed_cache_seconds
    links = [f'<{feeds.feed_url(settings(), area, fmt, filt)}>; rel="self"']
    if settings().hub_url:
        links.insert(0, f'<{settings().hub_url}>; rel="hub"')
    resp.headers["Link"] = ", ".join(links)
    return resp.make_conditional(request)


BROWSER_TYPES = {
    "rss": "application/xml; charset=utf-8",
    "atom": "application/xml; charset=utf-8",
    "json": "application/json; charset=utf-8",
}


def _browser_wants_page(feed_type: str) -> bool:
    """True when the Accept header ranks text/html above the feed's own type (a browser)."""
    accept = request.accept_mimetypes
    mimetype = feed_type.split(";")[0]
    return accept.quality("text/html") > max(
        accept.quality(mimetype), accept.quality("application/xml")
    )


def feed_cache() -> FeedCache:
    return current_app.extensions["beatfeeds.feed_cache"]


@bp.get("/feeds.opml")
def opml_all():
    return _opml(publishing.opml(store(), settings(), now=utcnow()), "beats")


@bp.get("/precincts/<code>/feeds.opml")
def opml_precinct(code):
    area = publishing.resolve_area(store(), "precinct", code)
    if area.code != code:
        return redirect(url_for(".opml_precinct", code=area.code), 301)
    return _opml(
        publishing.opml(store(), settings(), now=utcnow(), precinct=code),
        f"precinct-{area.code}-beats",
    )


def _opml(doc: RenderedFeed, name: str):
    resp = make_response(doc.body)
    resp.headers["Content-Type"] = doc.content_type
    resp.headers["Content-Disposition"] = f'inline; filename="{name}.opml"'
    resp.cache_control.public = True
    resp.cache_control.max_age = settings().feed_cache_seconds
    resp.set_etag(doc.etag)
    resp.last_modified = doc.last_modified
    return resp.make_conditional(request)


@bp.get("/beats.geojson")
def beats_geojson():
    resp = make_response(json.dumps(publishing.beats_geojson(store(), settings())))
    resp.headers["Content-Type"] = "application/geo+json"
    resp.cache_control.public = True
    resp.cache_control.max_age = 300
    resp.add_etag()
    return resp.make_conditional(request)


@bp.get("/find")
def find():
    """Search by beat code; a plain form, so it works without JavaScript."""
    code = request.args.get("beat", "")
    try:
        found = publishing.find_beat(store(), code)
    except AreaNotFound:
        directory = publishing.directory(store(), now=utcnow())
        message = (
            f"There is no beat {code.strip()!r} in the current beat map."
            if code.strip()
            else "Type a beat code, for example K3."
        )
        return render_template(
            "index.html", directory=directory, find_error=message, find_value=code
        ), 404
    return redirect(url_for(".area_page", kinds="beats", code=found))
