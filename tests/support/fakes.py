"""Loopback stand-ins for Mastodon, Bluesky (an AT Protocol PDS) and X, served by
pytest-httpserver. They answer the API calls beatfeeds makes, keep what was posted, and
honour the duplicate guards the real services offer (Mastodon's Idempotency-Key, a PDS
refusing a second record under the same key). Each can be told to fail, rate-limit or
hold its answer (to kill the client mid-request)."""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time

from pytest_httpserver import URIPattern
from werkzeug import Request, Response


def _json(doc, status=200, headers=None):
    return Response(
        json.dumps(doc), status=status, headers=headers or {}, content_type="application/json"
    )


class Hold:
    """Make the next matching request wait: `received` is set when it arrives, and the
    answer goes out only after `release` is set (or 10 s)."""

    def __init__(self):
        self.armed = False
        self.received = threading.Event()
        self.release = threading.Event()

    def wait(self):
        if self.armed:
            self.armed = False
            self.received.set()
            self.release.wait(10)


class FakeMastodon:
    def __init__(self, server, max_characters=500):
        self.server = server
        self.max_characters = max_characters
        self.statuses: dict[str, dict] = {}
        self.by_key: dict[str, str] = {}
        self.requests: list[dict] = []
        self.fail_next: list[int] = []
        self.hold = Hold()
        self._ids = itertools.count(1000)
        for path in ("/api/v2/instance", "/api/v2/instance/"):
            server.expect_request(path, method="GET").respond_with_handler(self.instance)
        server.expect_request("/api/v1/statuses", method="POST").respond_with_handler(self.post)
        server.expect_request(_Prefix("/api/v1/statuses/"), method="DELETE").respond_with_handler(
            self.delete
        )
        self.profile: dict = {}
        server.expect_request(
            "/api/v1/accounts/update_credentials", method="PATCH"
        ).respond_with_handler(self.update_credentials)

    def update_credentials(self, request: Request):
        self.profile = request.get_json(silent=True) or request.form.to_dict()
        return _json(
            {"id": "1", "username": "beat", "acct": "beat", "note": self.profile.get("note", "")}
        )

    def instance(self, request: Request):
        return _json(
            {
                "domain": "fake.example",
                "version": "4.3.0",
                "configuration": {"statuses": {"max_characters": self.max_characters}},
            }
        )

    def post(self, request: Request):
        key = request.headers.get("Idempotency-Key")
        form = request.get_json(silent=True) or request.form.to_dict()
        self.requests.append(
            {"key": key, "auth": request.headers.get("Authorization"), "status": form.get("status")}
        )
        if self.fail_next:
            return _json({"error": "try later"}, status=self.fail_next.pop(0))
        if key and key in self.by_key:  # Mastodon answers a repeat with the first status
            status = self.statuses[self.by_key[key]]
        else:
            sid = str(next(self._ids))
            status = {
                "id": sid,
                "url": f"https://fake.example/@beat/{sid}",
                "content": form.get("status"),
                "created_at": "2026-01-01T00:00:00.000Z",
                "account": {"id": "1", "username": "beat", "acct": "beat"},
            }
            self.statuses[sid] = status
            if key:
                self.by_key[key] = sid
        self.hold.wait()
        return _json(status)

    def delete(self, request: Request):
        sid = request.path.rsplit("/", 1)[1]
        status = self.statuses.pop(sid, None)
        if status is None:
            return _json({"error": "Record not found"}, status=404)
        return _json(status)


class FakeX:
    def __init__(self, server):
        self.tweets: dict[str, str] = {}
        self.requests: list[dict] = []
        self.hold = Hold()
        self.fail_next: list[int] = []
        self._ids = itertools.count(1_800_000_000_000_000_000)
        server.expect_request("/2/tweets", method="POST").respond_with_handler(self.post)
        server.expect_request(_Prefix("/2/tweets/"), method="DELETE").respond_with_handler(
            self.delete
        )

    def post(self, request: Request):
        doc = request.get_json()
        self.requests.append(
            {"auth": request.headers.get("Authorization", ""), "text": doc.get("text")}
        )
        if self.fail_next:
            status = self.fail_next.pop(0)
            return _json(
                {
                    "title": "Too Many Requests" if status == 429 else "Error",
                    "detail": "fake",
                    "status": status,
                },
                status=status,
                headers={"x-rate-limit-reset": str(int(time.time()) + 900)},
            )
        tid = str(next(self._ids))  # X has no duplicate guard: every request posts
        self.tweets[tid] = doc["text"]
        self.hold.wait()
        return _json({"data": {"id": tid, "text": doc["text"]}}, status=201)

    def delete(self, request: Request):
        tid = request.path.rsplit("/", 1)[1]
        deleted = self.tweets.pop(tid, None) is not None
        return _json({"data": {"deleted": deleted}})


