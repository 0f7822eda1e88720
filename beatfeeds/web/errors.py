"""Error pages: HTML for people, JSON under /api/."""

from __future__ import annotations

import logging

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from beatfeeds.core import limits
from beatfeeds.core.errors import BeatfeedsError, DatabaseUnavailable
from beatfeeds.storage.engine import unavailable_reason

log = logging.getLogger(__name__)


def _respond(status: int, message: str, headers: dict | None = None):
    if request.path.startswith("/api/"):
        return {"error": message, "status": status}, status, headers or {}
    return render_template("error.html", status=status, message=message), status, headers or {}


def register(app) -> None:
    @app.errorhandler(BeatfeedsError)
    def domain_error(exc: BeatfeedsError):
        if exc.http_status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        retry = getattr(exc, "retry_after", None)
        return _respond(
            exc.http_status, exc.message, {"Retry-After": str(retry)} if retry else None
        )

    @app.errorhandler(DBAPIError)
    def database_error(exc: DBAPIError):
        reason = unavailable_reason(exc)
        if reason is None:
            return unexpected(exc)
        # Not our bug and not the visitor's: say so, and when to come back.
        log.warning("database %s on %s %s", reason, request.method, limits.clip(request.path))
        return domain_error(DatabaseUnavailable())

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return _respond(
            400, "The form expired or was not sent from this site. Reload the page and try again."
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {
            404: "There is no page at this address.",
            413: "The request is larger than this site accepts.",
            414: "The address is longer than this site accepts.",
        }
        return _respond(exc.code or 500, messages.get(exc.code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, limits.clip(request.path))
        return _respond(500, "Something went wrong on our side. It has been logged.")
