"""APScheduler wiring only: every job in `jobs.JOBS` on its interval."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from beatfeeds.core.logsetup import log_startup_warnings
from beatfeeds.jobs import JOBS, run_job

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)


def _runner(name: str, store: SQLStore, settings: Settings):
    def run():
        try:
            run_job(name, store, settings, datetime.now(UTC).replace(tzinfo=None))
        except Exception:  # one failing run must not stop the scheduler
            log.exception("job %s failed", name)

    return run


def build_scheduler(store: SQLStore, settings: Settings, *, background: bool) -> BaseScheduler:
    """A scheduler with every job added; start() it (blocking unless background)."""
    log_startup_warnings(settings, log)
    sched = BackgroundScheduler(timezone="UTC") if background else BlockingScheduler(timezone="UTC")
    for job in JOBS.values():
        sched.add_job(
            _runner(job.name, store, settings),
            "interval",
            seconds=job.interval_seconds,
            id=job.name,
            name=job.name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
    return sched
