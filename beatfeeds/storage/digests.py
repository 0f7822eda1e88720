"""Email digests: the entries of one period's letter, and the pause switch of email alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from beatfeeds.core.errors import NotFound
from beatfeeds.core.models import (
    EmailDelivery,
    EmailDigest,
)
from beatfeeds.storage import schema as t
from beatfeeds.storage.email import PAUSED_KEY, _delivery, _digest, deliveries_query, email_matches
from beatfeeds.storage.engine import Repository


class DigestRepository(Repository):
    """The email_digests table (and the deliveries a digest carries)."""

    def latest_email_digest_ends(self, frequency: str) -> dict[int, datetime]:
        """{subscriber id: end of its latest digest period} for one frequency."""
        g = t.email_digests.c
        with self.engine.connect() as conn:
            return dict(
                conn.execute(
                    select(g.subscriber_id, func.max(g.period_end))
                    .where(g.frequency == frequency)
                    .group_by(g.subscriber_id)
                ).all()
            )

    def entries_for_email_digest(
        self,
        set_id: int,
        subscriber_id: int,
        frequency: str,
        *,
        now: datetime,
        since: datetime,
        oldest_event: datetime | None = None,
        limit: int = 10000,
    ) -> list[tuple[str, datetime]]:
        """(uid, publish_at) of public entries matching any of the address's subscriptions
        of this frequency that became public since `since` (or since the subscription was
        made, if later), whose event is not older than `oldest_event`, and that were never
        queued for the address (in an alert or a digest)."""
        sub = t.email_subscriptions.c
        seen: dict[str, datetime] = {}
        with self.engine.connect() as conn:
            for s in conn.execute(
                select(t.email_subscriptions)
                .where(sub.subscriber_id == subscriber_id)
                .where(sub.frequency == frequency)
            ).all():
                for uid, at, _ in email_matches(
                    conn,
                    set_id,
                    s,
                    now=now,
                    since=max(since, s.created_at),
                    oldest_event=oldest_event,
                    urgent_only=False,
                    limit=limit,
                ):
                    seen.setdefault(uid, at)
        return sorted(seen.items(), key=lambda x: (x[1], x[0]))

    def create_email_digest(
        self,
        *,
        subscriber_id: int,
        frequency: str,
        period_start: datetime,
        period_end: datetime,
        entries: Sequence[tuple[str, datetime]],
        now: datetime,
    ) -> int | None:
        """Record one digest and its entries (skipping any already queued for the address) in
        one transaction. None when that period's digest exists already (another process made
        it). A digest with nothing new is recorded `cancelled`, so the period counts as done."""
        g = t.email_digests.c
        ins = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        with self.db.begin() as conn:
            digest_id = conn.execute(
                ins(t.email_digests)
                .values(
                    subscriber_id=subscriber_id,
                    frequency=frequency,
                    period_start=period_start,
                    period_end=period_end,
                    status="pending",
                    next_attempt_at=now,
                    attempts=0,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["subscriber_id", "frequency", "period_end"])
                .returning(g.id)
            ).scalar()
            if digest_id is None:
                return None
            rows = [
                {
                    "subscriber_id": subscriber_id,
                    "entry_uid": uid,
                    "status": "pending",
                    "due_at": at,
                    "next_attempt_at": now,
                    "attempts": 0,
                    "created_at": now,
                    "digest_id": digest_id,
                }
                for uid, at in entries
            ]
            added = 0
            if rows:
                stmt = ins(t.email_deliveries).on_conflict_do_nothing(
                    index_elements=["subscriber_id", "entry_uid"]
                )
                added = len(conn.execute(stmt.returning(t.email_deliveries.c.id), rows).all())
            if not added:
                conn.execute(
                    update(t.email_digests)
                    .where(g.id == digest_id)
                    .values(status="cancelled", error="Nothing new in this period.")
                )
        return digest_id

    def _digests_query(self):
        s, g = t.email_subscribers.c, t.email_digests.c
        return select(t.email_digests, s.address).join(t.email_subscribers, s.id == g.subscriber_id)

    def due_email_digests(self, now: datetime, limit: int = 200) -> list[EmailDigest]:
        g = t.email_digests.c
        q = (
            self._digests_query()
            .where(g.status == "pending")
            .where(g.next_attempt_at <= now)
            .order_by(g.period_end, g.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_digest(r) for r in conn.execute(q)]

    def email_digests(
        self, *, status: str | None = None, address: str | None = None
    ) -> list[EmailDigest]:
        g = t.email_digests.c
        q = self._digests_query().order_by(g.id)
        if status is not None:
            q = q.where(g.status == status)
        if address is not None:
            q = q.where(t.email_subscribers.c.address == address)
        with self.engine.connect() as conn:
            return [_digest(r) for r in conn.execute(q)]

    def email_digest(self, digest_id: int) -> EmailDigest:
        with self.engine.connect() as conn:
            row = conn.execute(
                self._digests_query().where(t.email_digests.c.id == digest_id)
            ).first()
        if row is None:
            raise NotFound(f"No email digest {digest_id}.")
        return _digest(row)

    def email_digest_entries(self, digest_id: int) -> list[EmailDelivery]:
        """The deliveries (entries) a digest lists, oldest first."""
        d = t.email_deliveries.c
        q = deliveries_query().where(d.digest_id == digest_id).order_by(d.due_at, d.id)
        with self.engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(q)]

    def claim_email_digest(self, digest_id: int, now: datetime) -> bool:
        """Mark a digest (and its entries) as being sent; False when another process took it
        first."""
        g, d = t.email_digests.c, t.email_deliveries.c
        with self.db.begin() as conn:
            n = conn.execute(
                update(t.email_digests)
                .where(g.id == digest_id)
                .where(g.status == "pending")
                .values(status="sending", claimed_at=now, attempts=g.attempts + 1)
            )
            if n.rowcount == 1:
                conn.execute(
                    update(t.email_deliveries)
                    .where(d.digest_id == digest_id)
                    .where(d.status != "cancelled")
                    .values(status="sending", claimed_at=now, attempts=d.attempts + 1)
                )
        return n.rowcount == 1

    def finish_email_digest(self, digest_id: int, **values) -> None:
        """Record a digest's outcome; its entries (but those dropped as no longer public)
        take the same status and time."""
        d = t.email_deliveries.c
        with self.db.begin() as conn:
            conn.execute(
                update(t.email_digests).where(t.email_digests.c.id == digest_id).values(**values)
            )
            if "status" in values:
                conn.execute(
                    update(t.email_deliveries)
                    .where(d.digest_id == digest_id)
                    .where(d.status != "cancelled")
                    .values(
                        status=values["status"],
                        sent_at=values.get("sent_at"),
                        error=values.get("error"),
                    )
                )

    def cancel_email_digest_entry(self, delivery_id: int, error: str) -> None:
        with self.db.begin() as conn:
            conn.execute(
                update(t.email_deliveries)
                .where(t.email_deliveries.c.id == delivery_id)
                .values(status="cancelled", error=error)
            )

    def stale_email_digests(self, claimed_before: datetime) -> list[EmailDigest]:
        """Digests left `sending` by a process that died before recording the result."""
        g = t.email_digests.c
        q = self._digests_query().where(g.status == "sending").where(g.claimed_at < claimed_before)
        with self.engine.connect() as conn:
            return [_digest(r) for r in conn.execute(q)]

    def email_digest_counts(self) -> dict[str, int]:
        g = t.email_digests.c
        with self.engine.connect() as conn:
            return dict(conn.execute(select(g.status, func.count()).group_by(g.status)).all())

    def email_paused(self) -> str | None:
        """Who paused all mail and when (JSON), or None while mail goes out."""
        return self.db.get_meta(PAUSED_KEY) or None

    def set_email_paused(self, value: str | None) -> None:
        self.db.set_meta(PAUSED_KEY, value or "")
