"""SQL for email alerts: subscribers, subscriptions, sign-up attempts, deliveries and digests.
A mixin of SQLStore."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from beatfeeds.core.errors import NotFound
from beatfeeds.core.models import EmailDelivery, EmailDigest, EmailSubscription
from beatfeeds.storage import schema as t


def _subscription(r, address: str) -> EmailSubscription:
    return EmailSubscription(
        id=r.id,
        subscriber_id=r.subscriber_id,
        address=address,
        area_kind=r.area_kind,
        area_code=r.area_code,
        categories=tuple(c for c in r.categories.split(",") if c),
        frequency=r.frequency,
        created_at=r.created_at,
    )


def _delivery(r) -> EmailDelivery:
    m = r._mapping
    return EmailDelivery(
        id=m["id"],
        subscriber_id=m["subscriber_id"],
        address=m["address"],
        entry_uid=m["entry_uid"],
        status=m["status"],
        due_at=m["due_at"],
        next_attempt_at=m["next_attempt_at"],
        attempts=m["attempts"],
        claimed_at=m["claimed_at"],
        error=m["error"],
        created_at=m["created_at"],
        sent_at=m["sent_at"],
        digest_id=m["digest_id"],
    )


def _digest(r) -> EmailDigest:
    m = r._mapping
    return EmailDigest(
        id=m["id"],
        subscriber_id=m["subscriber_id"],
        address=m["address"],
        frequency=m["frequency"],
        period_start=m["period_start"],
        period_end=m["period_end"],
        status=m["status"],
        next_attempt_at=m["next_attempt_at"],
        attempts=m["attempts"],
        claimed_at=m["claimed_at"],
        error=m["error"],
        created_at=m["created_at"],
        sent_at=m["sent_at"],
    )


PAUSED_KEY = "email_alerts_paused"


class EmailStoreMixin:
    def record_email_signup(self, address_key: str, client: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.email_signups).values(address_key=address_key, client=client[:64], at=now)
            )

    def email_signups_since(
        self, since: datetime, *, address_key: str | None = None, client: str | None = None
    ) -> int:
        c = t.email_signups.c
        q = select(func.count()).where(c.at >= since)
        if address_key is not None:
            q = q.where(c.address_key == address_key)
        if client is not None:
            q = q.where(c.client == client)
        with self.engine.connect() as conn:
            return conn.execute(q).scalar_one()

    def prune_email_signups(self, before: datetime) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                delete(t.email_signups).where(t.email_signups.c.at < before)
            ).rowcount

    def save_email_subscription(
        self,
        *,
        address: str,
        area_kind: str,
        area_code: str | None,
        categories: tuple[str, ...],
        frequency: str,
        now: datetime,
    ) -> int:
        """Add the address if new and its subscription to the area (one per area: a second
        confirmation for the same area replaces the filter and frequency). Returns its id."""
        s, sub = t.email_subscribers.c, t.email_subscriptions.c
        with self.engine.begin() as conn:
            sid = conn.execute(select(s.id).where(s.address == address)).scalar()
            if sid is None:
                sid = conn.execute(
                    insert(t.email_subscribers)
                    .values(address=address, created_at=now)
                    .returning(s.id)
                ).scalar_one()
            area = sub.area_code.is_(None) if area_code is None else sub.area_code == area_code
            existing = conn.execute(
                select(sub.id)
                .where(sub.subscriber_id == sid)
                .where(sub.area_kind == area_kind)
                .where(area)
            ).scalar()
            values = {"categories": ",".join(categories), "frequency": frequency}
            if existing is not None:
                conn.execute(
                    update(t.email_subscriptions).where(sub.id == existing).values(**values)
                )
                return existing
            return conn.execute(
                insert(t.email_subscriptions)
                .values(
                    subscriber_id=sid,
                    area_kind=area_kind,
                    area_code=area_code,
                    created_at=now,
                    **values,
                )
                .returning(sub.id)
            ).scalar_one()

    def _email_subscriptions(self, where) -> list[EmailSubscription]:
        s, sub = t.email_subscribers.c, t.email_subscriptions.c
        q = (
            select(t.email_subscriptions, s.address)
            .join(t.email_subscribers, s.id == sub.subscriber_id)
            .where(where)
            .order_by(s.address, sub.area_kind, sub.area_code, sub.id)
        )
        with self.engine.connect() as conn:
            return [_subscription(r, r.address) for r in conn.execute(q)]

    def email_subscriptions(self, address: str | None = None) -> list[EmailSubscription]:
        """Subscriptions of one address (all of them with None)."""
        s = t.email_subscribers.c
        return self._email_subscriptions(
            s.address == address if address is not None else s.id.isnot(None)
        )

    def email_subscription(self, subscription_id: int) -> EmailSubscription:
        found = self._email_subscriptions(t.email_subscriptions.c.id == subscription_id)
        if not found:
            raise NotFound("No such subscription.")
        return found[0]

    def delete_email_subscription(self, subscription_id: int) -> bool:
        """Remove one subscription (and the address once it has none left)."""
        sub = t.email_subscriptions.c
        with self.engine.begin() as conn:
            sid = conn.execute(select(sub.subscriber_id).where(sub.id == subscription_id)).scalar()
            if sid is None:
                return False
            conn.execute(delete(t.email_subscriptions).where(sub.id == subscription_id))
            left = conn.execute(select(func.count()).where(sub.subscriber_id == sid)).scalar()
            if not left:
                conn.execute(
                    delete(t.email_deliveries).where(t.email_deliveries.c.subscriber_id == sid)
                )
                conn.execute(delete(t.email_digests).where(t.email_digests.c.subscriber_id == sid))
                conn.execute(delete(t.email_subscribers).where(t.email_subscribers.c.id == sid))
        return True

    def delete_email_subscriber(self, address: str) -> bool:
        """Erase an address, its subscriptions and its delivery history."""
        s = t.email_subscribers.c
        with self.engine.begin() as conn:
            sid = conn.execute(select(s.id).where(s.address == address)).scalar()
            if sid is None:
                return False
            conn.execute(
                delete(t.email_deliveries).where(t.email_deliveries.c.subscriber_id == sid)
            )
            conn.execute(delete(t.email_digests).where(t.email_digests.c.subscriber_id == sid))
            conn.execute(
                delete(t.email_subscriptions).where(t.email_subscriptions.c.subscriber_id == sid)
            )
            conn.execute(delete(t.email_subscribers).where(s.id == sid))
        return True

    def email_subscriber_counts(self) -> list[tuple[str, str | None, int]]:
        """(area kind, area code, subscriptions) for the admin page; never addresses."""
        sub = t.email_subscriptions.c
        q = (
            select(sub.area_kind, sub.area_code, func.count())
            .group_by(sub.area_kind, sub.area_code)
            .order_by(sub.area_kind, sub.area_code)
        )
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]

    # ---- deliveries (the email outbox) --------------------------------------------------------
    def _email_matches(
        self,
        conn,
        set_id: int,
        s,
        *,
        now: datetime,
        since: datetime,
        oldest_event: datetime | None,
        urgent_only: bool,
        limit: int,
    ) -> list[tuple[str, datetime, bool]]:
        """(uid, publish_at, urgent) of public incidents and announcements that match
        subscription row `s`, became public at or after `since` and were never queued for its
        address."""
        i, d = t.incidents.c, t.email_deliveries.c
        a, ab = t.announcements.c, t.announcement_beats.c
        area = self._beats_of_area(set_id, s.area_kind, s.area_code)
        cats = [c for c in s.categories.split(",") if c]
        out: list[tuple[str, datetime, bool]] = []
        if not urgent_only:
            q = (
                self._public_entries_query(set_id, now)
                .where(or_(i.publish_at >= since, i.created_at >= since))
                .where(
                    ~exists().where(and_(d.subscriber_id == s.subscriber_id, d.entry_uid == i.uid))
                )
            )
            if oldest_event is not None:
                q = q.where(i.event_time >= oldest_event)
            if area is not None:
                q = q.where(t.incident_beats.c.beat_code.in_(area))
            if cats:
                q = q.where(i.category.in_(cats))
            out += [
                (r.uid, r.publish_at, False)
                for r in conn.execute(q.order_by(i.publish_at).limit(limit))
            ]
        kinds = [c.removeprefix("announcement-") for c in cats if c.startswith("announcement-")]
        if cats and not kinds:
            return out
        # Announcements as feeds show them: public, not withdrawn, not expired.
        aq = (
            select(a.uid, a.publish_at, a.urgent)
            .where(a.publish_at <= now)
            .where(a.withdrawn_at.is_(None))
            .where(or_(a.expires_at.is_(None), a.expires_at > now))
            .where(or_(a.publish_at >= since, a.created_at >= since))
            .where(~exists().where(and_(d.subscriber_id == s.subscriber_id, d.entry_uid == a.uid)))
        )
        if oldest_event is not None:
            aq = aq.where(a.publish_at >= oldest_event)
        if urgent_only:
            aq = aq.where(a.urgent.is_(True))
        if kinds:
            aq = aq.where(a.kind.in_(kinds))
        if area is not None:
            aq = aq.where(
                or_(
                    a.citywide.is_(True),
                    exists().where(and_(ab.announcement_id == a.id, ab.beat_code.in_(area))),
                )
            )
        out += [
            (r.uid, r.publish_at, bool(r.urgent))
            for r in conn.execute(aq.order_by(a.publish_at).limit(limit))
        ]
        return out

    def due_entries_for_email(
        self, set_id: int, *, now: datetime, oldest_event: datetime, limit: int = 2000
    ) -> list[tuple[int, str, datetime, bool]]:
        """(subscriber id, entry uid, publish_at, urgent) to mail one by one: public incidents and
        announcements matching an instant subscription, plus urgent announcements matching
        any subscription (digest ones too: they do not wait for the digest). Only entries
        that became public after the subscription was made and were never queued for the
        address. The same entry may come twice (overlapping subscriptions); enqueueing keeps
        one."""
        with self.engine.connect() as conn:
            out = []
            for s in conn.execute(select(t.email_subscriptions)).all():
                out += [
                    (s.subscriber_id, *match)
                    for match in self._email_matches(
                        conn,
                        set_id,
                        s,
                        now=now,
                        since=s.created_at,
                        oldest_event=oldest_event,
                        urgent_only=s.frequency != "instant",
                        limit=limit,
                    )
                ]
        return out

    def enqueue_email_deliveries(self, rows: Sequence[dict]) -> int:
        """Insert deliveries, skipping any (address, entry) already queued or sent."""
        if not rows:
            return 0
        ins = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(
            t.email_deliveries
        )
        stmt = ins.on_conflict_do_nothing(index_elements=["subscriber_id", "entry_uid"])
        with self.engine.begin() as conn:
            return len(conn.execute(stmt.returning(t.email_deliveries.c.id), list(rows)).all())

    def _deliveries_query(self):
        s, d = t.email_subscribers.c, t.email_deliveries.c
        return select(t.email_deliveries, s.address).join(
            t.email_subscribers, s.id == d.subscriber_id
        )

    def due_email_deliveries(self, now: datetime, limit: int = 200) -> list[EmailDelivery]:
        d = t.email_deliveries.c
        q = (
            self._deliveries_query()
            .where(d.status == "pending")
            .where(d.due_at <= now)
            .where(d.digest_id.is_(None))  # a digest's entries go out with the digest
            .where(d.next_attempt_at <= now)
            .order_by(d.due_at, d.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(q)]

    def claim_email_delivery(self, delivery_id: int, now: datetime) -> bool:
        """Mark a delivery as being sent; False when another process took it first."""
        d = t.email_deliveries.c
        with self.engine.begin() as conn:
            n = conn.execute(
                update(t.email_deliveries)
                .where(d.id == delivery_id)
                .where(d.status == "pending")
                .values(status="sending", claimed_at=now, attempts=d.attempts + 1)
            )
        return n.rowcount == 1

    def finish_email_delivery(self, delivery_id: int, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t.email_deliveries)
                .where(t.email_deliveries.c.id == delivery_id)
                .values(**values)
            )

    def email_deliveries(self, *, status: str | None = None) -> list[EmailDelivery]:
        d = t.email_deliveries.c
        q = self._deliveries_query().order_by(d.id)
        if status is not None:
            q = q.where(d.status == status)
        with self.engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(q)]

    def stale_email_deliveries(self, claimed_before: datetime) -> list[EmailDelivery]:
        """Deliveries left `sending` by a process that died before recording the result."""
        d = t.email_deliveries.c
        q = (
            self._deliveries_query()
            .where(d.status == "sending")
            .where(d.digest_id.is_(None))
            .where(d.claimed_at < claimed_before)
        )
        with self.engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(q)]

    def email_sends_since(self, since: datetime) -> int:
        """Messages handed to the SMTP server since a time (its rate limit): single alerts
        and digests (a digest is one message, however many entries it lists)."""
        d, g = t.email_deliveries.c, t.email_digests.c
        with self.engine.connect() as conn:
            single = conn.execute(
                select(func.count()).where(d.sent_at >= since).where(d.digest_id.is_(None))
            ).scalar_one()
            return (
                single + conn.execute(select(func.count()).where(g.sent_at >= since)).scalar_one()
            )

    def email_delivery_counts(self) -> dict[str, int]:
        d = t.email_deliveries.c
        with self.engine.connect() as conn:
            return dict(conn.execute(select(d.status, func.count()).group_by(d.status)).all())

    def email_delivery(self, delivery_id: int) -> EmailDelivery:
        with self.engine.connect() as conn:
            row = conn.execute(
                self._deliveries_query().where(t.email_deliveries.c.id == delivery_id)
            ).first()
        if row is None:
            raise NotFound(f"No email delivery {delivery_id}.")
        return _delivery(row)

    # ---- digests ------------------------------------------------------------------------------
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
                for uid, at, _ in self._email_matches(
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
        with self.engine.begin() as conn:
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
        q = self._deliveries_query().where(d.digest_id == digest_id).order_by(d.due_at, d.id)
        with self.engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(q)]

    def claim_email_digest(self, digest_id: int, now: datetime) -> bool:
        """Mark a digest (and its entries) as being sent; False when another process took it
        first."""
        g, d = t.email_digests.c, t.email_deliveries.c
        with self.engine.begin() as conn:
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
        with self.engine.begin() as conn:
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
        with self.engine.begin() as conn:
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

    # ---- pausing all mail ---------------------------------------------------------------------
    def email_paused(self) -> str | None:
        """Who paused all mail and when (JSON), or None while mail goes out."""
        return self.get_meta(PAUSED_KEY) or None

    def set_email_paused(self, value: str | None) -> None:
        self.set_meta(PAUSED_KEY, value or "")
