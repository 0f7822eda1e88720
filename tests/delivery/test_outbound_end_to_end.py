"""The issue's "done" scenario through the real app and CLI: an admin connects a beat to a
webhook and to a Mastodon-compatible server, incidents are imported, each public entry is
posted exactly once after the delay; a sector announcement reaches the beat's accounts; a
retraction removes the posts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from werkzeug import Response

from beatfeeds.cli import incidents as cli_incidents
from beatfeeds.cli import main
from tests.support.fakes import FakeMastodon
from tests.support.imports import HEADER, K3, write_csv


def test_admin_connects_a_beat_imports_and_each_entry_is_posted_once(
    admin, staff_clerk, staff, runner, tmp_path, httpserver, settings, monkeypatch
):
    hooks = []
    httpserver.expect_request("/hook").respond_with_handler(
        lambda r: (
            hooks.append((r.headers["X-Beatfeeds-Event"], json.loads(r.get_data())))
            or Response("ok")
        )
    )
    masto = FakeMastodon(httpserver)
    for service, extra in (
        ("webhook", {"endpoint": httpserver.url_for("/hook"), "webhook-secret": "s3cret"}),
        ("mastodon", {"endpoint": httpserver.url_for("/"), "mastodon-access_token": "tok"}),
    ):
        r = admin.post(
            "/admin/outbound",
            data={"service": service, "area_kind": "beat", "area_code": "K3", **extra},
            follow_redirects=True,
        )
        assert "Account added" in r.get_data(as_text=True)

    now = datetime.now(UTC).replace(tzinfo=None)

    def local(minutes_ago):
        t = (now - timedelta(minutes=minutes_ago)).replace(tzinfo=UTC).astimezone(settings.tz)
        return t.strftime("%m/%d/%Y %I:%M:%S %p")

    rows = [
        [
            str(i),
            local(m),
            "CAR PROWL",
            "THEFT - CAR PROWL",
            f"{1100 + i} 8TH AVE NE",
            K3[0],
            K3[1],
            "K3",
            "",
        ]
        for i, m in ((1, 90), (2, 75), (3, 5))
    ]
    path = write_csv(tmp_path / "incidents.csv", rows, header=HEADER)
    maps = [
        a
        for f, c in (
            ("external_id", "id"),
            ("occurred_at", "when"),
            ("category", "type"),
            ("description", "desc"),
            ("address", "addr"),
            ("lat", "lat"),
            ("lon", "lon"),
        )
        for a in ("--map", f"{f}={c}")
    ]
    # The import ran an hour ago (the delay counts from the first import too): the clock is
    # the outside world here.
    with monkeypatch.context() as m:
        m.setattr(cli_incidents, "utcnow", lambda: now - timedelta(minutes=60))
        r = runner.invoke(main, ["incidents", "import", str(path), "--source", "e2e", *maps])
    assert r.exit_code == 0, r.output
    for _ in range(2):  # running the job twice posts nothing twice
        r = runner.invoke(main, ["jobs", "run", "send-outbox"])
        assert r.exit_code == 0, r.output
    published = [d for e, d in hooks if e == "entry.published"]
    assert len(published) == 2 and len(masto.statuses) == 2  # the third is inside its delay
    assert {d["entry"]["address"] for d in published} == {"11XX BLOCK OF 8TH AVE NE"}

    r = staff_clerk.post(
        "/records/announcements",
        data={
            "kind": "alert",
            "title": "Water main break on 8th Ave NE",
            "body": "Expect delays.",
            "sectors": "K",
            "urgent": "1",
        },
        follow_redirects=True,
    )
    assert "Announcement saved" in r.get_data(as_text=True)
    assert runner.invoke(main, ["jobs", "run", "send-outbox"]).exit_code == 0
    assert len(masto.statuses) == 3
    assert any("Water main break" in d["text"] for e, d in hooks if e == "entry.published")

    uid = published[0]["entry"]["uid"]
    r = runner.invoke(main, ["incidents", "retract", uid, "--reason", "wrong address"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["jobs", "run", "retract-posts"])
    assert r.exit_code == 0, r.output
    assert len(masto.statuses) == 2
    assert [d["id"] for e, d in hooks if e == "entry.deleted"] == [
        next(
            i.remote_id
            for i in staff.list_outbox()
            if i.entry_uid == uid and i.service == "webhook"
        )
    ]
    assert staff.outbox_counts() == {"sent": 4, "deleted": 2}
    page = admin.get("/admin/outbox?status=deleted").get_data(as_text=True)
    assert page.count("<td>deleted") == 2
