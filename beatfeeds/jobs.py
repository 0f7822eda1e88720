"""Jobs: plain functions the scheduler runs on an interval and `beatfeeds jobs run` runs once.

Each takes (store, settings, now) and returns a summary dict; each logs one INFO line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import boundaries
from .errors import BeatfeedsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[..., dict]
    interval_seconds: int
    help: str


def activate_scheduled_beat_maps(store, settings, now: datetime) -> dict:
    """Publish beat maps whose status is `scheduled` and whose effective date has come."""
    local_today = now.replace(tzinfo=UTC).astimezone(settings.tz).date()
    published = []
    for bs in store.list_beat_sets():
        if bs.status == "scheduled" and bs.effective_date and bs.effective_date <= local_today:
            boundaries.publish_beat_map(store, bs.id, actor="scheduler", now=now)
            published.append(bs.id)
    summary = {"published": published}
    log.info("activate-scheduled-beat-maps: %s", summary)
    return summary


def prune_login_attempts(store, settings, now: datetime) -> dict:
    """Forget sign-in attempts older than a day (they only serve throttling)."""
    removed = store.prune_login_attempts(now - timedelta(days=1))
    log.info("prune-login-attempts: removed %d", removed)
    return {"removed": removed}


JOBS: dict[str, Job] = {
    j.name: j
    for j in [
        Job("activate-scheduled-beat-maps", activate_scheduled_beat_maps, 60,
            activate_scheduled_beat_maps.__doc__.splitlines()[0]),
        Job("prune-login-attempts", prune_login_attempts, 3600,
            prune_login_attempts.__doc__.splitlines()[0]),
    ]
}


def run_job(name: str, store, settings, now: datetime) -> dict:
    try:
        job = JOBS[name]
    except KeyError:
        raise BeatfeedsError(f"No job {name!r}; jobs are {', '.join(JOBS)}.") from None
    return job.func(store, settings, now)
