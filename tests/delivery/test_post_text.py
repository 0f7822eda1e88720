"""Post text fitted to each service: counting rules, word-boundary cuts, the link kept."""

from __future__ import annotations

import pytest

from beatfeeds.core.errors import InvalidInput
from beatfeeds.delivery.posting import text as pt

LINK = "https://feeds.example.test/entries/0123456789abcdef0123"
ADDRESS = "12XX BLOCK OF ＭＡＲＴＩＮ ＬＵＴＨＥＲ ＫＩＮＧ ＪＲ ＷＡＹ Ｓ — 東京都渋谷区神南一丁目"
LONG_TITLE = (
    "ASSAULT - AGGRAVATED 🚓🚨 with a very long narrative about what happened near the "
    "café on the corner 👩‍👩‍👧‍👦 and the people involved, at " + ADDRESS + ", 3/25/2016 8:09 PM"
)
SERVICES = [
    ("mastodon", pt.mastodon_length, 500),
    ("mastodon", pt.mastodon_length, 140),
    ("bluesky", pt.bluesky_length, 300),
    ("x", pt.x_length, 280),
]


def test_counting_rules():
    assert pt.mastodon_length("abc " + LINK) == 4 + 23  # links count 23
    assert pt.bluesky_length("abc " + LINK) == 4 + len(LINK)  # Bluesky counts them as written
    assert pt.graphemes("👩‍👩‍👧‍👦é") == 2  # a family emoji and e + combining accent
    assert pt.x_length("東京") == 4  # CJK weighs 2
    assert pt.x_length("👩‍👩‍👧‍👦") == 2  # an emoji sequence weighs 2
    assert pt.x_length("café " + LINK) == 5 + 23
    assert pt.x_length("a" * 280) == 280 and pt.x_length("東" * 140) == 280


@pytest.mark.parametrize("service,measure,limit", SERVICES)
def test_long_multibyte_text_is_cut_at_a_word_and_keeps_the_link(service, measure, limit):
    fields = {"title": LONG_TITLE * 3, "body": "", "link": LINK}
    text = pt.fit("{title}\n{body}\n{link}", fields, measure, limit)
    assert measure(text) <= limit
    assert text.endswith(LINK)
    head = text[: -len(LINK)].rstrip()
    assert head.endswith(pt.ELLIPSIS)
    kept = head[:-1]
    assert (LONG_TITLE * 3).startswith(kept)  # a prefix of the original...
    assert (LONG_TITLE * 3)[len(kept)] == " "  # ...that ends at a word boundary
    # and it is the longest such prefix: one more word would not fit
    extra = []
    for word in (LONG_TITLE * 3)[len(kept) :].split():
        extra.append(word)
        if any(ch.isalnum() for ch in word):
            break
    longer = pt.render(
        "{title}\n{body}\n{link}", {**fields, "title": kept + " " + " ".join(extra) + pt.ELLIPSIS}
    )
    assert measure(longer) > limit


def test_short_text_is_left_alone_and_link_added_if_template_forgets_it():
    text = pt.fit(
        "{title}", {"title": "THEFT at 1XX BLOCK OF PINE ST", "link": LINK}, pt.x_length, 280
    )
    assert text == f"THEFT at 1XX BLOCK OF PINE ST {LINK}"


def test_body_shrinks_before_the_title():
    fields = {
        "title": "Road closure: Aurora Ave N",
        "body": "Detour via " + "Fremont " * 80,
        "link": LINK,
    }
    text = pt.fit("{title}\n{body}\n{link}", fields, pt.bluesky_length, 300)
    assert text.startswith("Road closure: Aurora Ave N\nDetour via")
    assert pt.bluesky_length(text) <= 300 and LINK in text


def test_a_single_enormous_word_is_dropped_not_split():
    fields = {"title": "x" * 1000, "link": LINK}
    assert pt.fit("{title} {link}", fields, pt.mastodon_length, 100) == LINK


def test_bluesky_facets_use_utf8_byte_offsets():
    text = f"東京 🚓 café {LINK} and more"
    facet = pt.link_facets(text)[0]
    raw = text.encode("utf-8")
    assert raw[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode() == LINK
    assert facet["index"]["byteStart"] == len("東京 🚓 café ".encode())
    assert facet["features"][0] == {"$type": "app.bsky.richtext.facet#link", "uri": LINK}


def test_templates_are_checked():
    pt.check_template("{title} {link}")
    with pytest.raises(InvalidInput, match="Unknown field"):
        pt.check_template("{title} {secret_key}")
    with pytest.raises(InvalidInput):
        pt.check_template("{title")
    with pytest.raises(InvalidInput, match="911"):
        pt.check_profile_template("Crime updates for {area}.")
    pt.check_profile_template(pt.DEFAULT_PROFILE_TEMPLATE)
    assert "call 911 for emergencies" in pt.DEFAULT_PROFILE_TEMPLATE
