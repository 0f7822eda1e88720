"""`beatfeeds settings`: the effective settings and where each came from."""

from __future__ import annotations

import click

from beatfeeds.cli.context import Context, domain_errors, pass_ctx


@click.command("settings")
@pass_ctx
@domain_errors
def settings_cmd(ctx: Context):
    """Print the effective settings (secrets masked) and where each came from."""
    for name, value, origin in ctx.settings.masked():
        click.echo(f"BEATFEEDS_{name.upper()}={value}\t# {origin}")
