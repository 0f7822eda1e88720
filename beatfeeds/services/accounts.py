"""Staff accounts: password hashing, sign-in with throttling, and account changes (audited)."""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from beatfeeds.core.errors import (
    AuthError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyAttempts,
)
from beatfeeds.core.models import User

if TYPE_CHECKING:
    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore

ROLES = ("records", "admin")
MIN_PASSWORD = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this keeps the time of a wrong email close to that of a wrong
    password. Made on first use: hashing at import would slow every CLI command down."""
    return _hasher.hash("not a real password, only for timing")


def normalise_email(email: str) -> str:
    e = (email or "").strip().lower()
    if not _EMAIL.match(e):
        raise InvalidInput(f"{email!r} is not an email address.")
    return e


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"Passwords need at least {MIN_PASSWORD} characters.")


def add_user(
    store: SQLStore, email: str, role: str, password: str, *, actor: str, now: datetime
) -> int:
    """Create a staff account."""
    email = normalise_email(email)
    if role not in ROLES:
        raise InvalidInput(f"Role must be one of {', '.join(ROLES)}.")
    check_password_strength(password)
    user_id = store.accounts.add_user(email, role, _hasher.hash(password), now)
    store.accounts.audit(actor, "users.add", email, {"role": role}, now=now)
    return user_id


def set_disabled(store: SQLStore, email: str, disabled: bool, *, actor: str, now: datetime) -> None:
    """Disable or enable a staff account (audited). Nobody changes their own account this way
    (an admin would lock themselves out), and the last active administrator is never
    disabled: the site would have nobody left to manage it. The web and the CLI obey both."""
    email = normalise_email(email)
    if actor == email:
        raise Forbidden("You cannot disable your own account.")
    if disabled:
        user = store.accounts.user_by_email(email)
        if user is not None and _is_last_active_admin(store, user):
            raise Conflict(
                f"{email} is the last active administrator: add or enable another admin "
                "before disabling it."
            )
    store.accounts.update_user(email, disabled=disabled)
    store.accounts.audit(actor, "users.disable" if disabled else "users.enable", email, now=now)


def _is_last_active_admin(store: SQLStore, user: User) -> bool:
    if user.role != "admin" or user.disabled:
        return False
    return not any(
        u.role == "admin" and not u.disabled and u.id != user.id
        for u in store.accounts.list_users()
    )


def set_password(store: SQLStore, email: str, password: str, *, actor: str, now: datetime) -> None:
    """Set a user's password (an admin reset or the user's own change)."""
    email = normalise_email(email)
    check_password_strength(password)
    store.accounts.update_user(email, password_hash=_hasher.hash(password), password_changed_at=now)
    store.accounts.audit(
        actor, "users.password" if actor == email else "users.reset_password", email, now=now
    )


def change_own_password(
    store: SQLStore, user: User, current: str, new: str, *, now: datetime
) -> None:
    try:
        _hasher.verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        store.accounts.audit(user.email, "users.password_failed", user.email, now=now)
        raise AuthError("The current password is wrong.") from None
    set_password(store, user.email, new, actor=user.email, now=now)


def sign_out(store: SQLStore, user: User, *, now: datetime) -> None:
    """Record a staff member's sign-out (the face clears its own session)."""
    store.accounts.audit(user.email, "auth.logout", user.email, now=now)


def client_key(remote_addr: str | None) -> str:
    """Client addresses are kept only as a hash, for throttling."""
    return hashlib.sha256((remote_addr or "-").encode()).hexdigest()[:32]


def authenticate(
    store: SQLStore,
    settings: Settings,
    email: str,
    password: str,
    *,
    remote_addr: str | None,
    now: datetime,
) -> User:
    """The user for these credentials; AuthError or TooManyAttempts otherwise."""
    email = (email or "").strip().lower()
    client = client_key(remote_addr)
    since = now - timedelta(minutes=settings.login_window)
    limit = settings.login_max_attempts
    if (
        store.accounts.failed_logins_since(since, email=email) >= limit
        or store.accounts.failed_logins_since(since, client=client) >= limit * 4
    ):
        store.accounts.audit(email or "-", "auth.throttled", email, now=now)
        raise TooManyAttempts()
    user = store.accounts.user_by_email(email) if email else None
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password or "")
        ok = user is not None and not user.disabled
    except (VerificationError, InvalidHashError):
        ok = False
    store.accounts.record_login_attempt(email, client, ok, now)
    if not ok:
        store.accounts.audit(email or "-", "auth.failed", email, now=now)
        raise AuthError()
    store.accounts.update_user(email, last_login_at=now)
    if _hasher.check_needs_rehash(user.password_hash):
        store.accounts.update_user(email, password_hash=_hasher.hash(password))
    store.accounts.audit(email, "auth.login", email, now=now)
    return user


def require_user(store: SQLStore, email: str) -> User:
    user = store.accounts.user_by_email(normalise_email(email))
    if user is None:
        raise NotFound(f"No user {email}.")
    return user
