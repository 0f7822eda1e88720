"""The personal-data detector (beatfeeds.publish.pii): what trips it, and that real wordings do not."""

from __future__ import annotations

import csv
import re

import pytest

from beatfeeds.core import models
from beatfeeds.publish import pii
from tests.support.instance import SHARED, need


@pytest.mark.parametrize(
    "text,kind",
    [
        ("JOHN SMITH, DOB 01/02/1990", "a date of birth"),
        ("SUBJ D.O.B. 3/4/85", "a date of birth"),
        ("date of birth 1990-02-01", "a date of birth"),
        ("born on 3 May 1990", "a date of birth"),
        ("THEFT 01/02/1990", "a full date"),
        ("WARRANT 1990-02-01", "a full date"),
        ("SEEN MARCH 3, 1990", "a full date"),
        ("ARREST 3/4/85", "a full date"),
        ("CALL 206-555-1234", "a phone number"),
        ("CALLBACK (206) 555-1234", "a phone number"),
        ("RP AT 555-1234", "a phone number"),
        ("CELL 2065551234", "a phone number"),
        ("+1 206.555.1234", "a phone number"),
        ("write to jo.doe@example.org", "an e-mail address"),
        ("SSN 123-45-6789", "an SSN-like number"),
        ("ID 123-45-6789", "an SSN-like number"),
        ("RESIDENCE OF J DOE", "a residence"),
        ("BURGLARY - HOME OF VICTIM", "a residence"),
        ("SMITH, JOHN", "a personal name"),
        ("SMITH, JOHN A", "a personal name"),
        ("Garcia, Maria; shoplift", "a personal name"),
        ("THEFT, SMITH, JOHN", "a personal name"),
        ("SHOPLIFT, JOHN SMITH, STORE", "a personal name"),
        ("THEFT REPORTED BY SMITH, JOHN", "a personal name"),
        ("WILLIAMS, ROBERT", "a personal name"),
        ("JOHN SMITH, SUSPICIOUS", "a personal name"),
        ("COMPLAINT BY MRS JONES", "a personal name"),
        ("SUSPECT NAMED BOB", "a personal name"),
    ],
)
def test_text_that_looks_personal_is_named(text, kind):
    assert pii.looks_personal(text) == kind


@pytest.mark.parametrize(
    "text",
    [
        "THEFT, SHOPLIFT",
        "ASSAULT, SIMPLE",
        "BURGLARY - RESIDENTIAL, OCCUPIED",
        "ROBBERY, STRONG ARM",
        "THEFT - CAR PROWL",
        "Burglary, Hot Prowl, Forcible Entry",
        "AIDED CASE, SICK PERSON",
        "ALARM - COMM, HOLD-UP/PANIC (EXCEPT BANKS)",
        "24/7 STORE",
        "THEFT, MARK",
        "ASSAULT, GRAND",
        "CHILD ABUSE, EXPLOITATION",
        "MVA - 5 VEHICLES",
        "Medic Response, 7 per Rule",
        "HOMELESS ENCAMPMENT",
        "",
        "   ",
    ],
)
def test_incident_wordings_do_not(text):
    assert pii.looks_personal(text) is None


def test_the_reason_names_the_field_and_what_was_seen():
    assert pii.review_reason("THEFT", "SMITH, JOHN") == (
        "needs review: the category looks like it contains a personal name"
    )
    assert pii.review_reason("JOHN SMITH, DOB 01/02/1990", "THEFT").startswith(
        "needs review: the description looks like it contains a date of birth"
    )
    assert pii.review_reason("THEFT - SHOPLIFT", "THEFT") is None
    assert models.is_review_reason(pii.review_reason("CALL 206-555-1234"))
    assert not models.is_review_reason("no location") and not models.is_review_reason(None)


def test_a_release_covers_the_texts_released_and_nothing_else():
    text, cat = "SMITH, JOHN", "THEFT"
    digest = pii.text_digest(text, cat)
    assert pii.review_hold(text, cat, None).startswith("needs review")
    assert pii.review_hold(text, cat, digest) is None
    assert pii.review_hold("SMITH, JANE", cat, digest).startswith("needs review")
    assert pii.review_hold("THEFT - SHOPLIFT", cat, None) is None


# Text columns of the shared city files: descriptions, categories and the like (codes, dates,
# numbers and census block groups are not text a department writes in words).
_TEXT_COLUMN = re.compile(r"desc|categ|type|group|offense|descript", re.I)
_NOT_TEXT = re.compile(r"code|date|number|\bid\b|num|block_group", re.I)


def _shared_wordings() -> dict[str, str]:
    """Every distinct value of a text column of every CSV in the shared data: {value: where}."""
    files = sorted(SHARED.parent.glob("*/*.csv"))  # SHARED is the Seattle folder
    need(bool(files), f"no CSV files under {SHARED.parent}")
    seen: dict[str, str] = {}
    for path in files:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            rows = csv.reader(fh)
            header = next(rows)
            cols = [
                i
                for i, c in enumerate(header)
                if _TEXT_COLUMN.search(c) and not _NOT_TEXT.search(c)
            ]
            for row in rows:
                for i in cols:
                    if i < len(row) and row[i].strip():
                        seen.setdefault(
                            row[i].strip(), f"{path.parent.name}/{path.name} {header[i]}"
                        )
    return seen


@pytest.mark.shared_data
def test_no_real_wording_of_the_shared_city_files_trips_the_detector():
    wordings = _shared_wordings()
    assert len(wordings) > 1500  # five cities' descriptions, categories, premises, weapons
    assert any("," in w for w in wordings)  # `THEFT, SHOPLIFT`-style wordings are there
    hits = {
        w: (where, pii.looks_personal(w)) for w, where in wordings.items() if pii.looks_personal(w)
    }
    print(f"{len(wordings)} distinct wordings, {len(hits)} look personal:")
    for w, (where, kind) in sorted(hits.items()):
        print(f"  {w!r} ({where}): {kind}")
    assert hits == {}
