"""Admin pages for outbound accounts and the outbox, through the real app."""

from __future__ import annotations

import hashlib
import hmac
import json

from werkzeug import Response

from tests.support.outbound import FakeClock, T, add, import_incidents, incident

SECRET = "webhook-signing-secret-XYZ"


def add_webhook(admin, url, **extra):
    data = {
        "service": "webhook",
        "area_kind": "sector",
        "area_code": "K",
        "label": "K hook",
        "endpoint": url,
        "webhook-secret": SECRET,
        **extra,
    }
    return admin.post("/admin/outbound", data=data, follow_redirects=True)


def test_admin_adds_tests_pauses_and_removes_an_account(admin, staff, httpserver):
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
    page = add_webhook(admin, httpserver.url_for("/hook")).get_data(as_text=True)
    assert "Account added" in page and "K hook" in page and "Sector K" in page
    assert SECRET not in page  # never shown again
    assert "call 911 for emergencies" in page  # the profile text
    account = staff.list_outbound_accounts()[0]
    assert SECRET not in account.credentials

    page = admin.post(f"/admin/outbound/{account.id}/test", follow_redirects=True).get_data(
        as_text=True
    )
    assert "Test post: sent" in page
    assert got[0]["event"] == "test" and "/sectors/K" in got[0]["url"]
    assert "Not monitored" in got[0]["text"]

    admin.post(f"/admin/outbound/{account.id}/pause")
    assert staff.outbound_account(account.id).status == "paused"
    admin.post(f"/admin/outbound/{account.id}/pause", data={"resume": "1"})
    assert staff.outbound_account(account.id).status == "active"
    admin.post(f"/admin/outbound/{account.id}/remove")
    assert staff.list_outbound_accounts() == []
    actions = [r["action"] for r in staff.audit_log()]
    for a in (
        "outbound.add",
        "outbound.test",
        "outbound.pause",
        "outbound.resume",
        "outbound.remove",
    ):
        assert a in actions
    assert SECRET not in json.dumps(staff.audit_log(), default=str)


def test_bad_accounts_are_refused_with_a_reason(admin, staff):
    page = add_webhook(admin, "https://hooks.example.test/x", area_code="ZZ").get_data(as_text=True)
    assert "no sector" in page.lower()
    page = add_webhook(admin, "https://hooks.example.test/x", **{"webhook-secret": ""}).get_data(
        as_text=True
    )
    assert "Signing secret" in page and "required" in page
    page = add_webhook(admin, "https://hooks.example.test/x", template="{title} {nope}").get_data(
        as_text=True
    )
    assert "Unknown field {nope}" in page
    page = add_webhook(admin, "https://hooks.example.test/x", profile_template="Hello").get_data(
        as_text=True
    )
    assert "911" in page
    assert staff.list_outbound_accounts() == []


def test_failed_test_post_is_reported(admin, staff, httpserver):
    httpserver.expect_request("/hook").respond_with_data("bad", status=401)
    add_webhook(admin, httpserver.url_for("/hook"))
    account = staff.list_outbound_accounts()[0]
    page = admin.post(f"/admin/outbound/{account.id}/test", follow_redirects=True).get_data(
        as_text=True
    )
    assert "Test post: failed: webhook answered 401" in page


def test_outbox_page_and_unknown_items(admin, staff, httpserver):
    from datetime import datetime

    add_webhook(admin, httpserver.url_for("/hook"))
    account = staff.list_outbound_accounts()[0]
    now = datetime(2026, 1, 1)
    staff.enqueue_outbox(
        [
            {
                "account_id": account.id,
                "entry_uid": "abc123",
                "entry_kind": "incident",
                "category": "theft",
                "status": "unknown",
                "due_at": now,
                "next_attempt_at": now,
                "attempts": 1,
                "dry_run": False,
                "created_at": now,
            }
        ]
    )
    staff.finish_outbox_item(1, error="cut off mid-send")
    page = admin.get("/admin/outbox?status=unknown").get_data(as_text=True)
    assert "abc123" in page and "cut off mid-send" in page and "It was posted" in page
    admin.post("/admin/outbox/1/resolve", data={"outcome": "sent"})
    assert staff.outbox_item(1).status == "sent"
    page = admin.post(
        "/admin/outbox/1/resolve", data={"outcome": "sent"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "not unknown" in page


def test_records_staff_cannot_manage_accounts(staff_clerk):
    for path in ("/admin/outbound", "/admin/outbox"):
        assert staff_clerk.get(path).status_code == 403
    assert staff_clerk.post("/admin/outbound", data={"service": "webhook"}).status_code == 403


def test_a_withdrawn_post_shows_as_withdrawn_without_its_text(
    admin, staff, settings, tmp_path, httpserver
):
    # Issue 13 point 7: once the entry is retracted and its post deleted, the outbox keeps
    # the row (rate limits, the record) but neither the text nor the link of the post.
    from beatfeeds.services import outbox, review

    httpserver.expect_request("/hook").respond_with_data("ok")
    add(staff, settings, "webhook", httpserver.url_for("/hook"), {"secret": SECRET})
    import_incidents(staff, settings, tmp_path, [incident(settings, 1, 90)])
    assert outbox.send_outbox(staff, settings, T, clock=FakeClock(T))["sent"] == 1
    item = staff.list_outbox()[0]
    assert "11XX BLOCK OF 8TH AVE NE" in item.text
    page = admin.get("/admin/outbox").get_data(as_text=True)
    assert "11XX BLOCK OF 8TH AVE NE" in page and "Withdrawn" not in page

    review.retract_entry(staff, item.entry_uid, "entered in error", actor="admin", now=T)
    assert outbox.retract_posts(staff, settings, T)["deleted"] == 1
    gone = staff.outbox_item(item.id)
    assert gone.status == "deleted" and gone.deleted_at == T
    assert gone.text is None and gone.remote_url is None
    page = admin.get("/admin/outbox").get_data(as_text=True)
    assert "Withdrawn" in page
    assert "11XX BLOCK OF 8TH AVE NE" not in page and "CAR PROWL" not in page
