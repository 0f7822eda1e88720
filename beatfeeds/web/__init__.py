"""Flask blueprints: thin adapters from requests to domain calls."""

from datetime import UTC, datetime

from flask import current_app


def store():
    return current_app.extensions["beatfeeds.store"]


def settings():
    return current_app.extensions["beatfeeds.settings"]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
