"""`beatfeeds outbound`: accounts that mirror an area's entries on other services."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from beatfeeds.cli.context import Context, domain_errors, pass_ctx, require_schema
from beatfeeds.core.clock import utcnow
from beatfeeds.delivery.posting.base import CREDENTIAL_FIELDS, SERVICES
from beatfeeds.services import outbound_accounts


@click.group("outbound")
def group():
    """Accounts on Mastodon, Bluesky, X or a webhook that mirror an area's entries."""


@group.command("list")
@pass_ctx
@domain_errors
def outbound_list(ctx: Context):
    """One account per line: id, service, area (as `add` takes it), where it posts, active or
    paused, outbox counts (pending includes sending), label. Credentials are never shown."""
    require_schema(ctx.store)
    for s in outbound_accounts.list_accounts(ctx.store):
        a, c = s.account, s.counts
        click.echo(
            f"{a.id}\t{a.service}\t{s.area}\t{s.target}\t{a.status}\t"
            f"pending {c['pending']} sent {c['sent']} failed {c['failed']} "
            f"unknown {c['unknown']}\t{a.label}"
        )


# credential name -> the `outbound add` option that supplies it (secrets only from files)
def _credential_param(name: str, secret: bool) -> str:
    return f"{name}_file" if secret else name


def _read_secret(path: str, option: str) -> str:
    """A secret from a file, or from standard input for `-`; one trailing newline dropped."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint=option) from exc
    return text.strip()


@group.command("add")
@click.argument("service", type=click.Choice(list(SERVICES)))
@click.argument("area", metavar="AREA")
@click.option(
    "--url",
    "--instance",
    "--server",
    "endpoint",
    metavar="URL",
    help="Webhook URL (--url), Mastodon instance (--instance), or Bluesky PDS / X API "
    "server (--server; defaults https://bsky.social, https://api.twitter.com).",
)
@click.option("--identifier", help="Bluesky handle or DID.")
@click.option(
    "--token-file",
    "--access-token-file",
    "access_token_file",
    metavar="PATH",
    help="Mastodon access token (write:statuses), or X access token.",
)
@click.option("--app-password-file", metavar="PATH", help="Bluesky app password.")
@click.option("--secret-file", metavar="PATH", help="Webhook signing secret.")
@click.option("--consumer-key-file", metavar="PATH", help="X API key.")
@click.option("--consumer-secret-file", metavar="PATH", help="X API key secret.")
@click.option("--access-token-secret-file", metavar="PATH", help="X access token secret.")
@click.option("--label", default="", help="Name shown to admins (default: service and area).")
@click.option("--handle", default="", help="The account's handle, for your reference.")
@click.option("--template", default="", help="Post text template (default: title, body, link).")
@click.option(
    "--profile-template",
    default="",
    help="Profile text template; must carry the not-monitored / call 911 notice.",
)
@pass_ctx
@domain_errors
def outbound_add(
    ctx: Context, service, area, endpoint, label, handle, template, profile_template, **given
):
    """Connect AREA (city, precinct:W, sector:K or beat:K3) to an account and print its id.

    Secrets are read only from files, or from standard input with PATH `-`, never from the
    command line. They are stored encrypted and never shown again."""
    fields = {
        _credential_param(name, secret): (name, secret)
        for name, _, secret in CREDENTIAL_FIELDS[service]
    }
    unused = [k for k, v in given.items() if v is not None and k not in fields]
    if unused:
        raise click.UsageError(
            ", ".join("--" + k.replace("_", "-") for k in unused)
            + f" is not used by {SERVICES[service]}."
        )
    missing = ["--" + k.replace("_", "-") for k in fields if given.get(k) is None]
    if missing:
        raise click.UsageError(f"{SERVICES[service]} needs {', '.join(missing)}.")
    if sum(1 for v in given.values() if v == "-") > 1:
        raise click.UsageError("Only one secret can come from standard input (-).")
    credentials = {}
    for param, (name, secret) in fields.items():
        value = given.get(param)
        if value is not None:
            option = "--" + param.replace("_", "-")
            credentials[name] = _read_secret(value, option) if secret else value
    kind, code = outbound_accounts.parse_area(area)
    require_schema(ctx.store)
    account_id = outbound_accounts.add_account(
        ctx.store,
        ctx.settings,
        area_kind=kind,
        area_code=code,
        service=service,
        label=label,
        endpoint=endpoint or "",
        credentials=credentials,
        template=template,
        profile_template=profile_template,
        handle=handle,
        actor="cli",
        now=utcnow(),
    )
    a = ctx.store.outbox.outbound_account(account_id)
    click.echo(
        f"added outbound account {a.id}: {a.label} ({outbound_accounts.public_target(a)}); "
        "its credentials are stored encrypted and will not be shown again"
    )


@group.command("pause")
@click.argument("account_id", metavar="ID", type=int)
@pass_ctx
@domain_errors
def outbound_pause(ctx: Context, account_id):
    """Hold an account's posts (they wait in the outbox until it is resumed)."""
    outbound_accounts.set_account_paused(ctx.store, account_id, True, actor="cli", now=utcnow())
    click.echo(f"paused outbound account {account_id}: nothing is sent until it is resumed")


@group.command("resume")
@click.argument("account_id", metavar="ID", type=int)
@pass_ctx
@domain_errors
def outbound_resume(ctx: Context, account_id):
    """Send a paused account's posts again, starting with those that waited."""
    outbound_accounts.set_account_paused(ctx.store, account_id, False, actor="cli", now=utcnow())
    click.echo(f"resumed outbound account {account_id}")


@group.command("remove")
@click.argument("account_id", metavar="ID", type=int)
@pass_ctx
@domain_errors
def outbound_remove(ctx: Context, account_id):
    """Forget an account, its credentials and its outbox (posts already made stay up)."""
    outbound_accounts.remove_account(ctx.store, account_id, actor="cli", now=utcnow())
    click.echo(f"removed outbound account {account_id} with its credentials and outbox")


@group.command("test")
@click.argument("account_id", metavar="ID", type=int)
@pass_ctx
@domain_errors
def outbound_test(ctx: Context, account_id):
    """Send a test post now (nothing is sent under BEATFEEDS_DRY_RUN); exit 1 if it failed."""
    result = outbound_accounts.test_account(
        ctx.store, ctx.settings, account_id, actor="cli", now=utcnow()
    )
    if result.startswith("failed"):
        click.echo(f"test post for account {account_id}: {result}", err=True)
        sys.exit(1)
    click.echo(f"test post for account {account_id}: {result}")
