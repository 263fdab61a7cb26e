"""POST /api/v2/Masking/set: validation, allocation, expiry at the boundary, refusals by the database."""
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from masking.models import ActivePair, Masking, PoolNumber, Route
from masking.web.extensions import db
from tests.api_helpers import (
    SET,
    UNSET,
    backend,
    check_invariants,
    configured_app,
    count,
    err,
    get_masking,
    iso,
    ok,
    parse_iso,
    pool_status,
    post,
    route_call,
    set_masking,
    sql,
)
from tests.conftest import PARTIES, POOL, add_pool, make_account

A, B, C, D, E = PARTIES[:5]
T0 = datetime(2030, 1, 1, 6, 30, 0)  # a whole second, so boundaries are exact


@pytest.fixture
def now(clock):
    clock.set(T0)
    return clock


def body(account, m1=A, m2=B, **extra):
    return {**account, "m1": m1, "m2": m2, **extra}


# ---------------------------------------------------------------- success

def test_success_returns_the_masking(client, account, pool_of_three, now):
    data = set_masking(client, account, "9876543200", "+91 98765 43201", eventId="customer_support_123",
                       expiry_duration=1440)
    assert set(data) == {"id", "mask", "m1", "m2", "eventId", "status", "created_at", "expires_at", "ended_at"}
    assert isinstance(data["id"], int)
    assert data["mask"] == POOL[0]
    assert (data["m1"], data["m2"]) == (PARTIES[0], PARTIES[1])
    assert data["eventId"] == "customer_support_123"
    assert data["status"] == "active"
    assert data["created_at"] == iso(T0)
    assert data["expires_at"] == iso(T0 + timedelta(minutes=1440))
    assert data["ended_at"] is None
    assert get_masking(client, account, data["id"]) == data
    check_invariants(client.application, T0)


def test_default_expiry_applies_when_none_is_given(client, account, pool_of_three, now):
    data = set_masking(client, account, A, B)
    assert parse_iso(data["expires_at"]) == T0 + timedelta(minutes=60)


def test_created_and_expiry_are_whole_seconds_from_a_fractional_now(client, account, pool_of_three, clock):
    clock.set(T0 + timedelta(microseconds=999_999))
    data = set_masking(client, account, A, B, expiry_duration=1)
    assert data["expires_at"] == iso(T0 + timedelta(minutes=1))
    with client.application.app_context():
        stored = db.session.get(Masking, data["id"])
        assert stored.expires_at == T0 + timedelta(minutes=1)  # what we report is what we enforce


MINUTES_30_UNIX = int((T0 + timedelta(minutes=30) - datetime(1970, 1, 1)).total_seconds())


@pytest.mark.parametrize("extra, expires", [
    ({"expiry_duration": "1440"}, T0 + timedelta(minutes=1440)),
    ({"expiry_duration": " 15 "}, T0 + timedelta(minutes=15)),
    ({"expiry_duration": 43200}, T0 + timedelta(minutes=43200)),
    ({"expiry_time": "2030-01-01T12:30:00+05:30"}, T0 + timedelta(minutes=30)),
    ({"expiry_time": "2030-01-01T07:00:00Z"}, T0 + timedelta(minutes=30)),
    ({"expiry_time": "2030-01-01 12:30:00"}, T0 + timedelta(minutes=30)),  # Asia/Kolkata
    ({"expiry_time": "2030-01-01T12:30:00"}, T0 + timedelta(minutes=30)),
    ({"expiry_time": "2030-01-01 12:30"}, T0 + timedelta(minutes=30)),
    ({"expiry_time": MINUTES_30_UNIX}, T0 + timedelta(minutes=30)),
    ({"expiry_time": str(MINUTES_30_UNIX)}, T0 + timedelta(minutes=30)),
    ({"expiry_time": "2030-01-01T07:00:00Z", "expiry_duration": 5}, T0 + timedelta(minutes=30)),  # time wins
    ({"expiry_time": "2030-01-01T07:00:00.900Z"}, T0 + timedelta(minutes=30)),  # whole seconds
])
def test_expiry_forms(client, account, pool_of_three, now, extra, expires):
    data = set_masking(client, account, A, B, **extra)
    assert parse_iso(data["expires_at"]) == expires
    with client.application.app_context():
        assert db.session.get(Masking, data["id"]).expires_at == expires  # reported == enforced


