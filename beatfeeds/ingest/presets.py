"""Column mappings of real published incident formats (data, documented in docs/csv-format.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

FIELDS = (
    "external_id",
    "reported_at",
    "occurred_at",
    "category",
    "description",
    "address",
    "lat",
    "lon",
    "beat",
    "sensitive",
)


@dataclass(frozen=True)
class Preset:
    name: str
    source: str  # dataset name: incident identity is (source, external id)
    title: str
    columns: dict[str, str]  # field -> column
    # Columns whose text is also checked for sensitive categories (e.g. the initial call type).
    classification_columns: tuple[str, ...] = ()
    # A "(lat, lon)" column used when the lat/lon columns are blank.
    location_column: str | None = None
    # Where the key column is blank, hash these columns into a key instead.
    key_fallback_columns: tuple[str, ...] = ()
    # The source writes local times with a misleading "+0000" suffix.
    offset_is_local: bool = False
    # Leading characters to strip from the category/description text ("--THEFT").
    strip_prefix: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def header_signature(self) -> set[str]:
        return set(self.columns.values()) | set(self.classification_columns)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="spd-911",
            source="spd-911-incident-response",
            title="Seattle Police Department 911 Incident Response (data.seattle.gov 3k2p-39jp)",
            columns={
                "external_id": "CAD CDW ID",
                "occurred_at": "Event Clearance Date",
                "category": "Event Clearance Group",
                "description": "Event Clearance Description",
                "address": "Hundred Block Location",
                "lat": "Latitude",
                "lon": "Longitude",
                "beat": "Zone/Beat",
            },
            classification_columns=(
                "Event Clearance SubGroup",
                "Initial Type Description",
                "Initial Type Subgroup",
                "Initial Type Group",
            ),
            location_column="Incident Location",
            notes=(
                "Event Clearance Date is the event time.",
                "Incident Location is '(lat, lon)', latitude first.",
            ),
        ),
        Preset(
            name="spd-crime",
            source="spd-crime-data",
            title="SPD Crime Data: 2008-Present (data.seattle.gov tazs-3rd5)",
            columns={
                "external_id": "Offense ID",
                "occurred_at": "Offense Start DateTime",
                "reported_at": "Report DateTime",
                "category": "Offense Parent Group",
                "description": "Offense",
                "address": "100 Block Address",
                "lat": "Latitude",
                "lon": "Longitude",
                "beat": "Beat",
            },
            classification_columns=("Crime Against Category",),
            notes=(
                "Report Number repeats across offenses; Offense ID is unique.",
                "Longitude = Latitude = 0 means no location.",
            ),
        ),
        Preset(
            name="spd-call-data",
            source="spd-call-data",
            title="SPD Call Data (data.seattle.gov 33kz-ixgy), blurred coordinates, no address",
            columns={
                "external_id": "CAD Event Number",
                "occurred_at": "Original Time Queued",
                "category": "Final Call Type",
                "description": "Final Call Type",
                "lat": "Blurred_Latitude",
                "lon": "Blurred_Longitude",
                "beat": "Beat",
            },
            classification_columns=("Initial Call Type",),
            strip_prefix="-",
            notes=("No address column: entries name the beat instead.",),
        ),
        Preset(
            name="seattle-fire-911",
            source="seattle-fire-911",
            title="Seattle Real Time Fire 911 Calls (data.seattle.gov kzjm-xkqj)",
            columns={
                "external_id": "Incident Number",
                "occurred_at": "Datetime",
                "category": "Type",
                "description": "Type",
                "address": "Address",
                "lat": "Latitude",
                "lon": "Longitude",
            },
            location_column="Report Location",
            key_fallback_columns=("Datetime", "Address", "Type"),
            offset_is_local=True,
            notes=(
                "Datetime carries '+0000' but is local time.",
                "Incident Number is blank in some rows: the key is then a hash of "
                "Datetime, Address and Type.",
            ),
        ),
    ]
}


def detect_preset(header: list[str]) -> Preset | None:
    """The preset whose columns all appear in the header (the most specific one wins)."""
    cols = set(header)
    matches = [p for p in PRESETS.values() if p.header_signature <= cols]
    if not matches:
        return None
    return max(matches, key=lambda p: len(p.header_signature))


def closest_preset(header: list[str]) -> tuple[Preset, list[str]]:
    """The preset sharing most columns with the header, and the columns it misses."""
    cols = set(header)
    best = max(PRESETS.values(), key=lambda p: len(p.header_signature & cols))
    return best, sorted(best.header_signature - cols)
