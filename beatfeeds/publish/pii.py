"""Source text that looks like personal data: the `needs review` rule.

A source's free text reaches every channel (the description is the entry's title). When it
carries what a person could be found by - a date of birth or any full date, a phone number,
an e-mail address, an SSN-like number, "RESIDENCE OF ...", a name written `LAST, FIRST` or
after a title - the entry is held back as `needs review` until records staff release or
retract it. The rule fails closed: it would rather hold back an odd wording than publish a
name; category wordings such as `THEFT, SHOPLIFT` or `ASSAULT, SIMPLE` do not trip it
(tests/test_pii.py scans every distinct wording of the shared city files).

Pure functions of text, cached per distinct value: an import calls them once per wording.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from beatfeeds.core.models import NEEDS_REVIEW

RULE_VERSION = (
    1  # raise when the rule changes: stored decisions are redone (privacy.policy_fingerprint)
)
_MONTH = r"(?:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|SEPT|OCT|NOV|DEC)[A-Z]*\.?"

# (what it looks like, pattern on the upper-cased text with single spaces), first match wins.
_PATTERNS: tuple[tuple[str, re.Pattern], ...] = tuple(
    (kind, re.compile(rx))
    for kind, rx in (
        (
            "a date of birth",
            r"\bD\s?\.?\s?O\s?\.?\s?B\b|\bDATE OF BIRTH\b|\bBIRTH ?DATE\b"
            r"|\bBORN (?:ON |IN )?(?:\d|" + _MONTH + ")",
        ),
        ("an e-mail address", r"[A-Z0-9._%+-]+@[A-Z0-9-]+(?:\.[A-Z0-9-]+)*\.[A-Z]{2,}\b"),
        ("an SSN-like number", r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])|\bSSN\b|\bSOCIAL SECURITY\b"),
        (
            "a phone number",
            r"(?<![\d-])(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}"
            r"(?![\d-])|(?<![\d-])\d{3}-\d{4}(?![\d-])"
            r"|\b(?:PHONE|PH|TEL|CELL|MOBILE)\b[ #:.]*\d{7,}",
        ),
        (
            "a full date",
            r"(?<![\d/.-])\d{1,2}([/.-])\d{1,2}\1(?:19|20)\d{2}(?![\d/.-])"
            r"|(?<![\d/.-])(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/\d{2}(?![\d/.-])"
            r"|(?<![\d/.-])(?:1[89]|20)\d{2}([/.-])(?:0?[1-9]|1[0-2])\2"
            r"(?:0?[1-9]|[12]\d|3[01])(?![\d/.-])"
            r"|\b" + _MONTH + r" \d{1,2}(?:ST|ND|RD|TH)?,? (?:19|20)\d{2}\b"
            r"|\b\d{1,2} " + _MONTH + r",? (?:19|20)\d{2}\b",
        ),
        ("a residence", r"\b(?:RESIDENCE|RES|HOME|HOUSE|APARTMENT|APT) OF\b"),
        (
            "a personal name",
            r"\b(?:MR|MRS|MS|MISS|MX)\.? [A-Z][A-Z'-]+"
            r"|\bNAMED [A-Z]{2,}|\bNAME(?: IS| ?:) ?[A-Z]{2,}",
        ),
    )
)
_SPACES = re.compile(r"\s+")
# `LAST, FIRST`, `LAST, FIRST M` or `LAST, FIRST MIDDLE` as a clause of its own (the whole
# text, or between commas, semicolons, brackets or " - ", or after "BY", "VICTIM"...), FIRST
# a common given name.
# Both patterns are lookaheads, so that clauses sharing a comma ("THEFT, SMITH, JOHN") are
# all tried.
_LAST_FIRST = re.compile(
    r"(?=(?:^|[;:(/]|, | - |\b(?:BY|VICTIM|SUSPECT|SUBJECT|SUBJ|RP|COMPLAINANT|OWNER|DRIVER) )"
    r"\s*([A-Z][A-Z'-]+), ?([A-Z][A-Z'-]+)(?: ([A-Z][A-Z'-]*)\.?)?"
    r"(?= ?(?:$|[,;:)/]| - )))"
)
# `FIRST LAST` at the start of a clause, followed by a comma: "JOHN SMITH, ..."
_FIRST_LAST = re.compile(
    r"(?=(?:^|[;:(/]|, | - )\s*([A-Z][A-Z'-]+) (?:[A-Z]\.? )?([A-Z][A-Z'-]+),)"
)


@lru_cache(maxsize=1)
def given_names() -> frozenset[str]:
    """Common US given names (data/given_names.txt: 1990 Census lists, frequency >= 0.01%)."""
    from beatfeeds.core.resources import (
        resource_dir,  # the wheel or the repository: the one place that knows
    )

    path = resource_dir("data") / "given_names.txt"
    return frozenset(
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )


# Words that are given names in the Census lists but are also ordinary incident wording.
_NOT_NAMES = frozenset(
    {
        "ASIA",
        "AUGUST",
        "AUTUMN",
        "BILL",
        "CHANCE",
        "CHARITY",
        "CHINA",
        "CHRISTIAN",
        "CLEMENT",
        "CRYSTAL",
        "DALE",
        "DAWN",
        "DESTINY",
        "DOLLY",
        "EARLY",
        "ECHO",
        "FAITH",
        "FLORIDA",
        "FOREST",
        "FORREST",
        "FRANK",
        "GALE",
        "GARLAND",
        "GEORGIA",
        "GOLDIE",
        "GRACE",
        "GRANT",
        "HARMONY",
        "HOPE",
        "IRIS",
        "ISLAND",
        "IVORY",
        "IVY",
        "JACK",
        "JADE",
        "JAN",
        "JEWEL",
        "JOY",
        "JUNE",
        "JUSTICE",
        "KING",
        "LAKE",
        "LANE",
        "LONG",
        "MAJOR",
        "MARCH",
        "MARK",
        "MARSHALL",
        "MAY",
        "MERCEDES",
        "MERCY",
        "MILES",
        "MONDAY",
        "PARIS",
        "PATIENCE",
        "PEARL",
        "PENNY",
        "PRECIOUS",
        "RAY",
        "REED",
        "RICH",
        "ROBIN",
        "ROCKY",
        "ROSE",
        "RUBY",
        "SAGE",
        "SALLY",
        "SHIRLEY",
        "SKY",
        "STAR",
        "STERLING",
        "SUMMER",
        "SUNNY",
        "TEMPLE",
        "TROY",
        "VAN",
        "VIRGINIA",
        "WADE",
        "WARD",
        "WILL",
        "WINTER",
        "YOUNG",
    }
)


def _is_given(word: str) -> bool:
    return word in given_names() and word not in _NOT_NAMES


def looks_personal(text: str) -> str | None:
    """What in this text looks like personal data ("a date of birth", ...), or None."""
    return _looks_personal(text or "")


@lru_cache(maxsize=65536)  # a source uses a few hundred distinct wordings
def _looks_personal(text: str) -> str | None:
    t = _SPACES.sub(" ", text.upper()).strip()
    if not t:
        return None
    for kind, rx in _PATTERNS:
        if rx.search(t):
            return kind
    for m in _LAST_FIRST.finditer(t):
        if _is_given(m.group(2)):
            return "a personal name"
    for m in _FIRST_LAST.finditer(t):
        if _is_given(m.group(1)) and len(m.group(2)) > 1:
            return "a personal name"
    return None


def review_reason(description: str, category_text: str = "") -> str | None:
    """The `needs review` suppression reason for a row's published texts, or None.

    Only the texts an entry shows are checked: the description (the entry's title) and the
    source's category wording (on the entry page).
    """
    for what, text in (("description", description), ("category", category_text)):
        kind = looks_personal(text)
        if kind:
            return f"{NEEDS_REVIEW}: the {what} looks like it contains {kind}"
    return None


def text_digest(description: str, category_text: str) -> str:
    """Fingerprint of the texts records staff released: a release covers these texts only,
    so a re-import that changes them asks for a review again."""
    return hashlib.sha256(f"{description}\x1f{category_text}".encode()).hexdigest()


def review_hold(description: str, category_text: str, released_digest: str | None) -> str | None:
    """The `needs review` reason of stored texts, unless staff released exactly these texts."""
    reason = review_reason(description, category_text)
    if reason and released_digest and released_digest == text_digest(description, category_text):
        return None
    return reason
