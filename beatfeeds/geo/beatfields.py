"""Which property of a beat-map file gives each level's code: a field, a template, a guess.

A level (beat code, sector, precinct) is read from one property (`beat`), or built from
several by a template over the properties (`{DISTRICT}-{SECTOR}`: braces mark a template).
Codes keep the file's own text: a GeoJSON number is taken as written (`111`, never
`111.0`), a string keeps its leading zeros (`"0111"`).
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from beatfeeds.core.errors import UnusableFile
from beatfeeds.core.models import Beat

CODE_FIELD_GUESSES = ("beat", "BEAT", "Beat", "beat_num", "BEAT_NUM", "name", "NAME", "Name")
SECTOR_FIELD_GUESSES = ("sector", "SECTOR", "Sector")
PRECINCT_FIELD_GUESSES = ("precinct", "PRECINCT", "Precinct", "first_precinct", "FIRST_PRECINCT")
LEVELS = {  # level -> (what the messages call it, guesses, required)
    "code": ("beat code", CODE_FIELD_GUESSES, True),
    "sector": ("sector", SECTOR_FIELD_GUESSES, False),
    "precinct": ("precinct", PRECINCT_FIELD_GUESSES, False),
}


@dataclass(frozen=True)
class FieldChoice:
    """Where one level's codes come from: a property or a template, given or guessed."""

    level: str  # code / sector / precinct
    spec: str | None  # the property name or the template; None: the map has no such level
    template: tuple[str, ...] = ()  # the properties a template uses (empty for a plain field)
    guessed: bool = False

    def describe(self) -> str:
        """One line for the loader's output: "sector: template '{DISTRICT}-{SECTOR}'"."""
        what = LEVELS[self.level][0]
        if self.spec is None:
            return f"{what}: none"
        how = "template" if self.template else "field"
        return f"{what}: {how} {self.spec!r}" + (" (guessed)" if self.guessed else "")

    def value(self, props: dict[str, str | None]) -> str | None:
        """This level's code for one feature (None when a property it needs is blank)."""
        if self.spec is None:
            return None
        if not self.template:
            return blank_to_none(props.get(self.spec))
        values = {name: blank_to_none(props.get(name)) for name in self.template}
        if any(v is None for v in values.values()):
            return None
        return self.spec.format_map(values).strip() or None


def is_template(spec: str) -> bool:
    """A field option holding braces is a template over the properties."""
    return "{" in spec or "}" in spec


def template_fields(spec: str, fields: Sequence[str], what: str) -> tuple[str, ...]:
    """The properties a template uses; UnusableFile for a bad template or unknown property."""
    try:
        parsed = list(string.Formatter().parse(spec))
    except ValueError as exc:
        raise UnusableFile(f"The {what} template {spec!r} is not valid: {exc}.") from None
    names = []
    for _text, name, fmt, conv in parsed:
        if name is None:
            continue
        if not name or fmt or conv or any(c in name for c in ".[]"):
            raise UnusableFile(
                f"The {what} template {spec!r} may only name properties in braces, "
                "like '{DISTRICT}-{SECTOR}'."
            )
        names.append(name)
    if not names:
        raise UnusableFile(f"The {what} template {spec!r} names no property.")
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise UnusableFile(
            f"The {what} template {spec!r} names {', '.join(repr(n) for n in unknown)}, "
            f"which the file does not have; properties are: {', '.join(fields)}."
        )
    return tuple(dict.fromkeys(names))


def choose_field(level: str, given: str | None, fields: Sequence[str]) -> FieldChoice:
    """The field or template for one level: the one given (checked) or a guess."""
    what, guesses, required = LEVELS[level]
    if given:
        if is_template(given):
            return FieldChoice(level, given, template_fields(given, fields, what))
        if given not in fields:
            raise UnusableFile(
                f"The file has no {what} field {given!r}; fields are: {', '.join(fields)}."
            )
        return FieldChoice(level, given)
    for g in guesses:
        if g in fields:
            return FieldChoice(level, g, guessed=True)
    if required:
        raise UnusableFile(
            f"Cannot tell which field holds the {what}; pass it explicitly. "
            f"Fields are: {', '.join(fields)}."
        )
    return FieldChoice(level, None)


def blank_to_none(value: str | None) -> str | None:
    """A property's text, stripped; None when blank."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def as_text(value) -> str | None:
    """A property value read by GDAL as the file would write it: ints without ".0"."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():  # an integer column with blanks comes back as floats
            return str(int(value))
        return repr(value)
    if hasattr(value, "item"):  # numpy scalars
        return as_text(value.item())
    return str(value)


def geojson_properties(path: str | Path, count: int) -> list[dict[str, str | None]] | None:
    """Each feature's properties as written in a GeoJSON file (numbers as their text), or None
    when the file's features cannot be matched one to one with the `count` GDAL read."""
    with open(path, encoding="utf-8-sig") as fh:
        doc = json.load(fh, parse_int=str, parse_float=str)
    features = [doc] if doc.get("type") == "Feature" else doc.get("features") or []
    if len(features) != count:
        return None
    out = []
    for f in features:
        props = f.get("properties") if isinstance(f, dict) else None
        props = props if isinstance(props, dict) else {}
        out.append({k: _json_text(v) for k, v in props.items()})
    return out


def _json_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def sectors_in_several_precincts(
    beats: list[Beat], sector: FieldChoice | None = None, precinct: FieldChoice | None = None
) -> list[str]:
    """A warning per sector whose beats fall in more than one precinct: the sector code is
    probably only unique within its precinct, and a template should combine the two."""
    precincts: dict[str, set[str]] = {}
    for b in beats:
        if b.sector and b.precinct:
            precincts.setdefault(b.sector, set()).add(b.precinct)
    if sector is not None and precinct is not None and sector.spec and precinct.spec:
        p = precinct.spec if precinct.template else "{" + precinct.spec + "}"
        s = sector.spec if sector.template else "{" + sector.spec + "}"
        hint = f"'{p}-{s}'"
    else:
        hint = "'{DISTRICT}-{SECTOR}'"
    return [
        f"sector {code}: beats in precincts {', '.join(sorted(ps))}: "
        f"use a template such as {hint} for --sector-field"
        for code, ps in sorted(precincts.items())
        if len(ps) > 1
    ]
