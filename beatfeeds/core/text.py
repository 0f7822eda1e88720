"""Plain-text helpers shared by every channel (mail headers, feed and post titles)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

# Any run of whitespace (Unicode's: CR, LF, U+0085, U+2028, U+2029, tabs ...) or control
# characters. A header or title built from source text must never break onto a new line:
# email rejects CR/LF in a header value, and a line break would let text forge a header.
_BREAKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def single_line(text: str | None) -> str:
    """`text` on one line: every whitespace or control run folded into one space, trimmed."""
    return _BREAKS.sub(" ", text or "").strip()


# Characters XML 1.0 cannot carry at all (not even escaped): C0 controls but tab, LF and CR,
# lone surrogates, U+FFFE and U+FFFF. One ESC byte in a description made RSS and Atom fail.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str | None) -> str:
    """`text` without the characters XML 1.0 forbids (they carry no meaning in an entry)."""
    return _NOT_XML.sub("", text or "")


def local_time_text(utc: datetime, tz: tzinfo) -> str:
    """A naive-UTC time in `tz`, the US way pages, titles and posts show it: `3/25/2016 8:09 PM`."""
    local = utc.replace(tzinfo=UTC).astimezone(tz)
    return f"{local.month}/{local.day}/{local.year} {local.strftime('%I:%M %p').lstrip('0')}"
