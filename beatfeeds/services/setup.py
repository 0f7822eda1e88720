"""Setting up a department (`beatfeeds setup`): its profile merged into the instance's TOML
file, and the check `serve` and `scheduler` make before a real instance starts."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beatfeeds.core.errors import ConfigurationError
from beatfeeds.core.files import write_private
from beatfeeds.core.profile import DEMO_DEPARTMENT
from beatfeeds.core.settings import load_settings

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

# What `setup` asks for, in the order it asks.
PROFILE = (
    "department_name",
    "timezone",
    "beat_label",
    "sector_label",
    "precinct_label",
    "map_center",
    "tag_authority",
)
DEMO_META = "demo_shift_days"  # set by `beatfeeds demo` when it imports its sample incidents


def check_profile(values: dict[str, Any]) -> dict[str, Any]:
    """The profile's values as the settings read them (labels tidied), or ConfigurationError
    naming the first that cannot be used: every check `load_settings` makes (time zone known
    to zoneinfo, map centre a latitude and longitude, labels short singular words...)."""
    unknown = [k for k in values if k not in PROFILE]
    if unknown:
        raise ConfigurationError(f"not part of the department profile: {', '.join(unknown)}")
    if "department_name" in values and not str(values["department_name"]).strip():
        raise ConfigurationError("department_name: give the department's name")
    settings = load_settings(overrides=values, environ={})
    return {k: settings.as_dict()[k] for k in values}


def write_profile(path: str | os.PathLike, values: dict[str, Any]) -> Path:
    """Merge the profile into the TOML file at `path` (created if missing), mode 0600.

    Only the profile's keys change: every other key, and the comments, stay as they are."""
    values = check_profile(values)
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}; not changed") from exc
    lines = text.splitlines()
    for key, value in values.items():
        line = f"{key} = {json.dumps(value, ensure_ascii=False)}"  # a TOML basic string
        at = re.compile(rf"^\s*{key}\s*=", re.IGNORECASE)
        found = [i for i, old in enumerate(lines) if at.match(old)]
        if found:
            lines[found[0]] = line
        else:
            lines.append(line)
    new = "\n".join(lines) + "\n"
    try:
        merged = tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:  # an old value spread over lines: refuse
        raise ConfigurationError(f"{path}: cannot merge into this file ({exc})") from exc
    if any(merged.get(k) != v for k, v in values.items()):
        raise ConfigurationError(f"{path}: cannot merge into this file; edit it by hand")
    write_private(path, new)
    os.chmod(path, 0o600)
    return path


def is_demo(store: SQLStore) -> bool:
    """Whether `beatfeeds demo` set this instance up (it holds the demo's sample incidents)."""
    if not store.db.is_current():
        return False  # no schema yet (or an old one): not the demo's
    return store.db.get_meta(DEMO_META) is not None


def profile_problems(store: SQLStore, settings: Settings) -> list[str]:
    """Why this instance may not publish yet: a real (not demo) instance still named as the
    demo's department, or with no time zone of its own. Empty when it may."""
    if is_demo(store):
        return []
    problems = []
    if settings.department_name.strip() == DEMO_DEPARTMENT:
        problems.append(
            f"the department name is still the demo's ({DEMO_DEPARTMENT!r}): set "
            "BEATFEEDS_DEPARTMENT_NAME"
        )
    if settings.origin("timezone") == "default":
        problems.append("no time zone is set: set BEATFEEDS_TIMEZONE (an IANA name)")
    return problems


def require_profile(store: SQLStore, settings: Settings) -> None:
    """ConfigurationError naming the settings to set when `profile_problems` finds any."""
    problems = profile_problems(store, settings)
    if problems:
        raise ConfigurationError(
            "This instance is not set up for a department yet: "
            + "; ".join(problems)
            + ". Run `beatfeeds setup` (it writes them to the TOML file named by "
            "BEATFEEDS_CONFIG) or set them in the environment."
        )
