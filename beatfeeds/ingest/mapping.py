"""Which of a file's columns are which of our fields: a preset, `--map FIELD=COLUMN`, or the
preset detected from the header (`presets`), checked against the file's header."""

from __future__ import annotations

from dataclasses import dataclass

from beatfeeds.core.errors import InvalidInput, UnusableFile
from beatfeeds.ingest.presets import FIELDS, PRESETS, Preset, closest_preset, detect_preset


@dataclass
class ColumnMapping:
    """How one file's columns map onto our fields."""

    columns: dict[str, str]
    source: str
    preset: Preset | None = None
    classification_columns: tuple[str, ...] = ()
    location_column: str | None = None
    key_fallback_columns: tuple[str, ...] = ()
    offset_is_local: bool = False
    strip_prefix: str = ""

    @classmethod
    def from_preset(cls, preset: Preset, source: str | None = None) -> ColumnMapping:
        return cls(
            columns=dict(preset.columns),
            source=source or preset.source,
            preset=preset,
            classification_columns=preset.classification_columns,
            location_column=preset.location_column,
            key_fallback_columns=preset.key_fallback_columns,
            offset_is_local=preset.offset_is_local,
            strip_prefix=preset.strip_prefix,
        )

    def missing_columns(self, header: list[str]) -> list[str]:
        cols = set(header)
        wanted = list(self.columns.values()) + list(self.classification_columns)
        if self.location_column:
            wanted.append(self.location_column)
        return [c for c in dict.fromkeys(wanted) if c not in cols]


def parse_map_options(maps: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`FIELD=COLUMN` strings -> {field: column}, with unknown fields named."""
    out = {}
    for m in maps:
        fieldname, sep, column = m.partition("=")
        fieldname = fieldname.strip()
        if not sep or not column.strip():
            raise InvalidInput(f"--map {m!r}: expected FIELD=COLUMN")
        if fieldname not in FIELDS:
            raise InvalidInput(
                f"--map {m!r}: unknown field {fieldname!r}; fields are {', '.join(FIELDS)}"
            )
        out[fieldname] = column.strip()
    return out


def resolve_mapping(
    header: list[str],
    *,
    preset: str | None = None,
    maps: dict[str, str] | None = None,
    source: str | None = None,
) -> ColumnMapping:
    """The mapping for a file: a named preset, explicit --map columns, or auto-detection."""
    if preset and maps:
        raise InvalidInput("Give either a preset or --map columns, not both.")
    if preset:
        if preset not in PRESETS:
            raise InvalidInput(f"Unknown preset {preset!r}; presets are {', '.join(PRESETS)}.")
        mapping = ColumnMapping.from_preset(PRESETS[preset], source)
    elif maps:
        if not source:
            raise InvalidInput(
                "With --map, name the dataset with --source so that incidents "
                "from overlapping exports merge."
            )
        mapping = ColumnMapping(columns=dict(maps), source=source)
    else:
        found = detect_preset(header)
        if found is None:
            best, missing = closest_preset(header)
            raise UnusableFile(
                f"No preset matches this file's columns. The closest, {best.name}, needs "
                f"columns not found: {', '.join(missing)}. Map the columns with --map "
                f"FIELD=COLUMN (fields: {', '.join(FIELDS)})."
            )
        mapping = ColumnMapping.from_preset(found, source)
    if "external_id" not in mapping.columns and not mapping.key_fallback_columns:
        raise UnusableFile("The mapping names no external_id column (the incident's key).")
    if not ({"occurred_at", "reported_at"} & set(mapping.columns)):
        raise UnusableFile("The mapping names no occurred_at or reported_at column.")
    if ("lat" in mapping.columns) != ("lon" in mapping.columns):
        raise UnusableFile("Map both lat and lon, or neither.")
    missing = mapping.missing_columns(header)
    if missing:
        raise UnusableFile(f"The file lacks columns: {', '.join(missing)}.")
    return mapping


def mapped_columns(mapping: ColumnMapping) -> list[str]:
    """Every column the mapping reads."""
    cols = [
        *mapping.columns.values(),
        *mapping.classification_columns,
        *mapping.key_fallback_columns,
    ]
    if mapping.location_column:
        cols.append(mapping.location_column)
    return cols
