"""Adapters that post entries to outside services, one module per service.

Every adapter follows the `Poster` protocol. They know HTTP and the service's API and nothing
about the database: the outbox (beatfeeds.services.outbox) decides what to send and records results.
Errors are `TransientPostingError` (retry later, maybe at `retry_at`) or
`PermanentPostingError` (stop); anything else escaping an adapter is a bug.
"""

from __future__ import annotations

from beatfeeds.delivery.posting.base import Poster


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