def test_event_id_is_optional_trimmed_and_may_be_a_number(client, account, pool_of_three, now):
    assert set_masking(client, account, A, B)["eventId"] is None
    assert set_masking(client, account, A, C, eventId="")["eventId"] is None
    assert set_masking(client, account, A, D, eventId="  ticket-9  ")["eventId"] == "ticket-9"
    assert set_masking(client, account, B, C, eventId=12345)["eventId"] == "12345"


def test_event_id_unicode_round_trips_as_utf8(client, account, pool_of_three, now):
    response = post(client, SET, body(account, eventId="ग्राहक_१२३"))
    assert "ग्राहक_१२३".encode("utf-8") in response.get_data()
    assert response.get_json()["data"]["eventId"] == "ग्राहक_१२३"


@pytest.mark.parametrize("event_id, detail", [
    (True, "eventId must be a string"),
    ({"id": 1}, "eventId must be a string"),
    (["x"], "eventId must be a string"),
    ("x" * 256, "at most 255"),
])
def test_bad_event_id_is_1000(client, account, pool_of_three, now, event_id, detail):
    assert detail in err(client, SET, body(account, eventId=event_id), 1000)["detail"]
    assert count(client.application, Masking) == 0


def test_event_id_of_255_characters_is_kept(client, account, pool_of_three, now):
    assert set_masking(client, account, A, B, eventId="e" * 255)["eventId"] == "e" * 255


# ---------------------------------------------------------------- bad numbers

@pytest.mark.parametrize("field", ["m1", "m2"])
@pytest.mark.parametrize("value, detail", [
    (None, "is required"),
    ("", "is empty"),
    ("   ", "is empty"),
    ("12345", "is not a valid phone number"),
    ("abc", "is not a phone number"),
    ("+919876543210abc", "is not a valid phone number"),
    (True, "must be a phone number"),
    (False, "must be a phone number"),
    (9876543210.0, "as a string or a whole number"),
    (9.87654321e9, "as a string or a whole number"),
    ({"number": "9876543210"}, "as a string or a whole number"),
    (["9876543210"], "as a string or a whole number"),
    ("9" * 41, "too long"),
    (10 ** 45, "too long"),
])
def test_bad_number_is_1000_naming_the_field(client, account, pool_of_three, now, field, value, detail):
    payload = body(account, m1="9876543200", m2="9876543201")
    payload[field] = value
    if value is None:
        del payload[field]
    said = err(client, SET, payload, 1000)["detail"]
    assert said.startswith(f"{field} ") and detail in said, said
    assert count(client.application, Masking) == 0


def test_null_number_is_required(client, account, pool_of_three, now):
    assert err(client, SET, body(account, m1=None), 1000)["detail"] == "m1 is required"


@pytest.mark.parametrize("m1, m2", [
    ("9876543210", "09876543210"),
    ("9876543210", "+91 98765 43210"),
    ("09876543210", "+919876543210"),
    (9876543210, "+91 98765 43210"),
    (919876543210, "9876543210"),
    ("0091 98765 43210", "98765-43210"),
])
def test_one_number_in_two_notations_is_1501(client, account, pool_of_three, now, m1, m2):
    payload = err(client, SET, body(account, m1=m1, m2=m2), 1501)
    assert "+91 98XXXXX210" in payload["detail"]
    assert "9876543210" not in payload["detail"]  # the number is not echoed in full
    assert count(client.application, Masking) == 0


