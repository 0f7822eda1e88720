"""Staff accounts for tests: an admin and a records clerk, their passwords, signing in."""

from __future__ import annotations

ADMIN = "admin@example.org"
CLERK = "clerk@example.org"
ADMIN_PW = "admin password 1234"
CLERK_PW = "clerk password 5678"


def login(client, email, password, **kw):
    return client.post("/login", data={"email": email, "password": password}, **kw)
