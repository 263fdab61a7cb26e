"""POST /api/v2/Masking/unset: ending and re-timing maskings, selected by mask, m1, m2."""
from datetime import datetime, timedelta

import pytest

from masking.models import ActivePair, Masking, Route
from masking.web.extensions import db
from tests.api_helpers import (
    SET,
    UNSET,
    check_invariants,
    count,
    err,
    get_masking,
    iso,
    ok,
    parse_iso,
    route_call,
    set_masking,
)
from tests.conftest import PARTIES, POOL, add_pool, make_account

A, B, C, D, E = PARTIES[:5]
T0 = datetime(2030, 1, 1, 6, 30, 0)


@pytest.fixture
def now(clock):
    clock.set(T0)
    return clock


@pytest.fixture
def three(client, account, pool_of_three, now):
    """A-B, A-C and D-E, all active for 60 minutes: A-B and A-C share A, so differ in number."""
    return {
        "ab": set_masking(client, account, A, B, expiry_duration=60),
        "ac": set_masking(client, account, A, C, expiry_duration=60),
        "de": set_masking(client, account, D, E, expiry_duration=60),
    }


def unset(client, account, **selector) -> dict:
    return ok(client, UNSET, {**account, **selector})


def ids(data) -> set[int]:
    return {m["id"] for m in data["maskings"]}


def statuses(client, account, three) -> dict:
    return {name: get_masking(client, account, m["id"])["status"] for name, m in three.items()}


# ---------------------------------------------------------------- selecting

def test_by_mask_ends_every_masking_of_the_account_on_that_number(client, app, account, now):
    add_pool(app, POOL[0])
    first = set_masking(client, account, A, B)
    second = set_masking(client, account, C, D)
    assert first["mask"] == second["mask"] == POOL[0]
    data = unset(client, account, mask=POOL[0])
    assert data["action"] == "ended" and data["count"] == 2
    assert ids(data) == {first["id"], second["id"]}
    check_invariants(app, T0)


@pytest.mark.parametrize("extra", [{}, {"expiry_duration": 30}])
def test_many_matches_are_changed_in_chunks_of_ids(client, app, account, now, monkeypatch, extra):
    from masking import service

    monkeypatch.setattr(service, "_CHUNK", 2)  # five maskings: chunks of 2, 2 and 1
    add_pool(app, POOL[0])
    made = [set_masking(client, account, PARTIES[2 * i], PARTIES[2 * i + 1]) for i in range(5)]
    data = unset(client, account, mask=POOL[0], **extra)
    assert data["count"] == 5 and ids(data) == {m["id"] for m in made}
    expected = "ended" if not extra else "active"
    assert {get_masking(client, account, m["id"])["status"] for m in made} == {expected}
    with app.app_context():
        routes = db.session.query(Route).all()
        assert len(routes) == 10
        until = T0 if not extra else T0 + timedelta(minutes=30)
        assert {r.route_until for r in routes} == {until}
        assert {r.hold_until for r in routes} == {until + timedelta(seconds=300)}
        assert db.session.query(ActivePair).count() == (0 if not extra else 5)
    check_invariants(app, T0)


def test_by_mask_in_national_form(client, account, three):
    data = unset(client, account, mask=three["ab"]["mask"].replace("+91", "0"))
    assert ids(data) == {three["ab"]["id"]}
    data = unset(client, account, mask=int(three["ac"]["mask"][3:]))  # bare number, as the vendor sends it
    assert ids(data) == {three["ac"]["id"]}


@pytest.mark.parametrize("field", ["m1", "m2"])
def test_a_party_alone_matches_it_on_either_side(client, account, three, field):
    data = unset(client, account, **{field: A})
    assert ids(data) == {three["ab"]["id"], three["ac"]["id"]}
    assert statuses(client, account, three) == {"ab": "ended", "ac": "ended", "de": "active"}


@pytest.mark.parametrize("m1, m2", [(A, B), (B, A), ("09876543201", "+91 98765 43200")])
def test_both_parties_narrow_to_the_pair_in_either_order(client, account, three, m1, m2):
    data = unset(client, account, m1=m1, m2=m2)
    assert ids(data) == {three["ab"]["id"]}
    assert statuses(client, account, three) == {"ab": "ended", "ac": "active", "de": "active"}


