"""`beatfeeds sources`: folders and URLs imported on a schedule."""

from __future__ import annotations

import sys

import click

from beatfeeds.cli.context import Context, domain_errors, pass_ctx, require_schema
from beatfeeds.core.clock import utcnow
from beatfeeds.services import sources


@click.group("sources")
def group():
    """Watched folders and URLs imported on a schedule."""


@group.command("add")
@click.argument("name")
@click.option("--folder", type=click.Path(file_okay=False), help="A folder to watch.")
@click.option("--url", help="An http(s) URL to fetch, for example a Socrata CSV export.")
@click.option("--preset", help="Column layout (default: detected from each file).")
@click.option("--interval", default=15, show_default=True, type=int, help="Minutes between polls.")
@pass_ctx
@domain_errors
def sources_add(ctx: Context, name, folder, url, preset, interval):
    """Poll a folder or URL every INTERVAL minutes (run by `beatfeeds scheduler`)."""
    require_schema(ctx.store)
    s = sources.add_source(
        ctx.store,
        name,
        folder=folder,
        url=url,
        preset=preset,
        interval_minutes=interval,
        actor="cli",
        now=utcnow(),
    )
    click.echo(f"added source {s.name}: {s.kind} {s.location}, every {s.interval_minutes} min")


@group.command("list")
@pass_ctx
@domain_errors
def sources_list(ctx: Context):
    """One source per line: name, kind, location, preset, interval, last poll and status."""
    for s in ctx.store.uploads.list_sources():
        last = f"{s.last_polled_at:%Y-%m-%d %H:%M} UTC" if s.last_polled_at else "never"
        status = (s.last_status or "-") + (f": {s.last_error}" if s.last_error else "")
        click.echo(
            f"{s.name}\t{s.kind}\t{s.location}\t{s.preset or 'detect'}\t"
            f"every {s.interval_minutes} min\t{last}\t{status}"
        )


@group.command("remove")
@click.argument("name")
@pass_ctx
@domain_errors
def sources_remove(ctx: Context, name):
    """Stop polling a source (incidents it imported stay)."""
    sources.remove_source(ctx.store, name, actor="cli", now=utcnow())
    click.echo(f"removed source {name}")


@group.command("poll")
@click.argument("names", nargs=-1)
@pass_ctx
@domain_errors
def sources_poll(ctx: Context, names):
    """Poll the named sources (default: all) now, whatever their interval."""
    require_schema(ctx.store)
    summary = sources.poll_sources(
        ctx.store, ctx.settings, utcnow(), names=list(names) or None, force=True
    )
    click.echo(" ".join(f"{k} {v}" for k, v in summary.items()))
    sys.exit(1 if summary["failed"] else 0)
