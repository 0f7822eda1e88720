"""Outbound accounts: connecting an area to an account on an outside service (credentials
stored encrypted), listing, pausing, testing and removing them, and their profile text."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from beatfeeds.core import areas
from beatfeeds.core.errors import (
    ConfigurationError,
    InvalidInput,
    PostingError,
)
from beatfeeds.core.models import OutboundAccount
from beatfeeds.delivery import posts
from beatfeeds.delivery.credentials import decrypt_credentials, encrypt_credentials
from beatfeeds.delivery.posting import make_poster
from beatfeeds.delivery.posting import text as posttext
from beatfeeds.delivery.posting.base import (
    CREDENTIAL_FIELDS,
    DEFAULT_ENDPOINTS,
    SERVICES,
    OutboundPost,
)
from beatfeeds.delivery.posting.dryrun import DryRunPoster
from beatfeeds.services import publishing

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

log = logging.getLogger(__name__)


def add_account(
    store: SQLStore,
    settings: Settings,
    *,
    area_kind: str,
    area_code: str | None,
    service: str,
    label: str,
    endpoint: str,
    credentials: dict,
    template: str = "",
    profile_template: str = "",
    handle: str | None = None,
    actor: str,
    now: datetime,
) -> int:
    """Connect an area to an account; the credentials are stored encrypted, never shown."""
    if service not in SERVICES:
        raise InvalidInput(f"Service must be one of {', '.join(SERVICES)}.")
    if area_kind not in areas.KINDS:
        raise InvalidInput(f"Area must be one of {', '.join(areas.KINDS)}.")
    area = publishing.resolve_area(store, area_kind, area_code if area_kind != "city" else None)
    endpoint = (endpoint or DEFAULT_ENDPOINTS[service]).strip().rstrip("/")
    if not endpoint.startswith(("https://", "http://")):
        raise InvalidInput("The server or webhook URL must start with https://.")
    creds = {}
    for name, title, _secret in CREDENTIAL_FIELDS[service]:
        value = (credentials.get(name) or "").strip()
        if not value:
            raise InvalidInput(f"{title} is required for {SERVICES[service]}.")
        creds[name] = value
    template = (template or posttext.DEFAULT_TEMPLATE).replace("\r\n", "\n")
    posttext.check_template(template)
    profile_template = (profile_template or posttext.DEFAULT_PROFILE_TEMPLATE).strip()
    posttext.check_profile_template(profile_template)
    label = (label or "").strip() or f"{SERVICES[service]} for {area.label}"
    handle = (handle or creds.get("identifier") or "").strip() or None
    account_id = store.outbox.add_outbound_account(
        area_kind=area.kind,
        area_code=area.code,
        service=service,
        label=label[:200],
        endpoint=endpoint,
        handle=handle,
        credentials=encrypt_credentials(settings, creds),
        template=template,
        profile_template=profile_template,
        status="active",
        created_at=now,
        created_by=actor,
    )
    store.accounts.audit(
        actor,
        "outbound.add",
        f"account {account_id}",
        {"service": service, "area": area.label, "endpoint": _without_userinfo(endpoint)},
        now=now,
    )
    return account_id


def parse_area(spec: str) -> tuple[str, str | None]:
    """`city`, `precinct:W`, `sector:K` or `beat:K3` as (kind, code)."""
    kind, _, code = (spec or "").strip().partition(":")
    kind, code = kind.strip().lower(), code.strip()
    if kind not in areas.KINDS:
        raise InvalidInput(
            f"Area must be city, precinct:CODE, sector:CODE or beat:CODE, not {spec!r}."
        )
    if kind == "city":
        if code:
            raise InvalidInput("The city area takes no code: write `city`.")
        return kind, None
    if not code:
        raise InvalidInput(f"Name the {kind}: {kind}:CODE.")
    return kind, code


def public_target(account: OutboundAccount) -> str:
    """Where an account posts (server or webhook URL, handle), with any user name or password
    written into the URL left out: safe to print."""
    return _without_userinfo(account.endpoint) + (f" ({account.handle})" if account.handle else "")


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@dataclass
class AccountSummary:
    account: OutboundAccount
    area: str  # as `outbound add` takes it: "sector:K", "city"
    area_label: str  # "Sector K"
    target: str  # public_target()
    counts: dict[str, int]  # pending (including sending), sent, failed, unknown


def list_accounts(store: SQLStore) -> list[AccountSummary]:
    """Every outbound account with where it posts and its outbox counts; no credentials."""
    by_account = store.outbox.outbox_counts_by_account()
    out = []
    for account in store.outbox.list_outbound_accounts():
        c = by_account.get(account.id, {})
        counts = {
            "pending": c.get("pending", 0) + c.get("sending", 0),
            "sent": c.get("sent", 0),
            "failed": c.get("failed", 0),
            "unknown": c.get("unknown", 0),
        }
        spec = account.area_kind + (f":{account.area_code}" if account.area_code else "")
        out.append(
            AccountSummary(account, spec, posts.area_label(account), public_target(account), counts)
        )
    return out


def set_account_paused(
    store: SQLStore, account_id: int, paused: bool, *, actor: str, now: datetime
) -> None:
    """Pause (nothing is sent; items wait) or resume an account."""
    store.outbox.update_outbound_account(account_id, status="paused" if paused else "active")
    store.accounts.audit(
        actor, "outbound.pause" if paused else "outbound.resume", f"account {account_id}", now=now
    )


def remove_account(store: SQLStore, account_id: int, *, actor: str, now: datetime) -> None:
    """Forget an account, its credentials and its outbox (posts already made stay up)."""
    account = store.outbox.outbound_account(account_id)
    store.outbox.delete_outbound_account(account_id)
    store.accounts.audit(
        actor,
        "outbound.remove",
        f"account {account_id}",
        {"service": account.service, "label": account.label},
        now=now,
    )


def poster_for(store: SQLStore, settings: Settings, account: OutboundAccount):
    """The adapter for an account (a dry-run stand-in under BEATFEEDS_DRY_RUN)."""
    creds = decrypt_credentials(settings, account.credentials)
    poster = make_poster(
        account.service,
        account.endpoint,
        creds,
        timeout=settings.outbound_timeout,
        char_limit=account.char_limit,
    )
    if settings.dry_run:
        return DryRunPoster(poster, account.char_limit)
    return poster


def test_account(
    store: SQLStore,
    settings: Settings,
    account_id: int,
    *,
    actor: str,
    now: datetime,
    posters: Callable | None = None,
) -> str:
    """Send a test post now (it bypasses the outbox) and record the result on the account."""
    account = store.outbox.outbound_account(account_id)
    poster = (posters or poster_for)(store, settings, account)
    link = posts.area_url(settings, account)
    fields = {
        "title": f"Test post from {settings.department_name}'s feeds for {posts.area_label(account)}.",
        "body": posts.profile_text(settings, account),
        "link": link,
    }
    try:
        limit = poster.char_limit()
        if account.service == "mastodon" and not settings.dry_run:
            store.outbox.update_outbound_account(account_id, char_limit=limit)
        text = posttext.fit("{title}\n{body}\n{link}", fields, poster.measure, limit)
        sent = poster.post(
            OutboundPost(
                text=text,
                link=link,
                key=f"beatfeeds-test-{account_id}-{int(time.time())}",
                created_at=now,
                payload={"event": "test", "entry": {}},
            )
        )
    except PostingError as exc:
        result = f"failed: {exc.message}"
    except ConfigurationError as exc:
        result = f"failed: {exc.message}"
    else:
        where = sent.url or sent.remote_id
        result = "dry run: nothing was sent" if settings.dry_run else f"sent: {where}"
    store.outbox.update_outbound_account(
        account_id, last_test_at=now, last_test_result=result[:1000]
    )
    store.accounts.audit(
        actor, "outbound.test", f"account {account_id}", {"result": result[:200]}, now=now
    )
    return result


def update_profile(
    store: SQLStore,
    settings: Settings,
    account_id: int,
    *,
    actor: str,
    now: datetime,
    posters: Callable | None = None,
) -> str:
    """Write the profile text (with its not-monitored / call 911 notice) to the account's
    bio where the service's API allows it (Mastodon, Bluesky)."""
    account = store.outbox.outbound_account(account_id)
    poster = (posters or poster_for)(store, settings, account)
    if settings.dry_run:
        result = "dry run: the profile was not changed"
    elif not hasattr(poster, "set_profile"):
        result = (
            f"failed: {SERVICES[account.service]} has no API for this; paste the text "
            "into the profile by hand"
        )
    else:
        try:
            poster.set_profile(posts.profile_text(settings, account))
        except (PostingError, ConfigurationError) as exc:
            result = f"failed: {exc.message}"
        else:
            result = "profile updated"
    store.accounts.audit(
        actor, "outbound.profile", f"account {account_id}", {"result": result[:200]}, now=now
    )
    return result
