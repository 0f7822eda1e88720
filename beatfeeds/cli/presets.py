"""`beatfeeds presets`: column mappings saved under a name."""

from __future__ import annotations

from pathlib import Path

import click

from beatfeeds.cli.context import Context, domain_errors, pass_ctx, require_schema
from beatfeeds.core.clock import utcnow
from beatfeeds.ingest.mapping import parse_map_options
from beatfeeds.ingest.reading import read_header
from beatfeeds.services import presets


@click.group("presets")
def group():
    """Column mappings records staff saved under a name."""


@group.command("list")
@pass_ctx
@domain_errors
def presets_list(ctx: Context):
    """One saved preset per line: name, dataset, columns, saved by and when, used by sources."""
    require_schema(ctx.store)
    for u in presets.list_presets(ctx.store):
        p = u.preset
        cols = ",".join(f"{f}={c}" for f, c in sorted(p.columns.items()))
        saved = f"{p.created_at:%Y-%m-%d %H:%M} UTC" if p.created_at else "-"
        click.echo(
            f"{p.name}\t{p.source}\t{cols}\t{p.created_by or '-'}\t{saved}\t"
            f"{','.join(u.sources) or '-'}"
        )


@group.command("delete")
@click.argument("name")
@pass_ctx
@domain_errors
def presets_delete(ctx: Context, name):
    """Delete a saved preset (refused while a scheduled source uses it)."""
    require_schema(ctx.store)
    presets.delete_preset(ctx.store, name, actor="cli", now=utcnow())
    click.echo(f"deleted preset {name}")


@group.command("save")
@click.argument("name")
@click.option(
    "--map",
    "maps",
    multiple=True,
    required=True,
    metavar="FIELD=COLUMN",
    help="Map one field to a column (repeat).",
)
@click.option("--source", help="Dataset name the preset imports as (default: NAME).")
@click.option(
    "--file",
    "sample",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file in this layout: every mapped column must be in its header.",
)
@pass_ctx
@domain_errors
def presets_save(ctx: Context, name, maps, source, sample):
    """Save a column mapping under NAME: later files with these columns are detected as it,
    by `incidents import` and by web uploads alike (audited as the CLI)."""
    require_schema(ctx.store)
    header = read_header(sample) if sample else None
    p = presets.save_preset(
        ctx.store,
        name,
        source or name,
        parse_map_options(maps),
        actor="cli",
        now=utcnow(),
        header=header,
    )
    cols = ",".join(f"{f}={c}" for f, c in sorted(p.columns.items()))
    click.echo(f"saved preset {p.name} (source {p.source}): {cols}")
