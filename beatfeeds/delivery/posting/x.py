"""X (Twitter API v2, POST /2/tweets) through tweepy, with OAuth 1.0a user keys.

X offers no duplicate guard, so the outbox never retries an X post that may have reached the
service: an item cut off mid-send becomes `unknown` and waits for an admin.
"""

from __future__ import annotations

import requests
import tweepy
from requests.adapters import HTTPAdapter

from beatfeeds.core.errors import PermanentPostingError, PostOutcomeUnknown, TransientPostingError
from beatfeeds.delivery.posting._http import retry_at_from_headers
from beatfeeds.delivery.posting.base import OutboundPost, SentPost
from beatfeeds.delivery.posting.text import x_length

API = "https://api.twitter.com"


class _Rebase(HTTPAdapter):
    """Sends tweepy's requests (hard-wired to api.twitter.com) to another base URL."""

    def __init__(self, base: str, timeout: float):
        super().__init__()
        self.base = base.rstrip("/")
        self.timeout = timeout

    def send(self, request, **kwargs):
        request.url = self.base + request.url[len(API) :]
        kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class XPoster:
    service = "x"
    idempotent = False
    # POST /2/tweets on the Free tier: 17 posts per 24 hours per user.
    limits = ((17, 86400),)
    can_delete = True

    def __init__(self, endpoint: str, credentials: dict, *, timeout: float):
        self.client = tweepy.Client(
            consumer_key=credentials.get("consumer_key"),
            consumer_secret=credentials.get("consumer_secret"),
            access_token=credentials.get("access_token"),
            access_token_secret=credentials.get("access_token_secret"),
            wait_on_rate_limit=False,
        )
        # Always through the adapter, so the timeout applies to api.twitter.com too.
        self.client.session.mount(API, _Rebase(endpoint or API, timeout))

    def char_limit(self) -> int:
        return 280

    def measure(self, text: str) -> int:
        return x_length(text)

    def _call(self, fn):
        try:
            return fn()
        except tweepy.TooManyRequests as exc:
            raise TransientPostingError(
                f"x: rate limited (429) {_detail(exc)}",
                retry_at=retry_at_from_headers(exc.response.headers),
            ) from None
        except tweepy.TwitterServerError as exc:
            # A 5xx may come after the post was made: without a duplicate guard, ask a human.
            raise PostOutcomeUnknown(f"x: {_detail(exc)}") from None
        except tweepy.HTTPException as exc:
            raise PermanentPostingError(f"x: {_detail(exc)}") from None
        except requests.ConnectionError as exc:
            if (
                "Read timed out" not in str(exc)
                and "RemoteDisconnected" not in str(exc)
                and "Connection aborted" not in str(exc)
            ):
                # Refused or unreachable: the request never left, retrying is safe.
                raise TransientPostingError(f"x: {exc.__class__.__name__}: {exc}") from None
            raise PostOutcomeUnknown(f"x: {exc.__class__.__name__}: {exc}") from None
        except requests.RequestException as exc:
            raise PostOutcomeUnknown(f"x: {exc.__class__.__name__}: {exc}") from None

    def post(self, post: OutboundPost) -> SentPost:
        r = self._call(lambda: self.client.create_tweet(text=post.text, user_auth=True))
        tweet_id = str(r.data["id"])
        return SentPost(remote_id=tweet_id, url=f"https://x.com/i/web/status/{tweet_id}")

    def delete(self, remote_id: str) -> None:
        try:
            self._call(lambda: self.client.delete_tweet(remote_id, user_auth=True))
        except PermanentPostingError as exc:
            if "404" in exc.message:
                return
            raise


def _detail(exc: tweepy.HTTPException) -> str:
    status = getattr(exc.response, "status_code", "")
    msgs = "; ".join(getattr(exc, "api_messages", []) or [])
    return f"{status} {msgs}".strip()
