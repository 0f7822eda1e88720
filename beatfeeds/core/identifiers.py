"""Published identifiers of incident entries, and the instance key they are derived under.

An incident is known inside beatfeeds by its `(source, external_id)` pair. When the source
gives no id, the import makes one from the row itself (`fallback_key`: an unkeyed hash of the
time, exact address and type, so that re-importing a file finds the same incident). Such a
key is as private as the address it hashes: with the public time and type, trying the hundred
house numbers of the block recovers the address. So it is stored, never published.

What is published about an incident:
- its uid, in `/entries/<uid>` and everything that links there (feeds, posts, webhooks,
  emails, GeoJSON, API): `entry_uids`, an HMAC-SHA256 of the pair under the instance key;
- its `tag:` entry id (`entry_tag`): the source's own id when there is one (the department
  published it), otherwise the uid, never the fallback key.

The instance key is 32 random bytes made once (`new_key`) and kept in the database (`meta`,
`KEY_META`; migration 0008 creates it), so ids stay the same across re-imports, hosts and
secret-key rotations, and are derivable by no one without the database. Uids are stored
when an incident is first imported and never recomputed: incidents imported before 0008
with a source id keep the plain SHA-256 uid they were published with (it hashes only the
public source id); those with a fallback key were re-keyed once by 0008.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from urllib.parse import quote

KEY_META = "identifier_key"  # meta row holding the instance key, hex
FALLBACK_PREFIX = "h:"  # every key `fallback_key` makes starts so; no source id should
UID_DIGITS = 20


def new_key() -> str:
    """A fresh instance key, as the hex text kept in `meta`."""
    return secrets.token_hex(32)


def parse_key(text: str) -> bytes:
    """The instance key from its stored hex text (refuses anything but 32 bytes)."""
    key = bytes.fromhex(text)
    if len(key) != 32:
        raise ValueError("the identifier key must be 32 bytes")
    return key


def fallback_key(parts: Iterable[str]) -> str:
    """The stored key of a row without a source id, from its fallback columns' texts.

    Unkeyed on purpose: it is the identity a re-import of the same file must find again,
    whatever the instance key, and it is never published (it reveals the row's address).
    """
    return FALLBACK_PREFIX + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


def is_fallback_key(external_id: str) -> bool:
    """Whether an external id was made from the row's text (so it must not be published).

    Fails closed: a source id that happens to look like one is treated as one, which only
    means its entry id is the uid instead.
    """
    return external_id.startswith(FALLBACK_PREFIX)


def entry_uids(source: str, external_ids: Iterable[str], key: bytes) -> list[str]:
    """The uid of each incident of a source: HMAC-SHA256 of "source\x1fid" under the
    instance key, first 20 hex digits. A list at a time: imports compute one per row."""
    if len(key) != 32:
        raise ValueError("the identifier key must be 32 bytes")
    # HMAC as RFC 2104 builds it, from two SHA-256 states primed once with the padded key
    # (and the source): per row, two state copies. The same digests as hmac.new, in half
    # the time of copying an hmac object (a million uids per big import).
    block = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + f"{source}\x1f".encode())
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def one(external_id: str) -> str:
        i = inner.copy()
        i.update(external_id.encode())
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()[:UID_DIGITS]

    return [one(k) for k in external_ids]


def entry_uid(source: str, external_id: str, key: bytes) -> str:
    """The uid of one incident (see `entry_uids`)."""
    return entry_uids(source, [external_id], key)[0]


def entry_tag(authority: str, source: str, external_id: str, uid: str) -> str:
    """The entry id: depends only on the tag authority and the entry's identity.

    Announcements and boundary changes are named by their own (random or serial) ids;
    incidents by their source id, or by their uid when the external id is a fallback key.
    """
    if source == "announcement":  # the department's own messages are not incidents
        return f"tag:{authority}:announcement/{quote(external_id, safe='')}"
    if is_fallback_key(external_id):
        # "k:" keeps these apart from any source id; the uid is already public in the link
        return f"tag:{authority}:incident/{quote(source, safe='')}/k:{uid}"
    return f"tag:{authority}:incident/{quote(source, safe='')}/{quote(external_id, safe='')}"
