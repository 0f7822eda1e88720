"""Security headers on every response: what a page may load and run, who may frame it, what
a Referer carries, and that nothing setting a cookie is cached as public."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response
from flask.globals import request_ctx

from beatfeeds.core.settings import Settings


def origin(url: str) -> str:
    """The origin a URL or URL template loads from ("" for a path on this site or nothing).

    Tile templates name subdomains as `{s}`: `https://{s}.tile.example.org/{z}/{x}/{y}.png`
    allows `https://*.tile.example.org`.
    """
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    host = parts.netloc.rsplit("@", 1)[-1]
    if "{" in host:
        labels = host.split(".")
        host = ".".join("*" if "{" in label else label for label in labels)
    return f"{parts.scheme}://{host}"


def content_security_policy(settings: Settings) -> str:
    """Scripts only from this site (no inline script, no eval); images from here, the tile
    server and the department logo; the address search may ask the configured geocoder."""
    images = " ".join(
        filter(
            None, ("'self' data:", origin(settings.tile_url), origin(settings.department_logo_url))
        )
    )
    connect = " ".join(filter(None, ("'self'", origin(settings.geocoder_url))))
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        # Inline styles stay allowed: the page's accent colour is a setting written into the
        # page, and the feed's XSL view styles itself; neither can run code.
        "style-src": "'self' 'unsafe-inline'",
        "img-src": images,
        "connect-src": connect,
        "font-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{k} {v}" for k, v in directives.items())


def install(app: Flask, settings: Settings) -> None:
    """Add the headers to every response of `app`."""
    policy = content_security_policy(settings)

    @app.after_request
    def security_headers(response: Response) -> Response:
        h = response.headers
        h.setdefault("Content-Security-Policy", policy)
        h.setdefault("X-Content-Type-Options", "nosniff")
        # Tile servers ask for the site's origin; nothing more (no path, no query) leaves.
        h.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        h.setdefault("X-Frame-Options", "DENY")
        if response.cache_control.public and ("Set-Cookie" in h or _session_cookie_pending(app)):
            # A shared cache must never hand one visitor's cookie to another.
            response.cache_control.public = False
            response.cache_control.private = True
        return response


def _session_cookie_pending(app: Flask) -> bool:
    """Whether Flask will write the session cookie after this hook (it saves the session
    after every after_request function has run)."""
    # The session is read without the `session` proxy: using the proxy marks it accessed,
    # and Flask then adds `Vary: Cookie` to every response, feeds included.
    current = getattr(request_ctx._get_current_object(), "_session", None)
    if current is None:
        return False
    if current.modified:
        return True  # written, or deleted when emptied: a Set-Cookie either way
    # A signed-in session is refreshed on every request, even one that never used it.
    return bool(current) and app.session_interface.should_set_cookie(app, current)