def test_00_prefix_is_international(client, account, pool_of_three, now):
    data = set_masking(client, account, "0091 98765 43200", "00919876543201")
    assert (data["m1"], data["m2"]) == (PARTIES[0], PARTIES[1])


def test_foreign_party_is_accepted_in_e164(client, account, pool_of_three, now):
    data = set_masking(client, account, A, "+44 20 7946 0958")
    assert data["m2"] == "+442079460958"


@pytest.mark.parametrize("field", ["m1", "m2"])
@pytest.mark.parametrize("status", ["active", "reserved"])
def test_one_of_our_masking_numbers_as_a_party_is_1000(client, account, pool_of_three, now, field, status):
    """A call to the party would come back into the service: refused, whatever notation it is typed in."""
    pool_status(client.application, POOL[1], status)
    payload = body(account, m1=A, m2=B)
    payload[field] = "080 4123 4501"  # POOL[1], nationally
    said = err(client, SET, payload, 1000)["detail"]
    assert said == f"{field} is one of this service's masking numbers ({POOL[1]}); give the party's own number"
    assert count(client.application, Masking) == 0


def test_a_retired_masking_number_may_be_a_party(client, account, pool_of_three, now):
    """A retired number may have gone back to the carrier and to a new subscriber."""
    pool_status(client.application, POOL[2], "retired")
    assert set_masking(client, account, A, POOL[2])["m2"] == POOL[2]


def test_validation_order_numbers_then_sameness_then_expiry(client, account, pool_of_three, now):
    assert err(client, SET, body(account, m1="12", m2="12", expiry_duration="x"), 1000)["detail"].startswith("m1")
    err(client, SET, body(account, m1=A, m2=A, expiry_duration="x"), 1501)
    err(client, SET, body(account, m1=A, m2=B, expiry_duration="x"), 1502)


# ---------------------------------------------------------------- bad expiry

@pytest.mark.parametrize("duration", [
    1.5, 10.0, 1e3, True, False, "ten", "", " ", "1.5", "1e3", "10 minutes", {"minutes": 10}, [10], "0x10",
])
def test_bad_duration_is_1502(client, account, pool_of_three, now, duration):
    payload = err(client, SET, body(account, expiry_duration=duration), 1502)
    assert "expiry_duration" in payload["detail"]
    assert count(client.application, Masking) == 0


@pytest.mark.parametrize("duration, said", [
    (0, "at least 1"), ("0", "at least 1"), (-1, "at least 1"), ("-60", "at least 1"),
    (43201, "at most 43200"), ("43201", "at most 43200"), (10 ** 20, "at most 43200"),
])
def test_duration_out_of_range_is_1502(client, account, pool_of_three, now, duration, said):
    assert said in err(client, SET, body(account, expiry_duration=duration), 1502)["detail"]


@pytest.mark.parametrize("expiry_time, said", [
    ("2030-01-01T06:30:00Z", "future"),          # exactly now
    ("2030-01-01T06:29:59Z", "future"),
    ("2020-01-01 10:00:00", "future"),
    (1000, "future"),
    ("2030-01-31T06:30:01Z", "at most 43200 minutes"),  # one second beyond the maximum
    ("2040-01-01T00:00:00Z", "at most 43200 minutes"),
    (1893479400000, "milliseconds"),
    ("1893481200000", "milliseconds"),
    ("tomorrow", "not ISO 8601"),
    ("", "empty"),
    ("2030-02-30 10:00:00", "not ISO 8601"),
    (True, "Unix seconds"),
    (1893481200.5, "Unix seconds"),
    ({"at": "2030-01-01"}, "Unix seconds"),
])
def test_bad_expiry_time_is_1507(client, account, pool_of_three, now, expiry_time, said):
    payload = err(client, SET, body(account, expiry_time=expiry_time), 1507)
    assert said in payload["detail"]
    assert count(client.application, Masking) == 0


