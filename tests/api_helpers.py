"""Helpers for the API tests (test_api_*.py, test_vendor_examples.py): calling the
endpoints, checking the vendor's envelope byte for byte, and checking the database
invariants directly. Not a conftest: these are plain functions, imported explicitly."""
from __future__ import annotations

import contextlib
import json
from datetime import datetime

from sqlalchemy import func, select, text

from app import create_app
from masking import service
from masking.errors import CODES
from masking.models import ActivePair, Masking, PoolNumber, Route
from masking.web.extensions import db

SET = "/api/v2/Masking/set"
UNSET = "/api/v2/Masking/unset"
GET = "/api/v2/Masking/get"
LIST = "/api/v2/Masking/list"
LOGIN = "/api/v2/Auth/login"
LOGOUT = "/api/v2/Auth/logout"
ENDPOINTS = [SET, UNSET, GET, LIST, LOGIN, LOGOUT]

ERROR_KEYS_AFTER_CODE = ("detail", "data")


# ---------------------------------------------------------------- calling the API

def post(client, path: str, body=None, **kwargs):
    """POST ``body`` (a dict is sent as JSON, str/bytes as they are)."""
    if isinstance(body, dict):
        return client.post(path, json=body, **kwargs)
    return client.post(path, data=body, **kwargs)


def ok(client, path: str, body, **kwargs) -> dict:
    """Call and require success; return ``data``."""
    response = post(client, path, body, **kwargs)
    payload = assert_success_envelope(response)
    return payload["data"]


def err(client, path: str, body, code: int, **kwargs) -> dict:
    """Call and require the error ``code`` in the exact envelope; return the parsed body."""
    return assert_error_envelope(post(client, path, body, **kwargs), code)


def set_masking(client, credentials: dict, m1: str, m2: str, **extra) -> dict:
    return ok(client, SET, {**credentials, "m1": m1, "m2": m2, **extra})


def get_masking(client, credentials: dict, masking_id) -> dict:
    return ok(client, GET, {**credentials, "id": masking_id})


def login(client, credentials: dict) -> str:
    return ok(client, LOGIN, credentials)["ssid"]


# ---------------------------------------------------------------- the envelope

def _ordered(raw: str) -> list:
    return json.loads(raw, object_pairs_hook=lambda pairs: pairs)


def assert_json_response(response) -> str:
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    raw = response.get_data()
    assert int(response.headers["Content-Length"]) == len(raw)
    text_body = raw.decode("utf-8")
    # Compact: no whitespace between tokens outside strings (re-dumping compactly is identity).
    assert json.dumps(json.loads(text_body), separators=(",", ":"), ensure_ascii=False) == text_body
    return text_body


def assert_error_envelope(response, code: int) -> dict:
    """``{"status":"error","message":"...","code":N}`` exactly, optional detail (then data) after code."""
    expected = CODES[code]
    assert response.status_code == expected.http_status, (response.status_code, response.get_data())
    raw = assert_json_response(response)
    prefix = '{"status":"error","message":%s,"code":%d' % (json.dumps(expected.message), code)
    assert raw.startswith(prefix), raw
    keys = [key for key, _ in _ordered(raw)]
    assert keys[:3] == ["status", "message", "code"], keys
    extra = keys[3:]
    assert extra == [k for k in ERROR_KEYS_AFTER_CODE if k in extra], keys
    payload = json.loads(raw)
    if "detail" in payload:
        assert isinstance(payload["detail"], str) and payload["detail"]
    return payload


def assert_success_envelope(response) -> dict:
    assert response.status_code == 200, response.get_data()
    raw = assert_json_response(response)
    assert [key for key, _ in _ordered(raw)] == ["status", "message", "data"], raw
    payload = json.loads(raw)
    assert payload["status"] == "success", payload
    assert isinstance(payload["message"], str) and payload["message"]
    return payload


# ---------------------------------------------------------------- time

def iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"


def parse_iso(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1])


# ---------------------------------------------------------------- the database

def sql(app, statement: str, **params):
    """Run raw SQL on the app's database and commit; returns all rows (or [])."""
    with app.app_context():
        result = db.session.execute(text(statement), params)
        rows = result.all() if result.returns_rows else []
        db.session.commit()
        return rows


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def backend(app) -> str:
    with app.app_context():
        return db.engine.dialect.name


def route_call(app, caller, dialled, now: datetime):
    with app.app_context():
        return service.route_call(db.session(), caller, dialled, now, "IN")


def pool_status(app, number: str, status: str) -> None:
    from masking import pool

    with app.app_context():
        pool.find(db.session(), number, "IN").status = status
        db.session.commit()


def check_invariants(app, now: datetime) -> None:
    """The masking invariants, read straight from the tables.

    (R) no (masking number, party) in two live maskings, and every live masking routes
    both ways through its own two ``routes`` rows; (P) no unordered pair in two live
    maskings, and ``active_pairs`` mirrors the live maskings exactly.
    """
    with app.app_context():
        session = db.session()
        live = list(session.scalars(
            select(Masking).where(Masking.live_at(now))))
        party_on_number = [(m.mask_number, p) for m in live for p in (m.m1, m.m2)]
        assert len(party_on_number) == len(set(party_on_number)), "a party holds one number twice"
        pairs = [tuple(sorted((m.m1, m.m2))) for m in live]
        assert len(pairs) == len(set(pairs)), "one pair has two live maskings"

        # No two routes rows for one (mask_number, party), live or not.
        duplicates = session.execute(
            select(Route.mask_number, Route.party).group_by(Route.mask_number, Route.party)
            .having(func.count() > 1)).all()
        assert duplicates == []
        live_routes = session.execute(select(Route).where(Route.route_until > now)).scalars().all()
        expected = {(m.mask_number, m.m1, m.m2, m.id, m.expires_at) for m in live} | \
                   {(m.mask_number, m.m2, m.m1, m.id, m.expires_at) for m in live}
        assert {(r.mask_number, r.party, r.other_party, r.masking_id, r.route_until) for r in live_routes} == expected
        for route in session.scalars(select(Route)):
            assert route.hold_until >= route.route_until

        live_pairs = session.scalars(select(ActivePair).where(ActivePair.expires_at > now)).all()
        assert {(p.party_low, p.party_high, p.masking_id, p.expires_at) for p in live_pairs} == \
               {(*sorted((m.m1, m.m2)), m.id, m.expires_at) for m in live}

        for masking in session.scalars(select(Masking)):
            assert masking.m1 != masking.m2
            assert masking.mask_number == session.get(PoolNumber, masking.pool_number_id).number
            if masking.ended_at is not None:
                for route in session.scalars(select(Route).where(Route.masking_id == masking.id)):
                    assert route.route_until == masking.ended_at


# ---------------------------------------------------------------- other configurations

@contextlib.contextmanager
def configured_app(database_url: str, clock, **config):
    """An app on the test's database with some settings changed (GEO_MATCH, ...)."""
    application = create_app({"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret",
                              "CLOCK": clock, "COOLOFF_SECONDS": 300, **config})
    try:
        yield application
    finally:
        with application.app_context():
            db.engine.dispose()
