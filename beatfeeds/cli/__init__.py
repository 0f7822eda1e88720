"""The `beatfeeds` command line: one short command per domain function."""

from __future__ import annotations

import functools
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from beatfeeds import jobs
from beatfeeds.cli import progress as progress_display
from beatfeeds.core.errors import BeatfeedsError, InvalidBoundary, UnusableFile
from beatfeeds.core.logsetup import configure_logging
from beatfeeds.core.settings import Settings, load_settings
from beatfeeds.delivery.posting import CREDENTIAL_FIELDS, SERVICES
from beatfeeds.ingest.mapping import parse_map_options
from beatfeeds.services import accounts, beatmaps, imports, outbox, records, sources
from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Context:
    def __init__(self):
        self._settings = None
        self._store = None

    @property
    def settings(self):
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def store(self) -> SQLStore:
        if self._store is None:
            self._store = SQLStore.from_url(self.settings.database_url)
        return self._store


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def domain_errors(f):
    """Turn domain errors into clean CLI errors (exit 1) instead of tracebacks."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except InvalidBoundary as exc:
            for p in exc.problems:
                click.echo(f"  {p}", err=True)
            raise click.ClickException(exc.message) from exc
        except BeatfeedsError as exc:
            raise click.ClickException(exc.message) from exc

    return wrapper


@click.group()
@click.version_option(package_name="beatfeeds")
def main():
    """beatfeeds: one feed per police beat."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# ---- db -----------------------------------------------------------------------------------------
@main.group()
def db():
    """Database schema."""


@db.command("upgrade")
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


# ---- incidents ------------------------------------------------------------------------------------
@main.group()
def incidents():
    """Incident files."""


@incidents.command("import")
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
    "--report",
    type=click.Path(dir_okay=False),
    help="Where to write rejected rows (default: the instance folder).",
)
@pass_ctx
def incidents_import(ctx: Context, file, preset, maps, source, dry_run, report):
    """Import an incident CSV: exit 0 if every row was usable, 1 if some were rejected,
    2 if the file cannot be imported."""
    try:
        options = imports.ImportOptions(
            preset=preset,
            maps=parse_map_options(maps),
            source=source,
            dry_run=dry_run,
            report_path=report,
        )
        _require_schema(ctx.store)
        options = records.resolve_options(ctx.store, options)  # saved presets by name
        progress = _progress_printer(file)
        result = imports.import_file(
            ctx.store, file, options, ctx.settings, now=utcnow(), progress=progress
        )
    except UnusableFile as exc:
        click.echo(f"error: {file.name}: {exc.message}", err=True)
        sys.exit(2)
    except BeatfeedsError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    if progress:
        progress(None)
    detected = "" if preset or maps else f" (detected preset {result.preset})"
    click.echo(f"{'dry run: ' if dry_run else ''}{file.name}: source {result.source}{detected}")
    click.echo(result.line())
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
    if result.rejections:
        for r in result.rejections[:10]:
            click.echo(f"  line {r.line}: {r.reason}", err=True)
        if len(result.rejections) > 10:
            click.echo(f"  ... and {len(result.rejections) - 10} more", err=True)
        click.echo(f"rejected rows written to {result.report_path}", err=True)
    sys.exit(1 if result.counters["rejected"] else 0)


@incidents.command("review")
@click.option("--limit", type=int, default=200, show_default=True, help="List at most this many.")
@pass_ctx
@domain_errors
def incidents_review(ctx: Context, limit):
    """List entries held back because their text looks like personal data (newest first):
    release them with `incidents release UID` or retract them with `incidents retract`."""
    _require_schema(ctx.store)
    held, total = records.entries_for_review(ctx.store, limit)
    for e in held:
        why = e.suppressed_reason.partition(": ")[2]
        click.echo(
            f"{e.uid}  {e.event_time:%Y-%m-%d %H:%M}Z  {e.source} {e.external_id}  "
            f"{_single_line(e.description)!r}  ({why})"
        )
    click.echo(
        f"{total} held back for review" + (f"; {len(held)} shown" if total > len(held) else "")
    )


