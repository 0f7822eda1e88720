"""What every command shares: the lazily opened settings and store, and domain errors turned
into clean CLI errors. (Kept out of `cli/__init__.py` so the command modules can import it
while the package imports them: no import cycle.)"""

from __future__ import annotations

import functools

import click

from beatfeeds.core.errors import BeatfeedsError, InvalidBoundary
from beatfeeds.core.settings import Settings, load_settings
from beatfeeds.storage import SQLStore


class Context:
    """The settings and store of one command, opened on first use."""

    def __init__(self):
        self._settings = None
        self._store = None

    @property
    def settings(self) -> Settings:
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


def require_schema(store: SQLStore) -> None:
    """Refuse to run on a database whose schema is not the newest."""
    if not store.db.is_current():
        raise BeatfeedsError("The database schema is not current: run `beatfeeds db upgrade`.")
