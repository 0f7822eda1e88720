"""Published entry ids reveal nothing of the row (issue 13 point 2).

A Seattle Fire call without an Incident Number is keyed by a hash of its time, exact address
and type. Its published ids (the `tag:` id, the uid in /entries/<uid>) must not let anyone
who knows the public time, type and hundred block find the house number by trying the hundred
numbers of the block; they stay the same across re-imports, across stores sharing the
database and across secret-key rotations.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import quote

from beatfeeds.core import identifiers
from beatfeeds.services.imports import ImportOptions, import_file
from beatfeeds.storage import SQLStore
from tests.support.exports import HOUSE, TYPE, fire_row, write_fire
from tests.support.instance import load_default_beats, make_settings, make_store, utcnow
from tests.support.web import make_app

SOURCE = "seattle-fire-911"
K3 = ("47.598347", "-122.32245")  # a point in beat K3
FEEDS = (
    "/beats/K3/feed.rss",
    "/beats/K3/feed.atom",
    "/beats/K3/feed.json",
    "/feed.json",
    "/feed.atom",
    "/beats/K3",
)


def fire_time(hours_ago: float, settings) -> str:
    """A Datetime as the Fire export writes it (local time with a misleading +0000)."""
    at = (utcnow() - timedelta(hours=hours_ago)).replace(tzinfo=UTC)
    return at.astimezone(settings.tz).strftime("%m/%d/%Y %I:%M:%S %p +0000")


def fire_import(store, settings, path: Path):
    # first imported three hours ago, so that its entries are public now
    report = import_file(
        store, path, ImportOptions(preset=SOURCE), settings, now=utcnow() - timedelta(hours=3)
    )
    assert report.counters["rejected"] == 0
    return report


def published(client) -> dict[str, tuple[str, str]]:
    """title -> (tag id, uid) of each entry in the city JSON Feed."""
    items = json.loads(client.get("/feed.json").data)["items"]
    return {i["title"]: (i["id"], i["url"].rsplit("/", 1)[1]) for i in items}


def test_a_fallback_keyed_entry_cannot_be_matched_by_trying_the_house_numbers(tmp_path):
    settings = make_settings(tmp_path)
    store = make_store(settings)
    load_default_beats(store)
    when = fire_time(3, settings)
    fire_import(store, settings, write_fire(tmp_path / "fire.csv", [fire_row(when)]))
    client = make_app(settings, store).test_client()
    ((title, (tag, uid)),) = published(client).items()
    assert "12XX BLOCK OF 5TH AVE" in title and TYPE in title  # public: block, type, time
    stored = store.incident_private(SOURCE, store.find_incidents(uid)[0].external_id)
    assert identifiers.is_fallback_key(stored["external_id"]) and stored["uid"] == uid

    bodies = [client.get(p).get_data(as_text=True) for p in FEEDS + (f"/entries/{uid}",)]
    assert all(uid in b for b in bodies[:3])
    # The attacker's side: the open-source fallback formula, the public type and the exact
    # source time, every house number of the block, and every unkeyed id made from them.
    tried = 0
    for number in range(1200, 1300):
        key = identifiers.fallback_key([when, f"{number} 5TH AVE", TYPE])
        candidates = {
            key,
            quote(key, safe=""),
            key[2:],
            hashlib.sha256(f"{SOURCE}\x1f{key}".encode()).hexdigest()[:20],
        }
        assert tag.rsplit("/", 1)[1] not in candidates and uid not in candidates, number
        for body in bodies:
            assert not any(c in body for c in candidates), (number, candidates)
        tried += 1
    assert tried == 100
    assert stored["external_id"] == identifiers.fallback_key([when, HOUSE, TYPE])  # a real hit
    assert tag == f"tag:example.test,2026:incident/{SOURCE}/k:{uid}"


def test_ids_are_stable_across_reimports_stores_and_secret_keys(tmp_path):
    settings = make_settings(tmp_path)
    first = make_store(settings)
    load_default_beats(first)
    rows = [fire_row(fire_time(3, settings)), fire_row(fire_time(4, settings), number="F1")]
    path = write_fire(tmp_path / "fire.csv", rows)
    fire_import(first, settings, path)
    before = published(make_app(settings, first).test_client())
    assert len(before) == 2

    # A second store on the same database (another host, or a worker): same key, same ids,
    # and a re-import through it changes nothing.
    second = SQLStore.from_url(settings.database_url)
    assert second.identifier_key() == first.identifier_key()
    again = fire_import(second, settings, path)
    assert (again.counters["new"], again.counters["updated"]) == (0, 0)
    rotated = make_settings(tmp_path, secret_key="another-secret-key")
    assert published(make_app(rotated, second).test_client()) == before
    # The source id is published as it is; the fallback-keyed entry carries only its uid.
    tags = sorted(tag for tag, _ in before.values())
    assert tags[0] == f"tag:example.test,2026:incident/{SOURCE}/F1"
    assert tags[1].endswith("/k:" + second.find_incidents(tags[1].rsplit(":", 1)[1])[0].uid)

    # Another database has another key: the same rows get other uids there.
    other_settings = make_settings(tmp_path / "other")
    other = make_store(other_settings)
    load_default_beats(other)
    fire_import(other, other_settings, path)
    assert other.identifier_key() != first.identifier_key()
    elsewhere = published(make_app(other_settings, other).test_client())
    assert {u for _, u in elsewhere.values()}.isdisjoint({u for _, u in before.values()})


def test_two_stores_making_the_key_at_once_agree(tmp_path):
    settings = make_settings(tmp_path)
    one = make_store(settings)
    with one.engine.begin() as conn:  # a database 0008 has not seen yet
        conn.exec_driver_sql("DELETE FROM meta WHERE key = 'identifier_key'")
    two = SQLStore.from_url(settings.database_url)
    looked = []

    def looked_too_early(key, real=two.db.get_meta):
        looked.append(key)  # the first look happens before `one` writes its key
        return None if len(looked) == 1 else real(key)

    two.db.get_meta = looked_too_early
    key = one.identifier_key()
    assert two.identifier_key() == key  # its own insert was refused; it took `one`'s
    assert len(looked) == 2
    assert SQLStore.from_url(settings.database_url).identifier_key() == key
    assert len(key) == 32


def test_uids_are_hmac_sha256_of_the_dataset_and_key():
    import hmac

    key = bytes(range(32))
    ids = ["1701857", "h:0123456789abcdef0123", "", "é/ü 1", "x" * 200]
    expected = [
        hmac.new(key, f"{SOURCE}\x1f{k}".encode(), hashlib.sha256).hexdigest()[:20] for k in ids
    ]
    assert identifiers.entry_uids(SOURCE, ids, key) == expected
    assert identifiers.entry_uid(SOURCE, ids[0], key) == expected[0]
    assert identifiers.entry_uids("other", ids[:1], key) != expected[:1]
