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
        Preset(
            name="dc-mpd-crime",
            source="dc-mpd-crime-incidents",
            title="DC MPD Crime Incidents (opendata.dc.gov, e.g. 'in the Last 30 Days')",
            columns={
                "external_id": "CCN",
                "reported_at": "REPORT_DAT",
                "occurred_at": "START_DATE",
                "category": "OFFENSE",
                "description": "OFFENSE",
                "address": "BLOCK",
                "lat": "LATITUDE",
                "lon": "LONGITUDE",
                "beat": "PSA",
            },
            classification_columns=("METHOD",),
            notes=(
                "X/Y are Maryland State Plane metres in newer exports: LATITUDE/LONGITUDE are read.",
                "Dates are '2025/04/14 16:26:33+00' (UTC) or ISO '2019-09-03T10:51:40.000Z'.",
                "PSA is the beat (load the PSA layer with --code-field PSA); DISTRICT is its "
                "first digit.",
            ),
        ),
        Preset(
            name="boston-bpd-incidents",
            source="bpd-crime-incident-reports",
            title="Boston Police Crime Incident Reports, new system (data.boston.gov)",
            columns={
                "external_id": "INCIDENT_NUMBER",
                "occurred_at": "OCCURRED_ON_DATE",
                "category": "OFFENSE_DESCRIPTION",
                "description": "OFFENSE_DESCRIPTION",
                "address": "STREET",
                "lat": "Lat",
                "lon": "Long",
                "beat": "DISTRICT",
            },
            location_column="Location",
            offset_is_local=True,
            notes=(
                "OCCURRED_ON_DATE carries '+00' but is Boston local time (incidents bottom out "
                "at 4-5 a.m. on that clock).",
                "OFFENSE_CODE_GROUP and UCR_PART are empty in the new system.",
                "STREET may hold quoted newlines; REPORTING_AREA is not read.",
            ),
        ),
        Preset(
            name="lapd-crime",
            source="lapd-crime-data",
            title="LAPD Crime Data from 2020 to Present (data.lacity.org)",
            columns={
                "external_id": "DR_NO",
                "occurred_at": "DATE OCC",
                "reported_at": "Date Rptd",
                "category": "Crm Cd Desc",
                "description": "Crm Cd Desc",
                "address": "LOCATION",
                "lat": "LAT",
                "lon": "LON",
                "beat": "AREA",
            },
            classification_columns=("Status Desc",),
            notes=(
                "DATE OCC is a date at midnight (two layouts mixed); the time of day is in "
                "TIME OCC, which a mapping cannot join to it yet.",
                "AREA is '01'-'21'; the LAPD Divisions layer numbers them PREC 1-21.",
                "LAT = LON = 0 means no location.",
            ),
        ),
        Preset(
            name="sfpd-incidents-2018",
            source="sfpd-incident-reports-2018",
            title="SFPD Police Department Incident Reports: 2018 to Present (DataSF wg3w-h783)",
            columns={
                "external_id": "Row ID",
                "occurred_at": "Incident Datetime",
                "reported_at": "Report Datetime",
                "category": "Incident Category",
                "description": "Incident Description",
                "address": "Intersection",
                "lat": "Latitude",
                "lon": "Longitude",
                "beat": "Police District",
            },
            classification_columns=("Incident Subcategory", "Resolution"),
            location_column="point",
            notes=(
                "Row ID is unique; one incident (Incident ID) has a row per offence.",
                "Dates are year first: '2018/12/01 12:25:00 AM'.",
                "Blank coordinates are withheld locations; 'Out of SF' is a district value.",
            ),
        ),
        Preset(
            name="sfpd-incidents-2003",
            source="sfpd-incidents-2003",
            title="SFPD Incident Reports: Historical 2003 to May 2018 (DataSF tmnf-yvry)",
            columns={
                "occurred_at": "Date",
                "category": "Category",
                "description": "Descript",
                "address": "Address",
                "lat": "lat",
                "lon": "lng",
                "beat": "PdDistrict",
            },
            classification_columns=("Resolution",),
            location_column="Location",
            key_fallback_columns=("IncidntNum", "Date", "Time", "Category", "Descript", "Address"),
            notes=(
                "IncidntNum repeats (a row per offence) and the export has no row id: the key "
                "is a hash of IncidntNum, Date, Time, Category, Descript and Address.",
                "Date is the day only; the time of day is in Time.",
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
