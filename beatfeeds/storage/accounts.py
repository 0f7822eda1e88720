"""Staff accounts, sign-in attempts (the throttle) and the audit log."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    select,
    update,
)

from beatfeeds.core.errors import Conflict, NotFound
from beatfeeds.core.models import (
    User,
)
from beatfeeds.storage import schema as t
from beatfeeds.storage.engine import Repository

_QUIET_AUDIT = (
    "auth.",
    "users.",
    "presets.",
    "sources.",
    "outbound.",
    "outbox.",
    "alerts.",
    "incidents.upload",
    "incidents.map",
    "incidents.cancel",
    "incidents.import",
    "incidents.remove-files",
)


STAFF_CHANGE_META = "feeds.staff_change"


class AccountRepository(Repository):
    """The users, login_attempts and audit_log tables."""

    def add_user(self, email: str, role: str, password_hash: str, now: datetime) -> int:
        with self.db.begin() as conn:
            if conn.execute(select(t.users.c.id).where(t.users.c.email == email)).first():
                raise Conflict(f"A user {email} already exists.")
            return conn.execute(
                insert(t.users)
                .values(
                    email=email,
                    role=role,
                    password_hash=password_hash,
                    disabled=False,
                    created_at=now,
                    password_changed_at=now,
                )
                .returning(t.users.c.id)
            ).scalar_one()

    def _user(self, row) -> User:
        return User(
            id=row.id,
            email=row.email,
            role=row.role,
            password_hash=row.password_hash,
            disabled=row.disabled,
            created_at=row.created_at,
            password_changed_at=row.password_changed_at,
        )

    def user_by_email(self, email: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.email == email)).first()
        return self._user(row) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.id == user_id)).first()
        return self._user(row) if row else None

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            return [self._user(r) for r in conn.execute(select(t.users).order_by(t.users.c.email))]

    def update_user(self, email: str, **values) -> None:
        with self.db.begin() as conn:
            n = conn.execute(update(t.users).where(t.users.c.email == email).values(**values))
        if n.rowcount == 0:
            raise NotFound(f"No user {email}.")

    def record_login_attempt(self, email: str, client: str, success: bool, now: datetime) -> None:
        with self.db.begin() as conn:
            conn.execute(
                insert(t.login_attempts).values(email=email, client=client, success=success, at=now)
            )

    def failed_logins_since(
        self, since: datetime, *, email: str | None = None, client: str | None = None
    ) -> int:
        c = t.login_attempts.c
        q = select(func.count()).where(c.at >= since).where(c.success.is_(False))
        if email is not None:
            q = q.where(c.email == email)
        if client is not None:
            q = q.where(c.client == client)
        with self.engine.connect() as conn:
            return conn.execute(q).scalar_one()

    def prune_login_attempts(self, before: datetime) -> int:
        with self.db.begin() as conn:
            return conn.execute(
                delete(t.login_attempts).where(t.login_attempts.c.at < before)
            ).rowcount

    def audit(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        detail: dict | None = None,
        *,
        now: datetime,
        conn: Connection | None = None,
    ) -> None:
        """Append to the audit log (inside `conn`'s transaction when given).

        A staff action that may change what feeds show also moves STAFF_CHANGE_META, which
        the feed stamps read; sign-ins and the like do not (see _QUIET_AUDIT).
        """
        stmt = insert(t.audit_log).values(
            at=now,
            actor=actor,
            action=action,
            target=target,
            detail=json.dumps(detail, sort_keys=True, default=str) if detail else None,
        )
        if conn is not None:
            self._append_audit(conn, stmt, action)
            return
        with self.db.begin() as c:
            self._append_audit(c, stmt, action)

    def _append_audit(self, conn: Connection, stmt, action: str) -> None:
        entry_id = conn.execute(stmt).inserted_primary_key[0]
        if not action.startswith(_QUIET_AUDIT):
            conn.execute(delete(t.meta).where(t.meta.c.key == STAFF_CHANGE_META))
            conn.execute(insert(t.meta).values(key=STAFF_CHANGE_META, value=str(entry_id)))

    def audit_log(self, limit: int = 200) -> list[dict]:
        with self.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit)
                )
            ]
