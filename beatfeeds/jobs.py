"""Jobs: plain functions the scheduler runs on an interval and `beatfeeds jobs run` runs once.

Each takes (store, settings, now) and returns a summary dict; each logs one INFO line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from beatfeeds.core.errors import BeatfeedsError
from beatfeeds.geo.checks import Tolerances
from beatfeeds.publish import privacy
from beatfeeds.services import beatmaps

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[..., dict]
    interval_seconds: int
    help: str


def activate_scheduled_beat_maps(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Publish beat maps whose status is `scheduled` and whose effective date has come."""
    local_today = now.replace(tzinfo=UTC).astimezone(settings.tz).date()
    published = []
    for bs in store.beatmaps.list_beat_sets():
        if bs.status == "scheduled" and bs.effective_date and bs.effective_date <= local_today:
            beatmaps.publish_beat_map(
                store,
                bs.id,
                actor="scheduler",
                now=now,
                tolerances=Tolerances.from_settings(settings),
            )
            published.append(bs.id)
    summary = {"published": published}
    log.info("activate-scheduled-beat-maps: %s", summary)
    return summary


def apply_publication_policy(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Redo stored publication decisions after the rules, the suppression list or the delay
    changed."""
    hold = settings.hold_unclassified
    fingerprint = privacy.policy_fingerprint(
        settings.suppressed_categories, settings.publication_delay, hold_unclassified=hold
    )
    if store.db.get_meta("publication_policy") == fingerprint:
        return {"changed": 0, "policy": "unchanged"}
    suppressed = set(settings.suppressed_categories)
    decided = ("category", "block_address", "suppressed_reason", "publish_at")
    changed, last = 0, 0
    while batch := store.incidents.policy_inputs(last, 5000):
        results = []
        for stored in batch:
            new = privacy.redo_decisions(
                stored, suppressed, settings.publication_delay, hold_unclassified=hold
            )
            if any(new[k] != stored[k] for k in decided):
                results.append({"id": stored["id"], **new})
        store.incidents.set_policy_results(results, now)
        changed += len(results)
        last = batch[-1]["id"]
    store.db.set_meta("publication_policy", fingerprint)
    log.info("apply-publication-policy: %d incidents changed (%s)", changed, fingerprint)
    return {"changed": changed, "policy": fingerprint}


def process_import_queue(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Import files uploaded on /records/imports, oldest first."""
    from beatfeeds.services import records

    summary = records.process_queue(store, settings, now)
    # Every few seconds: only runs that did something are worth an INFO line.
    (log.info if any(summary.values()) else log.debug)("process-import-queue: %s", summary)
    return summary


def ping_websub_hub(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Tell the WebSub hub (BEATFEEDS_HUB_URL) which feeds changed since the last ping."""
    from beatfeeds.services import websub

    summary = websub.ping_changed_feeds(store, settings, now=now)
    log.info("ping-websub-hub: %s", summary)
    return summary


def poll_sources(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Import new files from watched folders and URLs whose interval has passed."""
    from beatfeeds.services import sources

    summary = sources.poll_sources(store, settings, now)
    (log.info if summary["polled"] else log.debug)("poll-sources: %s", summary)
    return summary


def prune_login_attempts(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Forget sign-in attempts older than a day (they only serve throttling)."""
    removed = store.accounts.prune_login_attempts(now - timedelta(days=1))
    log.info("prune-login-attempts: removed %d", removed)
    return {"removed": removed}


def prune_uploads(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Delete stored files of uploads finished more than BEATFEEDS_UPLOAD_RETENTION_DAYS ago."""
    from beatfeeds.services import records

    summary = records.prune_upload_files(store, settings, now)
    log.info("prune-uploads: %s", summary)
    return summary


def send_outbox(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Post entries that became public to the areas' outbound accounts (the outbox)."""
    from beatfeeds.services import outbox

    return outbox.send_outbox(store, settings, now)


def send_alerts(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Email residents' confirmed subscriptions: new entries at once, digests when due."""
    from beatfeeds.services import alerts

    return alerts.send_alerts(store, settings, now)


def retract_posts(store: SQLStore, settings: Settings, now: datetime) -> dict:
    """Delete posts of retracted, suppressed or withdrawn entries where services allow it."""
    from beatfeeds.services import outbox

    return outbox.retract_posts(store, settings, now)


JOBS: dict[str, Job] = {
    j.name: j
    for j in [
        Job(
            "activate-scheduled-beat-maps",
            activate_scheduled_beat_maps,
            60,
            activate_scheduled_beat_maps.__doc__.splitlines()[0],
        ),
        Job(
            "apply-publication-policy",
            apply_publication_policy,
            60,
            apply_publication_policy.__doc__.splitlines()[0],
        ),
        Job(
            "process-import-queue",
            process_import_queue,
            5,
            process_import_queue.__doc__.splitlines()[0],
        ),
        Job("poll-sources", poll_sources, 30, poll_sources.__doc__.splitlines()[0]),
        Job("ping-websub-hub", ping_websub_hub, 60, ping_websub_hub.__doc__.splitlines()[0]),
        Job(
            "prune-login-attempts",
            prune_login_attempts,
            3600,
            prune_login_attempts.__doc__.splitlines()[0],
        ),
        Job("prune-uploads", prune_uploads, 3600, prune_uploads.__doc__.splitlines()[0]),
        Job("send-outbox", send_outbox, 30, send_outbox.__doc__.splitlines()[0]),
        Job("retract-posts", retract_posts, 60, retract_posts.__doc__.splitlines()[0]),
        Job("send-alerts", send_alerts, 60, send_alerts.__doc__.splitlines()[0]),
    ]
}


def run_job(name: str, store: SQLStore, settings: Settings, now: datetime) -> dict:
    try:
        job = JOBS[name]
    except KeyError:
        raise BeatfeedsError(f"No job {name!r}; jobs are {', '.join(JOBS)}.") from None
    return job.func(store, settings, now)
