"""GET /healthz: 200 {"status": "ok"} from the live server (gunicorn as `make run` serves it)
once the database answers; 503 when the database cannot be reached."""
from __future__ import annotations

import pytest
import requests

from app import create_app
from masking.web.extensions import db


def test_healthz_on_the_live_server(live_server):
    reply = requests.get(live_server.url + "/healthz", timeout=30)
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}


@pytest.mark.parametrize("unreachable", [
    "postgresql://postgres@127.0.0.1:1/x",  # nothing listens on port 1
    "sqlite:////nonexistent-directory/masking.db",  # cannot be opened
])
def test_healthz_503_when_the_database_is_unreachable(unreachable):
    app = create_app({"TESTING": True, "DATABASE_URL": unreachable, "SECRET_KEY": "test-secret"})
    try:
        reply = app.test_client().get("/healthz")
        assert reply.status_code == 503
        assert reply.get_json()["status"] == "error"
    finally:
        with app.app_context():
            db.engine.dispose()