def test_mask_and_party_narrow_together(client, account, three):
    data = unset(client, account, mask=three["ac"]["mask"], m1=A)
    assert ids(data) == {three["ac"]["id"]}
    err(client, UNSET, {**account, "mask": three["ab"]["mask"], "m1": C}, 1506)
    assert statuses(client, account, three) == {"ab": "active", "ac": "ended", "de": "active"}


def test_no_match_is_1506_and_changes_nothing(client, app, account, three):
    payload = err(client, UNSET, {**account, "m1": PARTIES[50]}, 1506)
    assert "+91 98XXXXX250" in payload["detail"] and PARTIES[50] not in payload["detail"]
    err(client, UNSET, {**account, "mask": POOL[50]}, 1506)
    err(client, UNSET, {**account, "m1": B, "m2": C}, 1506)
    assert set(statuses(client, account, three).values()) == {"active"}
    check_invariants(app, T0)


def test_ended_and_expired_maskings_are_not_matched(client, account, three, clock):
    unset(client, account, m1=A, m2=B)
    err(client, UNSET, {**account, "m1": A, "m2": B}, 1506)  # already ended
    clock.set(T0 + timedelta(minutes=60))
    err(client, UNSET, {**account, "m1": D}, 1506)  # expired
    err(client, UNSET, {**account, "m1": A, "expiry_duration": 30}, 1506)  # cannot revive


@pytest.mark.parametrize("selector, detail", [
    ({}, "give at least one of mask, m1, m2"),
    ({"mask": "", "m1": "", "m2": None}, "give at least one of mask, m1, m2"),
    ({"mask": "12345"}, "mask is not a valid phone number"),
    ({"m1": "abc"}, "m1 is not a phone number"),
    ({"m2": True}, "m2 must be a phone number"),
    ({"m1": 9876543200.0}, "m1 must be a phone number"),
    ({"mask": {"n": 1}}, "mask must be a phone number"),
])
def test_bad_selector_is_1000(client, account, three, selector, detail):
    assert detail in err(client, UNSET, {**account, **selector}, 1000)["detail"]


# ---------------------------------------------------------------- ending

@pytest.mark.parametrize("extra", [{}, {"expiry_duration": -1}, {"expiry_duration": "-1"},
                                   {"expiry_duration": 0}, {"expiry_duration": -99999}])
def test_ending(client, app, account, three, clock, extra):
    clock.set(T0 + timedelta(minutes=5, microseconds=500))
    data = unset(client, account, m1=A, m2=B, **extra)
    assert data["action"] == "ended" and data["count"] == 1
    view = data["maskings"][0]
    assert view["status"] == "ended"
    assert view["ended_at"] == iso(T0 + timedelta(minutes=5))
    assert view["expires_at"] == three["ab"]["expires_at"]  # the planned expiry is kept for the record
    assert get_masking(client, account, view["id"]) == view
    ab = three["ab"]["mask"]
    assert route_call(app, A, ab, clock()) is None
    assert route_call(app, B, ab, clock()) is None
    assert route_call(app, A, three["ac"]["mask"], clock()) == C  # the other masking of A still routes
    with app.app_context():
        assert db.session.get(ActivePair, tuple(sorted((A, B)))) is None
        assert db.session.get(Masking, view["id"]).ended_at == clock()
    check_invariants(app, clock())


def test_ended_pair_can_be_set_again_at_once_on_another_number(client, app, account, three, now):
    unset(client, account, m1=A, m2=B)
    again = set_masking(client, account, A, B)
    assert again["id"] != three["ab"]["id"]
    assert again["mask"] != three["ab"]["mask"]  # cool-off on the number just left
    check_invariants(app, T0)


# ---------------------------------------------------------------- re-timing

def test_positive_duration_extends_from_now(client, app, account, three, clock):
    clock.set(T0 + timedelta(minutes=50, microseconds=10))
    data = unset(client, account, m1=A, m2=B, expiry_duration=120)
    new_expiry = T0 + timedelta(minutes=170)
    assert data["action"] == "extended" and data["count"] == 1
    assert data["maskings"][0]["expires_at"] == iso(new_expiry)
    assert data["maskings"][0]["status"] == "active" and data["maskings"][0]["ended_at"] is None

    clock.set(T0 + timedelta(minutes=61))  # past the old expiry
    assert get_masking(client, account, three["ab"]["id"])["status"] == "active"
    assert route_call(app, A, three["ab"]["mask"], clock()) == B
    err(client, SET, {**account, "m1": B, "m2": A}, 1503)
    check_invariants(app, clock())

    clock.set(new_expiry - timedelta(microseconds=1))
    assert route_call(app, B, three["ab"]["mask"], clock()) == A
    clock.set(new_expiry)
    assert get_masking(client, account, three["ab"]["id"])["status"] == "expired"
    assert route_call(app, B, three["ab"]["mask"], clock()) is None
    set_masking(client, account, A, B)
    check_invariants(app, clock())


