"""`beatfeeds outbound list|add|pause|resume|remove|test` through the real CLI and a real
SQLite store; test posts go to a loopback webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

import pytest
from werkzeug import Response

from beatfeeds.cli import main
from beatfeeds.core.settings import load_settings
from beatfeeds.delivery.credentials import decrypt_credentials
from beatfeeds.storage import SQLStore
from tests.support.instance import DEFAULT_BEATS

SECRET = "whsec-cli-4f9a7c1e-do-not-print"
TOKEN = "mastodon-token-8d2b0e-do-not-print"


def invoke(runner, *args, **kw):
    return runner.invoke(main, [str(a) for a in args], **kw)


@pytest.fixture
def cli(runner):
    """The CLI against a migrated SQLite file with the default beat map active."""
    assert invoke(runner, "db", "upgrade").exit_code == 0
    r = invoke(
        runner,
        "beats",
        "load",
        DEFAULT_BEATS,
        "--code-field",
        "beat",
        "--sector-field",
        "sector",
        "--precinct-field",
        "precinct",
    )
    assert r.exit_code == 0, r.output
    assert invoke(runner, "beats", "publish", "1").exit_code == 0
    return runner


@pytest.fixture
def db(cli):
    settings = load_settings()
    return settings, SQLStore.from_url(settings.database_url)


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "webhook-secret"
    path.write_text(SECRET + "\n")
    return path


def rows(runner):
    r = invoke(runner, "outbound", "list")
    assert r.exit_code == 0, r.output
    return [line.split("\t") for line in r.output.splitlines()]


def test_webhook_account_lifecycle_is_audited_and_never_shows_the_secret(
    cli, db, secret_file, httpserver
):
    settings, store = db
    got = []

    def handler(request):
        body = request.get_data()
        assert (
            request.headers["X-Beatfeeds-Signature"]
            == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        )
        got.append(json.loads(body))
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(handler)
    url = httpserver.url_for("/hook")
    r = invoke(
        cli,
        "outbound",
        "add",
        "webhook",
        "sector:k",
        "--url",
        url,
        "--secret-file",
        secret_file,
        "--label",
        "K hook",
    )
    assert r.exit_code == 0, r.output
    assert "added outbound account 1: K hook" in r.output and SECRET not in r.output
    account = store.outbound_account(1)
    assert (account.area_kind, account.area_code, account.status) == ("sector", "K", "active")
    assert SECRET not in account.credentials
    assert decrypt_credentials(settings, account.credentials) == {"secret": SECRET}

    assert rows(cli) == [
        ["1", "webhook", "sector:K", url, "active", "pending 0 sent 0 failed 0 unknown 0", "K hook"]
    ]

    r = invoke(cli, "outbound", "test", "1")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("test post for account 1: sent")
    assert got[0]["event"] == "test" and "/sectors/K" in got[0]["url"]
    assert store.outbound_account(1).last_test_result.startswith("sent")

    r = invoke(cli, "outbound", "pause", "1")
    assert r.exit_code == 0 and "paused outbound account 1" in r.output
    assert rows(cli)[0][4] == "paused"
    r = invoke(cli, "outbound", "resume", "1")
    assert r.exit_code == 0 and "resumed" in r.output
    assert rows(cli)[0][4] == "active"

    r = invoke(cli, "outbound", "remove", "1")
    assert r.exit_code == 0 and "removed outbound account 1" in r.output
    assert rows(cli) == [] and store.list_outbound_accounts() == []

    log = [e for e in store.audit_log() if e["action"].startswith("outbound.")]
    assert [e["action"] for e in reversed(log)] == [
        "outbound.add",
        "outbound.test",
        "outbound.pause",
        "outbound.resume",
        "outbound.remove",
    ]
    assert {e["actor"] for e in log} == {"cli"}
    assert SECRET not in json.dumps(store.audit_log(), default=str)


def test_list_shows_every_account_with_its_outbox_counts_and_no_credentials(
    cli, db, secret_file, tmp_path
):
    settings, store = db
    token = tmp_path / "token"
    token.write_text(TOKEN)
    password = tmp_path / "app-password"
    password.write_text("abcd-efgh-ijkl-mnop\n")
    x_files = {}
    for name in ("consumer-key", "consumer-secret", "access-token", "access-token-secret"):
        x_files[name] = tmp_path / name
        x_files[name].write_text(f"x-{name}-value-do-not-print")
    adds = [
        ("mastodon", "beat:K3", "--instance", "https://mastodon.example/", "--token-file", token),
        (
            "webhook",
            "precinct:W",
            "--url",
            "https://user:pw-in-url@hooks.example/in",
            "--secret-file",
            secret_file,
        ),
        (
            "bluesky",
            "city",
            "--identifier",
            "spd-city.bsky.social",
            "--app-password-file",
            password,
        ),
        ("x", "sector:K", *(a for n, p in x_files.items() for a in (f"--{n}-file", p))),
    ]
    for args in adds:
        r = invoke(cli, "outbound", "add", *args)
        assert r.exit_code == 0, r.output
    now = datetime(2026, 1, 1)
    statuses = {1: ["pending", "sending", "sent", "sent", "failed"], 4: ["unknown", "cancelled"]}
    store.enqueue_outbox(
        [
            {
                "account_id": acc,
                "entry_uid": f"e{acc}-{n}",
                "entry_kind": "incident",
                "category": "theft",
                "status": status,
                "due_at": now,
                "next_attempt_at": now,
                "attempts": 1,
                "dry_run": False,
                "created_at": now,
            }
            for acc, sts in statuses.items()
            for n, status in enumerate(sts)
        ]
    )

    r = invoke(cli, "outbound", "list")
    assert r.exit_code == 0, r.output
    listed = {row[0]: row[:6] for row in rows(cli)}
    assert listed == {
        "1": [
            "1",
            "mastodon",
            "beat:K3",
            "https://mastodon.example",
            "active",
            "pending 2 sent 2 failed 1 unknown 0",
        ],
        "2": [
            "2",
            "webhook",
            "precinct:W",
            "https://hooks.example/in",
            "active",
            "pending 0 sent 0 failed 0 unknown 0",
        ],
        "3": [
            "3",
            "bluesky",
            "city",
            "https://bsky.social (spd-city.bsky.social)",
            "active",
            "pending 0 sent 0 failed 0 unknown 0",
        ],
        "4": [
            "4",
            "x",
            "sector:K",
            "https://api.twitter.com",
            "active",
            "pending 0 sent 0 failed 0 unknown 1",
        ],
    }
    for secret in (SECRET, TOKEN, "abcd-efgh", "do-not-print", "pw-in-url"):
        assert secret not in r.output
        assert secret not in json.dumps(store.audit_log(), default=str)
    creds = decrypt_credentials(settings, store.outbound_account(4).credentials)
    assert creds["access_token_secret"] == "x-access-token-secret-value-do-not-print"
    assert decrypt_credentials(settings, store.outbound_account(3).credentials) == {
        "identifier": "spd-city.bsky.social",
        "app_password": "abcd-efgh-ijkl-mnop",
    }


def test_a_secret_can_come_from_standard_input(cli, db):
    settings, store = db
    r = invoke(
        cli,
        "outbound",
        "add",
        "mastodon",
        "beat:K3",
        "--instance",
        "https://mastodon.example",
        "--token-file",
        "-",
        input=TOKEN + "\n",
    )
    assert r.exit_code == 0, r.output
    creds = decrypt_credentials(settings, store.outbound_account(1).credentials)
    assert creds == {"access_token": TOKEN}
    r = invoke(
        cli,
        "outbound",
        "add",
        "x",
        "city",
        "--consumer-key-file",
        "-",
        "--consumer-secret-file",
        "-",
        "--access-token-file",
        "-",
        "--access-token-secret-file",
        "-",
        input="a\nb\nc\nd\n",
    )
    assert r.exit_code == 2 and "Only one secret can come from standard input" in r.output
    assert len(store.list_outbound_accounts()) == 1


def test_secrets_are_refused_on_the_command_line(cli, db):
    _, store = db
    for option in ("--secret", "--token", "--app-password"):
        r = invoke(
            cli, "outbound", "add", "webhook", "city", "--url", "https://h.example/", option, SECRET
        )
        assert r.exit_code == 2 and "No such option" in r.output
    assert store.list_outbound_accounts() == []


def test_bad_accounts_are_refused_with_the_web_forms_reasons(cli, db, secret_file, tmp_path):
    _, store = db
    hook = ("--url", "https://hooks.example/in", "--secret-file", secret_file)
    cases = [
        (("webhook", "sector:ZZ", *hook), 1, "There is no sector 'ZZ'"),
        (("webhook", "ward:3", *hook), 1, "Area must be city, precinct:CODE"),
        (("webhook", "beat", *hook), 1, "Name the beat: beat:CODE"),
        (
            ("webhook", "city", "--url", "ftp://hooks.example/", "--secret-file", secret_file),
            1,
            "must start with https://",
        ),
        (("webhook", "city", *hook, "--template", "{title} {nope}"), 1, "Unknown field {nope}"),
        (("webhook", "city", *hook, "--profile-template", "Hello"), 1, "911"),
        (("webhook", "city", "--url", "https://hooks.example/in"), 2, "needs --secret-file"),
        (
            ("webhook", "city", *hook, "--token-file", secret_file),
            2,
            "--access-token-file is not used by Webhook",
        ),
        (
            (
                "webhook",
                "city",
                "--url",
                "https://h.example/",
                "--secret-file",
                tmp_path / "missing",
            ),
            2,
            "cannot read",
        ),
        (("mastodon", "city", "--token-file", secret_file), 1, "must start with https://"),
        (("tumblr", "city"), 2, "Invalid value for '{mastodon|bluesky|x|webhook}'"),
    ]
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cases.append(
        (
            ("webhook", "city", "--url", "https://h.example/", "--secret-file", empty),
            1,
            "Signing secret (HMAC-SHA256) is required",
        )
    )
    for args, code, message in cases:
        r = invoke(cli, "outbound", "add", *args)
        assert (r.exit_code, message in r.output) == (code, True), (args, r.output)
    assert store.list_outbound_accounts() == []
    assert not [e for e in store.audit_log() if e["action"] == "outbound.add"]


def test_unknown_ids_and_an_unmigrated_database_exit_1(runner, cli):
    for verb in ("pause", "resume", "remove", "test"):
        r = invoke(cli, "outbound", verb, "99")
        assert r.exit_code == 1 and "No outbound account 99" in r.output, (verb, r.output)
    assert invoke(cli, "outbound", "pause", "x").exit_code == 2


def test_list_on_an_unmigrated_database_says_what_to_do(runner):
    r = invoke(runner, "outbound", "list")
    assert r.exit_code == 1 and "beatfeeds db upgrade" in r.output


def test_test_post_honours_dry_run_and_reports_failures(
    cli, db, secret_file, httpserver, monkeypatch
):
    _, store = db
    httpserver.expect_request("/hook").respond_with_data("bad signature", status=401)
    r = invoke(
        cli,
        "outbound",
        "add",
        "webhook",
        "city",
        "--url",
        httpserver.url_for("/hook"),
        "--secret-file",
        secret_file,
    )
    assert r.exit_code == 0, r.output

    monkeypatch.setenv("BEATFEEDS_DRY_RUN", "true")
    r = invoke(cli, "outbound", "test", "1")
    assert r.exit_code == 0 and "dry run: nothing was sent" in r.output
    assert httpserver.log == []

    monkeypatch.setenv("BEATFEEDS_DRY_RUN", "false")
    r = invoke(cli, "outbound", "test", "1")
    assert r.exit_code == 1 and "test post for account 1: failed" in r.output
    assert len(httpserver.log) == 1
    assert store.outbound_account(1).last_test_result.startswith("failed")
    results = [e for e in store.audit_log() if e["action"] == "outbound.test"]
    assert len(results) == 2 and SECRET not in json.dumps(results, default=str)
