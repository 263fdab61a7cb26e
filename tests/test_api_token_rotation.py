"""Token rotation: an account gets a new token, the old one works for a grace period (or stops at
once, with the account's ssids), and the account keeps its maskings."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from masking import accounts, administration
from masking.db import write_transaction
from masking.models import ApiAccount
from masking.web.extensions import db, now
from masking.web.service_client import ensure_builtin_account
from tests.admin_helpers import audit_entries
from tests.api_helpers import GET, LIST, LOGIN, UNSET, err, login, ok, set_masking
from tests.conftest import PARTIES, make_account

A, B, C, D = PARTIES[:4]
T0 = datetime(2030, 1, 1, 6, 30, 0, 250000)  # microseconds: the grace ends on a whole second


@pytest.fixture
def at_t0(clock):
    clock.set(T0)
    return clock


def rotate(app, user_id: str, grace_minutes: int = 0) -> dict:
    """Rotate as an admin would; the new credentials as make_account gives them."""
    with app.app_context():
        with write_transaction(db.session()):
            account = accounts.find_account(db.session(), user_id)
            rotated = administration.rotate_api_account(db.session(), None, account, now(), grace_minutes)
        return {"userId": rotated.account.user_id, "token": rotated.token}


def stored(app, user_id: str) -> ApiAccount:
    with app.app_context():
        account = accounts.find_account(db.session(), user_id)
        db.session.expunge(account)
        return account


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_new_token_works_and_only_its_hash_is_stored(app, client, account, at_t0):
    new = rotate(app, account["userId"], 60)
    assert new["userId"] == account["userId"]
    assert new["token"].startswith("mtk_") and new["token"] != account["token"]
    ok(client, LIST, new)
    ok(client, LOGIN, new)
    row = stored(app, account["userId"])
    assert row.token_hash == _sha(new["token"]) and row.previous_token_hash == _sha(account["token"])
    assert row.previous_token_until == datetime(2030, 1, 1, 7, 30, 0)  # whole seconds, as an ssid's expiry


def test_the_old_token_works_during_the_grace_and_is_1014_after_it(app, client, account, clock, at_t0):
    new = rotate(app, account["userId"], 60)
    until = datetime(2030, 1, 1, 7, 30, 0)
    clock.set(until - timedelta(microseconds=1))
    ok(client, LIST, account)
    ok(client, LIST, new)
    clock.set(until)
    assert err(client, LIST, account, 1014)["detail"] == "userId and token do not match an account"
    ok(client, LIST, new)
    clock.advance(days=30)
    err(client, LIST, account, 1014)
    ok(client, LIST, new)


def test_login_with_the_old_token_during_the_grace_and_not_after(app, client, account, clock, at_t0):
    rotate(app, account["userId"], 10080)
    ssid = login(client, account)
    ok(client, LIST, {"ssid": ssid})
    clock.set(datetime(2030, 1, 8, 6, 30, 0))  # the grace's end, on the app's clock
    assert err(client, LOGIN, account, 1014)["detail"] == "userId and token do not match an account"


def test_grace_zero_stops_the_old_token_and_revokes_every_open_ssid(app, client, account, pool_of_three, at_t0):
    other = make_account(app, "other")
    ssids = [login(client, account), login(client, account)]
    other_ssid = login(client, other)
    new = rotate(app, account["userId"])  # the default: a leaked token
    err(client, LIST, account, 1014)
    err(client, LOGIN, account, 1014)
    for ssid in ssids:
        assert err(client, LIST, {"ssid": ssid}, 1014)["detail"] == "ssid is not valid"
    ok(client, LIST, {"ssid": other_ssid})  # another account's sessions are left alone
    ok(client, LIST, other)
    fresh = login(client, new)
    set_masking(client, {"ssid": fresh}, A, B)
    row = stored(app, account["userId"])
    assert row.previous_token_hash is None and row.previous_token_until is None


def test_with_a_grace_open_ssids_run_to_their_own_expiry(app, client, account, clock, at_t0):
    ssid = login(client, account)  # expires at T0 + 24 h (whole seconds)
    rotate(app, account["userId"], 60)
    clock.advance(hours=2)
    err(client, LIST, account, 1014)  # the old token is over
    ok(client, LIST, {"ssid": ssid})  # its ssid is not
    clock.set(T0.replace(microsecond=0) + timedelta(days=1))
    assert "expired" in err(client, LIST, {"ssid": ssid}, 1014)["detail"]


def test_the_account_keeps_its_maskings(app, client, account, pool_of_three, at_t0):
    first = set_masking(client, account, A, B)
    second = set_masking(client, account, C, D)
    new = rotate(app, account["userId"])
    assert ok(client, GET, {**new, "id": first["id"]})["mask"] == first["mask"]
    assert [m["id"] for m in ok(client, LIST, new)["maskings"]] == [second["id"], first["id"]]
    ended = ok(client, UNSET, {**new, "m1": A})
    assert ended["action"] == "ended" and [m["id"] for m in ended["maskings"]] == [first["id"]]
    assert ok(client, GET, {**new, "id": first["id"]})["status"] == "ended"


def test_a_read_only_account_keeps_reading_after_a_rotation(app, client, account, pool_of_three, at_t0):
    reader = make_account(app, "reports", can_write=False, reads_for=account)
    made = set_masking(client, account, A, B)
    new = rotate(app, reader["userId"])
    assert ok(client, GET, {**new, "id": made["id"]})["id"] == made["id"]
    err(client, GET, {**reader, "id": made["id"]}, 1014)


def test_rotating_during_a_grace_ends_the_token_before_it(app, client, account, at_t0):
    second = rotate(app, account["userId"], 1440)
    third = rotate(app, account["userId"], 60)
    err(client, LIST, account, 1014)
    ok(client, LIST, second)
    ok(client, LIST, third)
    fourth = rotate(app, account["userId"], 0)
    for old in (second, third):
        err(client, LIST, old, 1014)
    ok(client, LIST, fourth)


def test_a_revoked_account_cannot_be_rotated(app, client, account, at_t0):
    with app.app_context():
        accounts.revoke_account(db.session(), accounts.find_account(db.session(), account["userId"]), T0)
        db.session.commit()
    refusal = f"^A revoked account cannot be given a new token, and {account['userId']} is revoked; create a new"
    with pytest.raises(administration.AdminError, match=refusal + " account instead.$"):
        rotate(app, account["userId"])
    row = stored(app, account["userId"])
    assert row.token_hash == _sha(account["token"]) and row.previous_token_hash is None
    assert audit_entries(app) == []


@pytest.mark.parametrize("grace", [-1, 10081, 10 ** 12, 1.5, True, "60", None])
def test_a_grace_outside_0_to_7_days_is_refused_and_changes_nothing(app, client, account, at_t0, grace):
    ssid = login(client, account)
    with pytest.raises(administration.AdminError, match=r"0 to 10080 minutes \(7 days\)"):
        rotate(app, account["userId"], grace)
    ok(client, LIST, account)
    ok(client, LIST, {"ssid": ssid})
    assert stored(app, account["userId"]).token_hash == _sha(account["token"])
    assert audit_entries(app) == []


def test_the_longest_grace_is_seven_days(app, client, account, clock, at_t0):
    rotate(app, account["userId"], 10080)
    clock.set(datetime(2030, 1, 8, 6, 29, 59))
    ok(client, LIST, account)
    clock.advance(seconds=1)
    err(client, LIST, account, 1014)


def test_the_dashboards_own_account_is_refused(app, client, at_t0):
    with app.app_context():
        user_id, token = ensure_builtin_account()
    with pytest.raises(administration.AdminError, match="derived from SECRET_KEY"):
        rotate(app, user_id)
    ok(client, LIST, {"userId": user_id, "token": token})
    assert audit_entries(app) == []


def test_the_audit_entry_says_who_which_account_and_the_grace_never_the_token(app, account, at_t0):
    quick = rotate(app, account["userId"])
    slow = rotate(app, account["userId"], 90)
    entries = audit_entries(app, administration.API_ACCOUNT_ROTATE)
    assert [(e.actor_name, e.target) for e in entries] == [("command line", account["userId"])] * 2
    assert entries[0].detail == "integrator: the old token stopped at once and its open sessions were revoked"
    assert entries[1].detail == ("integrator: the old token works 1 hour 30 minutes more, "
                                 "until 2030-01-01T08:00:00Z")
    for entry in entries:
        for token in (account["token"], quick["token"], slow["token"]):
            assert token not in entry.detail and token[4:] not in entry.detail
