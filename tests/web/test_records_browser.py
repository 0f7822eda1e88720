"""A records clerk in a real browser: upload a file, see the preview, let the job run, see
the counters and download the rejected rows."""

import csv
import io

import pytest

from beatfeeds import jobs
from beatfeeds.services import accounts
from tests.support.instance import utcnow

pytestmark = pytest.mark.browser


def test_a_clerk_uploads_previews_and_downloads_rejected_rows(
    app, live_server, page, beats_store, settings, mixed_file
):
    app.config["WTF_CSRF_ENABLED"] = True
    accounts.add_user(
        beats_store,
        "clerk@example.test",
        "records",
        "correct horse battery",
        actor="test",
        now=utcnow(),
    )
    page.goto(live_server.url + "/records/imports")
    page.get_by_label("Email").fill("clerk@example.test")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server.url + "/records/imports")

    page.get_by_label("CSV file").set_input_files(str(mixed_file))
    page.get_by_role("button", name="Upload and queue").click()
    page.wait_for_selector("#preview")
    assert page.locator("#status").inner_text() == "queued"
    rows = page.locator("#preview tbody tr")
    assert rows.count() == 5
    assert "delayed until" in rows.nth(0).inner_text()  # the delay counts from the import
    assert "12XX BLOCK OF 3RD AVE" in rows.nth(0).inner_text()
    assert "delayed until" in rows.nth(1).inner_text()
    assert "suppressed" in rows.nth(2).inner_text()
    assert "rejected" in rows.nth(3).inner_text()

    summary = jobs.run_job("process-import-queue", beats_store, settings, utcnow())
    assert summary["imported"] == 1
    page.reload()
    page.wait_for_selector("#counters")
    assert page.locator("#status").inner_text() == "done"
    counters = page.locator("#counters").inner_text()
    assert "new\t4" in counters and "rejected\t1" in counters

    with page.expect_download() as info:
        page.locator("#rejected-link").click()
    download = info.value
    assert download.suggested_filename.endswith("-rejected.csv")
    text = open(download.path(), encoding="utf-8-sig").read()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:2] == ["line", "reason"] and rows[1][0] == "5"
    assert "unrecognised date" in rows[1][1]

    page.goto(live_server.url + "/records/imports")
    assert "clerk@example.test" in page.locator("#history-h + table").inner_text()
