"""Static files: our own (beatfeeds/static) and vendored packages installed from PyPI."""

from __future__ import annotations

from pathlib import Path

import xstatic.pkg.leaflet as xleaflet
from flask import Blueprint, send_from_directory

bp = Blueprint("assets", __name__)

OWN = Path(__file__).resolve().parent.parent / "static"
VENDOR = {"leaflet": Path(xleaflet.BASE_DIR)}  # XStatic-Leaflet from PyPI, never pasted in
MAX_AGE = 3600


@bp.get("/static/<path:filename>")
def own(filename):
    return send_from_directory(OWN, filename, max_age=MAX_AGE)


@bp.get("/static/vendor/<package>/<path:filename>")
def vendor(package, filename):
    base = VENDOR.get(package)
    if base is None:
        return ("", 404)
    return send_from_directory(base, filename, max_age=MAX_AGE)
