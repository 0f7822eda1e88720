"""`beatfeeds beats`: load, validate, publish, roll back, compare and export beat maps."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from beatfeeds.cli.context import Context, domain_errors, pass_ctx, require_schema
from beatfeeds.core.clock import utcnow
from beatfeeds.geo import checks
from beatfeeds.services import beatmaps


@click.group("beats")
def group():
    """Beat maps."""


@group.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--code-field",
    help="Property holding the beat code, or a template such as '{DISTRICT}{PSA}' "
    "(guessed when omitted).",
)
@click.option("--sector-field", help="Property or template ('{DISTRICT}-{SECTOR}') for the sector.")
@click.option("--precinct-field", help="Property or template for the precinct.")
@click.option("--name", help="Name of the beat map (default: the file name).")
@click.option(
    "--effective",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Date the map takes effect (YYYY-MM-DD).",
)
@pass_ctx
@domain_errors
def beats_load(ctx: Context, file, code_field, sector_field, precinct_field, name, effective):
    """Load a beat map file as a draft and print its id, then the field or template used for
    each level, the beats merged from several features, and warnings."""
    require_schema(ctx.store)
    report = beatmaps.load_beat_map_report(
        ctx.store,
        file,
        code_field=code_field,
        sector_field=sector_field,
        precinct_field=precinct_field,
        name=name,
        effective=effective.date() if effective else None,
        now=utcnow(),
    )
    bs = ctx.store.beatmaps.get_beat_set(report.set_id)
    click.echo(f"{report.set_id}\tdraft\t{bs.beat_count} beats\t{bs.name}")
    for note in report.notes:
        click.echo(f"  {note}")


@group.command("list")
@pass_ctx
@domain_errors
def beats_list(ctx: Context):
    """One beat map per line: id, status, beats, effective date, name."""
    for bs in ctx.store.beatmaps.list_beat_sets():
        click.echo(
            f"{bs.id}\t{bs.status}\t{bs.beat_count} beats\t{bs.effective_date or '-'}\t{bs.name}"
        )


@group.command("validate")
@click.argument("set_id", type=int)
@pass_ctx
@domain_errors
def beats_validate(ctx: Context, set_id):
    """Check a stored beat map's polygons; exit 1 with the reasons when it does not validate."""
    problems = beatmaps.validate_beat_set(
        ctx.store, set_id, checks.Tolerances.from_settings(ctx.settings)
    )
    for p in problems:
        click.echo(str(p))
    if checks.blocking(problems):
        sys.exit(1)
    warnings = f" ({len(problems)} warning(s))" if problems else ""
    click.echo(f"beat map {set_id}: valid{warnings}")


@group.command("publish")
@click.argument("set_id", type=int)
@click.option(
    "--at",
    "at",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Publish on this date (YYYY-MM-DD, local) instead of now.",
)
@pass_ctx
@domain_errors
def beats_publish(ctx: Context, set_id, at):
    """Make a beat map the active one (the previous one is retired, never deleted)."""
    if at is not None:
        beatmaps.schedule_beat_map(
            ctx.store,
            set_id,
            at.date(),
            now=utcnow(),
            tolerances=checks.Tolerances.from_settings(ctx.settings),
        )
        click.echo(f"beat map {set_id} is scheduled for {at.date()}")
        return
    joined = beatmaps.publish_beat_map(
        ctx.store,
        set_id,
        now=utcnow(),
        tolerances=checks.Tolerances.from_settings(ctx.settings),
    )
    click.echo(f"beat map {set_id} is active; {joined} incidents joined to it")


@group.command("rollback")
@pass_ctx
@domain_errors
def beats_rollback(ctx: Context):
    """Republish the most recently retired beat map."""
    set_id = beatmaps.rollback_beat_map(
        ctx.store, now=utcnow(), tolerances=checks.Tolerances.from_settings(ctx.settings)
    )
    click.echo(f"beat map {set_id} is active again")


@group.command("diff")
@click.argument("set_id", type=int)
@click.option("--against", type=int, help="Compare with this map (default: the active one).")
@click.option(
    "--tolerance",
    type=float,
    help="Share of a beat's area that must change for it to count as reshaped "
    "(default: BEATFEEDS_BEAT_RESHAPE_TOLERANCE, 0.001).",
)
@click.option("--moves", is_flag=True, help="List each recent incident that would change beat.")
@pass_ctx
@domain_errors
def beats_diff(ctx: Context, set_id, against, tolerance, moves):
    """Beats added, removed, renamed and reshaped between two maps, and incidents that move."""
    s = ctx.settings
    d = beatmaps.review_diff(ctx.store, s, set_id, against, now=utcnow(), tolerance=tolerance)
    click.echo(f"beat map {d.old_id} -> {d.new_id}")
    click.echo(f"added: {' '.join(d.added) or '-'}")
    click.echo(f"removed: {' '.join(d.removed) or '-'}")
    click.echo("renamed: " + (" ".join(f"{a}->{b}" for a, b in d.renamed) or "-"))
    click.echo("reshaped: " + (" ".join(f"{c} ({x:.1%})" for c, x in d.reshaped) or "-"))
    click.echo(f"unchanged: {len(d.unchanged)} beats")
    click.echo(f"sector and precinct feeds would announce: {len(d.areas) or '-'}")
    for _label, text in d.areas:
        click.echo(f"  {text}")
    click.echo(f"incidents moving (last {s.beat_diff_days} days): {len(d.moves)}")
    for old, new, n in d.move_counts:
        click.echo(f"  {old or '(none)'} -> {new or '(none)'}: {n}")
    if moves:
        for m in d.moves:
            click.echo(
                f"  {m.uid}\t{m.event_time:%Y-%m-%d %H:%M}\t{m.old or '-'} -> "
                f"{m.new or '-'}\t{m.block_address}"
            )


@group.command("export")
@click.argument("set_id", type=int, required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@pass_ctx
@domain_errors
def beats_export(ctx: Context, set_id, output):
    """Write a beat map (default: the active one) as GeoJSON."""
    n = beatmaps.export_beat_set(ctx.store, set_id, output)
    click.echo(f"wrote {n} beats to {output}")
