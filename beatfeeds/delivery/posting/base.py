"""What every posting adapter shares: the services offered, their credentials, the post and
the `Poster` protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

SERVICES = {
    "mastodon": "Mastodon (or a compatible server)",
    "bluesky": "Bluesky (AT Protocol)",
    "x": "X (Twitter API v2)",
    "webhook": "Webhook (signed JSON POST)",
}

# What each service needs, for the admin form and validation: (name, label, secret?)
CREDENTIAL_FIELDS: dict[str, list[tuple[str, str, bool]]] = {
    "mastodon": [("access_token", "Access token (scope write:statuses)", True)],
    "bluesky": [("identifier", "Handle or DID", False), ("app_password", "App password", True)],
    "x": [
        ("consumer_key", "API key", True),
        ("consumer_secret", "API key secret", True),
        ("access_token", "Access token", True),
        ("access_token_secret", "Access token secret", True),
    ],
    "webhook": [("secret", "Signing secret (HMAC-SHA256)", True)],
}

DEFAULT_ENDPOINTS = {
    "mastodon": "",
    "bluesky": "https://bsky.social",
    "x": "https://api.twitter.com",
    "webhook": "",
}


@dataclass
class OutboundPost:
    """One post as an adapter sends it. `key` is stable for the outbox item: the duplicate
    guard that makes a retry after a crash harmless where the service offers one."""

    text: str
    link: str
    key: str
    created_at: datetime  # naive UTC; Bluesky derives the record key from it
    payload: dict = field(default_factory=dict)  # the entry's public fields (webhooks)


@dataclass
class SentPost:
    remote_id: str
    url: str | None = None


class Poster(Protocol):
    service: str
    # Retrying an item whose first attempt may have reached the service cannot post twice.
    idempotent: bool
    # (posts, seconds) windows of the service's published limits, per account.
    limits: tuple[tuple[int, int], ...]
    # Whether posts can be deleted through the API (retractions).
    can_delete: bool

    def char_limit(self) -> int:
        """Longest post, in the service's own unit (see `measure`)."""

    def measure(self, text: str) -> int:
        """Length of a text as the service counts it."""

    def post(self, post: OutboundPost) -> SentPost:
        """Publish; TransientPostingError or PermanentPostingError on failure."""

    def delete(self, remote_id: str) -> None:
        """Delete a post made earlier (missing posts count as deleted)."""
