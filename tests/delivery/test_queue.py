"""The retry rules every sending queue shares (beatfeeds.delivery.queue): the outbox, email
deliveries and digests are claimed, retried, given up on and left `unknown` alike, and no
other module writes a rule of its own."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from beatfeeds.core.errors import Conflict, InvalidInput
from beatfeeds.delivery import queue

T = datetime(2026, 3, 1, 12, 0)
PACKAGE = Path(queue.__file__).resolve().parents[1]


def test_the_backoff_doubles_from_a_minute_up_to_six_hours():
    waits = [queue.backoff(n) for n in range(1, 12)]
    assert waits[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert max(waits) == queue.BACKOFF_MAX == timedelta(hours=6)
    assert queue.backoff(0) == queue.BACKOFF_START  # never less than the first wait


def test_a_transient_failure_is_retried_until_the_attempt_cap():
    retry = queue.after_transient_failure(3, "timed out", T)
    assert retry == {
        "status": "pending",
        "next_attempt_at": T + queue.backoff(3),
        "error": "timed out",
    }
    # A wait the service asked for is kept when it is longer than the backoff.
    later = T + timedelta(hours=1)
    assert queue.after_transient_failure(1, "429", T, not_before=later)["next_attempt_at"] == later
    gave_up = queue.after_transient_failure(queue.MAX_ATTEMPTS, "timed out", T)
    assert gave_up == {
        "status": "failed",
        "error": f"gave up after {queue.MAX_ATTEMPTS} attempts: timed out",
    }
    assert queue.attempt_number(queue.MAX_ATTEMPTS - 1) == queue.MAX_ATTEMPTS


def test_an_interrupted_send_is_repeated_only_behind_a_duplicate_guard():
    assert queue.stale_before(T) == T - queue.LEASE == T - timedelta(minutes=10)
    guarded = queue.after_interruption(T, duplicate_guard=True, unknown_error="x")
    assert guarded["status"] == "pending" and guarded["next_attempt_at"] == T
    unguarded = queue.after_interruption(T, duplicate_guard=False, unknown_error="check it")
    assert unguarded == {"status": "unknown", "error": "check it"}


def test_an_admin_resolves_only_unknown_items_as_sent_retry_or_drop():
    queue.require_unknown("Outbox item 3", "unknown")
    with pytest.raises(Conflict, match="Outbox item 3 is sent, not unknown."):
        queue.require_unknown("Outbox item 3", "sent")
    sent = queue.resolution("sent", actor="ada", now=T, confirmed="posted")
    assert sent == {"status": "sent", "sent_at": T, "error": "confirmed as posted by ada"}
    assert queue.resolution("retry", actor="ada", now=T)["next_attempt_at"] == T
    assert queue.resolution("drop", actor="ada", now=T)["status"] == "failed"
    with pytest.raises(InvalidInput):
        queue.resolution("maybe", actor="ada", now=T)
    assert set(queue.RESOLUTIONS) == {"sent", "retry", "drop"}


RULE_NAMES = {"LEASE", "MAX_ATTEMPTS", "BACKOFF_START", "BACKOFF_MAX"}


def test_no_other_module_writes_a_retry_rule():
    """The names of the rules are assigned, and `gave up after` is worded, in queue.py only."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(queue.__file__).resolve() or "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else []
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            if names & RULE_NAMES or (isinstance(node, ast.FunctionDef) and "backoff" in node.name):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
            if isinstance(node, ast.Constant) and "gave up after" in str(node.value):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []
