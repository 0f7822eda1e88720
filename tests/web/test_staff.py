"""Staff accounts over HTTP and the CLI: roles, sign-in, throttling, CSRF, session expiry,
disabling, password changes, hashing and the audit log."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import itsdangerous.timed
import pytest

from beatfeeds.app import create_app
from beatfeeds.cli import main
from beatfeeds.core.errors import Conflict, Forbidden
from beatfeeds.core.settings import load_settings
from beatfeeds.services import accounts
from beatfeeds.storage import SQLStore
from tests.support.instance import utcnow
from tests.support.staff import ADMIN, ADMIN_PW, CLERK, CLERK_PW, login

NEW_PW = "a brand new password 9"

ADMIN_PAGES = ["/admin/users", "/admin/beats", "/admin/audit"]
STAFF_PAGES = ["/staff", "/records/imports", "/account/password", *ADMIN_PAGES]


def build_app(store, settings, **config):
    return create_app(
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "store": store, **settings.as_dict(), **config}
    )


def signed_in(client) -> bool:
    r = client.get("/staff")
    return r.status_code == 200


def actions(store) -> list[tuple[str, str, str | None]]:
    """(actor, action, target) of the audit log, oldest first."""
    return [(r["actor"], r["action"], r["target"]) for r in reversed(store.audit_log(1000))]


# ---- who may see what ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", STAFF_PAGES)
def test_anonymous_users_are_sent_to_sign_in(client, path):
    r = client.get(path)
    assert r.status_code == 302
    where = urlsplit(r.headers["Location"])
    assert where.path == "/login"
    assert parse_qs(where.query)["next"] == [path]
    r = client.get(path, query_string={"page": "2"})
    assert parse_qs(urlsplit(r.headers["Location"]).query)["next"] == [f"{path}?page=2"]


def test_anonymous_posts_change_nothing(client, staff):
    before = staff.list_users()
    for path in [
        "/admin/users",
        f"/admin/users/{CLERK}/disable",
        f"/admin/users/{CLERK}/password",
        "/account/password",
    ]:
        r = client.post(
            path,
            data={
                "email": "x@example.org",
                "role": "admin",
                "password": "whatever password 1",
                "new_password": "x" * 20,
                "confirm_password": "x" * 20,
            },
        )
        assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/login", path
    assert staff.list_users() == before


def test_records_role_is_refused_admin_pages_but_sees_imports(staff_clerk, staff):
    for path in ADMIN_PAGES:
        r = staff_clerk.get(path)
        assert r.status_code == 403, path
        assert "Not allowed" in r.get_data(as_text=True)
    r = staff_clerk.post(
        "/admin/users",
        data={"email": "new@example.org", "role": "admin", "password": "long enough password"},
    )
    assert r.status_code == 403
    assert staff_clerk.post(f"/admin/users/{ADMIN}/disable").status_code == 403
    assert (
        staff_clerk.post(
            f"/admin/users/{ADMIN}/password", data={"password": "long enough password"}
        ).status_code
        == 403
    )
    assert staff.user_by_email("new@example.org") is None
    assert not staff.user_by_email(ADMIN).disabled
    assert staff_clerk.get("/records/imports").status_code == 200
    home = staff_clerk.get("/staff")
    assert home.status_code == 200 and CLERK in home.get_data(as_text=True)
    assert "/admin/users" not in home.get_data(as_text=True)


def test_admin_sees_every_staff_page_but_cannot_disable_themselves(admin, staff):
    for path in STAFF_PAGES:
        assert admin.get(path).status_code == 200, path
    r = admin.post(f"/admin/users/{ADMIN}/disable", follow_redirects=True)
    assert "cannot disable your own account" in r.get_data(as_text=True)
    assert not staff.user_by_email(ADMIN).disabled
    assert signed_in(admin)


# ---- sign-in ------------------------------------------------------------------------------------
def test_sign_in_with_the_right_password_and_out_again(app, staff):
    c = app.test_client()
    assert c.get("/login").status_code == 200
    r = login(c, "  Admin@Example.org ", ADMIN_PW)  # emails are case- and space-insensitive
    assert r.status_code == 302 and r.headers["Location"] == "/staff"
    assert signed_in(c)
    r = c.post("/logout")
    assert r.status_code == 302
    assert not signed_in(c)
    assert (ADMIN, "auth.login", ADMIN) in actions(staff)
    assert (ADMIN, "auth.logout", ADMIN) in actions(staff)


def test_sign_in_fails_with_wrong_credentials_and_is_recorded(app, staff):
    for email, password in [
        (ADMIN, "wrong password 1234"),
        (ADMIN, ""),
        ("nobody@example.org", ADMIN_PW),
        ("", ""),
    ]:
        c = app.test_client()
        r = login(c, email, password)
        assert r.status_code == 401, (email, password)
        assert "Wrong email or password" in r.get_data(as_text=True)
        assert not signed_in(c)
    assert staff.failed_logins_since(datetime(2000, 1, 1), email=ADMIN) == 2
    failures = [a for a in actions(staff) if a[1] == "auth.failed"]
    assert [a[2] for a in failures] == [ADMIN, ADMIN, "nobody@example.org", ""]
    # The audit log names the account tried, never the password typed.
    assert "wrong password 1234" not in repr(staff.audit_log(1000))


def test_sign_in_follows_only_local_next_links(app, staff):
    c = app.test_client()
    r = login(c, ADMIN, ADMIN_PW, query_string={"next": "/admin/audit"})
    assert r.headers["Location"] == "/admin/audit"
    for target in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
    ]:
        c = app.test_client()
        r = login(c, ADMIN, ADMIN_PW, query_string={"next": target})
        assert r.status_code == 302
        where = urlsplit(r.headers["Location"].replace("\\", "/"))
        assert not where.netloc and not where.scheme, target


def test_too_many_failures_refuse_even_the_right_password(staff, settings):
    app = build_app(staff, settings, login_max_attempts=3)
    c = app.test_client()
    for _ in range(3):
        assert login(c, ADMIN, "wrong password 1234").status_code == 401
    r = login(c, ADMIN, ADMIN_PW)
    assert r.status_code == 429
    assert "Too many failed sign-in attempts" in r.get_data(as_text=True)
    assert not signed_in(c)
    assert (ADMIN, "auth.throttled", ADMIN) in actions(staff)
    # Another account is not locked out by these failures.
    other = app.test_client()
    assert login(other, CLERK, CLERK_PW).status_code == 302


# ---- CSRF ---------------------------------------------------------------------------------------
def csrf_token(page: bytes) -> str:
    m = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert m, "no CSRF token in the form"
    return m.group(1).decode()


def test_forms_need_a_csrf_token(staff, settings):
    app = build_app(staff, settings, WTF_CSRF_ENABLED=True)
    c = app.test_client()
    r = login(c, ADMIN, ADMIN_PW)
    assert r.status_code == 400
    assert "Reload the page" in r.get_data(as_text=True)
    assert not signed_in(c)
    r = c.post("/login", data={"email": ADMIN, "password": ADMIN_PW, "csrf_token": "forged"})
    assert r.status_code == 400

    token = csrf_token(c.get("/login").data)
    r = c.post("/login", data={"email": ADMIN, "password": ADMIN_PW, "csrf_token": token})
    assert r.status_code == 302 and signed_in(c)

    form = {"email": "new@example.org", "role": "records", "password": "a long password 42"}
    assert c.post("/admin/users", data=form).status_code == 400
    assert staff.user_by_email("new@example.org") is None
    token = csrf_token(c.get("/admin/users").data)
    r = c.post("/admin/users", data=form | {"csrf_token": token})
    assert r.status_code == 302
    assert staff.user_by_email("new@example.org").role == "records"

    # Signing out is a form too.
    assert c.post("/logout").status_code == 400 and signed_in(c)
    assert c.post("/logout", data={"csrf_token": token}).status_code == 302
    assert not signed_in(c)


# ---- sessions -----------------------------------------------------------------------------------
def test_sessions_expire_after_session_lifetime(staff, settings, monkeypatch):
    app = build_app(staff, settings, session_lifetime=1)  # minutes
    assert app.permanent_session_lifetime.total_seconds() == 60
    c = app.test_client()
    assert login(c, CLERK, CLERK_PW).status_code == 302
    offset = 0

    def shift(seconds):
        nonlocal offset
        offset += seconds

    # Move only the clock that signs and checks session cookies.
    real_time = time.time
    monkeypatch.setattr(
        itsdangerous.timed, "time", SimpleNamespace(time=lambda: real_time() + offset)
    )
    shift(40)
    assert signed_in(c)  # within the lifetime
    shift(61)
    r = c.get("/staff")
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/login"
    assert login(c, CLERK, CLERK_PW).status_code == 302 and signed_in(c)


def test_active_sessions_still_end_after_session_lifetime(staff, settings, monkeypatch):
    """Each request refreshes the cookie, so the limit from sign-in is checked separately."""
    from beatfeeds.web import auth

    app = build_app(staff, settings, session_lifetime=1)  # minutes
    c = app.test_client()
    assert login(c, CLERK, CLERK_PW).status_code == 302
    real_time = time.time
    for seconds in (20, 40, 55):  # active every 20 s: the cookie alone would never expire
        monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda s=seconds: real_time() + s))
        assert signed_in(c)
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: real_time() + 61))
    r = c.get("/staff")
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/login"


def test_disabling_a_user_ends_their_sessions(admin, staff_clerk, staff):
    assert signed_in(staff_clerk)
    r = admin.post(f"/admin/users/{CLERK}/disable")
    assert r.status_code == 302
    assert staff.user_by_email(CLERK).disabled
    r = staff_clerk.get("/records/imports")
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/login"
    assert (ADMIN, "users.disable", CLERK) in actions(staff)
    assert login(staff_clerk, CLERK, CLERK_PW).status_code == 401  # nor sign in again
    # Enabling again lets them sign in again, but the old session stays dead.
    admin.post(f"/admin/users/{CLERK}/disable", data={"enable": "1"})
    assert not staff.user_by_email(CLERK).disabled
    assert (ADMIN, "users.enable", CLERK) in actions(staff)
    assert not signed_in(staff_clerk)
    assert login(staff_clerk, CLERK, CLERK_PW).status_code == 302


def test_password_reset_by_an_admin_ends_the_users_sessions(app, admin, staff_clerk, staff):
    second = app.test_client()
    assert login(second, CLERK, CLERK_PW).status_code == 302
    old_hash = staff.user_by_email(CLERK).password_hash
    r = admin.post(
        f"/admin/users/{CLERK}/password", data={"password": "short"}, follow_redirects=True
    )
    assert "at least 12 characters" in r.get_data(as_text=True)
    assert staff.user_by_email(CLERK).password_hash == old_hash and signed_in(staff_clerk)
    r = admin.post(f"/admin/users/{CLERK}/password", data={"password": NEW_PW})
    assert r.status_code == 302
    assert staff.user_by_email(CLERK).password_hash != old_hash
    assert not signed_in(staff_clerk) and not signed_in(second)
    assert signed_in(admin)
    assert (ADMIN, "users.reset_password", CLERK) in actions(staff)
    c = app.test_client()
    assert login(c, CLERK, CLERK_PW).status_code == 401
    assert login(c, CLERK, NEW_PW).status_code == 302


def test_users_change_their_own_password(app, staff_clerk, staff):
    other = app.test_client()
    assert login(other, CLERK, CLERK_PW).status_code == 302
    old_hash = staff.user_by_email(CLERK).password_hash

    def change(current, new, confirm=None):
        return staff_clerk.post(
            "/account/password",
            data={
                "password": current,
                "new_password": new,
                "confirm_password": new if confirm is None else confirm,
            },
        )

    r = change("not my password 1", NEW_PW)
    assert r.status_code == 400 and "current password is wrong" in r.get_data(as_text=True)
    r = change(CLERK_PW, NEW_PW, confirm=NEW_PW + "x")
    assert r.status_code == 400 and "do not match" in r.get_data(as_text=True)
    r = change(CLERK_PW, "short")
    assert r.status_code == 400 and "at least 12" in r.get_data(as_text=True)
    assert staff.user_by_email(CLERK).password_hash == old_hash
    assert (CLERK, "users.password", CLERK) not in actions(staff)

    r = change(CLERK_PW, NEW_PW)
    assert r.status_code == 302
    assert signed_in(staff_clerk)  # this session goes on...
    assert not signed_in(other)  # ...sessions elsewhere end
    assert (CLERK, "users.password", CLERK) in actions(staff)
    c = app.test_client()
    assert login(c, CLERK, CLERK_PW).status_code == 401
    assert login(c, CLERK, NEW_PW).status_code == 302


def test_admin_adds_users_through_the_form(admin, staff):
    r = admin.post(
        "/admin/users",
        data={
            "email": "New.Person@Example.org ",
            "role": "records",
            "password": "a long password 42",
        },
        follow_redirects=True,
    )
    assert r.status_code == 200 and "new.person@example.org" in r.get_data(as_text=True)
    assert staff.user_by_email("new.person@example.org").role == "records"
    assert (ADMIN, "users.add", "new.person@example.org") in actions(staff)
    before = len(staff.list_users())
    for form, message in [
        (
            {"email": "not-an-email", "role": "records", "password": "a long password 42"},
            "is not an email address",
        ),
        (
            {"email": "x@example.org", "role": "superuser", "password": "a long password 42"},
            "Role must be one of",
        ),
        (
            {"email": "x@example.org", "role": "records", "password": "short"},
            "at least 12 characters",
        ),
        ({"email": CLERK, "role": "admin", "password": "a long password 42"}, "already exists"),
    ]:
        r = admin.post("/admin/users", data=form, follow_redirects=True)
        assert message in r.get_data(as_text=True), form
    assert len(staff.list_users()) == before
    assert staff.user_by_email(CLERK).role == "records"


# ---- storage of passwords, and the audit trail --------------------------------------------------
def test_passwords_are_stored_as_argon2_hashes(app, store, settings):
    pw = "plain text never stored 1"
    accounts.add_user(store, "hashed@example.org", "records", pw, actor="test", now=utcnow())
    h = store.user_by_email("hashed@example.org").password_hash
    assert h.startswith("$argon2id$") and pw not in h
    assert login(app.test_client(), "hashed@example.org", pw).status_code == 302
    db = Path(settings.database_url.removeprefix("sqlite:///"))
    files = list(db.parent.glob(db.name + "*"))  # the database, its WAL and shared memory
    assert files
    for f in files:
        assert pw.encode() not in f.read_bytes()


def test_every_staff_action_is_audited(app, admin, staff):
    c = app.test_client()
    login(c, CLERK, "wrong password 1234")
    login(c, CLERK, CLERK_PW)
    c.post(
        "/account/password",
        data={"password": CLERK_PW, "new_password": NEW_PW, "confirm_password": NEW_PW},
    )
    c.post("/logout")
    admin.post(
        "/admin/users",
        data={"email": "third@example.org", "role": "admin", "password": "a long password 42"},
    )
    admin.post(f"/admin/users/{CLERK}/password", data={"password": "reset password 1234"})
    admin.post(f"/admin/users/{CLERK}/disable")
    admin.post(f"/admin/users/{CLERK}/disable", data={"enable": "1"})
    log = actions(staff)
    expected = [
        (CLERK, "auth.login", CLERK),
        (CLERK, "users.password", CLERK),
        (CLERK, "auth.logout", CLERK),
        (ADMIN, "users.add", "third@example.org"),
        (ADMIN, "users.reset_password", CLERK),
        (ADMIN, "users.disable", CLERK),
        (ADMIN, "users.enable", CLERK),
    ]
    positions = [log.index(e) for e in expected]
    assert positions == sorted(positions), log
    assert log.index((CLERK, "auth.failed", CLERK)) < positions[0]
    rows = staff.audit_log(1000)
    assert all(r["at"] is not None for r in rows)
    # No password ever reaches the audit log.
    text = repr(rows)
    for pw in (
        CLERK_PW,
        NEW_PW,
        "reset password 1234",
        "a long password 42",
        "wrong password 1234",
    ):
        assert pw not in text
    page = admin.get("/admin/audit").get_data(as_text=True)
    assert "users.reset_password" in page and "third@example.org" in page


# ---- CLI ----------------------------------------------------------------------------------------
def cli(runner, *args, **kw):
    return runner.invoke(main, list(args), **kw)


@pytest.fixture
def cli_store(runner, tmp_path):
    r = cli(runner, "db", "upgrade")
    assert r.exit_code == 0, r.output
    return SQLStore.from_url(load_settings().database_url)


def test_cli_adds_and_disables_users(runner, cli_store):
    r = cli(
        runner,
        "users",
        "add",
        "Records@Example.org",
        "--role",
        "records",
        "--password-stdin",
        input="cli password 12345\n",
    )
    assert r.exit_code == 0, r.output
    assert "added records@example.org (records)" in r.output
    user = cli_store.user_by_email("records@example.org")
    assert user.role == "records" and not user.disabled
    assert user.password_hash.startswith("$argon2") and "cli password" not in user.password_hash
    assert ("cli", "users.add", "records@example.org") in actions(cli_store)

    # The account works on the site served from the same instance folder.
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False})
    c = app.test_client()
    assert login(c, "records@example.org", "cli password 12345").status_code == 302
    assert signed_in(c)

    r = cli(runner, "users", "disable", "records@example.org")
    assert r.exit_code == 0, r.output
    assert "disabled records@example.org" in r.output
    assert cli_store.user_by_email("records@example.org").disabled
    assert ("cli", "users.disable", "records@example.org") in actions(cli_store)
    assert not signed_in(c)  # signed out at the next request
    assert login(app.test_client(), "records@example.org", "cli password 12345").status_code == 401


@pytest.mark.parametrize(
    "args,stdin,message",
    [
        (
            ["users", "add", "a@example.org", "--role", "records", "--password-stdin"],
            "short\n",
            "at least 12 characters",
        ),
        (
            ["users", "add", "a@example.org", "--role", "records", "--password-stdin"],
            "\n",
            "at least 12 characters",
        ),
        (
            ["users", "add", "not-an-email", "--role", "records", "--password-stdin"],
            "cli password 12345\n",
            "not an email address",
        ),
        (
            ["users", "add", "a@example.org", "--role", "chief", "--password-stdin"],
            "cli password 12345\n",
            "chief",
        ),
        (["users", "add", "a@example.org", "--password-stdin"], "cli password 12345\n", "--role"),
        (["users", "disable", "ghost@example.org"], None, "No user ghost@example.org"),
    ],
)
def test_cli_user_errors(runner, cli_store, args, stdin, message):
    r = cli(runner, *args, input=stdin)
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output
    assert cli_store.user_by_email("a@example.org") is None


def test_cli_refuses_duplicate_users(runner, cli_store):
    args = ["users", "add", "dup@example.org", "--role", "admin", "--password-stdin"]
    assert cli(runner, *args, input="first password 123\n").exit_code == 0
    r = cli(runner, *args, input="second password 456\n")
    assert r.exit_code == 1
    assert "already exists" in r.output
    # The first account is untouched.
    c = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}).test_client()
    assert login(c, "dup@example.org", "first password 123").status_code == 302


def test_cli_users_add_needs_a_migrated_database(runner):
    r = cli(
        runner,
        "users",
        "add",
        "a@example.org",
        "--role",
        "records",
        "--password-stdin",
        input="cli password 12345\n",
    )
    assert r.exit_code == 1 and "beatfeeds db upgrade" in r.output


# ---- rules the web and the CLI share (services.accounts) -----------------------------------------
def test_nobody_disables_their_own_account_through_the_service(staff):
    with pytest.raises(Forbidden, match="cannot disable your own account"):
        accounts.set_disabled(staff, ADMIN, True, actor=ADMIN, now=utcnow())
    assert not staff.user_by_email(ADMIN).disabled
    assert (ADMIN, "users.disable", ADMIN) not in actions(staff)


def test_the_last_active_admin_is_never_disabled(staff, hashes):
    with pytest.raises(Conflict, match="last active administrator"):
        accounts.set_disabled(staff, ADMIN, True, actor="cli", now=utcnow())
    assert not staff.user_by_email(ADMIN).disabled
    # With a second active admin the first one can go; then the second is the last.
    staff.add_user("second@example.org", "admin", hashes[ADMIN], utcnow())
    accounts.set_disabled(staff, ADMIN, True, actor="cli", now=utcnow())
    assert staff.user_by_email(ADMIN).disabled
    with pytest.raises(Conflict):
        accounts.set_disabled(staff, "second@example.org", True, actor="cli", now=utcnow())
    accounts.set_disabled(staff, CLERK, True, actor="cli", now=utcnow())  # not an admin: fine


def test_the_last_admin_cannot_disable_themselves_on_the_web(app, staff, hashes):
    staff.add_user("second@example.org", "admin", hashes[ADMIN], utcnow())
    staff.update_user(ADMIN, disabled=True)  # as if done elsewhere since second signed in
    second = app.test_client()
    assert login(second, "second@example.org", ADMIN_PW).status_code == 302
    r = second.post("/admin/users/second@example.org/disable", follow_redirects=True)
    assert "cannot disable your own account" in r.get_data(as_text=True)
    assert not staff.user_by_email("second@example.org").disabled


def test_cli_refuses_to_disable_the_last_admin_as_the_web_does(runner, cli_store):
    for email, role in (("boss@example.org", "admin"), ("records@example.org", "records")):
        r = cli(
            runner,
            "users",
            "add",
            email,
            "--role",
            role,
            "--password-stdin",
            input="cli password 12345\n",
        )
        assert r.exit_code == 0, r.output
    r = cli(runner, "users", "disable", "boss@example.org")
    assert r.exit_code == 1
    assert "boss@example.org is the last active administrator" in r.output
    assert "Traceback" not in r.output
    assert not cli_store.user_by_email("boss@example.org").disabled
    assert ("cli", "users.disable", "boss@example.org") not in actions(cli_store)
    # Once another admin exists, the CLI disables the first as before.
    r = cli(
        runner,
        "users",
        "add",
        "deputy@example.org",
        "--role",
        "admin",
        "--password-stdin",
        input="cli password 12345\n",
    )
    assert r.exit_code == 0, r.output
    r = cli(runner, "users", "disable", "boss@example.org")
    assert r.exit_code == 0, r.output
    assert "disabled boss@example.org" in r.output
    assert cli_store.user_by_email("boss@example.org").disabled
