"""GeoJSON of any published beat map: beats, and sectors and precincts dissolved from them."""

from __future__ import annotations

import json

from flask import Blueprint, g

from beatfeeds.core.errors import NotFound
from beatfeeds.services import beatmaps
from beatfeeds.web import store

bp = Blueprint("beatsets", __name__, url_prefix="/api/beatsets")


@bp.get("/<int:set_id>/<any(beats, sectors, precincts):kind>.geojson")
def layer(set_id, kind):
    bs = store().beatmaps.get_beat_set(set_id)
    # Drafts and scheduled maps are work in progress: only staff see them.
    if bs.status not in ("active", "retired") and (g.user is None or g.user.role != "admin"):
        raise NotFound(f"No beat map with id {set_id}.")
    body = json.dumps(beatmaps.area_geojson(store(), set_id, kind))
    return (
        body,
        200,
        {
            "Content-Type": "application/geo+json",
            "Cache-Control": "public, max-age=300" if bs.status != "draft" else "private, no-store",
        },
    )
