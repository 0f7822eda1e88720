"""Published ids under an instance key; withdrawn posts keep no text

Creates the instance key for published identifiers (32 random bytes, hex, in `meta`) unless
a store already made it, then gives every incident whose external id is a fallback key
(`h:` + a SHA-256 of the row's time, exact address and type) the keyed uid, in the queue
tables that refer to it too. Those uids were brute-forceable (the hundred house numbers of
the block, with the public time and type); the new ones are HMAC-SHA256 under the key.
Incidents with a source id keep their uids. Finally, posts deleted from their service keep
no text (the admin outbox shows them as withdrawn).

The formulas are written out here, not imported: a migration must keep meaning what it
meant when it ran. They are the ones of beatfeeds.identifiers (now beatfeeds.core.identifiers) at this revision.

Revision ID: 0008
Revises: 0007
"""

import hashlib
import hmac
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_KEY_META = "identifier_key"
_BATCH = 5000

meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))
incidents = sa.table(
    "incidents",
    sa.column("id", sa.Integer),
    sa.column("uid", sa.String),
    sa.column("source", sa.String),
    sa.column("external_id", sa.String),
)
outbox = sa.table(
    "outbox",
    sa.column("entry_uid", sa.String),
    sa.column("status", sa.String),
    sa.column("text", sa.Text),
    sa.column("remote_url", sa.String),
)
deliveries = sa.table("email_deliveries", sa.column("entry_uid", sa.String))


def _key(conn) -> bytes:
    text = conn.execute(sa.select(meta.c.value).where(meta.c.key == _KEY_META)).scalar()
    if text is None:
        text = secrets.token_hex(32)
        conn.execute(sa.insert(meta).values(key=_KEY_META, value=text))
    return bytes.fromhex(text)


def _keyed_uid(key: bytes, source: str, external_id: str) -> str:
    return hmac.new(key, f"{source}\x1f{external_id}".encode(), hashlib.sha256).hexdigest()[:20]


def upgrade() -> None:
    conn = op.get_bind()
    key = _key(conn)
    rows = conn.execute(
        sa.select(incidents.c.id, incidents.c.uid, incidents.c.source, incidents.c.external_id)
        .where(incidents.c.external_id.like("h:%"))
        .order_by(incidents.c.id)
    ).all()
    for start in range(0, len(rows), _BATCH):
        batch = [
            {"_id": r.id, "_old": r.uid, "_new": _keyed_uid(key, r.source, r.external_id)}
            for r in rows[start : start + _BATCH]
        ]
        # Old and new uids are 20 hex digits of two different hashes: a new one meeting an
        # old one still stored (the unique index would refuse it) is a 2^-80 event.
        conn.execute(
            sa.update(incidents)
            .where(incidents.c.id == sa.bindparam("_id"))
            .values(uid=sa.bindparam("_new")),
            batch,
        )
        for table in (outbox, deliveries):
            conn.execute(
                sa.update(table)
                .where(table.c.entry_uid == sa.bindparam("_old"))
                .values(entry_uid=sa.bindparam("_new")),
                batch,
            )
    conn.execute(
        sa.update(outbox).where(outbox.c.status == "deleted").values(text=None, remote_url=None)
    )


def downgrade() -> None:
    # The old uids cannot be recomputed without the rows' original texts, and should not be:
    # they are the brute-forceable ones. The key stays, unused by older code.
    pass
