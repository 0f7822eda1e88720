"""`beatfeeds users`: staff accounts."""

from __future__ import annotations

import sys

import click

from beatfeeds.cli.context import Context, domain_errors, pass_ctx, require_schema
from beatfeeds.core.clock import utcnow
from beatfeeds.services import accounts


@click.group("users")
def group():
    """Staff accounts."""


@group.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(accounts.ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
@domain_errors
def users_add(ctx: Context, email, role, password_stdin):
    """Create a staff account."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    require_schema(ctx.store)
    accounts.add_user(ctx.store, email, role, password, actor="cli", now=utcnow())
    click.echo(f"added {accounts.normalise_email(email)} ({role})")


@group.command("disable")
@click.argument("email")
@pass_ctx
@domain_errors
def users_disable(ctx: Context, email):
    """Disable a staff account (it is signed out at its next request)."""
    accounts.set_disabled(ctx.store, email, True, actor="cli", now=utcnow())
    click.echo(f"disabled {email}")


@group.command("enable")
@click.argument("email")
@pass_ctx
@domain_errors
def users_enable(ctx: Context, email):
    """Enable a disabled staff account."""
    accounts.set_disabled(ctx.store, email, False, actor="cli", now=utcnow())
    click.echo(f"enabled {email}")
