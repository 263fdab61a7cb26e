"""Credentials: ssid, or userId with token; Auth/login and Auth/logout; read-only accounts."""
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from masking import accounts
from masking.models import ApiAccount, ApiSession, Masking
from masking.web.extensions import db
from tests.api_helpers import (
    GET,
    LIST,
    LOGIN,
    LOGOUT,
    SET,
    UNSET,
    configured_app,
    count,
    err,
    iso,
    login,
    ok,
    set_masking,
)
from tests.conftest import PARTIES, make_account

A, B = PARTIES[:2]
T0 = datetime(2030, 1, 1, 6, 30, 0)

# A valid request body for each endpoint, without credentials.
REQUESTS = {
    SET: {"m1": A, "m2": B},
    UNSET: {"m1": A},
    GET: {"id": 1},
    LIST: {"limit": 10},
}


@pytest.fixture
def now(clock):
    clock.set(T0)
    return clock


def revoke(app, user_id: str) -> None:
    with app.app_context():
        accounts.revoke_account(db.session(), accounts.find_account(db.session(), user_id), T0)
        db.session.commit()


# ---------------------------------------------------------------- missing or mixed: 1000

@pytest.mark.parametrize("path", list(REQUESTS))
@pytest.mark.parametrize("credentials, detail", [
    ({}, "credentials are required: ssid, or userId with token"),
    ({"ssid": ""}, "credentials are required"),
    ({"userId": "", "token": ""}, "credentials are required"),
    ({"ssid": None, "userId": None}, "credentials are required"),
    ({"userId": "u123"}, "token is required with userId"),
    ({"token": "mtk_x"}, "userId is required with token"),
    ({"ssid": "mss_x", "userId": "u123", "token": "mtk_x"}, "not both"),
    ({"ssid": "mss_x", "token": "mtk_x"}, "not both"),
    ({"ssid": "mss_x", "userId": "u123"}, "not both"),
    ({"ssid": True}, "ssid must be a string"),
    ({"userId": {"id": 1}, "token": "t"}, "userId must be a string"),
    ({"userId": "u1", "token": ["t"]}, "token must be a string"),
    ({"ssid": 1.5}, "ssid must be a string"),
])
def test_missing_or_mixed_credentials_are_1000(client, pool_of_three, path, credentials, detail):
    payload = err(client, path, {**REQUESTS[path], **credentials}, 1000)
    assert detail in payload["detail"]


def test_mixed_credentials_are_refused_even_when_each_is_valid(client, account, pool_of_three, now):
    ssid = login(client, account)
    err(client, SET, {**account, "ssid": ssid, "m1": A, "m2": B}, 1000)
    assert count(client.application, Masking) == 0


# ---------------------------------------------------------------- wrong, expired, revoked: 1014

@pytest.mark.parametrize("path", list(REQUESTS))
def test_wrong_token_or_user_is_1014(client, app, account, pool_of_three, path):
    other = make_account(app, "other")
    for credentials in (
        {"userId": account["userId"], "token": account["token"] + "x"},
        {"userId": account["userId"], "token": other["token"]},          # another account's token
        {"userId": "u0000000000000000", "token": account["token"]},
        {"userId": account["userId"], "token": account["token"].upper()},
        {"ssid": "mss_not-a-session"},
        {"ssid": account["token"]},                                       # a token is not an ssid
    ):
        err(client, path, {**REQUESTS[path], **credentials}, 1014)
    assert count(app, Masking) == 0


def test_revoked_account_is_1014_by_token_and_by_ssid(client, app, account, pool_of_three, now):
    ssid = login(client, account)
    set_masking(client, {"ssid": ssid}, A, B)
    revoke(app, account["userId"])
    for credentials in (account, {"ssid": ssid}):
        for path, body in REQUESTS.items():
            payload = err(client, path, {**body, **credentials}, 1014)
            assert "revoked" in payload["detail"] or "not valid" in payload["detail"]
    err(client, LOGIN, account, 1014)


def test_ssid_expires_exactly_at_its_expiry(client, account, pool_of_three, clock):
    clock.set(T0 + timedelta(microseconds=700))
    data = ok(client, LOGIN, account)
    expires = T0 + timedelta(seconds=86400)
    assert data["expires_at"] == iso(expires)
    assert data["ssid"].startswith("mss_")
    clock.set(expires - timedelta(microseconds=1))
    ok(client, LIST, {"ssid": data["ssid"]})
    clock.set(expires)
    assert "expired" in err(client, LIST, {"ssid": data["ssid"]}, 1014)["detail"]
    err(client, LOGOUT, {"ssid": data["ssid"]}, 1014)
    # The account itself still works.
    ok(client, LIST, account)


