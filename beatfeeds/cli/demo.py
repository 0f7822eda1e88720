"""`beatfeeds demo`: demo data, then the site and the scheduler in one process."""

from __future__ import annotations

import click

from beatfeeds.cli.context import domain_errors
from beatfeeds.cli.serve import run_waitress
from beatfeeds.core.clock import utcnow
from beatfeeds.core.settings import load_settings
from beatfeeds.storage import SQLStore


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Set up the demo data, then exit.")
@domain_errors
def demo(host, port, no_serve):
    """Create the database, load the default beats and sample incidents, then serve."""
    from beatfeeds.app import create_app
    from beatfeeds.scheduler import build_scheduler
    from beatfeeds.services import demo as demo_mod

    settings = load_settings()
    store = SQLStore.from_url(settings.database_url)
    notice = demo_mod.setup_demo(store, settings, now=utcnow(), echo=click.echo)
    if no_serve:
        return
    overrides = {"demo_notice": notice, "store": store}
    if settings.origin("dry_run") == "default":  # the demo never posts to real accounts
        overrides["dry_run"] = True
    if settings.origin("base_url") == "default":
        overrides["base_url"] = f"http://{host}:{port}"  # links must point where we serve
    app = create_app(overrides)
    sched = build_scheduler(store, app.extensions["beatfeeds.settings"], background=True)
    sched.start()
    try:
        run_waitress(app, host, port, threads=8)
    finally:
        sched.shutdown(wait=False)
