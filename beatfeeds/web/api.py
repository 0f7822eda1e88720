"""JSON API. Coordinates sent here are used for the lookup only: never stored or logged."""

from __future__ import annotations

import math

from flask import Blueprint, request

from beatfeeds.core.errors import InvalidInput
from beatfeeds.services import publishing
from beatfeeds.web import store

bp = Blueprint("api", __name__, url_prefix="/api")


def _coordinate(name: str, limit: float) -> float:
    raw = request.values.get(name)
    if raw is None and request.is_json:
        body = request.get_json(silent=True)
        raw = body.get(name) if isinstance(body, dict) else None
    if raw is None or str(raw).strip() == "":
        raise InvalidInput(f"Missing {name}.")
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise InvalidInput(f"{name} must be a number.")  # JSON true, lists, objects
    try:
        v = float(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit JSON integer
        raise InvalidInput(f"{name} must be a number.") from None
    if not math.isfinite(v) or abs(v) > limit:
        raise InvalidInput(f"{name} must be between -{limit:g} and {limit:g}.")
    return v


@bp.route("/locate", methods=["GET", "POST"])
def locate():
    lat = _coordinate("lat", 90)
    lon = _coordinate("lon", 180)
    return publishing.locate(store(), lat, lon)
