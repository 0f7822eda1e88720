"""Mastodon (and compatible servers) through Mastodon.py.

Duplicate guard: the `Idempotency-Key` header. Mastodon remembers it for an hour and answers
a repeat with the status it already made, so retrying an item after a crash is harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
)

from beatfeeds.core.errors import PermanentPostingError, TransientPostingError
from beatfeeds.delivery.posting.base import OutboundPost, SentPost
from beatfeeds.delivery.posting.text import mastodon_length

DEFAULT_LIMIT = 500


class MastodonPoster:
    service = "mastodon"
    idempotent = True
    # Mastodon's defaults: 300 statuses per 3 hours per account, 30 deletions per 30 minutes.
    limits = ((300, 3 * 3600),)
    can_delete = True

    def __init__(
        self, endpoint: str, credentials: dict, *, timeout: float, char_limit: int | None = None
    ):
        if not endpoint.startswith(("https://", "http://")):
            raise PermanentPostingError("The Mastodon server URL must start with https://.")
        self.api = Mastodon(
            access_token=credentials.get("access_token"),
            api_base_url=endpoint.rstrip("/"),
            request_timeout=timeout,
            ratelimit_method="throw",
            version_check_mode="none",
        )
        self._char_limit = char_limit

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MastodonRatelimitError as exc:
            reset = getattr(self.api, "ratelimit_reset", None)
            retry_at = (
                datetime.fromtimestamp(reset, UTC).replace(tzinfo=None)
                if reset
                else datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=5)
            )
            raise TransientPostingError(f"mastodon: rate limited ({exc})", retry_at) from None
        except (MastodonNetworkError, MastodonServerError) as exc:
            raise TransientPostingError(f"mastodon: {_describe(exc)}") from None
        except MastodonAPIError as exc:
            status = exc.args[1] if len(exc.args) > 1 else None
            if status in (408, 425):
                raise TransientPostingError(f"mastodon: {_describe(exc)}") from None
            raise PermanentPostingError(f"mastodon: {_describe(exc)}") from None
        except MastodonError as exc:
            raise PermanentPostingError(f"mastodon: {_describe(exc)}") from None

    def char_limit(self) -> int:
        """The instance's own limit (configuration.statuses.max_characters), read once."""
        if self._char_limit is None:
            info = self._call(self.api.instance_v2)
            try:
                self._char_limit = int(info["configuration"]["statuses"]["max_characters"])
            except (KeyError, TypeError, ValueError):
                self._char_limit = DEFAULT_LIMIT
        return self._char_limit

    def measure(self, text: str) -> int:
        return mastodon_length(text)

    def post(self, post: OutboundPost) -> SentPost:
        status = self._call(
            self.api.status_post,
            post.text,
            visibility="public",
            idempotency_key=post.key,
            language="en",
        )
        return SentPost(remote_id=str(status["id"]), url=status.get("url"))

    def set_profile(self, text: str) -> None:
        """Put the profile text in the account's bio, and mark it as an automated account."""
        self._call(self.api.account_update_credentials, note=text, bot=True)

    def delete(self, remote_id: str) -> None:
        try:
            self._call(self.api.status_delete, remote_id)
        except PermanentPostingError as exc:
            if isinstance(exc.__context__, MastodonNotFoundError) or "404" in exc.message:
                return  # already gone
            raise


def _describe(exc: Exception) -> str:
    parts = [str(a) for a in exc.args if a not in (None, "")]
    return " ".join(parts) or exc.__class__.__name__
