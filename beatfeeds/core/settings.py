"""The settings registry.

Precedence, lowest first: defaults -> TOML file named by BEATFEEDS_CONFIG -> BEATFEEDS_*
environment variables -> overrides passed by the caller (create_app(config=...)).
docs/configuration.md documents every setting here; a test keeps the two in step.
Nothing here is read at import time: call load_settings().
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from beatfeeds.core.categories import CATEGORIES
from beatfeeds.core.errors import ConfigurationError
from beatfeeds.core.profile import DEMO_DEPARTMENT, check_color, check_labels, parse_map_center

ENV_PREFIX = "BEATFEEDS_"
CONFIG_NAME = "beatfeeds.toml"  # the instance folder's own TOML file
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    kind: type = str
    secret: bool = False
    file_variant: bool = False  # also accepts NAME_FILE pointing to a file holding the value


SETTINGS: list[Setting] = [
    Setting(
        "database_url",
        "",
        "SQLAlchemy URL of the database. Empty means a SQLite file "
        "`beatfeeds.sqlite3` in the instance folder. PostgreSQL: "
        "`postgresql+psycopg://user:pass@host/db`.",
        secret=True,
        file_variant=True,
    ),
    Setting(
        "instance_path",
        "instance",
        "Folder for the SQLite database, the generated secret "
        "key and import reports. Relative paths are resolved against the working directory.",
    ),
    Setting(
        "base_url",
        "http://127.0.0.1:8000",
        "Public URL of the site, used for every absolute "
        "link in feeds (never the request's Host header).",
    ),
    Setting(
        "tag_authority",
        "beatfeeds.localhost,2026",
        "The `authority,date` part of the "
        "`tag:` URIs that identify feed entries. Set it once, before publishing, to a domain "
        "you control and the date you set it; changing it later makes every reader see "
        "every entry again.",
    ),
    Setting(
        "secret_key",
        "",
        "Key that signs sessions and CSRF tokens. Empty means a random key "
        "generated once and kept in `secret_key` in the instance folder.",
        secret=True,
        file_variant=True,
    ),
    Setting(
        "timezone",
        "America/Los_Angeles",
        "IANA time zone of the department: naive times "
        "in imported files are read in it, and entry text shows times in it.",
    ),
    Setting(
        "publication_delay",
        60,
        "Minutes after the latest of the event, report and first "
        "import times before an incident is published (Seattle's Tweets by Beat used 60).",
        kind=int,
    ),
    Setting("department_name", DEMO_DEPARTMENT, "Name shown in feed titles and pages."),
    Setting("beat_label", "Beat", "The department's word for a beat (singular)."),
    Setting("sector_label", "Sector", "The department's word for a sector (singular)."),
    Setting("precinct_label", "Precinct", "The department's word for a precinct (singular)."),
    Setting(
        "map_center",
        "",
        "`LAT,LON` where maps open before a beat map is drawn; empty: the demo's Seattle.",
    ),
    Setting("feed_max_entries", 50, "Most entries in one feed.", kind=int),
    Setting(
        "suppressed_categories",
        [
            "sexual-offense",
            "domestic-violence",
            "juvenile",
            "missing-person",
            "behavioral-health",
            "medical",
            "death",
        ],
        "Public categories that are stored but never published.",
        kind=list,
    ),
    Setting(
        "unclassified",
        "hold",
        "What happens to an incident whose category no rule classifies: `hold` (never "
        "published, counted as `unclassified` in the import summary) or `publish` (published "
        "as Other; a WARNING is logged at start-up).",
    ),
    Setting("session_lifetime", 480, "Minutes a staff sign-in stays valid.", kind=int),
    Setting(
        "login_max_attempts",
        5,
        "Failed sign-ins allowed per email and per client address "
        "within `login_window` minutes before sign-in is refused.",
        kind=int,
    ),
    Setting("login_window", 15, "Minutes over which failed sign-ins are counted.", kind=int),
    Setting(
        "request_write_wait",
        2.0,
        "Seconds a web request waits for another writer (an "
        "import) to release the database before answering 503 with Retry-After.",
        kind=float,
    ),
    Setting(
        "demo_notice",
        "",
        "Text shown on every page, for example to say that timestamps "
        "were shifted. `beatfeeds demo` sets it.",
    ),
    Setting(
        "max_upload_mb",
        200,
        "Largest incident file, in megabytes, that staff may upload "
        "on /records/imports; a bigger upload is refused (413) before it is stored.",
        kind=int,
    ),
    Setting(
        "upload_retention_days",
        90,
        "Days after an import finishes (or fails, or is "
        "cancelled) before the `prune-uploads` job deletes its stored file; the import's "
        "history stays. 0 keeps every file.",
        kind=int,
    ),
    Setting(
        "source_max_mb",
        500,
        "Largest file, in megabytes, that a scheduled URL source may "
        "download; a bigger one is abandoned and recorded as a failed poll.",
        kind=int,
    ),
    Setting("log_level", "INFO", "Python logging level."),
    Setting(
        "trusted_proxies",
        0,
        "Number of reverse proxies in front of the app whose "
        "X-Forwarded-For/-Proto/-Host headers are trusted (0 = none).",
        kind=int,
    ),
    Setting(
        "beat_reshape_tolerance",
        0.001,
        "Share of a beat's area that must change for "
        "`beats diff` and the admin preview to count it as reshaped (0.001 = 0.1%), so that "
        "re-digitising noise does not show up.",
        kind=float,
    ),
    Setting(
        "beat_overlap_tolerance",
        100.0,
        "Square metres two beats may overlap before "
        "validation refuses the map (smaller overlaps are digitising noise).",
        kind=float,
    ),
    Setting(
        "beat_gap_tolerance",
        100.0,
        "Square metres of the replaced map's area a new map "
        "may leave uncovered, per gap, before validation refuses it.",
        kind=float,
    ),
    Setting(
        "beat_sliver_area",
        2000.0,
        "Square metres below which a polygon part of a beat "
        "is reported as a sliver (a warning, not an error).",
        kind=float,
    ),
    Setting(
        "beat_diff_days",
        90,
        "Days of recent incidents the beat-map preview lists as moving between beats.",
        kind=int,
    ),
    Setting(
        "tile_url",
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "Base map tiles "
        "(a Leaflet URL template) for the beat-map editor. Empty shows no base map; the "
        "maps work without tiles.",
    ),
    Setting(
        "tile_attribution",
        "&copy; OpenStreetMap contributors",
        "Attribution shown with the base map tiles (HTML).",
    ),
    Setting(
        "geo_precision",
        0.001,
        "Grid, in degrees, that incident points are snapped to "
        "before they appear in feeds (GeoRSS). 0.001 is about 110 m north-south. The raw "
        "point is never published.",
        kind=float,
    ),
    Setting(
        "feed_retention_days",
        0,
        "Entries whose event is older than this many days drop "
        "out of feeds and pages. 0 keeps them (feeds still show at most "
        "`feed_max_entries`).",
        kind=int,
    ),
    Setting(
        "feed_cache_seconds",
        300,
        "`Cache-Control: max-age` sent with feeds, in seconds. "
        "Built feeds are also kept in memory until the data changes.",
        kind=int,
    ),
    Setting(
        "hub_url",
        "",
        'WebSub hub that feeds advertise (`Link: rel="hub"`) and that the '
        "`ping-websub-hub` job notifies when feeds change. Empty: no hub.",
    ),
    Setting(
        "geocoder_url",
        "",
        "Base URL of a Nominatim-compatible geocoder (its `/search` "
        "endpoint is called from the resident's browser, never from the server). Empty "
        "hides the address search box.",
    ),
    Setting(
        "department_logo_url",
        "",
        "URL of the department logo shown in the page header "
        "(absolute, or a path on this site). Empty: no logo.",
    ),
    Setting(
        "department_color",
        "#0b4f8a",
        "Accent colour of the pages (links, header rule, "
        "map highlight), as `#rrggbb`. It must reach a 4.5:1 contrast ratio on white.",
    ),
    Setting(
        "dry_run",
        False,
        "Outbound accounts: record what would be posted (on the admin "
        "outbox page) without sending anything; email alerts: write each message to "
        "`mail/` in the instance folder instead of sending it. `beatfeeds demo` turns it "
        "on.",
        kind=bool,
    ),
    Setting(
        "outbox_max_age",
        24,
        "Hours: entries whose event is older than this when they "
        "become public are not posted to outbound accounts, so importing old records does "
        "not flood them (feeds still show them).",
        kind=int,
    ),
    Setting(
        "outbound_timeout",
        20,
        "Seconds to wait for Mastodon, Bluesky, X or a webhook to answer one request.",
        kind=int,
    ),
    Setting(
        "smtp_url",
        "",
        "Email alerts: the SMTP server, as `smtp://user:password@host:587` "
        "(STARTTLS when the server offers it) or `smtps://user:password@host:465` (TLS "
        "from the start); user and password are optional and URL-encoded. Empty: email "
        "alerts are switched off (no subscribe form) unless `dry_run` is on.",
        secret=True,
        file_variant=True,
    ),
    Setting(
        "mail_from",
        "",
        "Email alerts: the From address, for example "
        "`SPD Beat Alerts <alerts@example.gov>`. Empty: `alerts@` and the host of "
        "`base_url`.",
    ),
    Setting(
        "alert_grace_minutes",
        10,
        "Email alerts: minutes an entry must have been public "
        "before an instant alert about it is sent or a digest lists it; a retraction or "
        "suppression within them cancels the mail (sent mail cannot be recalled).",
        kind=int,
    ),
    Setting(
        "alert_link_hours",
        48,
        'Email alerts: hours a confirmation or "manage my alerts" link stays valid.',
        kind=int,
    ),
    Setting(
        "signup_max_per_address",
        3,
        "Email alerts: sign-up or manage-link requests "
        "allowed per address within `signup_window` minutes.",
        kind=int,
    ),
    Setting(
        "signup_max_per_client",
        10,
        "Email alerts: sign-up or manage-link requests "
        "allowed per client (IP address) within `signup_window` minutes.",
        kind=int,
    ),
    Setting("signup_window", 60, "Minutes over which email alert requests are counted.", kind=int),
    Setting(
        "smtp_max_per_minute",
        60,
        "Email alerts: most messages the `send-alerts` job "
        "hands to the SMTP server per minute; the rest wait for the next run.",
        kind=int,
    ),
    Setting(
        "digest_time",
        "07:00",
        "Email alerts: local time of day (24-hour `HH:MM`, in "
        "`timezone`) at which daily and weekly digests go out.",
    ),
    Setting(
        "digest_weekday",
        "monday",
        "Email alerts: the day of the week weekly digests go out (`monday` to `sunday`).",
    ),
]

_BY_NAME = {s.name: s for s in SETTINGS}


class Settings:
    """Effective settings; attribute access by lowercase name."""

    def __init__(self, values: dict[str, Any], origins: dict[str, str]):
        self._values = values
        self._origins = origins

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def hold_unclassified(self) -> bool:
        """Whether incidents no category rule classifies are held back (the default)."""
        return self._values["unclassified"] != "publish"

    def origin(self, name: str) -> str:
        return self._origins[name]

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def masked(self) -> list[tuple[str, str, str]]:
        """(name, value, origin) for display, with secrets masked."""
        out = []
        for s in SETTINGS:
            v = self._values[s.name]
            shown = ("********" if v else "") if s.secret else _render(v)
            if s.name == "database_url" and v:
                shown = _mask_url(v)
            out.append((s.name, shown, self._origins[s.name]))
        return out

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _render(v: Any) -> str:
    return ",".join(v) if isinstance(v, list) else str(v)


def _mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
        # Drivers also take the password as a query parameter (`?password=...`).
        hidden = {
            k: "hidden"
            for k in u.query
            if any(w in k.lower() for w in ("password", "secret", "token"))
        }
        return u.update_query_dict(hidden).render_as_string(hide_password=True)
    except Exception:
        return "********"


def _coerce(setting: Setting, raw: Any, origin: str) -> Any:
    try:
        if setting.kind is bool:
            if isinstance(raw, bool):
                return raw
            word = str(raw).strip().lower()
            if word not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
                raise ValueError(raw)
            return word in ("1", "true", "yes", "on")
        if setting.kind is int:
            # int() would quietly turn `true` into 1 and 1.5 into 1.
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if setting.kind is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            v = float(raw)
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return v
        if setting.kind is list:
            if isinstance(raw, str):
                return [x.strip() for x in raw.split(",") if x.strip()]
            if not isinstance(raw, list | tuple):
                raise ValueError(raw)
            return [str(x) for x in raw]
        if isinstance(raw, list | tuple | dict):
            raise ValueError(raw)  # str() of a TOML array would pass for a value
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{setting.name} from {origin}: cannot read {raw!r}") from exc


def instance_config(env: dict[str, str]) -> str | None:
    """`beatfeeds.toml` in the instance folder (as `beatfeeds setup` writes it), if there is
    one: read when BEATFEEDS_CONFIG names no file."""
    folder = env.get(ENV_PREFIX + "INSTANCE_PATH") or _BY_NAME["instance_path"].default
    path = Path(folder).expanduser().resolve() / CONFIG_NAME
    return str(path) if path.is_file() else None


def load_settings(
    overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Resolve every setting from defaults, TOML file, environment and overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    origins = {s.name: "default" for s in SETTINGS}

    config_path = env.get(ENV_PREFIX + "CONFIG") or instance_config(env)
    if config_path:
        try:
            data = tomllib.loads(Path(config_path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"BEATFEEDS_CONFIG={config_path}: {exc}") from exc
        for key, raw in data.items():
            name = key.lower()
            if name not in _BY_NAME:
                raise ConfigurationError(f"{config_path}: unknown setting {key!r}")
            values[name] = _coerce(_BY_NAME[name], raw, config_path)
            origins[name] = "file"

    for s in SETTINGS:
        var = ENV_PREFIX + s.name.upper()
        if s.file_variant and env.get(var + "_FILE"):
            path = env[var + "_FILE"]
            try:
                values[s.name] = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigurationError(f"{var}_FILE={path}: {exc}") from exc
            origins[s.name] = "env file"
        if var in env:
            values[s.name] = _coerce(s, env[var], var)
            origins[s.name] = "env"

    for key, raw in (overrides or {}).items():
        name = key.lower().removeprefix("beatfeeds_")
        if name not in _BY_NAME:
            continue  # Flask keys such as TESTING travel in the same dict
        values[name] = _coerce(_BY_NAME[name], raw, "overrides")
        origins[name] = "overrides"

    instance = Path(values["instance_path"]).expanduser().resolve()
    values["instance_path"] = str(instance)
    if not values["database_url"]:
        values["database_url"] = f"sqlite:///{instance / 'beatfeeds.sqlite3'}"
    try:
        ZoneInfo(values["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"timezone: unknown time zone {values['timezone']!r}") from exc
    if values["publication_delay"] < 0:
        raise ConfigurationError("publication_delay must be 0 or more minutes")
    if values["alert_grace_minutes"] < 0:
        raise ConfigurationError("alert_grace_minutes must be 0 or more minutes")
    if values["max_upload_mb"] < 1:
        raise ConfigurationError("max_upload_mb must be at least 1")
    if values["source_max_mb"] < 1:
        raise ConfigurationError("source_max_mb must be at least 1")
    if values["upload_retention_days"] < 0:
        raise ConfigurationError("upload_retention_days must be 0 or more")
    if values["feed_max_entries"] < 1:
        raise ConfigurationError("feed_max_entries must be at least 1")
    if "," not in values["tag_authority"]:
        raise ConfigurationError("tag_authority must look like 'example.org,2026'")
    # A misspelt slug would otherwise publish the category it was meant to hide.
    unknown = [c for c in values["suppressed_categories"] if c not in CATEGORIES]
    if unknown:
        raise ConfigurationError(
            f"suppressed_categories: unknown categories {', '.join(unknown)}; "
            f"categories are {', '.join(CATEGORIES)}"
        )
    values["unclassified"] = values["unclassified"].strip().lower()
    if values["unclassified"] not in ("hold", "publish"):
        raise ConfigurationError(f"unclassified: {values['unclassified']!r} is not hold or publish")
    if not 0 < values["geo_precision"] <= 1:
        raise ConfigurationError("geo_precision must be more than 0 and at most 1 degree")
    if values["feed_retention_days"] < 0 or values["feed_cache_seconds"] < 0:
        raise ConfigurationError("feed_retention_days and feed_cache_seconds must be 0 or more")
    check_color(values["department_color"])
    check_labels(values)
    parse_map_center(values["map_center"])
    if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", values["digest_time"].strip()):
        raise ConfigurationError(
            f"digest_time: {values['digest_time']!r} is not a time of day such as 07:00"
        )
    values["digest_time"] = values["digest_time"].strip().zfill(5)
    values["digest_weekday"] = values["digest_weekday"].strip().lower()
    if values["digest_weekday"] not in WEEKDAYS:
        raise ConfigurationError(
            f"digest_weekday: {values['digest_weekday']!r} is not one of {', '.join(WEEKDAYS)}"
        )
    level = values["log_level"].strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigurationError(
            f"log_level: unknown level {values['log_level']!r}; use DEBUG, "
            "INFO, WARNING, ERROR or CRITICAL"
        )
    values["log_level"] = level
    values["base_url"] = values["base_url"].rstrip("/")
    return Settings(values, origins)


def ensure_secret_key(settings: Settings) -> str:
    """The configured secret key, or one generated once and kept in the instance folder."""
    if settings.secret_key:
        return settings.secret_key
    from beatfeeds.core.files import private_dir

    path = Path(settings.instance_path) / "secret_key"
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # another process made it first
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
