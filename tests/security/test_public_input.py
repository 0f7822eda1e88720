"""No 500s from public input (issue 14, point 7): the cases the probe found, then a
property-based fuzz test over every route of the app's url_map."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import AnyConverter, IntegerConverter, PathConverter

from beatfeeds.app import create_app
from beatfeeds.services.imports import ImportOptions, import_file
from tests.support.instance import NOW, SAMPLE, load_default_beats, make_settings, make_store

# Query names that once collided with url_for's keywords when a feed URL was rebuilt, and
# ones the views read.
QUERY_NAMES = [
    "code",
    "kinds",
    "fmt",
    "endpoint",
    "_anchor",
    "_method",
    "_scheme",
    "_external",
    "page",
    "category",
    "exclude",
    "beat",
    "q",
    "next",
    "lat",
    "lon",
    "status",
    "format",
    "callback",
]
HUGE = [
    "99999999999999999999",
    "-99999999999999999999",
    "9" * 400,
    "1e400",
    "-1",
    "0",
    "nan",
    "inf",
    "0x10",
    "١٢٣",
]
FEED_URLS = [
    "/feed.rss",
    "/beats/K3/feed.atom",
    "/beats/k3/feed.json",
    "/sectors/k/feed.rss",
    "/precincts/w/feed.rss",
    "/beats/K3",
    "/beats/k3",
    "/precincts/W/feeds.opml",
    "/precincts/w/feeds.opml",
]


@pytest.fixture(scope="module")
def public_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("public")
    cfg = make_settings(tmp)
    store = make_store(cfg)
    load_default_beats(store)
    import_file(store, SAMPLE, ImportOptions(preset="spd-911"), cfg, now=NOW)
    # CSRF off: random bodies must reach the views (CSRF has its own tests).
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "store": store, **cfg.as_dict()})
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a bug must show as the 500 a visitor gets
    return app


@pytest.fixture(scope="module")
def anon(public_app):
    return public_app.test_client()


def test_locate_with_a_400_digit_number_or_a_5000_deep_array_is_a_400(anon):
    for body in (
        '{"lat": %s, "lon": 1}' % ("9" * 400),
        '{"lat": 47.6, "lon": -%s}' % ("9" * 400),
        "[" * 5000 + "]" * 5000,
        '{"lat": ' + "[" * 5000 + "]" * 5000 + ', "lon": 1}',
        '{"lat": 1e999, "lon": 1}',
        '{"lat": NaN, "lon": 1}',
    ):
        r = anon.post("/api/locate", data=body, content_type="application/json")
        assert r.status_code == 400, (body[:40], r.status_code)
        assert r.get_json()["status"] == 400


@pytest.mark.parametrize("name", QUERY_NAMES)
@pytest.mark.parametrize("url", FEED_URLS)
def test_a_query_argument_named_like_a_url_for_keyword_is_harmless(anon, url, name):
    r = anon.get(url, query_string=[(name, ""), (name, "x"), ("category", "theft")])
    assert r.status_code < 500
    if r.status_code == 400:
        return  # e.g. `category=` with no such category, or `page=x`
    if r.status_code in (301, 302):
        location = urlsplit(r.headers["Location"])
        assert location.netloc in ("", "localhost")
    if r.status_code == 301 and "/feed." in url:  # a feed's keeps its query string as it came
        assert f"{name}=x" in location.query and "category=theft" in location.query


@pytest.mark.parametrize("page", ["99999999999999999999", "10001", "-1", "0", "x", "1e9", "9" * 60])
def test_a_page_number_past_any_archive_or_not_a_number_is_not_a_500(anon, page):
    r = anon.get(f"/beats/K3?page={page}")
    assert r.status_code in (200, 400)


@pytest.mark.parametrize(
    "path",
    [
        "/1/beats.geojson",
        "/99999999999999999999/beats.geojson",
        "/alerts/manage/x/remove/99999999999999999999",
    ],
)
def test_an_id_too_large_for_the_database_is_a_404_or_400(anon, path):
    r = anon.post(path) if "remove" in path else anon.get(path)
    assert r.status_code < 500


# ---- the fuzz test ------------------------------------------------------------------------------
CODES = ["K3", "k3", "b1", "W", "w", "K", "k", "Z9", "x"]  # lower case: a redirect
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
nasty = st.sampled_from(
    [
        "",
        "\x00",
        "\x1b",
        "\r\n",
        "\t",
        "%",
        "%00",
        "../..",
        "//evil",
        "<script>",
        "'",
        '"',
        "\\",
        "\u2028",
        "\ufeff",
        *HUGE,
    ]
)
value = st.one_of(text, nasty, st.sampled_from(HUGE), st.integers(-(10**30), 10**30).map(str))
# Names the app knows (several in each example) and random ones.
query = st.builds(
    lambda known, other: list(known.items()) + other,
    st.dictionaries(st.sampled_from(QUERY_NAMES), value, min_size=1, max_size=10),
    st.lists(st.tuples(text, value), max_size=2),
)
json_value = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(10**400), 10**400), st.floats(allow_nan=True), text
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.one_of(st.sampled_from(["lat", "lon", "op", "code"]), text), children, max_size=3
        )
    ),
    max_leaves=8,
)


# Real values for path variables, by name.
SEGMENTS = {
    "code": CODES,
    "fmt": ["rss", "atom", "json", "xml"],
    "kind": ["beats", "x"],
    "token": ["x", "a.b.c", "eyJ4IjoxfQ.aGVsbG8.c2ln"],
    "uid": ["x", "0" * 32],
    "package": ["leaflet", "x"],
    "name": ["spd-911", "x"],
    "email": ["a@example.org"],
}


AREAS = [
    ("beats", "K3"),
    ("beats", "k3"),
    ("sectors", "K"),
    ("sectors", "k"),
    ("precincts", "W"),
    ("precincts", "w"),
]  # lower case: a redirect to the canonical


def _segment(name: str, converter, real: bool) -> st.SearchStrategy:
    if isinstance(converter, AnyConverter):
        return st.sampled_from(sorted(converter.items))
    if isinstance(converter, IntegerConverter):
        return st.one_of(st.integers(0, 5), st.integers(0, 2**31 - 1)).map(str)
    if isinstance(converter, PathConverter):
        return (
            st.sampled_from(
                ["site.css", "leaflet/leaflet.js", "../../etc/passwd", "x/../../../etc/passwd"]
            )
            if real
            else text
        )
    return st.sampled_from(SEGMENTS.get(name, CODES)) if real else text


def _values(rule, real: bool) -> st.SearchStrategy:
    parts = {name: _segment(name, rule._converters[name], real) for name in rule.arguments}
    values = st.fixed_dictionaries(parts)
    if real and {"kinds", "code"} <= rule.arguments:  # a code of that kind of area
        values = st.tuples(values, st.sampled_from(AREAS)).map(
            lambda v: {**v[0], "kinds": v[1][0], "code": v[1][1]}
        )
    return values


def _routes(app) -> list:
    return sorted(
        (r for r in app.url_map.iter_rules() if {"GET", "POST"} & r.methods), key=lambda r: r.rule
    )


def _rule_names() -> list[str]:
    """Every GET or POST rule, read from an app that needs no database (collection time)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"instance_path": tmp, "secret_key": "x", "database_url": "sqlite://"})
    return [f"{r.rule} {r.endpoint}" for r in _routes(app)]


