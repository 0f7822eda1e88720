"""Bluesky (any AT Protocol PDS) through the atproto SDK.

Duplicate guard: every outbox item has a fixed record key (a TID computed from the item), so a
retry after a crash writes to the same record instead of making a second post; the PDS refuses
the second write and we count that as sent.
"""

from __future__ import annotations

import threading
import zlib
from datetime import UTC, datetime

from atproto import Client
from atproto_client.exceptions import (
    AtProtocolError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.request import Request

from beatfeeds.core.errors import PermanentPostingError, TransientPostingError
from beatfeeds.delivery.posting.base import OutboundPost, SentPost
from beatfeeds.delivery.posting.text import bluesky_length, link_facets

COLLECTION = "app.bsky.feed.post"
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# createSession is limited to 30 per 5 minutes: sessions are kept per process and reused.
_SESSIONS: dict[tuple[str, str], str] = {}
_LOCK = threading.Lock()


def record_key(key: str, created_at: datetime) -> str:
    """A valid, fixed TID for an outbox item: its creation time in microseconds and a
    10-bit clock id taken from the item key."""
    micros = int(created_at.replace(tzinfo=UTC).timestamp() * 1_000_000)
    n = (micros << 10) | (zlib.crc32(key.encode()) & 0x3FF)
    out = ""
    for _ in range(13):
        out = _TID_ALPHABET[n & 31] + out
        n >>= 5
    return out


class BlueskyPoster:
    service = "bluesky"
    idempotent = True
    # Bluesky's published PDS limits: 5,000 points an hour and 35,000 a day, a post costs 3.
    limits = ((1666, 3600), (11666, 86400))
    can_delete = True

    def __init__(self, endpoint: str, credentials: dict, *, timeout: float):
        if not endpoint.startswith(("https://", "http://")):
            raise PermanentPostingError("The Bluesky server URL must start with https://.")
        self.endpoint = endpoint.rstrip("/")
        self.identifier = credentials.get("identifier", "")
        self.password = credentials.get("app_password", "")
        self.client = Client(base_url=self.endpoint, request=Request(timeout=timeout))
        self.did: str | None = None

    def char_limit(self) -> int:
        return 300

    def measure(self, text: str) -> int:
        return bluesky_length(text)

    def _login(self, fresh: bool = False) -> None:
        cache_key = (self.endpoint, self.identifier)
        with _LOCK:
            cached = None if fresh else _SESSIONS.get(cache_key)
        if cached:
            self.client.login(session_string=cached, fetch_bsky_profile=False)
        else:
            self.client.login(self.identifier, self.password, fetch_bsky_profile=False)
            with _LOCK:
                _SESSIONS[cache_key] = self.client.export_session_string()
        self.did = self.client._session.did if self.client._session else None

    def _call(self, fn):
        try:
            if self.did is None:
                self._login()
            try:
                return fn()
            except UnauthorizedError:
                self._login(fresh=True)  # the cached session expired
                return fn()
        except RateLimitExceededError as exc:
            reset = exc.reset_at
            raise TransientPostingError(
                f"bluesky: rate limited (429){', reset ' + reset.isoformat() if reset else ''}",
                retry_at=reset.astimezone(UTC).replace(tzinfo=None) if reset else None,
            ) from None
        except NetworkError as exc:
            raise TransientPostingError(f"bluesky: {exc}") from None
        except RequestErrorBase as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status >= 500 or status in (408, 425):
                raise TransientPostingError(f"bluesky: {exc}") from None
            raise PermanentPostingError(f"bluesky: {exc}") from None
        except AtProtocolError as exc:
            raise PermanentPostingError(f"bluesky: {exc.__class__.__name__}: {exc}") from None

    def post(self, post: OutboundPost) -> SentPost:
        rkey = record_key(post.key, post.created_at)
        record = {
            "$type": COLLECTION,
            "text": post.text,
            "langs": ["en"],
            "createdAt": post.created_at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
            "facets": link_facets(post.text),
        }

        def create():
            return self.client.com.atproto.repo.create_record(
                {"repo": self.did, "collection": COLLECTION, "rkey": rkey, "record": record}
            )

        try:
            res = self._call(create)
            uri = res.uri
        except PermanentPostingError as exc:
            if "exist" not in exc.message.lower():
                raise
            uri = f"at://{self.did}/{COLLECTION}/{rkey}"  # written by an attempt that crashed
        return SentPost(remote_id=uri, url=_web_url(uri))

    def set_profile(self, text: str) -> None:
        """Put the profile text in the account's description, keeping its other fields."""
        profile = "app.bsky.actor.profile"

        def current():
            try:
                res = self.client.com.atproto.repo.get_record(
                    {"repo": self.did, "collection": profile, "rkey": "self"}
                )
            except RequestErrorBase as exc:
                if exc.response is not None and exc.response.status_code in (400, 404):
                    return None  # no profile record yet
                raise
            return res.value

        value = self._call(current)
        record = dict(
            value.model_dump(by_alias=True, exclude_none=True)
            if hasattr(value, "model_dump")
            else (value or {})
        )
        record.update({"$type": profile, "description": text[:256]})
        self._call(
            lambda: self.client.com.atproto.repo.put_record(
                {"repo": self.did, "collection": profile, "rkey": "self", "record": record}
            )
        )

    def delete(self, remote_id: str) -> None:
        repo, collection, rkey = remote_id.removeprefix("at://").split("/", 2)
        self._call(
            lambda: self.client.com.atproto.repo.delete_record(
                {"repo": repo, "collection": collection, "rkey": rkey}
            )
        )


def _web_url(uri: str) -> str | None:
    try:
        repo, _, rkey = uri.removeprefix("at://").split("/", 2)
    except ValueError:
        return None
    return f"https://bsky.app/profile/{repo}/post/{rkey}"
