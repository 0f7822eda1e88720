"""How much the outside world may send: one table of field lengths and the helpers that
apply it. Nothing here imports Flask; the web layer applies these to every request."""

from __future__ import annotations

from beatfeeds.core.errors import InvalidInput

EMAIL = 254  # RFC 5321's limit on a forward path
PASSWORD = 1024  # far above any passphrase, far below what would make hashing costly
CODE = 64  # beat, sector and precinct codes, enum-like values (kind, role, frequency, ...)
NAME = 255  # file names, preset and source names
SEARCH = 200  # search boxes: /find, /records/entries
NEXT = 2048  # a sign-in's return path (longer ones are ignored, not refused)
QUERY_VALUE = 1000  # any other query-string value
FORM_VALUE = 10_000  # any other form value (free text such as an announcement's body)
QUERY_STRING = 8192  # a whole query string, in bytes
PATH = 2048  # a request path, in characters
LIST_ITEMS = 200  # values of one repeated field (`category=a&category=b...`)
SMALL_BODY = 64 * 1024  # any request body that is not a file upload or a staff map edit
LOG_VALUE = 200  # what a log line keeps of a value from outside

# Fields whose limit is not the default for their place, by name (a name means the same
# thing on every form that uses it).
FIELDS = {
    "email": EMAIL,
    "address": EMAIL,
    "password": PASSWORD,
    "new_password": PASSWORD,
    "confirm_password": PASSWORD,
    "beat": CODE,
    "q": SEARCH,
    "next": QUERY_STRING,
    "area_kind": CODE,
    "area_code": CODE,
    "category": CODE,
    "exclude": QUERY_VALUE,
    "frequency": CODE,
    "kind": CODE,
    "role": CODE,
    "outcome": CODE,
    "reason": CODE,
    "status": CODE,
    "preset": NAME,
    "save_as": NAME,
    "source": NAME,
    "filename": NAME,
    "name": NAME,
    "title": 500,
    "lat": CODE,
    "lon": CODE,
    "page": CODE,
    # An announcement's drawn area is GeoJSON; staff map edits arrive as JSON bodies.
    "polygon": 1024 * 1024,
}


def field_limit(name: str, *, in_query: bool) -> int:
    """The most characters field `name` may hold, in a query string or a form."""
    return FIELDS.get(name, QUERY_VALUE if in_query else FORM_VALUE)


def bounded(value: str | None, label: str, limit: int) -> str:
    """`value` ("" for None) when it has at most `limit` characters; InvalidInput (400)
    naming the field otherwise. The value itself is never echoed: it may be huge."""
    value = value or ""
    if len(value) > limit:
        raise InvalidInput(f"{label} is too long: at most {limit:,} characters are accepted.")
    return value


def clip(value: object, limit: int = LOG_VALUE) -> str:
    """`value` as text of at most about `limit` characters, for log lines and audit rows."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
