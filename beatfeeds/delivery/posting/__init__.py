"""Adapters that post entries to outside services, one module per service.

Every adapter follows the `Poster` protocol. They know HTTP and the service's API and nothing
about the database: the outbox (beatfeeds.services.outbox) decides what to send and records results.
Errors are `TransientPostingError` (retry later, maybe at `retry_at`) or
`PermanentPostingError` (stop); anything else escaping an adapter is a bug.
"""

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


def make_poster(
    service: str, endpoint: str, credentials: dict, *, timeout: float, char_limit: int | None = None
) -> Poster:
    """The adapter for an account's service."""
    if service == "mastodon":
        from beatfeeds.delivery.posting.mastodon import MastodonPoster

        return MastodonPoster(endpoint, credentials, timeout=timeout, char_limit=char_limit)
    if service == "bluesky":
        from beatfeeds.delivery.posting.bluesky import BlueskyPoster

        return BlueskyPoster(endpoint, credentials, timeout=timeout)
    if service == "x":
        from beatfeeds.delivery.posting.x import XPoster

        return XPoster(endpoint, credentials, timeout=timeout)
    if service == "webhook":
        from beatfeeds.delivery.posting.webhook import WebhookPoster

        return WebhookPoster(endpoint, credentials, timeout=timeout)
    raise ValueError(f"unknown service {service!r}")
