"""The feed entries that announce a beat map's changes: to a beat, a sector or precinct, the city.

Publishing a map records its changes (`geo.diff`); each area's feed then carries an entry
about each change that concerns it, dated when the map was published, at `boundary<N>`.
"""

from __future__ import annotations

from beatfeeds.core.areas import area_label, page_path
from beatfeeds.core.models import BoundaryChange, FeedEntry
from beatfeeds.geo.diff import change_of


def beat_entry(c: BoundaryChange, code: str) -> FeedEntry | None:
    """The entry beat `code`'s feed carries about change `c`, or None when it is not about it."""
    text = _beat_change_text(c, code)
    return None if text is None else _system_entry(c, text, beat=code)


def area_entry(c: BoundaryChange, code: str) -> FeedEntry | None:
    """The entry a sector's or precinct's feed carries about `c`, or None."""
    text = area_change_text(c, code)
    if text is None:
        return None
    return _system_entry(c, text, link=page_path(c.kind, code), **{c.kind: code})


def city_entry(c: BoundaryChange) -> FeedEntry:
    """The city feed's entry about a publication."""
    return _system_entry(c, _city_text(c), link=page_path("city", None))


def _beat_change_text(c: BoundaryChange, code: str) -> str | None:
    if c.kind == "reshaped" and c.code == code:
        return (
            f"The boundary of beat {code} changed ({c.share:.1%} of its area) with beat "
            f"map {c.beat_set_id}."
        )
    if c.kind == "added" and c.code == code:
        return f"Beat {code} was created with beat map {c.beat_set_id}."
    if c.kind == "renamed" and c.code == code:
        return f"Beat {code} is now beat {c.new_codes[0]}; its feed moved there."
    if c.kind == "renamed" and code in c.new_codes:
        return f"Beat {c.code} was renamed {code} with beat map {c.beat_set_id}."
    if c.kind == "removed" and c.code == code:
        names = ", ".join(c.new_codes) or "no beat"
        return (
            f"Beat {code} no longer exists since beat map {c.beat_set_id}. Its area now "
            f"belongs to {names}: subscribe to their feeds instead."
        )
    return None


def _beats(codes) -> str:
    codes = list(codes)
    return ("beat " if len(codes) == 1 else "beats ") + ", ".join(codes)


def area_change_text(c: BoundaryChange, code: str) -> str | None:
    """The entry an area's feed carries about a change, or None when it is not about it."""
    d = c.detail or {}
    change = change_of(c)
    label = area_label(c.kind, code)
    if change == "removed" and c.code == code:
        where = ", ".join(area_label(c.kind, x) for x in c.new_codes) or "no " + c.kind
        return (
            f"{label} no longer exists since beat map {c.beat_set_id}. Its beats now "
            f"belong to {where}: subscribe to their feeds instead."
        )
    parts = []
    if change == "renamed" and code in c.new_codes:
        parts.append(
            f"{area_label(c.kind, c.code)} is now {label} (beat map {c.beat_set_id}); "
            f"its pages and feeds moved here"
        )
    elif change == "added" and c.code == code:
        members = d.get("gained", [])
        return f"{label} was created with beat map {c.beat_set_id}" + (
            f"; it includes {_beats(members)}." if members else "."
        )
    elif not (change == "changed" and c.code == code):
        return None
    if d.get("gained"):
        parts.append(f"{label} now includes {_beats(d['gained'])}")
    for beat, areas in sorted(d.get("moved", {}).items()):
        parts.append(
            f"beat {beat} moved to "
            + (" and ".join(area_label(c.kind, a) for a in areas) or "no " + c.kind)
        )
    for beat, heirs in sorted(d.get("removed", {}).items()):
        parts.append(
            f"beat {beat} was removed"
            + (f" (its area now belongs to {_beats(heirs)})" if heirs else "")
        )
    for a, b in d.get("renamed", []):
        parts.append(f"beat {a} was renamed {b}")
    if d.get("reshaped"):
        verb = "was" if len(d["reshaped"]) == 1 else "were"
        parts.append(f"{_beats(d['reshaped'])} {verb} reshaped")
    if not parts:
        return None
    text = "; ".join(parts) + "."
    return text if change == "renamed" or text.startswith(label) else f"{label}: {text}"


def _city_text(c: BoundaryChange) -> str:
    d = c.detail or {}
    name = f" ({d['map']})" if d.get("map") else ""
    head = (
        f"Beat map {c.beat_set_id}{name} is in effect again (a rollback)"
        if d.get("rollback")
        else f"A new beat map was published: beat map {c.beat_set_id}{name}"
    )
    parts = [
        f"{_beats(d[k])} {'was' if len(d[k]) == 1 else 'were'} {k}"
        for k in ("added", "removed", "reshaped")
        if d.get(k)
    ]
    parts += [f"beat {a} was renamed {b}" for a, b in d.get("renamed", [])]
    return head + (": " + "; ".join(parts) if parts else "; no beat changed") + "."


def _system_entry(c: BoundaryChange, text: str, **where) -> FeedEntry:
    return FeedEntry(
        uid=f"boundary{c.id}",
        title=text,
        category="boundary-change",
        category_text="Beat boundary change",
        description=text,
        block_address="",
        event_time=c.at,
        updated_at=c.at,
        publish_at=c.at,
        source="beat-map",
        external_id=f"change/{c.id}",
        **where,
    )
