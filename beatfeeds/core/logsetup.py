"""Logging set-up shared by the web app, `beatfeeds serve` and `beatfeeds scheduler`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings

# Lines libraries write per request or per run: at INFO/WARNING they drown our one-line job
# summaries (waitress warns "Task queue depth is N" on every queued request under load;
# APScheduler logs each run; Alembic each revision check of /healthz). Shown when debugging.
NOISY = {
    "alembic.runtime.migration": logging.WARNING,
    "apscheduler": logging.WARNING,
    "waitress.queue": logging.ERROR,
}


def configure_logging(level: str | int) -> None:
    """Root logger at `level` (basicConfig if nothing configured it yet); the noisy
    libraries' loggers quiet unless `level` is DEBUG."""
    logging.basicConfig(level=level)
    root = logging.getLogger()
    root.setLevel(level)  # the CLI may have configured logging first
    debugging = root.level <= logging.DEBUG
    for name, quiet in NOISY.items():
        logging.getLogger(name).setLevel(logging.NOTSET if debugging else quiet)


def startup_warnings(settings: Settings) -> list[str]:
    """Settings that weaken the privacy defaults, to be logged as WARNINGs when `serve`, the
    scheduler or the app start."""
    warnings = []
    if not settings.hold_unclassified:
        warnings.append(
            "BEATFEEDS_UNCLASSIFIED=publish: incidents whose category no rule classifies are "
            "published as Other instead of being held back"
        )
    return warnings


def log_startup_warnings(settings: Settings, logger: logging.Logger | None = None) -> None:
    for text in startup_warnings(settings):
        (logger or logging.getLogger("beatfeeds")).warning("%s", text)