@incidents.command("release")
@click.argument("uid")
@pass_ctx
@domain_errors
def incidents_release(ctx: Context, uid):
    """Publish an entry held back for review as it is (audited as the CLI)."""
    _require_schema(ctx.store)
    e = records.release_entry(ctx.store, uid, actor="cli", now=utcnow())
    click.echo(f"released {e.uid} ({e.source} {e.external_id}): {e.status(utcnow())}")


def _single_line(text: str) -> str:
    return " ".join((text or "").split())[:120]


@incidents.command("retract")
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
    _require_schema(ctx.store)
    e = records.retract_entry(ctx.store, uid, reason, actor="cli", now=utcnow())
    click.echo(f"retracted {e.uid} ({e.source} {e.external_id}): {e.retraction_reason}")


def _progress_printer(file: Path):
    """Import progress on standard error: a bar on a terminal, plain lines otherwise."""
    return progress_display.row_progress(file, sys.stderr)


def _require_schema(store: SQLStore):
    if not store.is_current():
        raise BeatfeedsError("The database schema is not current: run `beatfeeds db upgrade`.")


# ---- beats --------------------------------------------------------------------------------------
@main.group()
def beats():
    """Beat maps."""


@beats.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--code-field", help="Property holding the beat code (guessed when omitted).")
@click.option("--sector-field")
@click.option("--precinct-field")
@click.option("--name", help="Name of the beat map (default: the file name).")
@click.option(
    "--effective",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Date the map takes effect (YYYY-MM-DD).",
)
@pass_ctx
@domain_errors
def beats_load(ctx: Context, file, code_field, sector_field, precinct_field, name, effective):
    """Load a beat map file as a draft and print its id."""
    _require_schema(ctx.store)
    set_id = beatmaps.load_beat_map(
        ctx.store,
        file,
        code_field=code_field,
        sector_field=sector_field,
        precinct_field=precinct_field,
        name=name,
        effective=effective.date() if effective else None,
        now=utcnow(),
    )
    bs = ctx.store.get_beat_set(set_id)
    click.echo(f"{set_id}\tdraft\t{bs.beat_count} beats\t{bs.name}")


@beats.command("list")
@pass_ctx
@domain_errors
def beats_list(ctx: Context):
    """One beat map per line: id, status, beats, effective date, name."""
    for bs in ctx.store.list_beat_sets():
        click.echo(
            f"{bs.id}\t{bs.status}\t{bs.beat_count} beats\t{bs.effective_date or '-'}\t{bs.name}"
        )


@beats.command("validate")
@click.argument("set_id", type=int)
@pass_ctx
@domain_errors
def beats_validate(ctx: Context, set_id):
    """Check a stored beat map's polygons; exit 1 with the reasons when it does not validate."""
    problems = beatmaps.validate_beat_set(
        ctx.store, set_id, beatmaps.Tolerances.from_settings(ctx.settings)
    )
    for p in problems:
        click.echo(str(p))
    if beatmaps.blocking(problems):
        sys.exit(1)
    warnings = f" ({len(problems)} warning(s))" if problems else ""
    click.echo(f"beat map {set_id}: valid{warnings}")


@beats.command("publish")
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
            tolerances=beatmaps.Tolerances.from_settings(ctx.settings),
        )
        click.echo(f"beat map {set_id} is scheduled for {at.date()}")
        return
    joined = beatmaps.publish_beat_map(
        ctx.store,
        set_id,
        now=utcnow(),
        tolerances=beatmaps.Tolerances.from_settings(ctx.settings),
    )
    click.echo(f"beat map {set_id} is active; {joined} incidents joined to it")


@beats.command("rollback")
@pass_ctx
@domain_errors
def beats_rollback(ctx: Context):
    """Republish the most recently retired beat map."""
    set_id = beatmaps.rollback_beat_map(
        ctx.store, now=utcnow(), tolerances=beatmaps.Tolerances.from_settings(ctx.settings)
    )
    click.echo(f"beat map {set_id} is active again")


@beats.command("diff")
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
    d = beatmaps.diff_beat_sets(
        ctx.store,
        set_id,
        against,
        tolerance=tolerance if tolerance is not None else s.beat_reshape_tolerance,
        since=utcnow() - timedelta(days=s.beat_diff_days),
    )
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


