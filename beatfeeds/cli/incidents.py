"""`beatfeeds incidents`: import incident files, review, release and retract entries."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from beatfeeds.cli.context import Context, domain_errors, pass_ctx, require_schema
from beatfeeds.cli.progress import row_progress
from beatfeeds.core.clock import utcnow
from beatfeeds.core.errors import BeatfeedsError, InvalidInput, UnusableFile
from beatfeeds.ingest.mapping import parse_map_options
from beatfeeds.ingest.reading import read_header
from beatfeeds.services import imports, presets, records, review


@click.group("incidents")
def group():
    """Incident files."""


@group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--preset",
    help="Column layout: spd-911, spd-crime, spd-call-data, seattle-fire-911, "
    "or a preset saved on /records/imports.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Map one field to a column (repeat); needs --source.",
)
@click.option("--source", help="Dataset name; incident identity is (source, external id).")
@click.option("--dry-run", is_flag=True, help="Validate and count, change nothing.")
@click.option(
    "--save-preset",
    metavar="NAME",
    help="Save the --map columns and --source as a preset named NAME after the import "
    "(with --dry-run, only check that they could be saved).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    help="Where to write rejected rows (default: the instance folder).",
)
@pass_ctx
def incidents_import(ctx: Context, file, preset, maps, source, dry_run, save_preset, report):
    """Import an incident CSV: exit 0 if every row was usable, 1 if some were rejected,
    2 if the file cannot be imported.

    Without --preset or --map the layout is detected from the header as a web upload's is:
    the built-in presets, then the presets saved with `presets save` or on /records/imports."""
    try:
        options = imports.ImportOptions(
            preset=preset,
            maps=parse_map_options(maps),
            source=source,
            dry_run=dry_run,
            report_path=report,
        )
        require_schema(ctx.store)
        if save_preset:  # checked before the import, so that a bad name costs nothing
            if not options.maps:
                raise InvalidInput("--save-preset saves the --map columns: give them with --map.")
            presets.check_new_preset(
                ctx.store, save_preset, source, options.maps, read_header(file)
            )
        options, detected = records.options_for_file(ctx.store, file, options)
        progress = _progress_printer(file)
        result = imports.import_file(
            ctx.store, file, options, ctx.settings, now=utcnow(), progress=progress
        )
        saved = None
        if save_preset and not dry_run:
            saved = presets.save_preset(
                ctx.store, save_preset, source, options.maps, actor="cli", now=utcnow()
            )
    except UnusableFile as exc:
        click.echo(f"error: {file.name}: {exc.message}", err=True)
        sys.exit(2)
    except BeatfeedsError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    if progress:
        progress(None)
    detected = f" (detected preset {detected})" if detected else ""
    click.echo(f"{'dry run: ' if dry_run else ''}{file.name}: source {result.source}{detected}")
    click.echo(result.line())
    if saved is not None:
        click.echo(f"saved preset {saved.name} (source {saved.source})")
    elif save_preset:
        click.echo(f"dry run: preset {save_preset} can be saved")
    if result.counters.get("swapped"):
        click.echo(
            f"note: latitude and longitude were swapped in {result.counters['swapped']} "
            f"rows (read the right way round; see docs/csv-format.md)",
            err=True,
        )
    if result.counters.get("cleaned"):
        click.echo(
            f"note: control characters (which no feed can carry) were removed from the "
            f"text of {result.counters['cleaned']} rows",
            err=True,
        )
    if result.counters.get("unclassified"):
        click.echo(
            f"note: {result.counters['unclassified']} rows wait as unclassified: no category "
            f"rule classifies their category, so they are held back (see docs/csv-format.md)",
            err=True,
        )
    if result.rejections:
        for r in result.rejections[:10]:
            click.echo(f"  line {r.line}: {r.reason}", err=True)
        if len(result.rejections) > 10:
            click.echo(f"  ... and {len(result.rejections) - 10} more", err=True)
        click.echo(f"rejected rows written to {result.report_path}", err=True)
    sys.exit(1 if result.counters["rejected"] else 0)


@group.command("review")
@click.option("--limit", type=int, default=200, show_default=True, help="List at most this many.")
@pass_ctx
@domain_errors
def incidents_review(ctx: Context, limit):
    """List entries held back because their text looks like personal data (newest first):
    release them with `incidents release UID` or retract them with `incidents retract`."""
    require_schema(ctx.store)
    held, total = review.entries_for_review(ctx.store, limit)
    for e in held:
        why = e.suppressed_reason.partition(": ")[2]
        click.echo(
            f"{e.uid}  {e.event_time:%Y-%m-%d %H:%M}Z  {e.source} {e.external_id}  "
            f"{_single_line(e.description)!r}  ({why})"
        )
    click.echo(
        f"{total} held back for review" + (f"; {len(held)} shown" if total > len(held) else "")
    )


@group.command("release")
@click.argument("uid")
@pass_ctx
@domain_errors
def incidents_release(ctx: Context, uid):
    """Publish an entry held back for review as it is (audited as the CLI)."""
    require_schema(ctx.store)
    e = review.release_entry(ctx.store, uid, actor="cli", now=utcnow())
    click.echo(f"released {e.uid} ({e.source} {e.external_id}): {e.status(utcnow())}")


def _single_line(text: str) -> str:
    return " ".join((text or "").split())[:120]


@group.command("retract")
@click.argument("uid")
@click.option(
    "--reason",
    required=True,
    help="Why it is withdrawn: wrong address, sealed record, victim request...",
)
@pass_ctx
@domain_errors
def incidents_retract(ctx: Context, uid, reason):
    """Withdraw a published entry (by its entry id) from every feed and page, audited."""
    require_schema(ctx.store)
    e = review.retract_entry(ctx.store, uid, reason, actor="cli", now=utcnow())
    click.echo(f"retracted {e.uid} ({e.source} {e.external_id}): {e.retraction_reason}")


def _progress_printer(file: Path):
    """Import progress on standard error: a bar on a terminal, plain lines otherwise."""
    return row_progress(file, sys.stderr)
