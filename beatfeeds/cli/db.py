"""`beatfeeds db`: the database schema."""

from __future__ import annotations

import click

from beatfeeds import jobs
from beatfeeds.cli.context import Context, domain_errors, pass_ctx
from beatfeeds.core.clock import utcnow


@click.group("db")
def group():
    """Database schema."""


@group.command("upgrade")
@pass_ctx
@domain_errors
def db_upgrade(ctx: Context):
    """Run migrations to the newest schema, then apply the publication policy to stored
    incidents if it changed (safe to repeat)."""
    before, after = ctx.store.upgrade()
    click.echo(f"database at {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    # A new version of the rules must reach stored incidents before feeds are served again,
    # not only when a scheduler next runs apply-publication-policy.
    summary = jobs.apply_publication_policy(ctx.store, ctx.settings, utcnow())
    if summary["policy"] != "unchanged":
        click.echo(
            f"publication policy {summary['policy']}: {summary['changed']} stored incidents changed"
        )
