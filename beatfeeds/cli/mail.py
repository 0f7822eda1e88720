"""`beatfeeds mail`: the switch that pauses all residents' email alerts."""

from __future__ import annotations

import click

from beatfeeds.cli.context import Context, domain_errors, pass_ctx, require_schema
from beatfeeds.core.clock import utcnow


@click.group("mail")
def group():
    """Residents' email alerts: the switch that pauses all mail (also on /alerts/admin)."""


@group.command("pause")
@pass_ctx
@domain_errors
def mail_pause(ctx: Context):
    """Pause all mail: alerts keep being queued and digests wait; nothing is lost."""
    from beatfeeds.services import alerts

    require_schema(ctx.store)
    alerts.set_paused(ctx.store, True, actor="cli", now=utcnow())
    click.echo("all mail paused: alerts are queued and digests wait until `beatfeeds mail resume`")


@group.command("resume")
@pass_ctx
@domain_errors
def mail_resume(ctx: Context):
    """Send mail again, starting with what waited."""
    from beatfeeds.services import alerts

    require_schema(ctx.store)
    alerts.set_paused(ctx.store, False, actor="cli", now=utcnow())
    click.echo("mail resumed: the next send-alerts run sends what waited")


@group.command("status")
@pass_ctx
@domain_errors
def mail_status(ctx: Context):
    """Whether mail is paused, by whom and since when."""
    from beatfeeds.services import alerts

    require_schema(ctx.store)
    state = alerts.paused_state(ctx.store)
    if state is None:
        click.echo("mail is being sent")
        return
    click.echo(f"all mail paused by {state['by']} at {state['at']}")