def test_expiry_time_exactly_at_the_maximum_is_accepted(client, account, pool_of_three, now):
    data = set_masking(client, account, A, B, expiry_time="2030-01-31T06:30:00Z")
    assert parse_iso(data["expires_at"]) == T0 + timedelta(minutes=43200)


def test_expiry_time_wins_even_over_a_bad_looking_range_duration_only_if_duration_is_valid(
        client, account, pool_of_three, now):
    # Both fields must be valid; then expiry_time decides.
    err(client, SET, body(account, expiry_time="2030-01-01T07:00:00Z", expiry_duration=1.5), 1502)
    data = set_masking(client, account, A, B, expiry_time="2030-01-01T07:00:00Z", expiry_duration=43200)
    assert parse_iso(data["expires_at"]) == T0 + timedelta(minutes=30)


def test_configured_maximum_and_default(database_url, clock):
    clock.set(T0)
    with configured_app(database_url, clock, MAX_EXPIRY_MINUTES=100, DEFAULT_EXPIRY_MINUTES=7) as application:
        add_pool(application, *POOL[:3])
        account = make_account(application)
        client = application.test_client()
        assert parse_iso(set_masking(client, account, A, B)["expires_at"]) == T0 + timedelta(minutes=7)
        assert "at most 100" in err(client, SET, body(account, m1=A, m2=C, expiry_duration=101), 1502)["detail"]
        set_masking(client, account, A, C, expiry_duration=100)


def test_configured_time_zone_reads_local_expiry_times(database_url, clock):
    clock.set(T0)
    with configured_app(database_url, clock, TIMEZONE="UTC") as application:
        add_pool(application, *POOL[:3])
        client = application.test_client()
        data = set_masking(client, make_account(application), A, B, expiry_time="2030-01-01 07:00:00")
        assert parse_iso(data["expires_at"]) == T0 + timedelta(minutes=30)


# ---------------------------------------------------------------- 1503: the pair is active

@pytest.mark.parametrize("m1, m2", [(A, B), (B, A), ("9876543200", "09876543201"), ("+91 98765 43201", A)])
def test_active_pair_in_either_order_is_1503_naming_the_masking(client, account, pool_of_three, now, m1, m2):
    first = set_masking(client, account, A, B, expiry_duration=30)
    payload = err(client, SET, body(account, m1=m1, m2=m2), 1503)
    assert first["mask"] in payload["detail"] and first["expires_at"] in payload["detail"]
    assert payload["data"] == {"id": first["id"], "mask": first["mask"], "expires_at": first["expires_at"]}
    assert count(client.application, Masking) == 1
    check_invariants(client.application, T0)


def test_another_accounts_1503_does_not_reveal_its_masking_number(client, app, account, pool_of_three, now):
    first = set_masking(client, account, A, B)
    other = make_account(app, "other")
    payload = err(client, SET, body(other, m1=B, m2=A), 1503)
    assert "data" not in payload
    raw = post(client, SET, body(other, m1=A, m2=B)).get_data(as_text=True)
    assert first["mask"][3:] not in raw and first["expires_at"] not in raw
    assert payload["detail"] == "these two numbers already have an active masking"


# ---------------------------------------------------------------- expiry at the boundary

def test_masking_is_active_until_the_microsecond_before_its_expiry(client, app, account, pool_of_three, clock):
    clock.set(T0)
    first = set_masking(client, account, A, B, expiry_duration=10)
    expires = T0 + timedelta(minutes=10)

    clock.set(expires - timedelta(microseconds=1))
    assert get_masking(client, account, first["id"])["status"] == "active"
    assert route_call(app, A, first["mask"], clock()) == B
    assert route_call(app, B, first["mask"], clock()) == A
    err(client, SET, body(account), 1503)

    clock.set(expires)
    assert get_masking(client, account, first["id"])["status"] == "expired"
    assert route_call(app, A, first["mask"], clock()) is None
    assert route_call(app, B, first["mask"], clock()) is None
    second = set_masking(client, account, B, A, expiry_duration=10)  # same pair, at the expiry instant
    assert second["id"] != first["id"]
    assert second["mask"] != first["mask"]  # cool-off: not the number they just left
    assert route_call(app, A, second["mask"], clock()) == B
    check_invariants(app, clock())