def _rule(app, name: str):
    return next(r for r in _routes(app) if f"{r.rule} {r.endpoint}" == name)


def _path(rule) -> st.SearchStrategy:
    """The rule's path: mostly with real values (random ones mostly stop at a 404), else
    with random text for its variables."""
    real = _values(rule, real=True)
    return st.one_of(real, real, real, _values(rule, real=False)).map(
        lambda values: _fill(rule, values)
    )


def _fill(rule, values: dict) -> str:
    """The rule's path with `values` put in as a browser or a script would send them."""
    from urllib.parse import quote

    out = rule.rule
    for name, v in values.items():
        conv = rule._converters[name]
        token = next(
            t
            for t in (
                f"<{name}>",
                *(f"<{c}:{name}>" for c in ("int", "path", "string")),
                *(f"<{p}>" for p in _placeholders(rule.rule, name)),
            )
            if t in out
        )
        out = out.replace(token, quote(v, safe="/" if isinstance(conv, PathConverter) else ""))
    return out


def _placeholders(rule: str, name: str) -> list[str]:
    import re

    return re.findall(r"<([^>]*:" + re.escape(name) + r")>", rule)


STAFF_EXAMPLES, PUBLIC_EXAMPLES = 8, 40  # staff routes stop at the sign-in redirect


