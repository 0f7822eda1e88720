"""Plain dataclasses passed between the domain modules, the storage layer and the views."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

NEEDS_REVIEW = "needs review"  # the reason's prefix: a hold records staff can release
#: The reason of a row no category rule classifies: not proven safe, so never published
#: (unless BEATFEEDS_UNCLASSIFIED=publish, when it is published as "other").
UNCLASSIFIED = "unclassified"


def is_review_reason(reason: str | None) -> bool:
    """Whether a stored suppression reason is a `needs review` hold (staff can release it)."""
    return bool(reason) and reason.startswith(NEEDS_REVIEW)


# needs_review: rows stored by the run (new or updated) whose text looks like personal data,
# held back until records staff release them (pii). unclassified: rows stored by the run
# (new or updated) that no category rule classifies, held back as `unclassified`.
COUNTERS = (
    "read",
    "new",
    "updated",
    "unchanged",
    "duplicate",
    "unlocated",
    "unassigned",
    "rejected",
    "needs_review",
    "unclassified",
)

BEAT_SET_STATUSES = ("draft", "scheduled", "active", "retired")


@dataclass
class Beat:
    code: str
    sector: str | None
    precinct: str | None
    geometry: object  # shapely geometry, EPSG:4326
    name: str | None = None


@dataclass
class BeatSet:
    id: int
    name: str
    status: str
    effective_date: date | None
    created_at: datetime
    created_by: str | None = None
    published_at: datetime | None = None
    beat_count: int = 0


@dataclass
class Rejection:
    line: int
    reason: str
    raw: str = ""


@dataclass
class IncidentRow:
    """One valid row of an import file, normalised but not yet joined or stored."""

    line: int
    source: str
    external_id: str
    reported_at: datetime | None  # UTC, naive
    occurred_at: datetime | None  # UTC, naive
    category_text: str  # the source's own wording of the type
    description: str
    address: str
    lat: float | None
    lon: float | None
    source_beat: str | None
    sensitive: bool
    classification_texts: tuple[str, ...] = ()
    # Filled by privacy / spatial:
    category: str = "other"
    block_address: str = ""
    suppressed_reason: str | None = None
    beat_codes: dict[int, str | None] = field(default_factory=dict)  # beat set id -> code
    coordinates_swapped: bool = False  # latitude and longitude were given the wrong way round

    @property
    def event_time(self) -> datetime | None:
        return self.occurred_at or self.reported_at

    @property
    def located(self) -> bool:
        return self.lat is not None and self.lon is not None


@dataclass
class ImportReport:
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    rejections: list[Rejection] = field(default_factory=list)
    run_id: int | None = None
    source: str = ""
    preset: str | None = None
    report_path: str | None = None
    dry_run: bool = False

    def line(self) -> str:
        return " ".join(f"{k} {self.counters[k]}" for k in COUNTERS)


@dataclass
class ImportRun:
    id: int
    source: str
    filename: str
    preset: str | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    user_email: str | None
    counters: dict[str, int]
    report_path: str | None = None
    error: str | None = None


@dataclass
class FeedEntry:
    """A published item as feeds and pages show it. Never the raw coordinates: `point` is
    the incident's position snapped to the `geo_precision` grid by the storage layer."""

    uid: str
    title: str
    category: str
    category_text: str
    description: str
    block_address: str
    event_time: datetime  # UTC, naive
    updated_at: datetime  # UTC, naive
    publish_at: datetime | None = None  # when it became (or becomes) public, UTC, naive
    beat: str | None = None
    sector: str | None = None
    precinct: str | None = None
    source: str = ""
    external_id: str = ""
    point: tuple[float, float] | None = None  # (lat, lon) on the publication grid
    link: str = ""  # site path the feed links to; "" for the entry's own page

    @property
    def changed_at(self) -> datetime:
        """The last time this entry changed for a reader: an update, or going public."""
        return max(self.updated_at, self.publish_at or self.updated_at)


@dataclass
class Area:
    kind: str  # "city", "precinct", "sector", "beat"
    code: str | None
    label: str
    beat_set_id: int


@dataclass
class User:
    id: int
    email: str
    role: str
    password_hash: str
    disabled: bool
    created_at: datetime
    password_changed_at: datetime | None = None


@dataclass
class BoundaryChange:
    """What happened to one beat (or sector, precinct, the city) when a beat map was published."""

    kind: str  # beats: added / removed / renamed / reshaped; areas: sector / precinct / city
    code: str  # the code before the change (the new code for `added`)
    new_codes: list[str] = field(default_factory=list)  # new code, or successor beats
    share: float | None = None  # share of the area changed (reshaped)
    id: int | None = None
    beat_set_id: int | None = None
    previous_set_id: int | None = None
    at: datetime | None = None
    # Areas only: {"change": "changed"/"added"/"removed"/"renamed", "gained", "lost",
    # "reshaped", "renamed" beats...}; the city: the map published and its beat changes.
    detail: dict | None = None


# ---- records workflow: upload queue, saved presets, scheduled sources, staff entry view -----
UPLOAD_STATUSES = ("needs-mapping", "queued", "running", "done", "failed")


@dataclass
class Upload:
    """A file given to beatfeeds to import later (web upload or scheduled source)."""

    id: int
    filename: str
    stored_path: str
    file_sha256: str
    size_bytes: int
    status: str
    uploaded_by: str
    uploaded_at: datetime
    rows_estimate: int | None = None
    preset: str | None = None
    mapping: dict[str, str] | None = None
    source: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_id: int | None = None
    import_source_id: int | None = None
    error: str | None = None

    @property
    def file_removed(self) -> bool:
        """The stored file was deleted after the retention period (the row stays)."""
        return not self.stored_path


