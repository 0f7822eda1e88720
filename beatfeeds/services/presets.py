"""Column mappings saved as named presets, and which scheduled sources use them."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from beatfeeds.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
)
from beatfeeds.core.models import SavedPreset
from beatfeeds.ingest.mapping import resolve_mapping
from beatfeeds.ingest.presets import FIELDS, PRESETS

if TYPE_CHECKING:
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)


PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


def check_preset(
    name: str, source: str, columns: dict[str, str], header: list[str] | None = None
) -> tuple[str, str]:
    """The preset's name and dataset, normalised, if they and the columns make a usable
    preset (InvalidInput or UnusableFile saying why not). With a file's `header`, every
    mapped column must be in it; without, only the mapping's own shape is checked."""
    name = (name or "").strip().lower()
    if not PRESET_NAME.match(name):
        raise InvalidInput(
            f"{name!r} is not a preset name: a preset name is 2 to 63 lower-case letters, "
            "digits or dashes."
        )
    if name in PRESETS:
        raise InvalidInput(f"{name!r} is a built-in preset; choose another name.")
    source = (source or "").strip().lower()
    if not SOURCE_NAME.fullmatch(source):
        raise InvalidInput(
            "Name the dataset (letters, digits, dashes), for example "
            "'county-sheriff-cad': incidents from later files of the same "
            "dataset merge by it."
        )
    unknown = [f for f in columns if f not in FIELDS]
    if unknown:
        raise InvalidInput(
            f"Unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"fields are {', '.join(FIELDS)}."
        )
    if not columns:
        raise InvalidInput("A preset maps at least one field to a column (--map FIELD=COLUMN).")
    # The same checks an import makes: a key, a time, both coordinates, columns in the file.
    resolve_mapping(
        list(columns.values()) if header is None else header, maps=columns, source=source
    )
    return name, source


def check_new_preset(
    store: SQLStore,
    name: str,
    source: str,
    columns: dict[str, str],
    header: list[str] | None = None,
) -> tuple[str, str]:
    """`check_preset`, and no saved preset has the name yet (Conflict)."""
    name, source = check_preset(name, source, columns, header)
    if store.uploads.saved_preset(name) is not None:
        raise Conflict(f"A saved preset named {name!r} already exists.")
    return name, source


def save_preset(
    store: SQLStore,
    name: str,
    source: str,
    columns: dict[str, str],
    *,
    actor: str,
    now: datetime,
    header: list[str] | None = None,
) -> SavedPreset:
    """Save a column mapping as a named preset, audited (the web's mapping form, `presets
    save` and `incidents import --save-preset`); checked by `check_preset` first."""
    name, source = check_new_preset(store, name, source, columns, header)
    store.uploads.save_preset(name, source, columns, created_by=actor, now=now)
    store.accounts.audit(
        actor, "presets.save", f"preset:{name}", {"columns": columns, "source": source}, now=now
    )
    log.info("saved preset %s saved by %s", name, actor)
    return store.uploads.saved_preset(name)


@dataclass
class PresetUse:
    """A saved preset and the scheduled sources that name it."""

    preset: SavedPreset
    sources: list[str]


def list_presets(store: SQLStore) -> list[PresetUse]:
    """Saved presets, by name, each with the scheduled sources that use it."""
    used: dict[str, list[str]] = {}
    for s in store.uploads.list_sources():
        if s.preset:
            used.setdefault(s.preset, []).append(s.name)
    return [PresetUse(p, used.get(p.name, [])) for p in store.uploads.saved_presets()]


def preset_use(store: SQLStore, name: str) -> PresetUse:
    """One saved preset with the scheduled sources that use it (NotFound if none)."""
    use = next((u for u in list_presets(store) if u.preset.name == name), None)
    if use is None:
        raise NotFound(f"No saved preset {name!r}.")
    return use


def delete_preset(store: SQLStore, name: str, *, actor: str, now: datetime) -> SavedPreset:
    """Delete a saved preset, audited; refused while a scheduled source uses it.

    Files already queued with it keep their own copy of the columns.
    """
    name = (name or "").strip().lower()
    if name in PRESETS:
        raise InvalidInput(f"{name!r} is a built-in preset; it cannot be deleted.")
    preset = store.uploads.saved_preset(name)
    if preset is None:
        raise NotFound(f"No saved preset {name!r}.")
    users = [s.name for s in store.uploads.list_sources() if s.preset == name]
    if users:
        which = ", ".join(users)
        raise Conflict(
            f"The preset {name!r} cannot be deleted: the scheduled source"
            f"{'s' if len(users) > 1 else ''} {which} "
            f"{'use' if len(users) > 1 else 'uses'} it. Remove the source first "
            f"(beatfeeds sources remove {users[0]})."
        )
    store.uploads.delete_saved_preset(name)
    store.accounts.audit(
        actor,
        "presets.delete",
        f"preset:{name}",
        {"columns": preset.columns, "source": preset.source},
        now=now,
    )
    log.info("saved preset %s deleted by %s", name, actor)
    return preset
