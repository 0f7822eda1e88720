"""Sign-in's `next`: only same-site paths, normalised, are followed (issue 14, point 4)."""

from __future__ import annotations

import pytest

from beatfeeds.services import accounts
from beatfeeds.web.guards import safe_next
from tests.support.instance import NOW

ADMIN = "admin@example.org"
ADMIN_PW = "admin password 1234"
HOME = "/staff"

# Each is what `next` holds once the query string is decoded. Browsers drop TAB, CR and LF
# anywhere in a URL and read a backslash as a slash, so most of these mean //evil.example.
NASTY = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "\t/evil.example",
    "/\r\n/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "https://evil.example",
    "http:evil.example",
    "HTTPS://evil.example/x",
    "/%2F%2Fevil.example",
    "/%2f%5cevil.example",
    "/%5C%5Cevil.example",
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "data:text/html,<b>x</b>",
    "/staff\r\nSet-Cookie: session=stolen",
    "/staff%0d%0aSet-Cookie:%20x=y",
    "/staff\x00",
    "/" + "a" * 5000,
    "/records/" + "x" * 3000,
    "/no/such/page",
    "/logout",  # POST only: a GET there is not a page to return to
    "evil.example",
    "",
    "   ",
]
GOOD = [
    ("/records/imports", "/records/imports"),
    ("/admin/beats/2", "/admin/beats/2"),
    ("/records/entries?q=theft&x=1", "/records/entries?q=theft&x=1"),
    ("/records/entries?q=a b", "/records/entries?q=a%20b"),
]


@pytest.fixture
def admin(beats_store):
    accounts.add_user(beats_store, ADMIN, "admin", ADMIN_PW, actor="test", now=NOW)


@pytest.mark.parametrize("target", NASTY)
def test_a_return_path_that_could_leave_the_site_falls_back_to_the_staff_home(app, target):
    with app.test_request_context():
        assert safe_next(target, HOME) == HOME


@pytest.mark.parametrize(("target", "expected"), GOOD)
def test_a_same_site_path_is_kept_normalised(app, target, expected):
    with app.test_request_context():
        assert safe_next(target, HOME) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "/%09/evil.example",
        "%09/evil.example",
        "/%0d%0a/evil.example",
        "/%5Cevil.example",
        "//evil.example",
        "https://evil.example",
        "/%252F%252Fevil.example",
        "/staff%0D%0ASet-Cookie:%20x%3Dy",
        "javascript:alert(1)",
        "/" + "a" * 5000,
    ],
)
def test_sign_in_never_sends_the_browser_off_site(client, admin, raw):
    r = client.post(f"/login?next={raw}", data={"email": ADMIN, "password": ADMIN_PW})
    assert r.status_code == 302
    assert r.headers["Location"] in (HOME, f"http://localhost{HOME}")


def test_sign_in_returns_to_the_staff_page_that_asked_for_it(client, admin):
    r = client.get("/records/entries?q=theft")
    assert r.status_code == 302
    r = client.post(r.headers["Location"], data={"email": ADMIN, "password": ADMIN_PW})
    assert r.headers["Location"].endswith("/records/entries?q=theft")


def test_the_login_page_never_answers_500_for_a_next_with_cr_lf(client, admin):
    r = client.post(
        "/login",
        query_string={"next": "/\r\nX-Evil: 1"},
        data={"email": ADMIN, "password": ADMIN_PW},
    )
    assert r.status_code == 302 and "X-Evil" not in r.headers
    assert r.headers["Location"].endswith(HOME)


def test_every_redirect_to_a_user_given_address_goes_through_safe_next():
    """`redirect(` in the views takes url_for(...) or safe_next(...) (a site path built by
    url_for may carry a query string after it), nothing else."""
    import ast
    from pathlib import Path

    def builder(node) -> str:
        while isinstance(node, ast.BinOp):  # url_for(...) + "?query"
            node = node.left
        if isinstance(node, ast.Call):
            f = node.func
            return f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")
        return type(node).__name__

    web = Path(__file__).resolve().parents[2] / "beatfeeds" / "web"
    calls = 0
    for path in web.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and builder(node) == "redirect" and node.args:
                calls += 1
                assert builder(node.args[0]) in ("url_for", "safe_next"), (
                    path.name,
                    node.lineno,
                    ast.unparse(node.args[0]),
                )
    assert calls > 10  # the scan sees the views' redirects