@beats.command("export")
@click.argument("set_id", type=int, required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@pass_ctx
@domain_errors
def beats_export(ctx: Context, set_id, output):
    """Write a beat map (default: the active one) as GeoJSON."""
    n = beatmaps.export_beat_set(ctx.store, set_id, output)
    click.echo(f"wrote {n} beats to {output}")


# ---- users --------------------------------------------------------------------------------------
@main.group()
def users():
    """Staff accounts."""


@users.command("add")
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
    _require_schema(ctx.store)
    accounts.add_user(ctx.store, email, role, password, actor="cli", now=utcnow())
    click.echo(f"added {email.strip().lower()} ({role})")


@users.command("disable")
@click.argument("email")
@pass_ctx
@domain_errors
def users_disable(ctx: Context, email):
    """Disable a staff account (it is signed out at its next request)."""
    accounts.set_disabled(ctx.store, email, True, actor="cli", now=utcnow())
    click.echo(f"disabled {email}")


@users.command("enable")
@click.argument("email")
@pass_ctx
@domain_errors
def users_enable(ctx: Context, email):
    """Enable a disabled staff account."""
    accounts.set_disabled(ctx.store, email, False, actor="cli", now=utcnow())
    click.echo(f"enabled {email}")


# ---- scheduled sources ----------------------------------------------------------------------------
@main.group("sources")
def sources_group():
    """Watched folders and URLs imported on a schedule."""


@sources_group.command("add")
@click.argument("name")
@click.option("--folder", type=click.Path(file_okay=False), help="A folder to watch.")
@click.option("--url", help="An http(s) URL to fetch, for example a Socrata CSV export.")
@click.option("--preset", help="Column layout (default: detected from each file).")
@click.option("--interval", default=15, show_default=True, type=int, help="Minutes between polls.")
@pass_ctx
@domain_errors
def sources_add(ctx: Context, name, folder, url, preset, interval):
    """Poll a folder or URL every INTERVAL minutes (run by `beatfeeds scheduler`)."""
    _require_schema(ctx.store)
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


@sources_group.command("list")
@pass_ctx
@domain_errors
def sources_list(ctx: Context):
    """One source per line: name, kind, location, preset, interval, last poll and status."""
    for s in ctx.store.list_sources():
        last = f"{s.last_polled_at:%Y-%m-%d %H:%M} UTC" if s.last_polled_at else "never"
        status = (s.last_status or "-") + (f": {s.last_error}" if s.last_error else "")
        click.echo(
            f"{s.name}\t{s.kind}\t{s.location}\t{s.preset or 'detect'}\t"
            f"every {s.interval_minutes} min\t{last}\t{status}"
        )


@sources_group.command("remove")
@click.argument("name")
@pass_ctx
@domain_errors
def sources_remove(ctx: Context, name):
    """Stop polling a source (incidents it imported stay)."""
    sources.remove_source(ctx.store, name, actor="cli", now=utcnow())
    click.echo(f"removed source {name}")


@sources_group.command("poll")
@click.argument("names", nargs=-1)
@pass_ctx
@domain_errors
def sources_poll(ctx: Context, names):
    """Poll the named sources (default: all) now, whatever their interval."""
    _require_schema(ctx.store)
    summary = sources.poll_sources(
        ctx.store, ctx.settings, utcnow(), names=list(names) or None, force=True
    )
    click.echo(" ".join(f"{k} {v}" for k, v in summary.items()))
    sys.exit(1 if summary["failed"] else 0)


# ---- saved presets -------------------------------------------------------------------------------
@main.group("presets")
def presets_group():
    """Column mappings records staff saved under a name."""


@presets_group.command("list")
@pass_ctx
@domain_errors
def presets_list(ctx: Context):
    """One saved preset per line: name, dataset, columns, saved by and when, used by sources."""
    _require_schema(ctx.store)
    for u in records.list_presets(ctx.store):
        p = u.preset
        cols = ",".join(f"{f}={c}" for f, c in sorted(p.columns.items()))
        saved = f"{p.created_at:%Y-%m-%d %H:%M} UTC" if p.created_at else "-"
        click.echo(
            f"{p.name}\t{p.source}\t{cols}\t{p.created_by or '-'}\t{saved}\t"
            f"{','.join(u.sources) or '-'}"
        )


@presets_group.command("delete")
@click.argument("name")
@pass_ctx
@domain_errors
def presets_delete(ctx: Context, name):
    """Delete a saved preset (refused while a scheduled source uses it)."""
    _require_schema(ctx.store)
    records.delete_preset(ctx.store, name, actor="cli", now=utcnow())
    click.echo(f"deleted preset {name}")


# ---- outbound accounts ----------------------------------------------------------------------------
@main.group("outbound")
def outbound_group():
    """Accounts on Mastodon, Bluesky, X or a webhook that mirror an area's entries."""


@outbound_group.command("list")
@pass_ctx
@domain_errors
def outbound_list(ctx: Context):
    """One account per line: id, service, area (as `add` takes it), where it posts, active or
    paused, outbox counts (pending includes sending), label. Credentials are never shown."""
    _require_schema(ctx.store)
    for s in outbox.list_accounts(ctx.store):
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


@outbound_group.command("add")
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
    kind, code = outbox.parse_area(area)
    _require_schema(ctx.store)
    account_id = outbox.add_account(
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
    a = ctx.store.outbound_account(account_id)
    click.echo(
        f"added outbound account {a.id}: {a.label} ({outbox.public_target(a)}); "
        "its credentials are stored encrypted and will not be shown again"
    )


@outbound_group.command("pause")
@click.argument("account_id", metavar="ID", type=int)
@pass_ctx
@domain_errors
def outbound_pause(ctx: Context, account_id):
    """Hold an account's posts (they wait in the outbox until it is resumed)."""
    outbox.set_account_paused(ctx.store, account_id, True, actor="cli", now=utcnow())
    click.echo(f"paused outbound account {account_id}: nothing is sent until it is resumed")


@outbound_group.command("resume")
@click.argument("account_id", metavar="ID", type=int)
@pass_ctx
@domain_errors
def outbound_resume(ctx: Context, account_id):
    """Send a paused account's posts again, starting with those that waited."""
    outbox.set_account_paused(ctx.store, account_id, False, actor="cli", now=utcnow())
    click.echo(f"resumed outbound account {account_id}")


@outbound_group.command("remove")
@click.argument("account_id", metavar="ID", type=int)
@pass_ctx
@domain_errors
def outbound_remove(ctx: Context, account_id):
    """Forget an account, its credentials and its outbox (posts already made stay up)."""
    outbox.remove_account(ctx.store, account_id, actor="cli", now=utcnow())
    click.echo(f"removed outbound account {account_id} with its credentials and outbox")


@outbound_group.command("test")
@click.argument("account_id", metavar="ID", type=int)
@pass_ctx
@domain_errors
def outbound_test(ctx: Context, account_id):
    """Send a test post now (nothing is sent under BEATFEEDS_DRY_RUN); exit 1 if it failed."""
    result = outbox.test_account(ctx.store, ctx.settings, account_id, actor="cli", now=utcnow())
    if result.startswith("failed"):
        click.echo(f"test post for account {account_id}: {result}", err=True)
        sys.exit(1)
    click.echo(f"test post for account {account_id}: {result}")


# ---- email alerts -------------------------------------------------------------------------------
@main.group("mail")
def mail_group():
    """Residents' email alerts: the switch that pauses all mail (also on /alerts/admin)."""


@mail_group.command("pause")
@pass_ctx
@domain_errors
def mail_pause(ctx: Context):
    """Pause all mail: alerts keep being queued and digests wait; nothing is lost."""
    from beatfeeds.services import alerts

    _require_schema(ctx.store)
    alerts.set_paused(ctx.store, True, actor="cli", now=utcnow())
    click.echo("all mail paused: alerts are queued and digests wait until `beatfeeds mail resume`")


@mail_group.command("resume")
@pass_ctx
@domain_errors
def mail_resume(ctx: Context):
    """Send mail again, starting with what waited."""
    from beatfeeds.services import alerts

    _require_schema(ctx.store)
    alerts.set_paused(ctx.store, False, actor="cli", now=utcnow())
    click.echo("mail resumed: the next send-alerts run sends what waited")


@mail_group.command("status")
@pass_ctx
@domain_errors
def mail_status(ctx: Context):
    """Whether mail is paused, by whom and since when."""
    from beatfeeds.services import alerts

    _require_schema(ctx.store)
    state = alerts.paused_state(ctx.store)
    if state is None:
        click.echo("mail is being sent")
        return
    click.echo(f"all mail paused by {state['by']} at {state['at']}")


# ---- jobs and scheduler -------------------------------------------------------------------------
@main.group("jobs")
def jobs_group():
    """Scheduled jobs."""


@jobs_group.command("list")
def jobs_list():
    """Every job the scheduler runs, with its interval."""
    for job in jobs.JOBS.values():
        click.echo(f"{job.name}\tevery {job.interval_seconds}s\t{job.help}")


@jobs_group.command("run")
@click.argument("name")
@pass_ctx
@domain_errors
def jobs_run(ctx: Context, name):
    """Run one job once, now."""
    summary = jobs.run_job(name, ctx.store, ctx.settings, utcnow())
    click.echo(f"{name}: {summary}")


@main.command()
@pass_ctx
@domain_errors
def scheduler(ctx: Context):
    """Run the scheduler in this process (until interrupted)."""
    from beatfeeds.scheduler import build_scheduler

    configure_logging(ctx.settings.log_level)
    _require_schema(ctx.store)
    click.echo(f"scheduler running {len(jobs.JOBS)} jobs; Ctrl-C to stop")
    build_scheduler(ctx.store, ctx.settings, background=False).start()


# ---- settings, serve, demo ------------------------------------------------------------------------
@main.command("settings")
@pass_ctx
@domain_errors
def settings_cmd(ctx: Context):
    """Print the effective settings (secrets masked) and where each came from."""
    for name, value, origin in ctx.settings.masked():
        click.echo(f"BEATFEEDS_{name.upper()}={value}\t# {origin}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@domain_errors
def serve(host, port, threads):
    """Serve the site with waitress (production WSGI server)."""
    from beatfeeds.app import create_app

    _serve(create_app(), host, port, threads)


def waitress_options(settings: Settings) -> dict:
    """waitress's limits for this site: no request body larger than the largest upload plus
    its form fields, refused (413) as soon as its Content-Length is read, before the body.
    (Smaller limits per route are the app's: web.guards.)"""
    from beatfeeds.web.guards import upload_body_limit

    return {"ident": "beatfeeds", "max_request_body_size": upload_body_limit(settings)}


def _serve(app, host: str, port: int, threads: int) -> None:
    import waitress

    click.echo(f"serving on http://{host}:{port}")
    settings = app.extensions["beatfeeds.settings"]
    waitress.serve(app, host=host, port=port, threads=threads, **waitress_options(settings))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Set up the demo data, then exit.")
@domain_errors
def demo(host, port, no_serve):
    """Create the database, load the default beats and sample incidents, then serve."""
    from beatfeeds.app import create_app
    from beatfeeds.scheduler import build_scheduler
    from beatfeeds.services import demo as demo_mod

    settings = load_settings()
    store = SQLStore.from_url(settings.database_url)
    notice = demo_mod.setup_demo(store, settings, now=utcnow(), echo=click.echo)
    if no_serve:
        return
    overrides = {"demo_notice": notice, "store": store}
    if settings.origin("dry_run") == "default":  # the demo never posts to real accounts
        overrides["dry_run"] = True
    if settings.origin("base_url") == "default":
        overrides["base_url"] = f"http://{host}:{port}"  # links must point where we serve
    app = create_app(overrides)
    sched = build_scheduler(store, app.extensions["beatfeeds.settings"], background=True)
    sched.start()
    try:
        _serve(app, host, port, threads=8)
    finally:
        sched.shutdown(wait=False)


if __name__ == "__main__":
    main()
