"""The storage layer: the only package with SQL. SQLAlchemy Core over SQLite or PostgreSQL.

`SQLStore` is a facade: it builds the engine (`storage.engine.Database`) and one repository per
table group, and exposes them as attributes (`store.incidents`, `store.beatmaps`, ...).
"""

from __future__ import annotations

from sqlalchemy import Engine

from beatfeeds.storage.accounts import AccountRepository
from beatfeeds.storage.beatmaps import BeatMapRepository
from beatfeeds.storage.digests import DigestRepository
from beatfeeds.storage.email import EmailRepository
from beatfeeds.storage.engine import Database, make_engine
from beatfeeds.storage.incidents import IncidentRepository
from beatfeeds.storage.outbox import OutboxRepository
from beatfeeds.storage.public import PublicRepository
from beatfeeds.storage.records import RecordsRepository
from beatfeeds.storage.uploads import UploadRepository

# The attributes SQLStore exposes, in the order their methods are looked up.
REPOSITORIES = (
    "db",
    "incidents",
    "beatmaps",
    "public",
    "outbox",
    "email",
    "digests",
    "accounts",
    "records",
    "uploads",
)


def _public_methods(repo: object) -> list[str]:
    """The public methods a repository's own class defines (not those of its base)."""
    return [
        name
        for name, value in vars(type(repo)).items()
        if not name.startswith("_") and callable(value)
    ]


class SQLStore:
    """Every query beatfeeds runs, by table group: `store.<group>.<method>(...)`."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.db = Database(engine)
        self.incidents = IncidentRepository(self.db)
        self.beatmaps = BeatMapRepository(self.db)
        self.public = PublicRepository(self.db)
        self.outbox = OutboxRepository(self.db)
        self.email = EmailRepository(self.db)
        self.digests = DigestRepository(self.db)
        self.accounts = AccountRepository(self.db)
        self.records = RecordsRepository(self.db, self.accounts)
        self.uploads = UploadRepository(self.db)
        forward: dict[str, str] = {}
        for attr in REPOSITORIES:
            for name in _public_methods(getattr(self, attr)):
                if name in vars(SQLStore):
                    continue  # the facade's own (upgrade, dispose, ...)
                assert name not in forward, f"{name} is defined by {forward[name]} and {attr}"
                forward[name] = attr
        self._forward = forward

    def __setattr__(self, name: str, value) -> None:
        # Replacing `store.X` would never reach the package, which calls `store.<group>.X`:
        # refuse it (a test patching the shorthand would silently patch nothing).
        forward = self.__dict__.get("_forward")
        if forward and name in forward:
            raise AttributeError(f"set {name} on store.{forward[name]}, where it lives")
        super().__setattr__(name, value)

    @classmethod
    def from_url(cls, url: str) -> SQLStore:
        return cls(make_engine(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> tuple[str | None, str]:
        """Run migrations to head; returns (revision before, revision after)."""
        return self.db.upgrade()

    def dispose(self) -> None:
        """Close the pool's connections."""
        self.db.dispose()

    def __getattr__(self, name: str):
        # A shorthand for tests, benchmarks and one-off scripts: `store.X` stands for
        # `store.<group>.X`. The package itself always names the group (tests/test_architecture.py
        # checks), so a reader sees which table group a use case touches. Only names that
        # exactly one group defines (checked in __init__).
        forward = self.__dict__.get("_forward")
        if forward is None or name not in forward:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.__dict__[forward[name]], name)
