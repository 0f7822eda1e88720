"""Outbound accounts' credentials, encrypted at rest with a key derived from the secret key.

Only the outbox decrypts them, to send; they are never shown again once entered.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from beatfeeds.core.errors import ConfigurationError
from beatfeeds.core.settings import ensure_secret_key

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings


def _fernet(settings: Settings) -> Fernet:
    """Fernet keyed by HKDF-SHA256 of the secret key (a key used for nothing else)."""
    secret = ensure_secret_key(settings).encode()
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"beatfeeds outbound accounts",
        info=b"credentials v1",
    ).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_credentials(settings: Settings, credentials: dict) -> str:
    """The credentials as an opaque token to store."""
    return _fernet(settings).encrypt(json.dumps(credentials).encode()).decode()


def decrypt_credentials(settings: Settings, token: str) -> dict:
    """The stored credentials; ConfigurationError when the secret key changed since."""
    try:
        return json.loads(_fernet(settings).decrypt(token.encode()))
    except InvalidToken:
        raise ConfigurationError(
            "The account's credentials cannot be decrypted: the secret key "
            "changed since they were entered. Remove the account and add "
            "it again."
        ) from None