def test_cool_off_keeps_the_number_from_the_same_party_for_300_seconds(client, app, account, clock):
    add_pool(app, POOL[0])
    clock.set(T0)
    first = set_masking(client, account, A, B, expiry_duration=1)
    ended = T0 + timedelta(minutes=1)

    for moment in (ended, ended + timedelta(seconds=300) - timedelta(microseconds=1)):
        clock.set(moment)
        err(client, SET, body(account, m1=A, m2=B), 1505)
        err(client, SET, body(account, m1=C, m2=A), 1505)  # A may not get it back with anyone
        err(client, SET, body(account, m1=B, m2=D), 1505)
    # A stranger pair may use the number at once: it is not theirs that ended.
    clock.set(ended)
    stranger = set_masking(client, account, C, D, expiry_duration=60)
    assert stranger["mask"] == first["mask"]

    clock.set(ended + timedelta(seconds=300))
    again = set_masking(client, account, A, B)
    assert again["mask"] == first["mask"]
    check_invariants(app, clock())


def test_cool_off_counts_from_an_early_end(client, app, account, clock):
    add_pool(app, POOL[0])
    clock.set(T0)
    first = set_masking(client, account, A, B, expiry_duration=60)
    clock.set(T0 + timedelta(minutes=5))
    assert post(client, "/api/v2/Masking/unset", {**account, "mask": first["mask"]}).get_json()["status"] == "success"
    clock.set(T0 + timedelta(minutes=5, seconds=299))
    err(client, SET, body(account), 1505)
    clock.set(T0 + timedelta(minutes=10))
    assert set_masking(client, account, A, B)["mask"] == first["mask"]


def test_cool_off_zero_gives_the_number_back_at_once(database_url, clock):
    clock.set(T0)
    with configured_app(database_url, clock, COOLOFF_SECONDS=0) as application:
        add_pool(application, POOL[0])
        account = make_account(application)
        client = application.test_client()
        first = set_masking(client, account, A, B, expiry_duration=1)
        clock.set(T0 + timedelta(minutes=1))
        assert set_masking(client, account, A, B)["mask"] == first["mask"]


# ---------------------------------------------------------------- allocation

def test_one_number_serves_many_pairs_with_no_shared_party(client, app, account, now):
    add_pool(app, POOL[0])
    masks = {set_masking(client, account, PARTIES[2 * i], PARTIES[2 * i + 1])["mask"] for i in range(10)}
    assert masks == {POOL[0]}
    check_invariants(app, T0)


def test_a_party_never_holds_one_number_twice_then_1505(client, app, account, pool_of_three, now):
    masks = [set_masking(client, account, A, other)["mask"] for other in (B, C, D)]
    assert sorted(masks) == sorted(POOL[:3])
    payload = err(client, SET, body(account, m1=A, m2=E), 1505)
    assert payload["message"] == "Masking No not available"
    assert payload["detail"] == ("every active pool number is in use by one of these parties, or cooling off after "
                                 "one of their maskings: of the 3 active numbers, this account's maskings hold 3 for "
                                 "m1 (live) and none for m2")
    assert payload["data"] == {"active_numbers": 3, "m1_holds": 3, "m2_holds": 0}
    payload = err(client, SET, body(account, m1=E, m2=A), 1505)  # either side
    assert payload["data"] == {"active_numbers": 3, "m1_holds": 0, "m2_holds": 3}
    assert count(app, Masking) == 3
    check_invariants(app, T0)
    # B holds POOL of A-B only; B-C must avoid both B's and C's numbers.
    bc = set_masking(client, account, B, C)
    assert bc["mask"] not in {masks[0], masks[1]}
    check_invariants(app, T0)


