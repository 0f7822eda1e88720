"""Fixtures of the services' tests used by more than one module."""

from __future__ import annotations

import pytest

from tests.support.alerts import alerts_app


@pytest.fixture
def mailapp(tmp_path, smtp_server):
    app, store, settings = alerts_app(
        tmp_path, smtp_url=smtp_server.url, mail_from="SPD Alerts <alerts@feeds.example.test>"
    )
    return app, store, settings, smtp_server
