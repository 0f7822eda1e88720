"""SQL for email alerts: subscribers, subscriptions, sign-up attempts. A mixin of SQLStore."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select, update

from ..errors import NotFound
from ..models import EmailSubscription
from . import schema as t


def _subscription(r, address: str) -> EmailSubscription:
    return EmailSubscription(
        id=r.id, subscriber_id=r.subscriber_id, address=address, area_kind=r.area_kind,
        area_code=r.area_code,
        categories=tuple(c for c in r.categories.split(",") if c),
        frequency=r.frequency, created_at=r.created_at)


class EmailStoreMixin:
    def record_email_signup(self, address_key: str, client: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(t.email_signups).values(address_key=address_key,
                                                        client=client[:64], at=now))

    def email_signups_since(self, since: datetime, *, address_key: str | None = None,
                            client: str | None = None) -> int:
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
            return conn.execute(delete(t.email_signups)
                                .where(t.email_signups.c.at < before)).rowcount

    def save_email_subscription(self, *, address: str, area_kind: str, area_code: str | None,
                                categories: tuple[str, ...], frequency: str,
                                now: datetime) -> int:
        """Add the address if new and its subscription to the area (one per area: a second
        confirmation for the same area replaces the filter and frequency). Returns its id."""
        s, sub = t.email_subscribers.c, t.email_subscriptions.c
        with self.engine.begin() as conn:
            sid = conn.execute(select(s.id).where(s.address == address)).scalar()
            if sid is None:
                sid = conn.execute(insert(t.email_subscribers)
                                   .values(address=address, created_at=now)
                                   .returning(s.id)).scalar_one()
            area = (sub.area_code.is_(None) if area_code is None
                    else sub.area_code == area_code)
            existing = conn.execute(select(sub.id).where(sub.subscriber_id == sid)
                                    .where(sub.area_kind == area_kind).where(area)).scalar()
            values = {"categories": ",".join(categories), "frequency": frequency}
            if existing is not None:
                conn.execute(update(t.email_subscriptions)
                             .where(sub.id == existing).values(**values))
                return existing
            return conn.execute(insert(t.email_subscriptions).values(
                subscriber_id=sid, area_kind=area_kind, area_code=area_code, created_at=now,
                **values).returning(sub.id)).scalar_one()

    def _email_subscriptions(self, where) -> list[EmailSubscription]:
        s, sub = t.email_subscribers.c, t.email_subscriptions.c
        q = (select(t.email_subscriptions, s.address)
             .join(t.email_subscribers, s.id == sub.subscriber_id).where(where)
             .order_by(s.address, sub.area_kind, sub.area_code, sub.id))
        with self.engine.connect() as conn:
            return [_subscription(r, r.address) for r in conn.execute(q)]

    def email_subscriptions(self, address: str | None = None) -> list[EmailSubscription]:
        """Subscriptions of one address (all of them with None)."""
        s = t.email_subscribers.c
        return self._email_subscriptions(s.address == address if address is not None
                                         else s.id.isnot(None))

    def email_subscription(self, subscription_id: int) -> EmailSubscription:
        found = self._email_subscriptions(t.email_subscriptions.c.id == subscription_id)
        if not found:
            raise NotFound("No such subscription.")
        return found[0]

    def delete_email_subscription(self, subscription_id: int) -> bool:
        """Remove one subscription (and the address once it has none left)."""
        sub = t.email_subscriptions.c
        with self.engine.begin() as conn:
            sid = conn.execute(select(sub.subscriber_id)
                               .where(sub.id == subscription_id)).scalar()
            if sid is None:
                return False
            conn.execute(delete(t.email_subscriptions).where(sub.id == subscription_id))
            left = conn.execute(select(func.count()).where(sub.subscriber_id == sid)).scalar()
            if not left:
                conn.execute(delete(t.email_deliveries)
                             .where(t.email_deliveries.c.subscriber_id == sid))
                conn.execute(delete(t.email_subscribers)
                             .where(t.email_subscribers.c.id == sid))
        return True

    def delete_email_subscriber(self, address: str) -> bool:
        """Erase an address, its subscriptions and its delivery history."""
        s = t.email_subscribers.c
        with self.engine.begin() as conn:
            sid = conn.execute(select(s.id).where(s.address == address)).scalar()
            if sid is None:
                return False
            conn.execute(delete(t.email_deliveries)
                         .where(t.email_deliveries.c.subscriber_id == sid))
            conn.execute(delete(t.email_subscriptions)
                         .where(t.email_subscriptions.c.subscriber_id == sid))
            conn.execute(delete(t.email_subscribers).where(s.id == sid))
        return True

    def email_subscriber_counts(self) -> list[tuple[str, str | None, int]]:
        """(area kind, area code, subscriptions) for the admin page; never addresses."""
        sub = t.email_subscriptions.c
        q = (select(sub.area_kind, sub.area_code, func.count())
             .group_by(sub.area_kind, sub.area_code).order_by(sub.area_kind, sub.area_code))
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]