@dataclass
class SavedPreset:
    """A column mapping records staff saved under a name, usable like a built-in preset."""

    name: str
    source: str
    columns: dict[str, str]
    created_by: str | None = None
    created_at: datetime | None = None


@dataclass
class ImportSource:
    """A watched folder or URL polled on an interval."""

    id: int
    name: str
    kind: str  # folder / url
    location: str
    preset: str | None
    interval_minutes: int
    created_at: datetime
    created_by: str | None = None
    last_polled_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class SourcePoll:
    id: int
    source_id: int
    source_name: str
    at: datetime
    status: str  # imported / unchanged / failed
    filename: str | None = None
    file_sha256: str | None = None
    upload_id: int | None = None
    error: str | None = None


@dataclass
class StaffIncident:
    """One incident as records staff see it: public fields, private address, status."""

    uid: str
    source: str
    external_id: str
    event_time: datetime
    category: str
    category_text: str
    description: str
    address: str
    block_address: str
    publish_at: datetime
    updated_at: datetime
    beat: str | None = None
    suppressed_reason: str | None = None
    retracted_at: datetime | None = None
    retraction_reason: str | None = None
    released_at: datetime | None = None  # a `needs review` hold lifted by records staff
    released_by: str | None = None

    def status(self, now: datetime) -> str:
        """published / scheduled / needs review / suppressed / unassigned / retracted."""
        if self.retracted_at:
            return "retracted"
        if is_review_reason(self.suppressed_reason):
            return "needs review"
        if self.suppressed_reason:
            return "suppressed"
        if self.beat is None:
            return "unassigned"
        return "published" if self.publish_at <= now else "scheduled"


# ---- outbound accounts, outbox, announcements -------------------------------------------------
OUTBOX_STATUSES = (
    "pending",
    "sending",
    "sent",
    "failed",
    "unknown",
    "superseded",
    "cancelled",
    "deleted",
)


@dataclass
class OutboundAccount:
    """An account on an outside service that mirrors an area's entries. `credentials` is
    the encrypted token as stored; only beatfeeds.services.outbox decrypts it, to send."""

    id: int
    area_kind: str
    area_code: str | None
    service: str
    label: str
    endpoint: str
    handle: str | None
    credentials: str
    template: str
    profile_template: str
    status: str  # active / paused
    created_at: datetime
    created_by: str | None = None
    char_limit: int | None = None
    blocked_until: datetime | None = None
    last_test_at: datetime | None = None
    last_test_result: str | None = None


@dataclass
class OutboxItem:
    id: int
    account_id: int
    entry_uid: str
    entry_kind: str  # incident / announcement
    category: str
    status: str
    due_at: datetime
    next_attempt_at: datetime
    attempts: int
    created_at: datetime
    claimed_at: datetime | None = None
    text: str | None = None
    dry_run: bool = False
    remote_id: str | None = None
    remote_url: str | None = None
    error: str | None = None
    sent_at: datetime | None = None
    deleted_at: datetime | None = None
    account_label: str = ""
    service: str = ""


ANNOUNCEMENT_KINDS = {
    "alert": "Public-safety alert",
    "road-closure": "Road closure",
    "missing-person": "Missing person",
    "prevention-tip": "Crime-prevention tip",
    "community-event": "Community event",
    "department-update": "Department update",
}
URGENT_KINDS = ("alert", "missing-person")


@dataclass
class Announcement:
    id: int
    uid: str
    kind: str
    title: str
    body: str
    urgent: bool
    citywide: bool
    target: dict
    beat_set_id: int
    publish_at: datetime
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    created_by: str
    withdrawn_at: datetime | None = None
    beats: list[str] = field(default_factory=list)

    def status(self, now: datetime) -> str:
        """scheduled / published / expired / withdrawn."""
        if self.withdrawn_at:
            return "withdrawn"
        if self.expires_at and self.expires_at <= now:
            return "expired"
        return "published" if self.publish_at <= now else "scheduled"


@dataclass
class EmailSubscription:
    """One confirmed email subscription to an area (email alerts)."""

    id: int
    subscriber_id: int
    address: str
    area_kind: str  # city / precinct / sector / beat
    area_code: str | None
    categories: tuple[str, ...]  # empty: every published category
    frequency: str  # instant / daily / weekly
    created_at: datetime


@dataclass
class EmailDelivery:
    """One entry to one address (email alerts): the email counterpart of an outbox item."""

    id: int
    subscriber_id: int
    address: str
    entry_uid: str
    status: str  # pending / sending / sent / failed / unknown / cancelled
    due_at: datetime
    next_attempt_at: datetime
    attempts: int
    claimed_at: datetime | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    digest_id: int | None = None  # set when the entry goes out in a digest


@dataclass
class EmailDigest:
    """One daily or weekly digest to one address: the entries it lists are EmailDelivery rows
    pointing to it, and it follows the outbox's statuses as one message."""

    id: int
    subscriber_id: int
    address: str
    frequency: str  # daily / weekly
    period_start: datetime
    period_end: datetime  # the scheduled send time (naive UTC)
    status: str  # pending / sending / sent / failed / unknown / cancelled
    next_attempt_at: datetime
    attempts: int
    claimed_at: datetime | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None
