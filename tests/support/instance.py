"""A test instance: its settings, a migrated store, the default beat map, the bundled sample,
a fixed "now", and the shared Seattle data (skipped locally when missing, required in CI)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from beatfeeds.core.resources import resource_dir
from beatfeeds.core.settings import load_settings
from beatfeeds.services import beatmaps
from beatfeeds.storage import SQLStore

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("BEATFEEDS_SHARED_DATA", REPO.parent / "shared" / "data")) / "seattle"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEFAULT_BEATS = resource_dir("data") / "beats.geojson"
SAMPLE = resource_dir("data") / "sample_incidents.csv"
NOW = datetime(2026, 11, 26, 12, 0, 0)  # a fixed "now" (naive UTC) for reproducible tests


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def need(condition: bool, reason: str) -> None:
    """Skip locally when a resource is missing; under CI=true, fail instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def shared(name: str) -> Path:
    path = SHARED / name
    need(path.exists(), f"{path} not found (../shared/data)")
    return path


def make_settings(tmp_path: Path, **overrides):
    values = {
        "instance_path": str(tmp_path / "instance"),
        "secret_key": "test-secret-key",
        "base_url": "http://feeds.example.test",
        "tag_authority": "example.test,2026",
    }
    values.update(overrides)
    return load_settings(values, environ={})


def make_store(settings) -> SQLStore:
    store = SQLStore.from_url(settings.database_url)
    store.upgrade()
    return store


def load_default_beats(store, now=NOW) -> int:
    set_id = beatmaps.load_beat_map(
        store,
        DEFAULT_BEATS,
        code_field="beat",
        sector_field="sector",
        precinct_field="precinct",
        name="default",
        now=now,
    )
    beatmaps.publish_beat_map(store, set_id, now=now)
    return set_id