def test_1505_says_which_party_holds_the_numbers_live_or_cooling_off(client, app, account, pool_of_three, now):
    add_pool(app, POOL[3])
    first = set_masking(client, account, A, B)
    set_masking(client, account, A, C)
    set_masking(client, account, D, E)  # D and E hold one number
    ok(client, UNSET, {**account, "mask": first["mask"], "m1": A, "m2": B})  # A cools off on it
    set_masking(client, account, A, D)
    payload = err(client, SET, body(account, m1=A, m2=E), 1505)
    assert payload["data"] == {"active_numbers": 4, "m1_holds": 3, "m2_holds": 1}
    assert payload["detail"].endswith("of the 4 active numbers, this account's maskings hold 3 for m1 (2 live, "
                                      "1 cooling off) and 1 for m2 (live)")
    # A retired number is not counted: it would not be given out anyway.
    with app.app_context():
        db.session.execute(update(PoolNumber).where(PoolNumber.number == first["mask"]).values(status="retired"))
        db.session.commit()
    assert err(client, SET, body(account, m1=A, m2=E), 1505)["data"] == {
        "active_numbers": 3, "m1_holds": 2, "m2_holds": 1}
    now.advance(seconds=301)  # past the cool-off of A's ended masking: it holds only its live ones
    assert err(client, SET, body(account, m1=A, m2=E), 1505)["data"]["m1_holds"] == 2


def test_1505_counts_only_the_callers_own_maskings(client, app, account, pool_of_three, now):
    """Another account's maskings block numbers too, but the caller learns only that they exist."""
    other = make_account(app, "other")
    set_masking(client, other, A, B)
    set_masking(client, other, A, C)
    set_masking(client, account, A, D)
    payload = err(client, SET, body(account, m1=A, m2=E), 1505)
    assert payload["data"] == {"active_numbers": 3, "m1_holds": 1, "m2_holds": 0}
    assert payload["detail"].endswith("this account's maskings hold 1 for m1 (live) and none for m2; the others "
                                      "through other accounts' maskings")
    assert err(client, SET, body(other, m1=A, m2=E), 1505)["data"] == {"active_numbers": 3, "m1_holds": 2,
                                                                       "m2_holds": 0}


def test_1505_when_the_pool_is_empty(client, account, now):
    assert err(client, SET, body(account), 1505)["detail"] == "the pool has no active number"
    assert count(client.application, Masking) == 0


def test_load_is_spread_least_recently_allocated_first(client, app, account, pool_of_three, clock):
    clock.set(T0)
    order = []
    for i in range(6):
        clock.advance(seconds=1)
        order.append(set_masking(client, account, PARTIES[10 + 2 * i], PARTIES[11 + 2 * i])["mask"])
    assert order == POOL[:3] + POOL[:3]
    with app.app_context():
        counts = {p.number: p.allocation_count for p in db.session.query(PoolNumber)}
    assert counts == {POOL[0]: 2, POOL[1]: 2, POOL[2]: 2}


@pytest.mark.parametrize("status", ["reserved", "retired"])
def test_reserved_and_retired_numbers_are_never_allocated(client, app, account, pool_of_three, now, status):
    pool_status(app, POOL[0], status)
    pool_status(app, POOL[2], status)
    masks = {set_masking(client, account, PARTIES[2 * i], PARTIES[2 * i + 1])["mask"] for i in range(5)}
    assert masks == {POOL[1]}
    pool_status(app, POOL[1], status)
    err(client, SET, body(account, m1=PARTIES[20], m2=PARTIES[21]), 1505)


def test_a_reserved_number_keeps_serving_its_running_maskings(client, app, account, now):
    add_pool(app, POOL[0])
    first = set_masking(client, account, A, B)
    pool_status(app, POOL[0], "reserved")
    assert route_call(app, A, first["mask"], T0) == B
    assert get_masking(client, account, first["id"])["status"] == "active"


UK_POOL = "+442079460958"


