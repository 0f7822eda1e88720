"""The chunks of an import run: planned without the database, then written.

`plan_chunk` does everything about a chunk of valid rows that needs no database (in the
parsing child process for a big file): dedupe within the run (`Seen`), the publication
policy once per distinct wording, the join to every beat map, the columns converted for the
driver. `store_chunk` then looks up which keys are stored, inserts the new rows (on the
run's `Writer` thread, one chunk behind) and updates the changed. `imports.import_file`
drives both inside the run's one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from beatfeeds.core import identifiers, models
from beatfeeds.core.models import IncidentRow
from beatfeeds.core.text import xml_text
from beatfeeds.publish import pii, privacy

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from beatfeeds.core.settings import Settings
    from beatfeeds.storage import SQLStore


class Writer:
    """The run's bulk inserts, on one background thread and one chunk behind: the database
    writes a chunk while the next one is parsed (the drivers release the GIL while they
    work). Only one thing uses the connection at a time: every other use waits first."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-writer")
        self._pending: Future | None = None

    def submit(self, fn: Callable, *args, **kwargs) -> None:
        self.wait()
        self._pending = self._pool.submit(fn, *args, **kwargs)

    def wait(self) -> None:
        """Wait for the write in progress; its error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class Run:
    """What storing the chunks of one run shares."""

    store: SQLStore
    conn: Connection
    source: str
    counters: dict[str, int]
    settings: Settings
    run_id: int
    now: datetime
    ncls: int
    had_incidents: bool  # False: only keys seen earlier in this run can already be stored
    writer: Writer
    next_id: int | None  # the next new incident's id, where the run numbers them itself
    uid_key: bytes  # the instance key new incidents' uids are derived under


class Seen:
    """The keys this run stored, with 64 bits of their row hash, as a few sorted uint64
    arrays: 16 bytes a row and no Python objects, whatever the size of the file."""

    def __init__(self):
        self.keys: list[np.ndarray] = []
        self.hashes: list[np.ndarray] = []

    @staticmethod
    def key_hashes(keys: list[str]) -> np.ndarray:
        return pd.util.hash_array(np.asarray(keys, dtype=object), categorize=False)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(seen?, the row hash stored for it) for each key hash."""
        # Searched in sorted order: numpy then narrows each search from the previous one.
        order = np.argsort(keys)
        wanted = keys[order]
        found_sorted = np.zeros(len(keys), dtype=bool)
        hashes_sorted = np.zeros(len(keys), dtype=np.uint64)
        for ks, hs in zip(self.keys, self.hashes, strict=True):  # oldest first: newest wins
            pos = np.minimum(np.searchsorted(ks, wanted), len(ks) - 1)
            hit = ks[pos] == wanted
            found_sorted |= hit
            hashes_sorted[hit] = hs[pos[hit]]
        found = np.empty(len(keys), dtype=bool)
        hashes = np.empty(len(keys), dtype=np.uint64)
        found[order], hashes[order] = found_sorted, hashes_sorted
        return found, hashes

    def add(self, keys: np.ndarray, hashes: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys.append(keys[order])
        self.hashes.append(hashes[order])
        # Merge runs of similar size, so there are only O(log n) arrays to search.
        while len(self.keys) > 1 and len(self.keys[-1]) * 2 >= len(self.keys[-2]):
            ks = np.concatenate([self.keys.pop(-2), self.keys.pop()])
            hs = np.concatenate([self.hashes.pop(-2), self.hashes.pop()])
            order = np.argsort(ks, kind="stable")
            ks, hs = ks[order], hs[order]
            last = np.ones(len(ks), dtype=bool)  # of equal keys keep the newest
            last[:-1] = ks[1:] != ks[:-1]
            self.keys.append(ks[last])
            self.hashes.append(hs[last])


def _policy(batch, located: np.ndarray, ncls: int, source: str, suppressed, hold: bool) -> tuple:
    """(category, suppressed_reason, needs review?) arrays: privacy.prepare_row (and so the
    personal-data check) once per distinct wording."""
    arrays = [
        batch["category_text"].to_numpy(),
        batch["description"].to_numpy(),
        *(batch[f"cls{k}"].to_numpy() for k in range(ncls)),
        batch["sensitive"].to_numpy(),
        located,
    ]
    codes, first = _factorize_rows(arrays)
    cats, reasons, review = [], [], []
    for i in first:
        ct, desc, *cls, sens, loc = (a[i] for a in arrays)
        row = IncidentRow(
            line=0,
            source=source,
            external_id="",
            reported_at=None,
            occurred_at=None,
            category_text=ct,
            description=desc,
            address="",
            lat=0.0 if loc else None,
            lon=0.0 if loc else None,
            source_beat=None,
            sensitive=bool(sens),
            classification_texts=tuple(cls),
        )
        privacy.prepare_row(row, suppressed, hold_unclassified=hold)
        cats.append(row.category)
        reasons.append(row.suppressed_reason)
        review.append(models.is_review_reason(row.suppressed_reason))
    return (
        np.array(cats, dtype=object)[codes],
        np.array(reasons, dtype=object)[codes],
        np.array(review, dtype=bool)[codes],
    )


def _factorize_rows(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(code of each row's combination of values, first row of each combination)."""
    codes = np.zeros(len(arrays[0]), dtype=np.int64)
    for a in arrays:
        c, uniq = pd.factorize(a)
        codes, _ = pd.factorize(codes * max(len(uniq), 1) + c)
    _, first = np.unique(codes, return_index=True)
    return codes, first


@dataclass
class Planner:
    """What the database-free half of storing chunks shares across a run (in the parsing
    child process for a big file): the in-run dedupe state, policy and beat maps."""

    store: SQLStore
    source: str
    settings: Settings
    indexes: dict
    primary: int | None
    ncls: int
    now: datetime
    had_incidents: bool  # False: only keys seen earlier in this run can be updated
    seen: Seen = field(default_factory=lambda: Seen())


@dataclass
class Chunk:
    """A chunk's rows after in-run dedupe, with everything stored about them decided, and
    the columns of a new incident already converted for the driver."""

    counters: dict[str, int]  # duplicate, unlocated, unassigned, swapped
    batch: pd.DataFrame  # the rows that may be stored already (to update them)
    batch_rows: dict[int, int]  # position in keys -> row of batch
    keys: list[str]
    was_seen: np.ndarray  # per key: seen earlier in this run (maybe stored already)
    hashes: list[str]
    category: np.ndarray  # this and the next two: per row of batch
    suppressed_reason: np.ndarray
    block_address: np.ndarray
    beats: dict[int, np.ndarray]  # per key
    columns: dict[str, object]  # as store.bind_incident_columns returns them, run ids aside
    review: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per key
    unclassified: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per key


def plan_chunk(p: Planner, valid, digests: list[bytes]) -> Chunk | None:
    """Dedupe within the run, classify, join and convert one chunk of valid rows (and their
    `columnar.row_hashes`). Needs no database."""
    if not len(valid):
        return None
    counters = dict.fromkeys(("duplicate", "unlocated", "unassigned"), 0)
    counters["swapped"] = int(valid["swapped"].sum())
    keys = valid["external_id"].tolist()
    # Within the run: a key repeated in the file is one incident and the last version wins;
    # the repeats count as duplicates, so importing the same file again says `updated 0`.
    key_hashes = Seen.key_hashes(keys)
    row_hashes = np.frombuffer(b"".join(digests), dtype=np.uint64).reshape(-1, 4)[:, 0]
    was_seen, seen_hash = p.seen.lookup(key_hashes)
    earlier = pd.Series(keys, dtype=object).duplicated(keep="last").to_numpy()
    pos = np.flatnonzero(~earlier)  # each key's last row
    stored = was_seen[pos] & (seen_hash[pos] == row_hashes[pos])  # as this run stored it
    counters["duplicate"] += int(earlier.sum()) + int(stored.sum())
    pos = pos[~stored]
    if not len(pos):
        return Chunk(
            counters,
            valid.iloc[:0],
            {},
            [],
            np.zeros(0, dtype=bool),
            [],
            *(np.zeros(0, dtype=object),) * 3,
            {},
            {},
        )
    p.seen.add(key_hashes[pos], row_hashes[pos])
    batch = valid.iloc[pos].reset_index(drop=True)
    counters["cleaned"] = _drop_non_xml(batch)
    bkeys = [keys[i] for i in pos.tolist()]
    hashes = [digests[i].hex() for i in pos]
    lat, lon = batch["lat"].to_numpy(), batch["lon"].to_numpy()
    located = np.isfinite(lat) & np.isfinite(lon)
    counters["unlocated"] += int((~located).sum())
    category, suppressed_reason, review = _policy(
        batch,
        located,
        p.ncls,
        p.source,
        p.settings.suppressed_categories,
        p.settings.hold_unclassified,
    )
    codes_, uniq = pd.factorize(batch["address"].to_numpy())
    blocks = np.array([privacy.hundred_block(a) for a in uniq], dtype=object)
    block_address = blocks[codes_] if len(uniq) else np.full(len(batch), "", dtype=object)
    beats: dict[int, np.ndarray] = {}
    for set_id, index in p.indexes.items():
        codes = np.full(len(batch), None, dtype=object)
        if located.any():
            codes[located] = index.assign(lon[located], lat[located])
        beats[set_id] = codes
    if p.primary is None:
        counters["unassigned"] += int(located.sum())
    else:
        counters["unassigned"] += int((located & pd.isna(beats[p.primary])).sum())
    occurred = batch["occurred_at"].to_numpy()
    reported = batch["reported_at"].to_numpy()
    event_time = np.where(np.isnat(occurred), reported, occurred)
    source_beat = batch["source_beat"].to_numpy(dtype=object)
    # Not the uids: the writing process, the less busy one, adds them (store_chunk).
    columns = p.store.incidents.bind_incident_columns(
        {
            "source": p.source,
            "external_id": bkeys,
            "reported_at": reported,
            "occurred_at": occurred,
            "event_time": event_time,
            "category": category,
            "category_text": batch["category_text"].to_numpy(),
            "description": batch["description"].to_numpy(),
            "address": batch["address"].to_numpy(),
            "block_address": block_address,
            "lat": lat,
            "lon": lon,
            "source_beat": np.where(source_beat == "", None, source_beat),
            "sensitive": batch["sensitive"].to_numpy(),
            "suppressed_reason": suppressed_reason,
            "row_hash": hashes,
            "created_at": p.now,
            "updated_at": p.now,
            # New incidents: first imported now. Updates take their stored first import time
            # (store_chunk), so a re-import never restarts the delay.
            "publish_at": privacy.publish_at(
                p.settings.publication_delay, occurred, reported, p.now
            ),
        }
    )
    # Only rows that may already be stored travel with their values, to be updated.
    maybe = np.arange(len(batch)) if p.had_incidents else np.flatnonzero(was_seen[pos])
    # Keys and hashes are the bound columns themselves: they travel once, compactly.
    return Chunk(
        counters,
        batch.iloc[maybe].reset_index(drop=True),
        dict(zip(maybe.tolist(), range(len(maybe)), strict=True)),
        columns["external_id"],
        was_seen[pos],
        columns["row_hash"],
        category[maybe],
        suppressed_reason[maybe],
        block_address[maybe],
        beats,
        columns,
        review,
        suppressed_reason == models.UNCLASSIFIED,
    )


def _drop_non_xml(batch) -> int:
    """Remove from the text columns the characters no feed can carry (control characters;
    text.xml_text), once per distinct value; the number of rows that had any."""
    touched = np.zeros(len(batch), dtype=bool)
    for name in ("category_text", "description", "address"):
        codes, uniq = pd.factorize(batch[name].to_numpy())
        clean = np.array([xml_text(v) for v in uniq], dtype=object)
        differs = clean != np.asarray(uniq, dtype=object)
        if differs.any():
            batch[name] = clean[codes]
            touched |= differs[codes]
    return int(touched.sum())


def _take(columns: dict[str, object], rows: np.ndarray) -> dict[str, object]:
    """These rows of bound columns (values shared by every row stay as they are)."""
    return {
        k: v[rows]
        if isinstance(v, np.ndarray)
        else type(v)(v[i] for i in rows.tolist())
        if isinstance(v, list)
        else v
        for k, v in columns.items()
    }


def store_chunk(run: Run, chunk: Chunk | None) -> None:
    """Write one planned chunk: look up which keys are stored, insert the new, update the
    changed."""
    if chunk is None:
        return
    counters = run.counters
    for k, v in chunk.counters.items():
        counters[k] += v
    bkeys, hashes = chunk.keys, chunk.hashes
    if not bkeys:
        return
    lookup = (
        bkeys
        if run.had_incidents
        else [k for k, seen in zip(bkeys, chunk.was_seen.tolist(), strict=True) if seen]
    )
    existing = {}
    if lookup:  # a first import of a dataset writes on while this chunk is prepared
        run.writer.wait()  # the previous chunk's rows must be visible to this lookup
        existing = run.store.incidents.existing_incidents(run.conn, run.source, lookup)
    is_new = np.array([k not in existing for k in bkeys], dtype=bool)
    changed = [i for i, k in enumerate(bkeys) if k in existing and existing[k][1] != hashes[i]]
    counters["new"] += int(is_new.sum())
    counters["updated"] += len(changed)
    counters["unchanged"] += len(bkeys) - int(is_new.sum()) - len(changed)

    new = np.flatnonzero(is_new)
    counters["needs_review"] += int(chunk.review[new].sum())
    counters["unclassified"] += int(chunk.unclassified[new].sum())
    if len(new):
        columns = chunk.columns if len(new) == len(bkeys) else _take(chunk.columns, new)
        columns = columns | {
            "first_run_id": run.run_id,
            "last_run_id": run.run_id,
            "uid": identifiers.entry_uids(run.source, columns["external_id"], run.uid_key),
        }
        new_beats = {s: codes[new] for s, codes in chunk.beats.items()}
        if run.next_id is None:  # the database numbers them, on the writer's turn
            run.writer.submit(
                run.store.incidents.insert_incident_columns, run.conn, columns, beats=new_beats
            )
        else:  # numbered here, while the writer still writes the previous chunk
            prepared = run.store.incidents.prepare_incident_columns(
                run.conn, columns, beats=new_beats, ids=range(run.next_id, run.next_id + len(new))
            )
            run.next_id += len(new)
            run.writer.submit(run.store.incidents.insert_prepared_incidents, run.conn, prepared)
    if changed:
        run.writer.wait()
        batch = chunk.batch
        at = chunk.batch_rows
        rows = [
            _incident_row(
                batch,
                at[i],
                run,
                chunk.category[at[i]],
                chunk.block_address[at[i]],
                chunk.suppressed_reason[at[i]],
                {s: c[i] for s, c in chunk.beats.items()},
            )
            for i in changed
        ]
        _apply_releases(run, [existing[bkeys[i]][0] for i in changed], rows)
        counters["unclassified"] += sum(r.suppressed_reason == models.UNCLASSIFIED for r in rows)
        run.store.incidents.update_incidents(
            run.conn,
            [(existing[bkeys[i]][0], r) for i, r in zip(changed, rows, strict=True)],
            hashes=[hashes[i] for i in changed],
            publish_at=[
                privacy.keep_published(
                    privacy.publish_at(
                        run.settings.publication_delay,
                        r.occurred_at,
                        r.reported_at,
                        existing[bkeys[i]][2],
                    ),
                    existing[bkeys[i]][3],
                    run.now,
                )
                for i, r in zip(changed, rows, strict=True)
            ],
            run_id=run.run_id,
            now=run.now,
        )


def _apply_releases(run: Run, ids: list[int], rows: list[IncidentRow]) -> None:
    """Keep the releases records staff gave: an updated row held back as `needs review`
    publishes if its texts are the ones released (pii.review_hold); counts the rest."""
    held = [
        (i, r)
        for i, r in zip(ids, rows, strict=True)
        if models.is_review_reason(r.suppressed_reason)
    ]
    if not held:
        return
    released = run.store.records.released_digests(run.conn, [i for i, _ in held])
    for i, r in held:
        r.suppressed_reason = pii.review_hold(r.description, r.category_text, released.get(i))
        run.counters["needs_review"] += r.suppressed_reason is not None


def _incident_row(
    batch,
    i: int,
    run: Run,
    category: str,
    block_address: str,
    suppressed_reason: str | None,
    beat_codes: dict,
) -> IncidentRow:
    r = batch.iloc[i]

    def dt(v):
        return None if pd.isna(v) else pd.Timestamp(v).to_pydatetime()

    return IncidentRow(
        line=int(r["line"]),
        source=run.source,
        external_id=r["external_id"],
        reported_at=dt(r["reported_at"]),
        occurred_at=dt(r["occurred_at"]),
        category_text=r["category_text"],
        description=r["description"],
        address=r["address"],
        lat=None if pd.isna(r["lat"]) else float(r["lat"]),
        lon=None if pd.isna(r["lon"]) else float(r["lon"]),
        source_beat=r["source_beat"] or None,
        sensitive=bool(r["sensitive"]),
        classification_texts=tuple(r[f"cls{k}"] for k in range(run.ncls)),
        category=category,
        block_address=block_address,
        suppressed_reason=suppressed_reason,
        beat_codes=beat_codes,
    )
