"""Post text: templates, each service's way of counting, and fitting a text to a limit.

Pure functions. A text is shortened at word boundaries only (with an ellipsis), longest
free-text field first, and the link to the entry page is never cut.
"""

from __future__ import annotations

import re
import string
import unicodedata

import regex

from beatfeeds.core.errors import InvalidInput

URL = re.compile(r"https?://\S+")
LINK_LENGTH = 23  # Mastodon and X count every link as 23 characters
ELLIPSIS = "…"

FIELDS = {
    "title": "the entry text (Tweets by Beat form), or the announcement's type and title",
    "body": "the announcement's text (empty for incidents)",
    "category": "the category label",
    "address": "the hundred-block address",
    "when": "local date and time",
    "area": "the account's area, e.g. `Beat K2`",
    "beat": "beat code",
    "sector": "sector code",
    "precinct": "precinct name",
    "department": "the department name",
    "link": "the entry page (always included)",
}
# Shortened in this order when a post is too long.
SHRINKABLE = ("body", "title", "address", "category", "area", "department")

DEFAULT_TEMPLATE = "{title}\n{body}\n{link}"
DEFAULT_PROFILE_TEMPLATE = (
    "{department}: incidents and announcements for {area}, {delay} minutes after they happen, "
    "located to the hundred block. Not monitored: call 911 for emergencies."
)
PROFILE_FIELDS = ("department", "area", "delay", "feed")

_GRAPHEME = regex.compile(r"\X")
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}]")
# twitter-text v3: code points in these ranges weigh 1, all others 2; emoji sequences 2.
_X_LIGHT = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))


def template_fields(template: str) -> list[str]:
    """Names used by a template; InvalidInput for syntax errors."""
    try:
        return [
            name for _, name, spec, conv in string.Formatter().parse(template) if name is not None
        ]
    except ValueError as exc:
        raise InvalidInput(f"The template is not valid: {exc}.") from None


def check_template(template: str, allowed=FIELDS) -> None:
    """Refuse unknown fields and positional or formatted fields."""
    for name in template_fields(template):
        if name not in allowed:
            raise InvalidInput(
                f"Unknown field {{{name}}} in the template; fields are "
                + ", ".join("{" + f + "}" for f in allowed)
                + "."
            )


def check_profile_template(template: str) -> None:
    """A profile text must say the account is not monitored and name 911."""
    check_template(template, PROFILE_FIELDS)
    low = template.lower()
    if "911" not in template or "not monitored" not in low:
        raise InvalidInput(
            "The profile text must say the account is not monitored and to call "
            "911 for emergencies."
        )


def render(template: str, fields: dict[str, str]) -> str:
    """Fill a template and tidy the whitespace empty fields leave behind."""
    text = template.format_map({k: fields.get(k, "") for k in template_fields(template)})
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def graphemes(text: str) -> int:
    return len(_GRAPHEME.findall(text))


def mastodon_length(text: str) -> int:
    """Mastodon: grapheme clusters, every link 23."""
    return graphemes(URL.sub("x" * LINK_LENGTH, text))


def bluesky_length(text: str) -> int:
    """Bluesky: grapheme clusters of the whole text (links included as written)."""
    return graphemes(text)


def x_length(text: str) -> int:
    """X: weighted length (twitter-text v3): links 23; CJK, emoji and most non-Latin 2."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    pos = 0
    for m in URL.finditer(text):
        total += _x_plain(text[pos : m.start()]) + LINK_LENGTH
        pos = m.end()
    return total + _x_plain(text[pos:])


def _x_plain(text: str) -> int:
    n = 0
    for cluster in _GRAPHEME.findall(text):
        if _EMOJI.search(cluster):
            n += 2
            continue
        for ch in cluster:
            cp = ord(ch)
            n += 1 if any(lo <= cp <= hi for lo, hi in _X_LIGHT) else 2
    return n


def fit(template: str, fields: dict[str, str], measure, limit: int) -> str:
    """The template filled with `fields`, shortened at word boundaries to fit `limit`."""
    if "link" not in template_fields(template):
        template = template.rstrip() + " {link}"
    fields = {k: (v or "") for k, v in fields.items()}
    text = render(template, fields)
    if measure(text) <= limit:
        return text
    used = template_fields(template)
    for name in SHRINKABLE:
        if name not in used or not fields.get(name):
            continue
        words = fields[name].split()
        best = None
        lo, hi = 1, len(words) - 1
        while lo <= hi:  # the longest prefix of whole words that fits
            mid = (lo + hi) // 2
            candidate = render(template, fields | {name: _cut(words, mid)})
            if measure(candidate) <= limit:
                best, lo = candidate, mid + 1
            else:
                hi = mid - 1
        if best is not None:
            return best
        fields[name] = ""
        text = render(template, fields)
        if measure(text) <= limit:
            return text
    return fields["link"]


def _cut(words: list[str], n: int) -> str:
    return " ".join(words[:n]).rstrip(",;:-–— ") + ELLIPSIS


def link_facets(text: str) -> list[dict]:
    """Bluesky rich-text facets for the links of a text (UTF-8 byte offsets)."""
    out = []
    for m in URL.finditer(text):
        start = len(text[: m.start()].encode("utf-8"))
        out.append(
            {
                "index": {"byteStart": start, "byteEnd": start + len(m.group().encode("utf-8"))},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": m.group()}],
            }
        )
    return out