@pytest.mark.parametrize("geo, m1, expected", [
    ("prefer", A, POOL[0]),             # IN party: the IN number, though the UK one is older
    ("prefer", "+447400123456", UK_POOL),
    ("require", A, POOL[0]),
    ("require", "+447400123456", UK_POOL),
    ("off", A, UK_POOL),                # no preference: least recently given, lowest id
])
def test_geo_match_prefers_the_first_partys_country(database_url, clock, geo, m1, expected):
    clock.set(T0)
    with configured_app(database_url, clock, GEO_MATCH=geo) as application:
        add_pool(application, UK_POOL)
        add_pool(application, POOL[0])
        client = application.test_client()
        assert set_masking(client, make_account(application), m1, B)["mask"] == expected


@pytest.mark.parametrize("geo, outcome", [("prefer", UK_POOL), ("off", UK_POOL), ("require", 1505)])
def test_geo_match_fallback(database_url, clock, geo, outcome):
    clock.set(T0)
    with configured_app(database_url, clock, GEO_MATCH=geo) as application:
        add_pool(application, UK_POOL)
        client = application.test_client()
        account = make_account(application)
        if outcome == 1505:
            assert "no active number in IN" in err(client, SET, body(account), 1505)["detail"]
        else:
            assert set_masking(client, account, A, B)["mask"] == outcome


# ---------------------------------------------------------------- the routing lookup

def test_route_call_answers_the_other_party(client, app, account, pool_of_three, now):
    ab = set_masking(client, account, A, B)
    ac = set_masking(client, account, A, C)
    assert route_call(app, A, ab["mask"], T0) == B
    assert route_call(app, B, ab["mask"], T0) == A
    assert route_call(app, A, ac["mask"], T0) == C
    assert route_call(app, C, ac["mask"], T0) == A
    # National forms of caller and dialled number reach the same route.
    assert route_call(app, "09876543200", ab["mask"].replace("+91", "0"), T0) == B
    # Out of session: a stranger, a party on the wrong number, an unparsable caller.
    assert route_call(app, D, ab["mask"], T0) is None
    assert route_call(app, B, ac["mask"], T0) is None
    assert route_call(app, "not a number", ab["mask"], T0) is None
    assert route_call(app, A, "12", T0) is None


# ---------------------------------------------------------------- the database refuses: 1504, nothing half-written

