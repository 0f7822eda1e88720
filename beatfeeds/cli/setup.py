"""`beatfeeds setup`: the department profile (name, time zone, level labels, map centre, tag
authority) written to the instance's TOML file, asked for or given as flags."""

from __future__ import annotations

import os
from pathlib import Path

import click

from beatfeeds.cli.context import Context, domain_errors, pass_ctx
from beatfeeds.core.errors import ConfigurationError
from beatfeeds.core.profile import DEMO_DEPARTMENT
from beatfeeds.core.settings import CONFIG_NAME, ENV_PREFIX, instance_config
from beatfeeds.services import setup as setup_mod

QUESTIONS = {
    "department_name": "Department name (feed titles and pages)",
    "timezone": "Time zone (IANA name, e.g. America/Chicago)",
    "beat_label": "Your word for a beat",
    "sector_label": "Your word for a sector (the level between beat and precinct)",
    "precinct_label": "Your word for a precinct (District, Division, Area...)",
    "map_center": "Map centre as LAT,LON (empty: fit the beat map)",
    "tag_authority": "Tag authority: a domain you control and today's year (example.org,2026)",
}


@click.command("setup")
@click.option("--department-name", help="The department's name, as feeds and pages show it.")
@click.option("--timezone", help="IANA time zone, e.g. America/New_York.")
@click.option("--beat-label", help="Singular word for a beat (default Beat).")
@click.option("--sector-label", help="Singular word for a sector (default Sector).")
@click.option("--precinct-label", help="Singular word for a precinct (default Precinct).")
@click.option("--map-center", metavar="LAT,LON", help="Where maps open, e.g. 38.9,-77.03.")
@click.option("--tag-authority", help="authority,date of entry ids, e.g. feeds.example.org,2026.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"TOML file to write (default: BEATFEEDS_CONFIG, else {CONFIG_NAME} in the "
    "instance folder). Other keys in it are kept.",
)
@pass_ctx
@domain_errors
def setup(ctx: Context, config_path, **flags):
    """Write the department profile to the instance's TOML file (mode 0600).

    With no flags, asks for each value (the current one is the default); with flags, writes
    just those, for scripts."""
    values = {k: v for k, v in flags.items() if v is not None}
    path = config_path or _default_path(ctx)
    if not values:
        now = ctx.settings
        values = {
            k: _ask(k, None if now.origin(k) == "default" and k == "timezone" else getattr(now, k))
            for k in setup_mod.PROFILE
        }
    setup_mod.write_profile(path, values)
    click.echo(f"wrote {', '.join(values)} to {path}")
    if not _is_read(path):
        click.echo(f"note: set {ENV_PREFIX}CONFIG={path} so that beatfeeds reads it", err=True)


def _default_path(ctx: Context) -> Path:
    named = os.environ.get(ENV_PREFIX + "CONFIG")
    return Path(named) if named else Path(ctx.settings.instance_path) / CONFIG_NAME


def _is_read(path: Path) -> bool:
    """Whether the settings of the next command will come from this file."""
    named = os.environ.get(ENV_PREFIX + "CONFIG")
    if named:
        return Path(named).resolve() == path.resolve()
    return instance_config(dict(os.environ)) == str(path.resolve())


def _ask(name: str, current):
    def check(text: str):
        try:
            return setup_mod.check_profile({name: text.strip()})[name]
        except ConfigurationError as exc:
            raise click.BadParameter(exc.message) from exc

    if name == "department_name" and current == DEMO_DEPARTMENT:
        current = None  # the demo's name is never a real instance's default
    return click.prompt(
        QUESTIONS[name],
        default=current if current not in (None, "") else ("" if name == "map_center" else None),
        show_default=bool(current),
        value_proc=check,
    )
