"""Outbound accounts, their outbox of posts, and announcements."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    DateTime,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from beatfeeds.core.errors import NotFound
from beatfeeds.core.models import (
    Announcement,
    FeedEntry,
    OutboundAccount,
    OutboxItem,
)
from beatfeeds.storage import schema as t
from beatfeeds.storage.engine import Repository
from beatfeeds.storage.queries import beats_of_area, public_entries_query


def _account(r) -> OutboundAccount:
    return OutboundAccount(
        id=r.id,
        area_kind=r.area_kind,
        area_code=r.area_code,
        service=r.service,
        label=r.label,
        endpoint=r.endpoint,
        handle=r.handle,
        credentials=r.credentials,
        template=r.template,
        profile_template=r.profile_template,
        status=r.status,
        created_at=r.created_at,
        created_by=r.created_by,
        char_limit=r.char_limit,
        blocked_until=r.blocked_until,
        last_test_at=r.last_test_at,
        last_test_result=r.last_test_result,
    )


def _item(r) -> OutboxItem:
    m = r._mapping
    return OutboxItem(
        id=r.id,
        account_id=r.account_id,
        entry_uid=r.entry_uid,
        entry_kind=r.entry_kind,
        category=r.category,
        status=r.status,
        due_at=r.due_at,
        next_attempt_at=r.next_attempt_at,
        attempts=r.attempts,
        created_at=r.created_at,
        claimed_at=r.claimed_at,
        text=r.text,
        dry_run=r.dry_run,
        remote_id=r.remote_id,
        remote_url=r.remote_url,
        error=r.error,
        sent_at=r.sent_at,
        deleted_at=r.deleted_at,
        account_label=m.get("label", ""),
        service=m.get("service", ""),
    )


def _announcement(r, beats: list[str]) -> Announcement:
    return Announcement(
        id=r.id,
        uid=r.uid,
        kind=r.kind,
        title=r.title,
        body=r.body,
        urgent=r.urgent,
        citywide=r.citywide,
        target=json.loads(r.target),
        beat_set_id=r.beat_set_id,
        publish_at=r.publish_at,
        expires_at=r.expires_at,
        created_at=r.created_at,
        updated_at=r.updated_at,
        created_by=r.created_by,
        withdrawn_at=r.withdrawn_at,
        beats=beats,
    )


class OutboxRepository(Repository):
    """The outbound_accounts, outbox, announcements and announcement_beats tables."""

    def add_outbound_account(self, **values) -> int:
        with self.db.begin() as conn:
            return conn.execute(
                insert(t.outbound_accounts).values(**values).returning(t.outbound_accounts.c.id)
            ).scalar_one()

    def list_outbound_accounts(self, *, active_only: bool = False) -> list[OutboundAccount]:
        q = select(t.outbound_accounts).order_by(
            t.outbound_accounts.c.area_kind,
            t.outbound_accounts.c.area_code,
            t.outbound_accounts.c.id,
        )
        if active_only:
            q = q.where(t.outbound_accounts.c.status == "active")
        with self.engine.connect() as conn:
            return [_account(r) for r in conn.execute(q)]

    def outbound_account(self, account_id: int) -> OutboundAccount:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.outbound_accounts).where(t.outbound_accounts.c.id == account_id)
            ).first()
        if row is None:
            raise NotFound(f"No outbound account {account_id}.")
        return _account(row)

    def update_outbound_account(self, account_id: int, **values) -> None:
        with self.db.begin() as conn:
            n = conn.execute(
                update(t.outbound_accounts)
                .where(t.outbound_accounts.c.id == account_id)
                .values(**values)
            )
        if n.rowcount == 0:
            raise NotFound(f"No outbound account {account_id}.")

    def delete_outbound_account(self, account_id: int) -> None:
        with self.db.begin() as conn:
            conn.execute(delete(t.outbox).where(t.outbox.c.account_id == account_id))
            n = conn.execute(
                delete(t.outbound_accounts).where(t.outbound_accounts.c.id == account_id)
            )
        if n.rowcount == 0:
            raise NotFound(f"No outbound account {account_id}.")

    def due_entries_for_account(
        self,
        account: OutboundAccount,
        set_id: int,
        *,
        now: datetime,
        oldest_event: datetime,
        limit: int = 500,
    ) -> list[tuple[str, str, str, datetime]]:
        """(uid, kind, category, publish_at) of public entries of the account's area that
        became public after the account was added, are recent enough and have no outbox item
        for their current category yet."""
        i, o = t.incidents.c, t.outbox.c
        not_queued = ~exists().where(
            and_(o.entry_uid == i.uid, o.account_id == account.id, o.category == i.category)
        )
        q = (
            public_entries_query(set_id, now)
            .where(or_(i.publish_at >= account.created_at, i.created_at >= account.created_at))
            .where(i.event_time >= oldest_event)
            .where(not_queued)
        )
        area = beats_of_area(set_id, account.area_kind, account.area_code)
        if area is not None:
            q = q.where(t.incident_beats.c.beat_code.in_(area))
        q = q.order_by(i.publish_at).limit(limit)
        a, ab = t.announcements.c, t.announcement_beats.c
        aq = (
            select(a.uid, a.kind, a.publish_at)
            .where(a.publish_at <= now)
            .where(a.withdrawn_at.is_(None))
            .where(or_(a.expires_at.is_(None), a.expires_at > now))
            .where(or_(a.publish_at >= account.created_at, a.created_at >= account.created_at))
            .where(a.publish_at >= oldest_event)
            .where(
                ~exists().where(
                    and_(
                        o.entry_uid == a.uid,
                        o.account_id == account.id,
                        o.category == literal("announcement-").concat(a.kind),
                    )
                )
            )
        )
        if area is not None:
            aq = aq.where(
                or_(
                    a.citywide.is_(True),
                    exists().where(and_(ab.announcement_id == a.id, ab.beat_code.in_(area))),
                )
            )
        with self.engine.connect() as conn:
            out = [(r.uid, "incident", r.category, r.publish_at) for r in conn.execute(q)]
            out += [
                (r.uid, "announcement", "announcement-" + r.kind, r.publish_at)
                for r in conn.execute(aq.limit(limit))
            ]
        return out

    def enqueue_outbox(self, rows: Sequence[dict]) -> int:
        """Insert outbox items, skipping any that already exist (entry, account, category)."""
        if not rows:
            return 0
        ins = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(t.outbox)
        stmt = ins.on_conflict_do_nothing(index_elements=["entry_uid", "account_id", "category"])
        with self.db.begin() as conn:  # rowcount is not reliable for executemany
            return len(conn.execute(stmt.returning(t.outbox.c.id), list(rows)).all())

    def _items_query(self):
        a = t.outbound_accounts.c
        return select(t.outbox, a.label, a.service).join(
            t.outbound_accounts, a.id == t.outbox.c.account_id
        )

    def due_outbox_items(self, now: datetime, limit: int = 200) -> list[OutboxItem]:
        """Pending items whose time has come, of active accounts not told to wait."""
        o, a = t.outbox.c, t.outbound_accounts.c
        q = (
            self._items_query()
            .where(o.status == "pending")
            .where(o.due_at <= now)
            .where(o.next_attempt_at <= now)
            .where(a.status == "active")
            .where(or_(a.blocked_until.is_(None), a.blocked_until <= now))
            .order_by(o.due_at, o.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(q)]

    def claim_outbox_item(self, item_id: int, now: datetime) -> bool:
        """Mark an item as being sent; False when another process took it first."""
        o = t.outbox.c
        with self.db.begin() as conn:
            n = conn.execute(
                update(t.outbox)
                .where(o.id == item_id)
                .where(o.status == "pending")
                .values(status="sending", claimed_at=now, attempts=o.attempts + 1)
            )
        return n.rowcount == 1

    def finish_outbox_item(self, item_id: int, **values) -> None:
        with self.db.begin() as conn:
            conn.execute(update(t.outbox).where(t.outbox.c.id == item_id).values(**values))

    def mark_outbox_deleted(self, item_id: int, *, deleted_at: datetime) -> None:
        """A post deleted from its service (its entry was withdrawn): the row stays for the
        rate limit and the record, its text and link do not (staff see it as withdrawn)."""
        self.finish_outbox_item(
            item_id, status="deleted", deleted_at=deleted_at, error=None, text=None, remote_url=None
        )

    def outbox_item(self, item_id: int) -> OutboxItem:
        with self.engine.connect() as conn:
            row = conn.execute(self._items_query().where(t.outbox.c.id == item_id)).first()
        if row is None:
            raise NotFound(f"No outbox item {item_id}.")
        return _item(row)

    def stale_sending_items(self, claimed_before: datetime) -> list[OutboxItem]:
        """Items left `sending` by a process that died before recording the result."""
        o = t.outbox.c
        q = self._items_query().where(o.status == "sending").where(o.claimed_at < claimed_before)
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(q)]

    def sends_since(self, account_id: int, since: datetime) -> int:
        """Real (not dry-run) posts and deletions an account made since a time."""
        o = t.outbox.c
        with self.engine.connect() as conn:
            posts = conn.execute(
                select(func.count())
                .where(o.account_id == account_id)
                .where(o.sent_at >= since)
                .where(o.dry_run.is_(False))
            ).scalar_one()
            deletions = conn.execute(
                select(func.count())
                .where(o.account_id == account_id)
                .where(o.deleted_at >= since)
                .where(o.dry_run.is_(False))
            ).scalar_one()
        return posts + deletions

    def list_outbox(
        self, *, status: str | None = None, account_id: int | None = None, limit: int = 200
    ) -> list[OutboxItem]:
        o = t.outbox.c
        q = self._items_query().order_by(o.id.desc()).limit(limit)
        if status:
            q = q.where(o.status == status)
        if account_id:
            q = q.where(o.account_id == account_id)
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(q)]

    def outbox_counts(self) -> dict[str, int]:
        o = t.outbox.c
        with self.engine.connect() as conn:
            return dict(conn.execute(select(o.status, func.count()).group_by(o.status)).all())

    def outbox_counts_by_account(self) -> dict[int, dict[str, int]]:
        """{account id: {status: items}} for every account that has outbox items."""
        o = t.outbox.c
        out: dict[int, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for account_id, status, n in conn.execute(
                select(o.account_id, o.status, func.count()).group_by(o.account_id, o.status)
            ):
                out.setdefault(account_id, {})[status] = n
        return out

    def sent_items_no_longer_public(self, limit: int = 200) -> list[OutboxItem]:
        """Sent, undeleted posts whose incident was retracted or suppressed, or whose
        announcement was withdrawn."""
        o, i, a = t.outbox.c, t.incidents.c, t.announcements.c
        gone_incident = exists().where(
            and_(
                i.uid == o.entry_uid,
                or_(i.retracted_at.is_not(None), i.suppressed_reason.is_not(None)),
            )
        )
        gone_announcement = exists().where(and_(a.uid == o.entry_uid, a.withdrawn_at.is_not(None)))
        q = (
            self._items_query()
            .where(o.status == "sent")
            .where(o.deleted_at.is_(None))
            .where(
                or_(
                    and_(o.entry_kind == "incident", gone_incident),
                    and_(o.entry_kind == "announcement", gone_announcement),
                )
            )
            .order_by(o.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(q)]

    def incident_publication(self, uid: str) -> tuple[str, bool] | None:
        """(current category, still public?) of an incident, ignoring the delay."""
        i = t.incidents.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(i.category, i.retracted_at, i.suppressed_reason).where(i.uid == uid)
            ).first()
        if row is None:
            return None
        return row.category, row.retracted_at is None and row.suppressed_reason is None

    def add_announcement(self, *, beats: Sequence[str], **values) -> int:
        with self.db.begin() as conn:
            ann_id = conn.execute(
                insert(t.announcements).values(**values).returning(t.announcements.c.id)
            ).scalar_one()
            if beats:
                conn.execute(
                    insert(t.announcement_beats),
                    [{"announcement_id": ann_id, "beat_code": b} for b in beats],
                )
        return ann_id

    def _announcements(self, q) -> list[Announcement]:
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            ids = [r.id for r in rows]
            beats: dict[int, list[str]] = {}
            if ids:
                for aid, code in conn.execute(
                    select(t.announcement_beats.c.announcement_id, t.announcement_beats.c.beat_code)
                    .where(t.announcement_beats.c.announcement_id.in_(ids))
                    .order_by(t.announcement_beats.c.beat_code)
                ):
                    beats.setdefault(aid, []).append(code)
        return [_announcement(r, beats.get(r.id, [])) for r in rows]

    def list_announcements(self, limit: int = 200) -> list[Announcement]:
        return self._announcements(
            select(t.announcements).order_by(t.announcements.c.publish_at.desc()).limit(limit)
        )

    def announcement(self, uid: str) -> Announcement:
        found = self._announcements(select(t.announcements).where(t.announcements.c.uid == uid))
        if not found:
            raise NotFound("No such announcement.")
        return found[0]

    def update_announcement(self, uid: str, **values) -> None:
        with self.db.begin() as conn:
            n = conn.execute(
                update(t.announcements).where(t.announcements.c.uid == uid).values(**values)
            )
        if n.rowcount == 0:
            raise NotFound("No such announcement.")

    def public_announcements(
        self,
        set_id: int,
        *,
        now: datetime,
        beat: str | None = None,
        sector: str | None = None,
        precinct: str | None = None,
        uid: str | None = None,
        limit: int = 50,
    ) -> list[FeedEntry]:
        """Announcements public now for an area (all of them for the city), newest first,
        as feed entries whose category is `announcement-<type>`."""
        a, ab = t.announcements.c, t.announcement_beats.c
        q = (
            select(t.announcements)
            .where(a.publish_at <= now)
            .where(a.withdrawn_at.is_(None))
            .where(or_(a.expires_at.is_(None), a.expires_at > now))
        )
        kind, code = next(
            (
                (k, c)
                for k, c in (("beat", beat), ("sector", sector), ("precinct", precinct))
                if c is not None
            ),
            ("city", None),
        )
        area = beats_of_area(set_id, kind, code)
        if area is not None:
            q = q.where(
                or_(
                    a.citywide.is_(True),
                    exists().where(and_(ab.announcement_id == a.id, ab.beat_code.in_(area))),
                )
            )
        if uid is not None:
            q = q.where(a.uid == uid)
        q = q.order_by(a.publish_at.desc(), a.uid).limit(limit)
        out = []
        for ann in self._announcements(q):
            out.append(
                FeedEntry(
                    uid=ann.uid,
                    title=ann.title,
                    category="announcement-" + ann.kind,
                    category_text=ann.kind,
                    description=ann.body,
                    block_address="",
                    event_time=ann.publish_at,
                    updated_at=ann.updated_at,
                    publish_at=ann.publish_at,
                    beat=ann.beats[0] if len(ann.beats) == 1 else None,
                    source="announcement",
                    external_id=ann.uid,
                )
            )
        return out

    def announcements_version(self, now: datetime) -> tuple:
        """Changes when an announcement is added, edited, starts or ends (feed caches).

        Read on every feed request, so the statement is built once per store (building it
        costs more than running it).
        """
        stmt = self.__dict__.get("_announcements_version_sql")
        if stmt is None:
            a = t.announcements.c
            at = bindparam("now", type_=DateTime())
            stmt = select(
                func.count(),
                func.max(a.updated_at),
                select(func.max(a.publish_at)).where(a.publish_at <= at).scalar_subquery(),
                select(func.max(a.expires_at)).where(a.expires_at <= at).scalar_subquery(),
            ).select_from(t.announcements)
            self.__dict__["_announcements_version_sql"] = stmt
        with self.engine.connect() as conn:
            row = conn.execute(stmt, {"now": now}).first()
        return tuple(row)
