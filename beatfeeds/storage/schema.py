"""Table definitions. The Alembic migrations create exactly these (a test compares them)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# All DateTime columns hold naive UTC.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Also holds `identifier_key` (migration 0008): the instance key published ids derive from.
meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

beat_sets = Table(
    "beat_sets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # draft / scheduled / active / retired
    Column("effective_date", Date),
    Column("source_filename", String(500)),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(320)),
    Column("published_at", DateTime),
    Column("retired_at", DateTime),
    # At most one active map, whoever publishes (migration 0013).
    Index(
        "ux_beat_sets_one_active",
        "status",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
)

beats = Table(
    "beats",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("beat_set_id", Integer, ForeignKey("beat_sets.id", ondelete="CASCADE"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("sector", String(32)),
    Column("precinct", String(32)),
    Column("name", String(200)),
    Column("geometry_wkb", LargeBinary, nullable=False),
    UniqueConstraint("beat_set_id", "code", name="uq_beats_set_code"),
)

import_runs = Table(
    "import_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(100), nullable=False),
    Column("filename", String(500), nullable=False),
    Column("file_sha256", String(64)),
    Column("preset", String(100)),
    Column("status", String(16), nullable=False),  # done / failed
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("user_email", String(320)),
    Column("counters", Text, nullable=False, default="{}"),  # JSON
    Column("report_path", String(1000)),
    Column("error", Text),
)

import_rejections = Table(
    "import_rejections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "run_id",
        Integer,
        ForeignKey("import_runs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("line", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", Text),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(32), nullable=False),  # public, opaque, stable; unique (index below)
    Column("source", String(100), nullable=False),
    Column("external_id", String(200), nullable=False),
    Column("reported_at", DateTime),
    Column("occurred_at", DateTime),
    Column("event_time", DateTime, nullable=False),
    Column("category", String(64), nullable=False),
    Column("category_text", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("address", Text, nullable=False),  # private: may hold an exact house number
    Column("block_address", Text, nullable=False),  # public form
    Column("lat", Float),  # private
    Column("lon", Float),  # private
    Column("source_beat", String(32)),
    Column("sensitive", Boolean, nullable=False, default=False),
    Column("suppressed_reason", String(200)),
    Column("row_hash", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("publish_at", DateTime, nullable=False),
    Column("retracted_at", DateTime),
    Column("retraction_reason", Text),
    Column("first_run_id", Integer, ForeignKey("import_runs.id")),
    Column("last_run_id", Integer, ForeignKey("import_runs.id")),
    # A `needs review` hold lifted by records staff: who, when, and for which texts
    # (pii.text_digest): a re-import that changes them asks for a review again.
    Column("released_at", DateTime),
    Column("released_by", String(320)),
    Column("released_digest", String(64)),
    UniqueConstraint("source", "external_id", name="uq_incidents_source_external_id"),
    # A unique index rather than a constraint: SQLite can drop and rebuild an index (bulk
    # loads do, by sorting, instead of inserting a million random keys one by one).
    Index("ix_incidents_uid", "uid", unique=True),
    Index("ix_incidents_event_time", "event_time"),
    Index("ix_incidents_publish_at", "publish_at"),
)

incident_beats = Table(
    "incident_beats",
    metadata,
    Column(
        "incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    ),
    Column(
        "beat_set_id", Integer, ForeignKey("beat_sets.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("beat_code", String(32)),  # NULL: outside every beat of that map
    Index("ix_incident_beats_set_code", "beat_set_id", "beat_code"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # records / admin
    Column("password_hash", String(500), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False),
    Column("password_changed_at", DateTime),
    Column("last_login_at", DateTime),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("client", String(64), nullable=False),  # hashed client address
    Column("at", DateTime, nullable=False),
    Column("success", Boolean, nullable=False),
    Index("ix_login_attempts_at", "at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("actor", String(320), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(500)),
    Column("detail", Text),
    Index("ix_audit_log_at", "at"),
)

# ---- records workflow (migration 0002) ------------------------------------------------------
import_presets = Table(
    "import_presets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("source", String(100), nullable=False),
    Column("columns", Text, nullable=False),  # JSON {field: column}
    Column("created_by", String(320)),
    Column("created_at", DateTime, nullable=False),
)

import_sources = Table(
    "import_sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # folder / url
    Column("location", String(2000), nullable=False),
    Column("preset", String(100)),
    Column("interval_minutes", Integer, nullable=False),
    Column("created_by", String(320)),
    Column("created_at", DateTime, nullable=False),
    Column("last_polled_at", DateTime),
    Column("last_status", String(16)),
    Column("last_error", Text),
    Column("etag", String(500)),
    Column("last_modified", String(100)),
)

import_uploads = Table(
    "import_uploads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("filename", String(500), nullable=False),
    Column("stored_path", String(1000), nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("rows_estimate", Integer),
    # needs-mapping / queued / running / done / failed
    Column("status", String(16), nullable=False),
    Column("preset", String(100)),
    Column("mapping", Text),  # JSON {field: column} when mapped by hand
    Column("source", String(100)),
    Column("uploaded_by", String(320), nullable=False),
    Column("uploaded_at", DateTime, nullable=False),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("run_id", Integer, ForeignKey("import_runs.id")),
    Column("import_source_id", Integer, ForeignKey("import_sources.id", ondelete="SET NULL")),
    Column("error", Text),
    Index("ix_import_uploads_status", "status"),
)

source_polls = Table(
    "source_polls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "source_id", Integer, ForeignKey("import_sources.id", ondelete="CASCADE"), nullable=False
    ),
    Column("at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),  # imported / unchanged / failed
    Column("filename", String(500)),
    Column("file_sha256", String(64)),
    Column("upload_id", Integer, ForeignKey("import_uploads.id", ondelete="SET NULL")),
    Column("error", Text),
    Index("ix_source_polls_source_sha", "source_id", "file_sha256"),
)

# What changed for each beat when a beat map was published: the source of the redirects of
# renamed beats, the final entry of removed beats' feeds and the boundary-change feed entries.
boundary_changes = Table(
    "boundary_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "beat_set_id", Integer, ForeignKey("beat_sets.id", ondelete="CASCADE"), nullable=False
    ),  # the map that was published
    Column("previous_set_id", Integer, ForeignKey("beat_sets.id", ondelete="SET NULL")),
    # beats: added / removed / renamed / reshaped; areas: sector / precinct / city
    Column("kind", String(16), nullable=False),
    Column("code", String(32), nullable=False),  # the beat's (sector's...) code before the change
    # JSON list: the new code (renamed) or successor beats (removed); for an area, an object
    # {"codes": [...], "change": ..., "gained": [...], ...} (see boundaries.area_changes)
    Column("new_codes", Text),
    Column("share", Float),  # share of the area that changed (reshaped)
    Column("at", DateTime, nullable=False),
    Index("ix_boundary_changes_code", "code"),
)

# ---- outbound accounts, outbox and announcements (migration 0003) ----------------------------
outbound_accounts = Table(
    "outbound_accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("area_kind", String(16), nullable=False),  # city / precinct / sector / beat
    Column("area_code", String(32)),  # NULL for the city
    Column("service", String(16), nullable=False),  # mastodon / bluesky / x / webhook
    Column("label", String(200), nullable=False),
    Column("endpoint", String(1000), nullable=False),  # instance, PDS or webhook URL
    Column("handle", String(320)),  # shown to admins; never a secret
    Column("credentials", Text, nullable=False),  # Fernet token of a JSON object
    Column("template", Text, nullable=False),
    Column("profile_template", Text, nullable=False),
    Column("status", String(16), nullable=False),  # active / paused
    Column("char_limit", Integer),  # read from the service (Mastodon instances)
    Column("blocked_until", DateTime),  # the service asked us to wait (429)
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(320)),
    Column("last_test_at", DateTime),
    Column("last_test_result", Text),
    Index("ix_outbound_accounts_area", "area_kind", "area_code"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "account_id",
        Integer,
        ForeignKey("outbound_accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("entry_uid", String(32), nullable=False),  # incident or announcement uid
    Column("entry_kind", String(16), nullable=False),  # incident / announcement
    # A correction that changes the category is posted again; any other correction is not.
    Column("category", String(64), nullable=False),
    # pending / sending / sent / failed / unknown / superseded / deleted
    Column("status", String(16), nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_at", DateTime),
    Column("text", Text),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("remote_id", String(500)),
    Column("remote_url", String(1000)),
    Column("error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Column("deleted_at", DateTime),
    UniqueConstraint("entry_uid", "account_id", "category", name="uq_outbox_entry_account"),
    Index("ix_outbox_status_next", "status", "next_attempt_at"),
    Index("ix_outbox_account_sent", "account_id", "sent_at"),
)

announcements = Table(
    "announcements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(32), nullable=False, unique=True),  # public, opaque
    Column("kind", String(32), nullable=False),  # alert / road-closure / missing-person / ...
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("urgent", Boolean, nullable=False, default=False),
    Column("citywide", Boolean, nullable=False, default=False),
    Column("target", Text, nullable=False),  # JSON: what staff chose (beats, sectors, polygon...)
    Column("beat_set_id", Integer, ForeignKey("beat_sets.id", ondelete="CASCADE"), nullable=False),
    Column("publish_at", DateTime, nullable=False),
    Column("expires_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("created_by", String(320), nullable=False),
    Column("withdrawn_at", DateTime),
    Index("ix_announcements_publish_at", "publish_at"),
)

announcement_beats = Table(
    "announcement_beats",
    metadata,
    Column(
        "announcement_id",
        Integer,
        ForeignKey("announcements.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("beat_code", String(32), primary_key=True),
)

# ---- email alerts (migration 0005) ---------------------------------------------------------
# Only what is needed: a confirmed address, its subscriptions, and what was sent when.
# Unconfirmed sign-ups store nothing but a keyed hash of the address (for the rate limit).
email_subscribers = Table(
    "email_subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("address", String(320), nullable=False, unique=True),  # lower-cased
    Column("created_at", DateTime, nullable=False),
)

email_subscriptions = Table(
    "email_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("email_subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("area_kind", String(16), nullable=False),  # city / precinct / sector / beat
    Column("area_code", String(32)),  # NULL for the city
    Column("categories", Text, nullable=False),  # comma-separated slugs; empty = all
    Column("frequency", String(16), nullable=False),  # instant / daily / weekly
    Column("created_at", DateTime, nullable=False),
    Index("ix_email_subscriptions_subscriber", "subscriber_id"),
    Index("ix_email_subscriptions_area", "area_kind", "area_code"),
)

email_signups = Table(
    "email_signups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("address_key", String(64), nullable=False),  # HMAC of the address, never the address
    Column("client", String(64), nullable=False),
    Column("at", DateTime, nullable=False),
    Index("ix_email_signups_at", "at"),
)

email_deliveries = Table(
    "email_deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("email_subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("entry_uid", String(32), nullable=False),
    # pending / sending / sent / failed / unknown / cancelled (the outbox's vocabulary)
    Column("status", String(16), nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_at", DateTime),
    Column("error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    # Set when the entry goes out in a digest (migration 0006): the digest's status rules.
    Column("digest_id", Integer, ForeignKey("email_digests.id", ondelete="CASCADE")),
    # One address never receives the same entry twice, whatever its subscriptions.
    UniqueConstraint("subscriber_id", "entry_uid", name="uq_email_deliveries_entry"),
    Index("ix_email_deliveries_status_next", "status", "next_attempt_at"),
    Index("ix_email_deliveries_digest", "digest_id"),
)

# ---- email digests (migration 0006) ----------------------------------------------------------
# One message per address, frequency and period; its entries are email_deliveries rows that
# point to it, so the (address, entry) uniqueness above also holds across digests.
email_digests = Table(
    "email_digests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("email_subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("frequency", String(16), nullable=False),  # daily / weekly
    Column("period_start", DateTime, nullable=False),
    Column("period_end", DateTime, nullable=False),  # the scheduled send time (UTC)
    # pending / sending / sent / failed / unknown / cancelled (the outbox's vocabulary)
    Column("status", String(16), nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_at", DateTime),
    Column("error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    # Exactly one digest per address, frequency and scheduled time.
    UniqueConstraint("subscriber_id", "frequency", "period_end", name="uq_email_digests_period"),
    Index("ix_email_digests_status_next", "status", "next_attempt_at"),
)

# ---- content marks (migration 0012) ----------------------------------------------------------
# The high-water "last changed" time of each public document (a feed in one format with one
# filter, an area page, an entry page, an OPML list): it moves to the time a request first
# sees a new content fingerprint, so Last-Modified never goes back and moves on removals too.
content_marks = Table(
    "content_marks",
    metadata,
    Column("key", String(64), primary_key=True),  # SHA-256 of the document's name
    Column("fingerprint", String(64), nullable=False),  # SHA-256 of its undated content
    Column("changed_at", DateTime, nullable=False),
)