def test_expiry_time_sets_a_new_expiry_and_can_shorten(client, app, account, three, now):
    data = unset(client, account, mask=three["de"]["mask"], m2=D, expiry_time="2030-01-01 12:10:00")  # IST
    assert data["action"] == "extended"
    assert parse_iso(data["maskings"][0]["expires_at"]) == T0 + timedelta(minutes=10)
    with app.app_context():
        routes = db.session.query(Route).filter(Route.masking_id == three["de"]["id"]).all()
        assert {r.route_until for r in routes} == {T0 + timedelta(minutes=10)}
        assert {r.hold_until for r in routes} == {T0 + timedelta(minutes=10, seconds=300)}
    check_invariants(app, T0)


def test_digit_string_duration_and_both_fields(client, account, three, now):
    data = unset(client, account, m1=A, expiry_duration="15")
    assert data["count"] == 2
    assert {m["expires_at"] for m in data["maskings"]} == {iso(T0 + timedelta(minutes=15))}
    data = unset(client, account, m1=D, expiry_duration=-1, expiry_time="2030-01-01T07:30:00Z")  # time wins
    assert data["action"] == "extended"
    assert data["maskings"][0]["expires_at"] == "2030-01-01T07:30:00Z"


@pytest.mark.parametrize("extra, code", [
    ({"expiry_duration": 1.5}, 1502),
    ({"expiry_duration": True}, 1502),
    ({"expiry_duration": "soon"}, 1502),
    ({"expiry_duration": ""}, 1502),
    ({"expiry_duration": {"m": 1}}, 1502),
    ({"expiry_duration": 43201}, 1502),
    ({"expiry_time": "2020-01-01T00:00:00Z"}, 1507),
    ({"expiry_time": "2030-01-01T06:30:00Z"}, 1507),
    ({"expiry_time": "2031-01-01T00:00:00Z"}, 1507),
    ({"expiry_time": "later"}, 1507),
    ({"expiry_time": 1893479400000}, 1507),
])
def test_bad_expiry_changes_nothing(client, app, account, three, extra, code):
    err(client, UNSET, {**account, "m1": A, **extra}, code)
    assert set(statuses(client, account, three).values()) == {"active"}
    for masking in three.values():
        assert get_masking(client, account, masking["id"])["expires_at"] == masking["expires_at"]


def test_extension_keeps_the_cool_off_after_the_new_expiry(client, app, account, now, clock):
    add_pool(app, POOL[0])
    first = set_masking(client, account, A, B, expiry_duration=10)
    unset(client, account, mask=POOL[0], expiry_duration=20)
    clock.set(T0 + timedelta(minutes=20, seconds=299))
    err(client, SET, {**account, "m1": A, "m2": C}, 1505)
    clock.set(T0 + timedelta(minutes=20, seconds=300))
    assert set_masking(client, account, A, C)["mask"] == first["mask"]


# ---------------------------------------------------------------- ownership and permission

def test_another_account_cannot_unset(client, app, account, three):
    other = make_account(app, "other")
    err(client, UNSET, {**other, "mask": three["ab"]["mask"]}, 1506)
    err(client, UNSET, {**other, "m1": A}, 1506)
    err(client, UNSET, {**other, "m1": A, "m2": B, "expiry_duration": 600}, 1506)
    assert set(statuses(client, account, three).values()) == {"active"}


def test_unset_touches_only_the_callers_maskings_on_a_shared_number(client, app, account, now):
    add_pool(app, POOL[0])
    other = make_account(app, "other")
    mine = set_masking(client, account, A, B)
    theirs = set_masking(client, other, C, D)
    assert mine["mask"] == theirs["mask"]
    assert ids(unset(client, account, mask=POOL[0])) == {mine["id"]}
    assert get_masking(client, other, theirs["id"])["status"] == "active"


def test_read_only_account_cannot_unset(client, app, account, three):
    reader = make_account(app, "reader", can_write=False)
    err(client, UNSET, {**reader, "m1": A}, 1015)
    assert count(app, Masking) == 3
