"""The links email alerts carry: confirm a sign-up, manage an address's alerts, unsubscribe.

Links carry their content encrypted (Fernet: AES-128-CBC and HMAC-SHA256, with its time of
making), so decoding one reveals nothing, not even the address, and a link cannot be forged
or altered. Each purpose has its own key, so a link made for one cannot serve another.
A confirmation link must carry the sign-up itself (nothing is stored before confirming),
which is why these are sealed payloads rather than random ids kept in the database.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from beatfeeds.core import areas
from beatfeeds.core.errors import NotFound
from beatfeeds.core.models import EmailSubscription
from beatfeeds.core.settings import ensure_secret_key

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings


class InvalidLink(NotFound):
    http_status = 400
    user_message = (
        "This link is not valid or has expired. Ask for a new one from any area "
        'page or from "Manage my alerts".'
    )


LEGACY_LINK = (
    "This link comes from a message sent before this site changed how its links "
    "work, and it no longer works. The links in any newer alert or digest do; or "
    'ask for a new link from "Manage my alerts".'
)
UNSUBSCRIBE_LINK_DAYS = 90  # every alert and digest brings a fresh link; older ones expire
_LEGACY = "eyJ"  # links of the first release: readable JSON (`{"...`), signed but not sealed


def _fernet(settings: Settings, purpose: str) -> Fernet:
    """Fernet keyed by HKDF-SHA256 of the secret key, one key per purpose of link."""
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"beatfeeds email alert links",
        info=f"{purpose} v2".encode(),
    ).derive(ensure_secret_key(settings).encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _stamp(now: datetime | None) -> int:
    return int((now.replace(tzinfo=UTC) if now else datetime.now(UTC)).timestamp())


def seal(settings: Settings, purpose: str, data: dict, now: datetime | None = None) -> str:
    """An opaque, URL-safe token for `data` (its `=` padding dropped: links stay clean)."""
    token = _fernet(settings, purpose).encrypt_at_time(
        json.dumps(data, separators=(",", ":")).encode(), _stamp(now)
    )
    return token.decode().rstrip("=")


def _lifetime(settings: Settings, purpose: str) -> int:
    """Seconds a link of this purpose stays valid."""
    if purpose == "unsubscribe":
        return UNSUBSCRIBE_LINK_DAYS * 86400
    return settings.alert_link_hours * 3600


def load(settings: Settings, purpose: str, token: str, now: datetime | None = None) -> dict:
    """The content of a link; InvalidLink when forged, altered, expired or of the old kind."""
    if token.startswith(_LEGACY):
        raise InvalidLink(LEGACY_LINK)
    fernet = _fernet(settings, purpose)
    raw = (token + "=" * (-len(token) % 4)).encode()
    try:
        return json.loads(fernet.decrypt_at_time(raw, _lifetime(settings, purpose), _stamp(now)))
    except InvalidToken:
        pass
    except ValueError:  # not JSON: cannot come from us, but never a 500
        raise InvalidLink() from None
    try:  # Authentic but refused: expired (or made in the future by a wrong clock).
        fernet.extract_timestamp(raw)
    except InvalidToken:
        raise InvalidLink() from None
    raise InvalidLink("This link has expired. Ask for a new one.")


def unsubscribe_token(
    settings: Settings, subscription: EmailSubscription, now: datetime | None = None
) -> str:
    """For the one-click unsubscribe link in every alert (RFC 8058): names one subscription
    of one address, and works for `UNSUBSCRIBE_LINK_DAYS` days."""
    return seal(settings, "unsubscribe", {"s": subscription.id, "a": subscription.address}, now)


def digest_unsubscribe_token(
    settings: Settings, address: str, frequency: str, now: datetime | None = None
) -> str:
    """For the one-click link of a digest: stops every subscription of the address that the
    digest serves (its daily or its weekly ones). Works for `UNSUBSCRIBE_LINK_DAYS` days."""
    return seal(settings, "unsubscribe", {"a": address, "q": frequency}, now)


def manage_token(settings: Settings, address: str, now: datetime | None = None) -> str:
    """For a "manage my alerts" link: works for `alert_link_hours` hours."""
    return seal(settings, "manage", {"a": address}, now)


def url(settings: Settings, path: str) -> str:
    """The absolute URL of a path of the site."""
    return settings.base_url.rstrip("/") + path


def area_url(settings: Settings, kind: str, code: str | None) -> str:
    """The absolute URL of an area's page."""
    return url(settings, areas.page_path(kind, code))
