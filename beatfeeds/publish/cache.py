"""Built feeds and documents, and the in-memory cache the web app serves them from.

The cache knows nothing of the database: the caller passes the stamps that say whether a
built feed is still current (`services.publishing.feed_version` and `area_version`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass
class RenderedFeed:
    """A built feed or OPML list with the validators it is served under."""

    body: bytes
    content_type: str
    last_modified: datetime  # naive UTC
    etag: str = ""

    def __post_init__(self):
        if not self.etag:
            self.etag = hashlib.sha256(self.body).hexdigest()[:32]


class FeedCache:
    """Built feeds in memory, each kept with the two stamps it was built under.

    A lookup reads the global stamp (`feed_version`, a handful of index lookups); while it
    has not moved, the feed is served as built. When it moved (an import, an entry passing its
    delay, a staff action), the feed's own stamp (`area_version`: its beats' stamps, read in
    one pass for all feeds once per global stamp) decides: unchanged, the feed is kept under
    the new global stamp; changed, it is rebuilt. Only one thread builds a given feed at a
    time; others asking for it wait and take the result. Sign-ins and other stranger-made
    writes move neither stamp. Least recently used feeds are dropped beyond `max_items`
    (filters multiply the number of distinct feeds).
    """

    def __init__(self, max_items: int = 2048):
        self.max_items = max_items
        self._items: OrderedDict[tuple, tuple[str, str, object]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple, list] = {}  # key -> [lock, threads using it]
        self._shared: tuple[str, object] | None = None  # (version, per_version's value)
        self._shared_lock = threading.Lock()
        self.hits = 0
        self.builds = 0
        self.rechecks = 0  # global stamp moved, the feed's own did not: kept without building

    def get(self, key: tuple, version: str):
        """The value stored under `key` when it was built under `version`, else None."""
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] != version:
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found[2]

    def _store(self, key: tuple, version: str, own_version: str, feed) -> None:
        self._items[key] = (version, own_version, feed)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def fetch(
        self,
        key: tuple,
        version: str,
        build: Callable[[], tuple[object, str]],
        own_version: Callable[[object], str],
    ):
        """The value under `key`: cached while `version` holds; else kept when
        `own_version(value)` equals the stamp it was built with; else `build()`, which
        returns (value, its own stamp). One build per key at a time."""
        found = self.get(key, version)
        if found is not None:
            return found
        with self._lock:
            slot = self._building.setdefault(key, [threading.Lock(), 0])
            slot[1] += 1
        try:
            with slot[0]:
                found = self.get(key, version)  # built while this thread waited
                if found is not None:
                    return found
                with self._lock:
                    stale = self._items.get(key)
                if stale is not None and stale[1] and own_version(stale[2]) == stale[1]:
                    with self._lock:
                        self.rechecks += 1
                        self._store(key, version, stale[1], stale[2])
                    return stale[2]
                value, own = build()
                with self._lock:
                    self.builds += 1
                    self._store(key, version, own, value)
                return value
        finally:
            with self._lock:
                slot[1] -= 1
                if not slot[1]:
                    del self._building[key]

    def per_version(self, version: str, compute: Callable[[], object]):
        """`compute()`, once per `version` however many threads ask (the per-beat stamps
        that every feed's own stamp is made from)."""
        with self._shared_lock:
            if self._shared is None or self._shared[0] != version:
                self._shared = (version, compute())
            return self._shared[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._shared = None
