"""WebSub (W3C Recommendation): tell the hub which feeds changed, so subscribers get them
pushed instead of polling. Feeds advertise the hub themselves (see feeds.py and the views)."""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.request
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from beatfeeds.publish.feeds import FORMATS, feed_url
from beatfeeds.services import publishing

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)

VERSION_KEY = "websub.version"  # meta keys under "websub." do not move the feed version
HASHES_KEY = "websub.hashes"


def ping_hub(hub_url: str, topic: str, *, timeout: float = 10.0) -> str | None:
    """POST `hub.mode=publish` for one feed URL; None on success, else the reason."""
    body = urlencode({"hub.mode": "publish", "hub.url": topic}).encode()
    if urlsplit(hub_url).scheme not in ("http", "https"):
        return "the hub URL must start with http:// or https://"
    req = urllib.request.Request(
        hub_url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "beatfeeds"},
    )
    try:
        # the scheme is http or https (checked above), never file: or ftp:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # nosec B310
            resp.read()
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def ping_changed_feeds(store: SQLStore, settings: Settings, *, now: datetime) -> dict:
    """Ping the hub for every area feed whose content changed since the last successful ping.

    Cheap when nothing changed (one version stamp read). Otherwise every unfiltered area feed
    is built and hashed; feeds whose ping failed keep their old hash and are retried next run.
    """
    if not settings.hub_url:
        return {"hub": None, "pinged": 0, "failed": 0}
    version = publishing.feed_version(store, settings, now=now)
    if store.db.get_meta(VERSION_KEY) == version:
        return {"hub": settings.hub_url, "pinged": 0, "failed": 0}
    known = json.loads(store.db.get_meta(HASHES_KEY) or "{}")
    pinged, failed = [], []
    for area in publishing.all_areas(store):
        for fmt in FORMATS:
            url = feed_url(settings, area, fmt)
            body = publishing.area_feed(store, settings, area, fmt, now=now).body
            digest = hashlib.sha256(body).hexdigest()
            if known.get(url) == digest:
                continue
            error = ping_hub(settings.hub_url, url)
            if error is None:
                known[url] = digest
                pinged.append(url)
            else:
                failed.append(url)
                log.warning("websub: hub %s refused %s: %s", settings.hub_url, url, error)
    store.db.set_meta(HASHES_KEY, json.dumps(known, sort_keys=True))
    if not failed:
        store.db.set_meta(VERSION_KEY, version)
    return {"hub": settings.hub_url, "pinged": len(pinged), "failed": len(failed)}
