"""`beatfeeds serve`: the site under waitress."""

from __future__ import annotations

import click

from beatfeeds.cli.context import Context, domain_errors, pass_ctx
from beatfeeds.core.settings import Settings
from beatfeeds.services.setup import require_profile


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@pass_ctx
@domain_errors
def serve(ctx: Context, host, port, threads):
    """Serve the site with waitress (production WSGI server).

    Refused on an instance that `beatfeeds demo` did not set up while it still has the demo's
    department name or no time zone of its own (`beatfeeds setup` sets them)."""
    from beatfeeds.app import create_app

    require_profile(ctx.store, ctx.settings)
    run_waitress(create_app(), host, port, threads)


def waitress_options(settings: Settings) -> dict:
    """waitress's limits for this site: no request body larger than the largest upload plus
    its form fields, refused (413) as soon as its Content-Length is read, before the body.
    (Smaller limits per route are the app's: web.guards.)"""
    from beatfeeds.web.guards import upload_body_limit

    return {"ident": "beatfeeds", "max_request_body_size": upload_body_limit(settings)}


def run_waitress(app, host: str, port: int, threads: int) -> None:
    import waitress

    click.echo(f"serving on http://{host}:{port}")
    settings = app.extensions["beatfeeds.settings"]
    waitress.serve(app, host=host, port=port, threads=threads, **waitress_options(settings))