@pytest.mark.parametrize("rule_name", _rule_names())
def test_no_route_answers_5xx_to_random_input(public_app, anon, rule_name):
    """Every route, anonymous, with random path values, query strings and bodies."""
    rule = _rule(public_app, rule_name)
    method = sorted({"GET", "POST"} & rule.methods)[0]
    probe = anon.open(_fill(rule, _first_values(rule)), method=method)
    staff = "/login" in probe.headers.get("Location", "")

    @settings(
        max_examples=STAFF_EXAMPLES if staff else PUBLIC_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def run(data):
        request_once(anon, rule, data)

    run()


def _first_values(rule) -> dict:
    """A real value for each variable of the rule, without drawing."""
    out = {}
    for name in rule.arguments:
        conv = rule._converters[name]
        if isinstance(conv, AnyConverter):
            out[name] = sorted(conv.items)[0]
        elif isinstance(conv, IntegerConverter):
            out[name] = "1"
        elif isinstance(conv, PathConverter):
            out[name] = "site.css"
        else:
            out[name] = SEGMENTS.get(name, CODES)[0]
    return out


def request_once(anon, rule, data) -> None:
    """One request drawn for `rule`: no 5xx, and no redirect off the site."""
    path = data.draw(_path(rule), label="path")
    args = data.draw(query, label="query")
    method = data.draw(st.sampled_from(sorted({"GET", "POST"} & rule.methods)), label="method")
    kwargs = {"query_string": [(k, v) for k, v in args]}
    if method == "POST":
        body = data.draw(
            st.one_of(
                st.dictionaries(
                    st.one_of(
                        st.sampled_from(
                            [
                                "email",
                                "password",
                                "address",
                                "area_kind",
                                "area_code",
                                "category",
                                "frequency",
                                "csrf_token",
                            ]
                        ),
                        text,
                    ),
                    value,
                    max_size=4,
                ).map(lambda d: {"data": d}),
                json_value.map(
                    lambda j: {"data": json.dumps(j), "content_type": "application/json"}
                ),
                st.binary(max_size=200).map(
                    lambda b: {"data": b, "content_type": "application/json"}
                ),
            ),
            label="body",
        )
        kwargs.update(body)
    r = anon.open(path, method=method, **kwargs)
    assert r.status_code < 500, (method, path, args, r.status_code)
    if "Location" in r.headers:
        assert urlsplit(r.headers["Location"]).netloc in ("", "localhost"), r.headers["Location"]


SWEEP_VALUES = ["", "99999999999999999999", "x\x00\x1b"]


@pytest.mark.parametrize("rule_name", _rule_names())
def test_every_known_query_name_with_a_hostile_value_on_every_get_route(
    public_app, anon, rule_name
):
    """The deterministic half of the fuzz: each name the app reads or url_for takes, with
    each hostile value, on each GET route's real path (its canonical and lower-case forms)."""
    rule = _rule(public_app, rule_name)
    if "GET" not in rule.methods:
        pytest.skip("not a GET route")
    values = _first_values(rule)
    paths = {_fill(rule, values)}
    if "code" in values:
        paths.add(_fill(rule, {**values, "code": values["code"].lower()}))
    for path in sorted(paths):
        for name in QUERY_NAMES:
            for v in SWEEP_VALUES:
                r = anon.get(path, query_string=[(name, v)])
                assert r.status_code < 500, (path, name, v, r.status_code)
