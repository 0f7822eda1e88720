"""Error pages: HTML for people, JSON under /api/."""

from __future__ import annotations

import logging

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..errors import BeatfeedsError

log = logging.getLogger(__name__)


def _respond(status: int, message: str):
    if request.path.startswith("/api/"):
        return {"error": message, "status": status}, status
    return render_template("error.html", status=status, message=message), status


def register(app) -> None:
    @app.errorhandler(BeatfeedsError)
    def domain_error(exc: BeatfeedsError):
        if exc.http_status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        return _respond(exc.http_status, exc.message)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return _respond(400, "The form expired or was not sent from this site. Reload the "
                             "page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {404: "There is no page at this address.",
                    413: "The upload is larger than this site accepts."}
        return _respond(exc.code or 500, messages.get(exc.code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500, "Something went wrong on our side. It has been logged.")
