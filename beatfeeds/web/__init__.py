"""Flask blueprints: thin adapters from requests to domain calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore


def store() -> SQLStore:
    """The app's store (made once by create_app)."""
    return current_app.extensions["beatfeeds.store"]


def settings() -> Settings:
    """The app's settings (read once by create_app)."""
    return current_app.extensions["beatfeeds.settings"]
