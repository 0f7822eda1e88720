"""What every request must satisfy before a view (or CSRF checking) reads it: bounded paths,
query strings, bodies and fields; and the one function that decides where a user-given
return address may send the browser."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from flask import abort, current_app, request, session
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, RequestRedirect

from beatfeeds.core import limits
from beatfeeds.core.errors import InvalidInput

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings

# File uploads may use BEATFEEDS_MAX_UPLOAD_MB; these staff views take large bodies that are
# not files (a drawn announcement area, a beat map edit) from a signed-in session only.
UPLOAD_ENDPOINTS = frozenset({"records.upload", "admin_beats.upload"})
LARGE_STAFF_ENDPOINTS = frozenset(
    {"admin_beats.edit", "announcements.create", "announcements.edit"}
)
LARGE_STAFF_BODY = 4 * 1024 * 1024
FORM_MARGIN = 64 * 1024  # an upload's other fields and multipart framing
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BROWSER_STRIPS = re.compile(r"[\t\r\n]")


def upload_body_limit(settings: Settings) -> int:
    """Largest request body an upload view accepts: the upload limit plus its form fields."""
    return settings.max_upload_mb * 1024 * 1024 + FORM_MARGIN


def body_limit(endpoint: str | None, settings: Settings) -> int:
    """The largest body this request may have, decided from its route alone (and, for
    large staff bodies, whether a session cookie names a user) before any of it is read."""
    if endpoint in UPLOAD_ENDPOINTS:
        return upload_body_limit(settings)
    if endpoint in LARGE_STAFF_ENDPOINTS and session.get("user_id") is not None:
        return LARGE_STAFF_BODY
    return limits.SMALL_BODY


def guard_request() -> None:
    """Refuse, before anything reads them, requests whose path, query string, body or fields
    are larger than this site accepts (414, 413 or 400)."""
    settings = current_app.extensions["beatfeeds.settings"]
    if len(request.path) > limits.PATH or len(request.query_string) > limits.QUERY_STRING:
        abort(414)
    limit = body_limit(request.endpoint, settings)
    if request.content_length is not None and request.content_length > limit:
        abort(413)
    request.max_content_length = limit  # also bounds a chunked body without Content-Length
    _check_fields(request.args.lists(), in_query=True)
    if request.method in ("POST", "PUT", "PATCH") and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        _check_fields(request.form.lists(), in_query=False)
        for name, files in request.files.lists():
            for f in files:
                limits.bounded(f.filename, f"The name of the file in “{_label(name)}”", limits.NAME)


def _check_fields(fields, *, in_query: bool) -> None:
    for name, values in fields:
        limits.bounded(name, "A field name", limits.CODE * 4)
        if len(values) > limits.LIST_ITEMS:
            raise InvalidInput(
                f"“{_label(name)}” is repeated too often: at most "
                f"{limits.LIST_ITEMS} values are accepted."
            )
        limit = limits.field_limit(name, in_query=in_query)
        for v in values:
            limits.bounded(v, f"“{_label(name)}”", limit)


def _label(name: str) -> str:
    return _CONTROL.sub("?", name)[: limits.CODE]


def safe_next(target: str | None, fallback: str) -> str:
    """`target` as a normalised path on this site when it is one a GET can reach; `fallback`
    for anything else. Judged as a browser reads it: browsers drop TAB, CR and LF anywhere
    in a URL and treat a backslash as a slash, so `/\\t/evil` and `/\\evil` mean `//evil`."""
    if not target or len(target) > limits.NEXT:
        return fallback
    seen = _BROWSER_STRIPS.sub("", target).replace("\\", "/")
    if _CONTROL.search(seen) or not seen.startswith("/") or seen.startswith("//"):
        return fallback
    parts = urlsplit(seen)
    path = unquote(parts.path)
    if (
        parts.scheme
        or parts.netloc
        or path.startswith("//")
        or "\\" in path
        or _CONTROL.search(path)
        or not _routable(path)
    ):
        return fallback
    query = quote(parts.query, safe="=&+%/:@!$'()*,;?-._~")
    return quote(path, safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")


def _routable(path: str) -> bool:
    adapter = current_app.url_map.bind("localhost")
    try:
        adapter.match(path, method="GET")
    except RequestRedirect:
        return True  # e.g. a missing trailing slash: the app redirects within itself
    except HTTPException:
        return False
    return True


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` matching only what every database's integer id columns hold (PostgreSQL's
    `integer`): `/…/99999999999999999999` is a 404, not an overflow in the driver (a 500)."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, with a body nested too deeply to decode treated as invalid JSON (a 400)
    rather than a RecursionError (a 500)."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
