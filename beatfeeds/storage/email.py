"""Email alerts: sign-up throttle, subscriptions and the deliveries (the email outbox)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from beatfeeds.core.errors import NotFound
from beatfeeds.core.models import (
    EmailDelivery,
    EmailDigest,
    EmailSubscription,
)
from beatfeeds.storage import schema as t
from beatfeeds.storage.engine import Repository
from beatfeeds.storage.queries import beats_of_area, public_entries_query


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


def deliveries_query():
    s, d = t.email_subscribers.c, t.email_deliveries.c
    return select(t.email_deliveries, s.address).join(t.email_subscribers, s.id == d.subscriber_id)


def email_matches(
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
    area = beats_of_area(set_id, s.area_kind, s.area_code)
    cats = [c for c in s.categories.split(",") if c]
    out: list[tuple[str, datetime, bool]] = []
    if not urgent_only:
        q = (
            public_entries_query(set_id, now)
            .where(or_(i.publish_at >= since, i.created_at >= since))
            .where(~exists().where(and_(d.subscriber_id == s.subscriber_id, d.entry_uid == i.uid)))
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


class EmailRepository(Repository):
    """The email_signups, email_subscribers, email_subscriptions and email_deliveries tables."""

    def record_email_signup(self, address_key: str, client: str, now: datetime) -> None:
        with self.db.begin() as conn:
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
        with self.db.begin() as conn:
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
        with self.db.begin() as conn:
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
        with self.db.begin() as conn:
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
        with self.db.begin() as conn:
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
                    for match in email_matches(
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
        with self.db.begin() as conn:
            return len(conn.execute(stmt.returning(t.email_deliveries.c.id), list(rows)).all())

    def due_email_deliveries(self, now: datetime, limit: int = 200) -> list[EmailDelivery]:
        d = t.email_deliveries.c
        q = (
            deliveries_query()
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
        with self.db.begin() as conn:
            n = conn.execute(
                update(t.email_deliveries)
                .where(d.id == delivery_id)
                .where(d.status == "pending")
                .values(status="sending", claimed_at=now, attempts=d.attempts + 1)
            )
        return n.rowcount == 1

    def finish_email_delivery(self, delivery_id: int, **values) -> None:
        with self.db.begin() as conn:
            conn.execute(
                update(t.email_deliveries)
                .where(t.email_deliveries.c.id == delivery_id)
                .values(**values)
            )

    def email_deliveries(self, *, status: str | None = None) -> list[EmailDelivery]:
        d = t.email_deliveries.c
        q = deliveries_query().order_by(d.id)
        if status is not None:
            q = q.where(d.status == status)
        with self.engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(q)]

    def stale_email_deliveries(self, claimed_before: datetime) -> list[EmailDelivery]:
        """Deliveries left `sending` by a process that died before recording the result."""
        d = t.email_deliveries.c
        q = (
            deliveries_query()
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
                deliveries_query().where(t.email_deliveries.c.id == delivery_id)
            ).first()
        if row is None:
            raise NotFound(f"No email delivery {delivery_id}.")
        return _delivery(row)
