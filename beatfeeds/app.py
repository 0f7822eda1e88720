"""The Flask application factory."""

from __future__ import annotations

from datetime import UTC, timedelta

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from beatfeeds.core.areas import area_label, area_path
from beatfeeds.core.logsetup import configure_logging, log_startup_warnings
from beatfeeds.core.resources import resource_dir
from beatfeeds.core.settings import ensure_secret_key, load_settings
from beatfeeds.core.text import local_time_text
from beatfeeds.publish.cache import FeedCache
from beatfeeds.publish.privacy import category_label
from beatfeeds.storage import SQLStore
from beatfeeds.storage.engine import write_wait
from beatfeeds.web import guards


def create_app(config: dict | None = None) -> Flask:
    """Build the app: settings, store, blueprints, error handlers."""
    config = dict(config or {})
    settings = load_settings(config)
    app = Flask(
        __name__,
        template_folder=str(resource_dir("templates")),
        instance_path=settings.instance_path,
        static_folder=None,
    )
    app.json = guards.JSONProvider(app)
    app.url_map.converters["int"] = guards.BoundedIntConverter  # before any route is added
    app.config.update(
        SECRET_KEY=ensure_secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_lifetime),
        # The largest body any route accepts; web.guards lowers it per route before reading.
        MAX_CONTENT_LENGTH=guards.upload_body_limit(settings),
        WTF_CSRF_TIME_LIMIT=None,  # tokens live as long as the session
    )
    app.config.update(
        {k: v for k, v in config.items() if k.isupper() and not k.startswith("BEATFEEDS_")}
    )
    configure_logging(settings.log_level)
    log_startup_warnings(settings)
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    app.wsgi_app = ShortWrites(app.wsgi_app, settings.request_write_wait)
    app.extensions["beatfeeds.settings"] = settings
    app.extensions["beatfeeds.feed_cache"] = FeedCache()
    app.extensions["beatfeeds.store"] = config.get("store") or SQLStore.from_url(
        settings.database_url
    )
    csrf = CSRFProtect(app)

    from beatfeeds.web import admin_outbound  # noqa: I001 (kept apart: one line per feature)
    from beatfeeds.web import announcements as staff_announcements
    from beatfeeds.web import admin_beats, beatsets  # noqa: I001
    from beatfeeds.web import api, assets, auth, errors, headers, public, records, staff
    from beatfeeds.web import alerts as email_alerts  # noqa: I001

    csrf.exempt(api.bp)  # stateless JSON lookups; nothing changes on the server
    # Residents' forms set no cookie, so no session-bound token: they check the Origin
    # instead; the RFC 8058 one-click POST has neither, and its sealed link decides.
    for name in (*email_alerts.RESIDENT_POSTS, "unsubscribe"):
        csrf.exempt(getattr(email_alerts, name))

    app.register_blueprint(assets.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(admin_beats.bp)
    app.register_blueprint(beatsets.bp)
    app.register_blueprint(admin_outbound.bp)
    app.register_blueprint(staff_announcements.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(email_alerts.bp)
    errors.register(app)
    headers.install(app, settings)
    # First of all: before CSRF checking (or anything) parses a body, refuse oversized ones.
    app.before_request_funcs.setdefault(None, []).insert(0, guards.guard_request)
    app.jinja_env.globals["settings"] = settings
    app.jinja_env.globals["area_path"] = area_path
    app.jinja_env.globals.update(email_alerts.template_globals(settings))
    app.jinja_env.filters["category_label"] = category_label
    app.jinja_env.filters["precinct_label"] = lambda code: area_label("precinct", code)
    app.jinja_env.filters["localtime"] = lambda d: format_local(d, settings.tz)
    return app


class ShortWrites:
    """WSGI middleware: writes made while answering a request wait at most `seconds` for
    another writer's lock, then fail as a locked database (answered 503 with Retry-After by
    web.errors), so an import cannot tie up the server's threads one visitor at a time."""

    def __init__(self, wsgi_app, seconds: float):
        self.wsgi_app = wsgi_app
        self.seconds = seconds

    def __call__(self, environ, start_response):
        with write_wait(self.seconds):
            return self.wsgi_app(environ, start_response)


def format_local(d, tz) -> str:
    """A naive-UTC datetime as local time for pages: `3/25/2016 8:09 PM PDT`."""
    zone = d.replace(tzinfo=UTC).astimezone(tz).tzname()
    return f"{local_time_text(d, tz)} {zone}"