def _jwt(payload: dict) -> str:
    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(payload)}.c2ln"


class FakePDS:
    """An AT Protocol PDS: createSession, createRecord, deleteRecord; 429 on demand."""

    DID = "did:plc:beatk3fakeaccount"

    def __init__(self, server, handle="beat-k3.test", password="app-pass-word"):
        self.handle, self.password = handle, password
        self.records: dict[str, dict] = {}  # rkey -> record
        self.sessions = 0
        self.creates: list[dict] = []
        self.rate_limited_next = 0
        self.reset_at = int(time.time()) + 300
        self.hold = Hold()
        x = "/xrpc/"
        server.expect_request(
            x + "com.atproto.server.createSession", method="POST"
        ).respond_with_handler(self.create_session)
        server.expect_request(
            x + "com.atproto.repo.createRecord", method="POST"
        ).respond_with_handler(self.create_record)
        server.expect_request(
            x + "com.atproto.repo.deleteRecord", method="POST"
        ).respond_with_handler(self.delete_record)
        self.profile: dict | None = None
        server.expect_request(x + "com.atproto.repo.getRecord", method="GET").respond_with_handler(
            self.get_record
        )
        server.expect_request(x + "com.atproto.repo.putRecord", method="POST").respond_with_handler(
            self.put_record
        )

    def get_record(self, request: Request):
        args = request.args
        if args.get("collection") != "app.bsky.actor.profile" or self.profile is None:
            return _json(
                {"error": "RecordNotFound", "message": "Could not locate record"}, status=400
            )
        return _json(
            {
                "uri": f"at://{self.DID}/app.bsky.actor.profile/self",
                "cid": "bafyreiprofile",
                "value": self.profile,
            }
        )

    def put_record(self, request: Request):
        if not self._authorised(request):
            return _json({"error": "AuthenticationRequired"}, status=401)
        doc = request.get_json()
        self.profile = doc["record"]
        return _json(
            {
                "uri": f"at://{doc['repo']}/{doc['collection']}/{doc['rkey']}",
                "cid": "bafyreiprofile2",
            }
        )

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("Authorization", "").startswith("Bearer ")

    def create_session(self, request: Request):
        doc = request.get_json()
        if doc.get("identifier") != self.handle or doc.get("password") != self.password:
            return _json(
                {"error": "AuthenticationRequired", "message": "Invalid identifier or password"},
                status=401,
            )
        self.sessions += 1
        exp = int(time.time()) + 7200
        return _json(
            {
                "did": self.DID,
                "handle": self.handle,
                "accessJwt": _jwt({"sub": self.DID, "exp": exp, "scope": "com.atproto.appPass"}),
                "refreshJwt": _jwt(
                    {"sub": self.DID, "exp": exp + 86400, "scope": "com.atproto.refresh"}
                ),
                "active": True,
            }
        )

    def create_record(self, request: Request):
        if not self._authorised(request):
            return _json({"error": "AuthenticationRequired"}, status=401)
        doc = request.get_json()
        self.creates.append(doc)
        if self.rate_limited_next:
            self.rate_limited_next -= 1
            return _json(
                {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                status=429,
                headers={
                    "ratelimit-limit": "5000",
                    "ratelimit-remaining": "0",
                    "ratelimit-reset": str(self.reset_at),
                    "ratelimit-policy": "5000;w=3600",
                },
            )
        rkey = doc["rkey"]
        if rkey in self.records:
            return _json(
                {"error": "InvalidRequest", "message": f"Record already exists: {rkey}"}, status=400
            )
        self.records[rkey] = doc["record"]
        self.hold.wait()
        uri = f"at://{doc['repo']}/{doc['collection']}/{rkey}"
        return _json({"uri": uri, "cid": "bafyreifakecid" + rkey})

    def delete_record(self, request: Request):
        if not self._authorised(request):
            return _json({"error": "AuthenticationRequired"}, status=401)
        doc = request.get_json()
        self.records.pop(doc["rkey"], None)
        return _json({})


class _Prefix(URIPattern):
    """A URI matcher for pytest-httpserver: any path under a prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def match(self, uri: str) -> bool:
        return uri.startswith(self.prefix)
