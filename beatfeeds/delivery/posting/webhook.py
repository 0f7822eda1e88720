"""Generic webhook: a JSON POST signed with HMAC-SHA256.

Headers: `X-Beatfeeds-Signature: sha256=<hex HMAC of the raw body with the shared secret>`,
`Idempotency-Key: <outbox item>` (the same on every retry of an item, so a receiver can drop
duplicates), `X-Beatfeeds-Event: entry.published | entry.deleted | test`.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import requests

from beatfeeds.core.errors import PermanentPostingError, TransientPostingError
from beatfeeds.delivery.posting._http import raise_for_status
from beatfeeds.delivery.posting.base import OutboundPost, SentPost

SIGNATURE_HEADER = "X-Beatfeeds-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookPoster:
    service = "webhook"
    idempotent = True
    limits = ((60, 60),)  # our own choice: a receiver is not flooded by a large import
    can_delete = True

    def __init__(self, endpoint: str, credentials: dict, *, timeout: float):
        if not endpoint.startswith(("https://", "http://")):
            raise PermanentPostingError("The webhook URL must start with https:// or http://.")
        self.url = endpoint
        self.secret = credentials.get("secret", "")
        self.timeout = timeout

    def char_limit(self) -> int:
        return 5000

    def measure(self, text: str) -> int:
        return len(text)

    def _send(self, event: str, key: str, document: dict) -> requests.Response:
        body = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "X-Beatfeeds-Event": event,
            SIGNATURE_HEADER: sign(self.secret, body),
            "User-Agent": "beatfeeds",
        }
        try:
            r = requests.post(
                self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise TransientPostingError(f"webhook: {exc.__class__.__name__}: {exc}") from None
        raise_for_status(r.status_code, r.headers, r.text, "webhook")
        return r

    def post(self, post: OutboundPost) -> SentPost:
        event = post.payload.get("event", "entry.published")
        self._send(
            event,
            post.key,
            {
                "event": event,
                "id": post.key,
                "text": post.text,
                "url": post.link,
                "entry": post.payload.get("entry", {}),
            },
        )
        return SentPost(remote_id=post.key, url=None)

    def delete(self, remote_id: str) -> None:
        self._send(
            "entry.deleted", f"{remote_id}-delete", {"event": "entry.deleted", "id": remote_id}
        )
