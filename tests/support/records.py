"""The records workflow over HTTP: uploading a file, the upload's id, running the queue."""

from __future__ import annotations

from pathlib import Path

from beatfeeds import jobs
from tests.support.instance import utcnow


def upload(client, path: Path, **data):
    with open(path, "rb") as fh:
        return client.post(
            "/records/imports",
            data={"file": (fh, path.name), **data},
            content_type="multipart/form-data",
        )


def upload_id(resp) -> int:
    assert resp.status_code == 302, resp.data[:500]
    return int(resp.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def run_queue(store, settings) -> dict:
    return jobs.run_job("process-import-queue", store, settings, utcnow())
