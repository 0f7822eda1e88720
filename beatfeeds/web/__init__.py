"""Flask blueprints: thin adapters from requests to domain calls."""

from flask import current_app

from beatfeeds.core.clock import utcnow

__all__ = ["settings", "store", "utcnow"]


def store():
    return current_app.extensions["beatfeeds.store"]


def settings():
    return current_app.extensions["beatfeeds.settings"]
