"""`beatfeeds jobs` and `beatfeeds scheduler`: scheduled jobs, once or on a schedule."""

from __future__ import annotations

import click

from beatfeeds import jobs
from beatfeeds.cli.context import Context, domain_errors, pass_ctx, require_schema
from beatfeeds.core.clock import utcnow
from beatfeeds.core.logsetup import configure_logging
from beatfeeds.services.setup import require_profile


@click.group("jobs")
def group():
    """Scheduled jobs."""


@group.command("list")
def jobs_list():
    """Every job the scheduler runs, with its interval."""
    for job in jobs.JOBS.values():
        click.echo(f"{job.name}\tevery {job.interval_seconds}s\t{job.help}")


@group.command("run")
@click.argument("name")
@pass_ctx
@domain_errors
def jobs_run(ctx: Context, name):
    """Run one job once, now."""
    summary = jobs.run_job(name, ctx.store, ctx.settings, utcnow())
    click.echo(f"{name}: {summary}")


@click.command()
@pass_ctx
@domain_errors
def scheduler(ctx: Context):
    """Run the scheduler in this process (until interrupted); refused, as `serve` is, on a
    real instance still under the demo's department name or with no time zone set."""
    from beatfeeds.scheduler import build_scheduler

    configure_logging(ctx.settings.log_level)
    require_schema(ctx.store)
    require_profile(ctx.store, ctx.settings)
    click.echo(f"scheduler running {len(jobs.JOBS)} jobs; Ctrl-C to stop")
    build_scheduler(ctx.store, ctx.settings, background=False).start()
