"""Plain-text helpers shared by every channel (mail headers, feed and post titles)."""

from __future__ import annotations

import re

# Any run of whitespace (Unicode's: CR, LF, U+0085, U+2028, U+2029, tabs ...) or control
# characters. A header or title built from source text must never break onto a new line:
# email rejects CR/LF in a header value, and a line break would let text forge a header.
_BREAKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def single_line(text: str | None) -> str:
    """`text` on one line: every whitespace or control run folded into one space, trimmed."""
    return _BREAKS.sub(" ", text or "").strip()