def test_ssid_lifetime_is_configurable(database_url, clock):
    clock.set(T0)
    with configured_app(database_url, clock, SSID_TTL_SECONDS=120) as application:
        account = make_account(application)
        client = application.test_client()
        data = ok(client, LOGIN, account)
        assert data["expires_at"] == iso(T0 + timedelta(seconds=120))
        clock.set(T0 + timedelta(seconds=120))
        err(client, LIST, {"ssid": data["ssid"]}, 1014)


# ---------------------------------------------------------------- login and logout

def test_login_gives_an_ssid_that_acts_for_the_account(client, app, account, pool_of_three, now):
    ssid = login(client, account)
    made = set_masking(client, {"ssid": ssid}, A, B)
    assert ok(client, GET, {**account, "id": made["id"]})["id"] == made["id"]  # same owner
    assert ok(client, GET, {"ssid": ssid, "id": made["id"]})["mask"] == made["mask"]
    second = login(client, account)
    assert second != ssid  # each login is its own session
    ok(client, LIST, {"ssid": second})


def test_login_requires_string_credentials(client, account):
    err(client, LOGIN, {"userId": 12345, "token": account["token"]}, 1000)


@pytest.mark.parametrize("body, detail", [
    ({"userId": "u1"}, "userId and token are required strings"),
    ({"token": "t"}, "userId and token are required strings"),
    ({"userId": "", "token": "t"}, "userId and token are required strings"),
    ({"userId": "u1", "token": True}, "userId and token are required strings"),
    ({"userId": "u1", "token": "t", "ssid": "mss_x"}, "not ssid"),
    ({"ssid": "mss_x"}, "not ssid"),
])
def test_login_bad_parameters_are_1000(client, body, detail):
    assert detail in err(client, LOGIN, body, 1000)["detail"]


def test_login_wrong_token_is_1014_and_opens_no_session(client, app, account):
    err(client, LOGIN, {"userId": account["userId"], "token": "mtk_wrong"}, 1014)
    err(client, LOGIN, {"userId": "u-unknown", "token": account["token"]}, 1014)
    assert count(app, ApiSession) == 0


def test_logout_revokes_only_that_ssid(client, account, pool_of_three, now):
    first, second = login(client, account), login(client, account)
    data = ok(client, LOGOUT, {"ssid": first})
    assert data == {"ssid_revoked": True}
    assert "not valid" in err(client, LIST, {"ssid": first}, 1014)["detail"]
    err(client, LOGOUT, {"ssid": first}, 1014)  # twice
    ok(client, LIST, {"ssid": second})
    ok(client, LIST, account)


@pytest.mark.parametrize("body, code", [
    ({}, 1047),  # an empty object is no request at all
    ({"ssid": ""}, 1000),
    ({"ssid": 123}, 1000),
    ({"ssid": "mss_unknown"}, 1014),
])
def test_logout_needs_a_live_ssid(client, account, body, code):
    err(client, LOGOUT, body, code)


def test_logout_with_token_credentials_is_1000(client, account):
    assert "ssid is required" in err(client, LOGOUT, account, 1000)["detail"]


def test_logout_with_ssid_and_token_is_1000(client, account):
    ssid = login(client, account)
    err(client, LOGOUT, {"ssid": ssid, **account}, 1000)
    ok(client, LIST, {"ssid": ssid})  # not revoked by the refused call


def test_tokens_and_ssids_are_stored_only_as_hashes(client, app, account):
    ssid = login(client, account)
    with app.app_context():
        stored = db.session.scalar(select(ApiAccount).where(ApiAccount.user_id == account["userId"]))
        assert account["token"] not in stored.token_hash and len(stored.token_hash) == 64
        sessions = db.session.scalars(select(ApiSession)).all()
        assert len(sessions) == 1 and ssid not in sessions[0].ssid_hash
        assert all(ssid not in str(value) for value in vars(sessions[0]).values())


def test_tokens_are_random_and_distinct(app):
    made = [make_account(app, f"a{i}") for i in range(5)]
    assert len({m["token"] for m in made}) == 5 and len({m["userId"] for m in made}) == 5
    assert all(m["token"].startswith("mtk_") and len(m["token"]) > 40 for m in made)


# ---------------------------------------------------------------- permission: 1015

def test_read_only_account_writing_is_1015(client, app, pool_of_three, now):
    reader = make_account(app, "reader", can_write=False)
    ssid = login(client, reader)  # may log in
    for credentials in (reader, {"ssid": ssid}):
        payload = err(client, SET, {**credentials, "m1": A, "m2": B}, 1015)
        assert "may read" in payload["detail"]
        err(client, UNSET, {**credentials, "m1": A}, 1015)
        ok(client, LIST, credentials)
        err(client, GET, {**credentials, "id": 1}, 1506)
    assert count(app, Masking) == 0


def test_credentials_are_checked_before_the_request(client, pool_of_three):
    # Bad input and bad credentials: the credentials are reported first, nothing is revealed.
    err(client, SET, {"ssid": "mss_x", "m1": "12", "m2": "12"}, 1014)
    err(client, SET, {"m1": A, "m2": A}, 1000)
