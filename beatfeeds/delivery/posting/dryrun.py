"""BEATFEEDS_DRY_RUN: stands in for any service, sends nothing, and reports success so the
outbox records the exact text that would have gone out."""

from __future__ import annotations

from beatfeeds.delivery.posting.base import OutboundPost, Poster, SentPost


class DryRunPoster:
    """Wraps the real adapter for its limits and counting, but never calls the network."""

    can_delete = True
    idempotent = True

    def __init__(self, real: Poster, char_limit: int | None = None):
        self.real = real
        self.service = real.service
        self.limits = real.limits
        self._char_limit = char_limit

    def char_limit(self) -> int:
        # A Mastodon instance's limit needs a request; without a stored one assume the default.
        if self._char_limit is not None:
            return self._char_limit
        return 500 if self.service == "mastodon" else self.real.char_limit()

    def measure(self, text: str) -> int:
        return self.real.measure(text)

    def post(self, post: OutboundPost) -> SentPost:
        return SentPost(remote_id=f"dry-run:{post.key}", url=None)

    def delete(self, remote_id: str) -> None:
        return None
