"""The department profile: its name, time zone, level labels and map centre, as `beatfeeds
setup` writes them to the instance's TOML file, and the check that `serve` and `scheduler`
make before a real (not demo) instance publishes under the demo's Seattle defaults."""

from __future__ import annotations

import re
from typing import Any

from beatfeeds.core.errors import ConfigurationError

DEMO_DEPARTMENT = "Seattle Police Department"  # the demo's; a real instance sets its own
LABEL = re.compile(r"[A-Za-z][A-Za-z'-]*( [A-Za-z][A-Za-z'-]*){0,2}")


def check_labels(values: dict[str, Any]) -> None:
    """Level labels are short singular words, one per level, as pages and URLs use them."""
    names = ("beat_label", "sector_label", "precinct_label")
    for name in names:
        label = values[name] = " ".join(str(values[name]).split())
        word = label.rsplit(" ", 1)[-1].lower()
        if not (LABEL.fullmatch(label) and len(label) <= 24):
            raise ConfigurationError(f"{name}: {label!r} is not one to three short words")
        if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
            raise ConfigurationError(f"{name}: {label!r} looks plural; give the singular")
    if len({values[n].lower() for n in names}) < len(names):
        raise ConfigurationError("beat_label, sector_label and precinct_label must differ")


def parse_map_center(text: str) -> tuple[float, float] | None:
    """`LAT,LON` as two floats (None when empty); ConfigurationError if not a place."""
    if not (text or "").strip():
        return None
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigurationError(f"map_center: {text!r} is not LAT,LON") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConfigurationError(f"map_center: {text!r} is not a latitude and a longitude")
    return lat, lon


def contrast_on_white(color: str) -> float:
    """WCAG 2.1 contrast ratio of a `#rrggbb` colour against white."""

    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return 1.05 / (luminance + 0.05)


def check_color(color: str) -> None:
    """The department colour is `#rrggbb` and readable as link text on white (WCAG AA)."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", color):
        raise ConfigurationError(f"department_color: {color!r} is not a #rrggbb colour")
    ratio = contrast_on_white(color)
    if ratio < 4.5:  # WCAG 2.1 AA for body text: links in this colour must stay readable
        raise ConfigurationError(
            f"department_color: {color} has a contrast of {ratio:.1f}:1 "
            "on white; WCAG AA needs at least 4.5:1"
        )
