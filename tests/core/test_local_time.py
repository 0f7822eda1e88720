"""The US local-time display format has one home (beatfeeds.core.text.local_time_text), used by
pages, entry titles and post templates alike."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from beatfeeds.app import format_local
from beatfeeds.core.text import local_time_text
from beatfeeds.publish.privacy import entry_title

LA = ZoneInfo("America/Los_Angeles")


def test_local_time_text_is_month_day_year_and_twelve_hour_clock():
    assert local_time_text(datetime(2016, 3, 26, 3, 9), LA) == "3/25/2016 8:09 PM"
    assert local_time_text(datetime(2016, 1, 1, 20, 30), LA) == "1/1/2016 12:30 PM"
    assert local_time_text(datetime(2016, 7, 4, 17, 5), LA) == "7/4/2016 10:05 AM"


def test_every_display_uses_it():
    at = datetime(2016, 3, 26, 3, 9)
    assert format_local(at, LA) == "3/25/2016 8:09 PM PDT"
    assert entry_title("THEFT", "1XX BLOCK OF PINE ST", at, LA).endswith(", 3/25/2016 8:09 PM")