def _refuse_inserts(app, errcode: str | None) -> None:
    if backend(app) == "sqlite":
        sql(app, "CREATE TRIGGER test_refuse BEFORE INSERT ON active_pairs "
                 "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    else:
        using = f" USING ERRCODE = '{errcode}'" if errcode else ""
        sql(app, "CREATE OR REPLACE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                 f"$$ BEGIN RAISE EXCEPTION 'refused by the test'{using}; END $$")
        sql(app, "CREATE TRIGGER test_refuse BEFORE INSERT ON active_pairs "
                 "FOR EACH ROW EXECUTE FUNCTION test_refuse()")


def _allow_inserts(app) -> None:
    if backend(app) == "sqlite":
        sql(app, "DROP TRIGGER IF EXISTS test_refuse")
    else:
        sql(app, "DROP TRIGGER IF EXISTS test_refuse ON active_pairs")
        sql(app, "DROP FUNCTION IF EXISTS test_refuse()")


@pytest.mark.parametrize("errcode", [None, "check_violation"])
def test_database_refusal_is_1504_and_nothing_is_half_written(client, app, account, pool_of_three, now, errcode):
    _refuse_inserts(app, errcode)
    try:
        payload = err(client, SET, body(account, eventId="refused"), 1504)
        assert "refused by the test" not in payload.get("detail", "")  # no database internals leak
        assert count(app, Masking) == 0
        assert count(app, Route) == 0
        assert count(app, ActivePair) == 0
        with app.app_context():
            untouched = [(p.allocation_count, p.last_allocated_at) for p in db.session.query(PoolNumber)]
        assert untouched == [(0, datetime(1970, 1, 1))] * 3
    finally:
        _allow_inserts(app)
    # The failure left nothing behind: the same request now succeeds on the first number.
    assert set_masking(client, account, A, B)["mask"] == POOL[0]
    check_invariants(app, T0)


# ---------------------------------------------------------------- server faults: 1009, 1010

def test_corrupt_stored_row_is_1009_with_a_500(client, app, account, pool_of_three, now):
    first = set_masking(client, account, A, B)
    if backend(app) == "sqlite":
        sql(app, "UPDATE maskings SET expires_at = 'not a time' WHERE id = :id", id=first["id"])
    else:
        sql(app, "UPDATE maskings SET expires_at = 'infinity' WHERE id = :id", id=first["id"])
    payload = err(client, "/api/v2/Masking/get", {**account, "id": first["id"]}, 1009)
    assert payload.get("detail") is None  # nothing internal is told
    err(client, "/api/v2/Masking/list", dict(account), 1009)


UNREACHABLE_BODIES = {
    "/api/v2/Masking/set": {"userId": "u1", "token": "t1", "m1": A, "m2": B},
    "/api/v2/Masking/unset": {"userId": "u1", "token": "t1", "mask": POOL[0]},
    "/api/v2/Masking/get": {"userId": "u1", "token": "t1", "id": 1},
    "/api/v2/Masking/list": {"userId": "u1", "token": "t1"},
    "/api/v2/Auth/login": {"userId": "u1", "token": "t1"},
    "/api/v2/Auth/logout": {"ssid": "mss_x"},
    "/api/v2/Masking/set#ssid": {"ssid": "mss_x", "m1": A, "m2": B},
}


@pytest.mark.parametrize("url", [
    "postgresql://postgres@127.0.0.1:1/x",
    "postgres://postgres@127.0.0.1:1/x",
    "sqlite:////nonexistent-directory/for/sure/masking.db",
])
@pytest.mark.parametrize("path", sorted(UNREACHABLE_BODIES))
def test_unreachable_database_is_1010_with_a_503(url, path):
    from app import create_app

    application = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "x"})
    response = application.test_client().post(path.split("#")[0], json=UNREACHABLE_BODIES[path])
    assert response.status_code == 503
    assert response.get_data(as_text=True) == (
        '{"status":"error","message":"Error in DB connect","code":1010,'
        '"detail":"the database is not reachable; try again shortly"}')
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_only_a_unique_index_refusal_is_retried_as_a_lost_race(app, account, pool_of_three, client, now):
    """A lost race shows as a unique violation (retried, then 1503/1505/another number); any
    other refusal by the database would repeat forever and is 1504 at once."""
    from sqlalchemy.exc import DBAPIError

    from masking import service

    first = set_masking(client, account, A, B)
    with app.app_context():
        caught = {}
        for name, statement in {
            "unique": "INSERT INTO routes (mask_number, party, other_party, masking_id, route_until, hold_until) "
                      f"VALUES ('{first['mask']}', '{A}', '{C}', {first['id']}, '2030-01-02', '2030-01-02')",
            "check": f"INSERT INTO active_pairs VALUES ('{B}', '{A}', {first['id']}, '2030-01-02')",
            "foreign key": "INSERT INTO routes (mask_number, party, other_party, masking_id, route_until, hold_until) "
                           f"VALUES ('{POOL[1]}', '{C}', '{D}', 999999, '2030-01-02', '2030-01-02')",
        }.items():
            try:
                db.session.execute(sql_text(statement))
                db.session.flush()
            except DBAPIError as exc:
                caught[name] = exc
            db.session.rollback()
    assert set(caught) == {"unique", "check", "foreign key"}
    assert service._retryable(caught["unique"])
    assert not service._retryable(caught["check"])
    assert not service._retryable(caught["foreign key"])


def sql_text(statement):
    from sqlalchemy import text

    return text(statement)
