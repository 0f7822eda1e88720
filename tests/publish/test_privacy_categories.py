"""Default classification rules against every wording of the shared Seattle files (issue 13,
point 6)."""

from __future__ import annotations

import csv

import pytest

from beatfeeds.core.settings import SETTINGS
from beatfeeds.ingest.presets import PRESETS
from beatfeeds.publish import privacy
from tests.support.instance import SHARED, shared

DEFAULT_SUPPRESSED = set(next(s.default for s in SETTINGS if s.name == "suppressed_categories"))


def suppressed(*texts: str) -> bool:
    """Whether an incident with these classification texts is withheld under the defaults."""
    category, _ = privacy.classify(texts[0], texts[1] if len(texts) > 1 else "", texts[2:])
    return category in DEFAULT_SUPPRESSED


@pytest.mark.parametrize(
    "wording,slug",
    [
        ("MEDICAL EMERGENCY", "medical"),  # the rule used to match MEDIC only
        ("ELDER ABUSE", "domestic-violence"),  # vulnerable-adult abuse goes with domestic violence
        ("ELDERLY - ABUSE OR NEGLECT", "domestic-violence"),
        ("VULNERABLE ADULT - NEGLECT", "domestic-violence"),
        ("DECEASED PERSON", "death"),
        ("DOWN - CHECK FOR DOWN PERSON", "medical"),
        ("MISSING - (ALZHEIMER, ENDANGERED, ELDERLY)", "missing-person"),  # was lost-found
        ("FOUND - PERSON", "missing-person"),
        ("CASUALTIES", "death"),
        ("INJURED - IP/JO - PERSON/INDUSTRIAL ACCIDENT", "medical"),  # was collision
    ],
)
def test_sensitive_wordings_are_suppressed_by_default(wording, slug):
    assert privacy.classify(wording, wording) == (slug, True)
    assert slug in DEFAULT_SUPPRESSED


@pytest.mark.parametrize(
    "wording,slug",
    [
        ("MINOR INJURY COLLISION", "collision"),  # MINOR qualifies the injury, not a child
        ("MOTOR VEHICLE COLLISION - MINOR DAMAGE", "collision"),
        ("TREES DOWN", "other"),
        ("WIRES DOWN (PHONE, ELECTRICAL,ETC.)", "other"),
        ("ANIMAL - INJURED, DEAD HAZARD", "hazards"),
        ("PROPERTY - MISSING, FOUND", "lost-found"),
        ("BURG - OCCUPIED RESD", "burglary"),
        ("ASLT - PERSON SHOT OR SHOT AT", "assault"),
    ],
)
def test_ordinary_wordings_are_not_over_matched(wording, slug):
    assert privacy.classify(wording, wording) == (slug, False)


def classification_columns() -> set[str]:
    """Every column a preset reads a category, description or classification text from."""
    columns: set[str] = set()
    for preset in PRESETS.values():
        columns.update(
            preset.columns[f] for f in ("category", "description") if f in preset.columns
        )
        columns.update(preset.classification_columns)
    return columns


# Sensitive wordings found in the shared files: each must be withheld.
SENSITIVE_IN_SHARED_FILES = [
    "CHILD - LURING",
    "MISSING - CHILD",
    "MISSING - ADULT",
    "MISSING PERSON",
    "MISSING - (ALZHEIMER, ENDANGERED, ELDERLY)",
    "JUVENILE - RUNAWAY",
    "FOUND - PERSON",
    "FOUND PERSON",
    "PERSONS - LOST, FOUND, MISSING",
    "DISTURBANCE - JUVENILE",
    "LIQUOR VIOLATIONS - MINOR",
    "ASLT - DV",
    "CUSTODIAL INTERFERENCE - DV",
    "DISTURBANCE - DV - NO ASLT",
    "DV - ARGUMENTS, DISTURBANCE (NO ARREST)",
    "DV - ENFORCE COURT ORDER (ARREST MANDATED)",
    "LEWD CONDUCT",
    "PROSTITUTION",
    "VICE - PROSTITUTION",
    "SEX IN PUBLIC PLACE/VIEW (INCL MASTURBATION)",
    "LEWD - (EXPOSING, FLASHING, URINATING IN PUB)",
    "CRISIS CALL",
    "BEHAVIORAL HEALTH",
    "PERSON IN BEHAVIORAL/EMOTIONAL CRISIS",
    "OVERDOSE - DRUG RELATED CASUALTY",
    "DETOX - REQUEST FOR",
    "SERVICE - WELFARE CHECK",
    "PERSON DOWN/INJURY",
    "DOWN - CHECK FOR PERSON DOWN",
    "OBS - DOWN - CHECK FOR PERSON DOWN",
    "DOWN - CHECK FOR DOWN PERSON",
    "INJURED - IP/JO - PERSON/INDUSTRIAL ACCIDENT",
    "CASUALTY (NON CRIMINAL/TRAFFIC) - MAN DOWN, SICK PERSONS, INJURED, DOA)",
    "DOA - CASUALTY, DEAD BODY",
    "OBS - DOA - CASUALTY, DEAD BODY",
    "CASUALTIES",
    "CASUALTY,NON-TRAF,NON-CRIM - NON-DRUG RELATED",
]


@pytest.mark.shared_data
def test_every_wording_of_the_shared_seattle_files_is_classified():
    shared("spd_911_incident_response_2016-03-02.csv")  # skips (or fails under CI) without data
    columns = classification_columns()
    wordings: set[str] = set()
    for path in sorted(SHARED.glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                wordings.update(row[c].strip().lstrip("-").strip() for c in columns if row.get(c))
    assert len(wordings) > 300
    missing = [w for w in SENSITIVE_IN_SHARED_FILES if w not in wordings]
    assert missing == []  # the curated list names real wordings of these files
    others = sorted(w for w in wordings if privacy.classify(w, w)[0] == "other")
    print(f"{len(others)} of {len(wordings)} wordings land in 'other':")
    for w in others:
        print("   ", w)
    assert [w for w in SENSITIVE_IN_SHARED_FILES if not suppressed(w, w)] == []
    # A sensitive wording in any classification column withholds the row.
    assert suppressed(
        "SUSPICIOUS CIRCUMSTANCES", "SUSPICIOUS PERSON", "DOWN - CHECK FOR DOWN PERSON"
    )
