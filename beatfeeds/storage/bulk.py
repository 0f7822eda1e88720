"""Incident rows as the driver takes them: columns bound once, rows made as they are written."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    Index,
)

from beatfeeds.core.models import (
    IncidentRow,
)
from beatfeeds.ingest.columnar import format_datetimes
from beatfeeds.storage import schema as t


@dataclass(frozen=True)
class _Rows:
    """Rows as columns, made into tuples only as they are written."""

    columns: list[Sequence]
    n: int

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return zip(*self.columns, strict=False)


@dataclass
class PreparedIncidents:
    """A chunk of new incidents as the driver takes it (see prepare_incident_columns)."""

    sql: str
    rows: _Rows
    beat_sql: str
    beat_rows: list[tuple]


def _offsets_by_code(codes) -> list[tuple[str | None, str]]:
    """(beat code or None, JSON array of the positions with that code) for a column."""
    import pandas as pd

    labels, uniques = pd.factorize(np.asarray(codes, dtype=object), use_na_sentinel=False)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(uniques) + 1))
    return [
        (
            None if pd.isna(code) else str(code),
            json.dumps(order[bounds[k] : bounds[k + 1]].tolist()),
        )
        for k, code in enumerate(uniques)
    ]


class BoundValues(list):
    """A column of incidents converted for the driver (see bind_incident_columns).

    Pickled compactly, as it travels from the parsing process: a column of text without
    NUL characters becomes one string, which costs a fraction of a million small ones."""

    __slots__ = ()

    def __reduce__(self):
        try:
            joined = "\x00".join(self)
        except TypeError:  # not all text (numbers, NULLs)
            return BoundValues, (list(self),)
        if len(self) > 1 and joined.count("\x00") != len(self) - 1:
            return BoundValues, (list(self),)  # a value holds a NUL itself
        return _split_values, (joined, len(self))


def _split_values(joined: str, n: int) -> BoundValues:
    return BoundValues(joined.split("\x00") if n else [])


def _deferrable_indexes() -> list[Index]:
    """Indexes a bulk load may drop and rebuild. Not the (source, external_id) one: it guards
    identity while the run looks rows up. The uid one may go: a uid is a hash of that pair,
    so the other index already keeps uids apart, and rebuilding still checks uniqueness."""
    # Not ix_incident_beats_set_code: new rows go to the end of each beat's range, cheaply.
    names = ("ix_incidents_uid", "ix_incidents_event_time", "ix_incidents_publish_at")
    found = [i for i in t.incidents.indexes if i.name in names]
    assert len(found) == len(names)
    return found


def _numeric(v) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind in "biufM"


def _is_column(v) -> bool:
    return isinstance(v, (list, tuple, np.ndarray))


def _placeholder(conn: Connection) -> str:
    return {"qmark": "?", "numeric": "?", "named": "?"}.get(conn.dialect.paramstyle, "%s")


def _bind_datetimes(conn: Connection | Engine, type_, values: np.ndarray) -> list:
    """datetime64 values for the driver; on SQLite as the text SQLAlchemy stores, written
    column-wise (per-value formatting is most of a bulk insert's cost otherwise)."""
    micro = values.astype("datetime64[us]")
    proc = type_.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    if proc is None:
        out = micro.astype(object).tolist()
        for i in np.flatnonzero(np.isnat(values)).tolist():
            out[i] = None
        return out
    probe = datetime(2001, 2, 3, 4, 5, 6, 7)
    if proc(probe) == format_datetimes(np.array([probe], dtype="datetime64[us]"), sep=" ")[0]:
        return format_datetimes(micro, sep=" ")
    # a storage format we do not write: SQLAlchemy's own processor
    return [None if v is None else proc(v) for v in micro.astype(object).tolist()]


def _incident_values(
    r: IncidentRow, row_hash: str, publish_at: datetime, run_id: int | None, now: datetime
) -> dict:
    return {
        "source": r.source,
        "external_id": r.external_id,
        "reported_at": r.reported_at,
        "occurred_at": r.occurred_at,
        "event_time": r.event_time,
        "category": r.category,
        "category_text": r.category_text,
        "description": r.description,
        "address": r.address,
        "block_address": r.block_address,
        "lat": r.lat,
        "lon": r.lon,
        "source_beat": r.source_beat,
        "sensitive": r.sensitive,
        "suppressed_reason": r.suppressed_reason,
        "row_hash": row_hash,
        "updated_at": now,
        "publish_at": publish_at,
        "last_run_id": run_id,
    }
