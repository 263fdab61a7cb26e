"""POST /api/v2/Masking/get and /api/v2/Masking/list: one masking by id; filters, keyset pages."""
from datetime import datetime, timedelta

import pytest

from tests.api_helpers import GET, LIST, UNSET, err, iso, ok, set_masking
from tests.conftest import PARTIES, POOL, add_pool, make_account

A, B, C, D, E = PARTIES[:5]
T0 = datetime(2030, 1, 1, 6, 30, 0)


def listing(client, account, **filters) -> dict:
    return ok(client, LIST, {**account, **filters})


def listed_ids(client, account, **filters) -> list[int]:
    data = listing(client, account, **filters)
    return [m["id"] for m in data["maskings"]]


@pytest.fixture
def history(client, account, pool_of_three, clock):
    """Five maskings created a minute apart from T0; then at T0+10min: one ended, one expired."""
    clock.set(T0)
    made = {}
    for name, (m1, m2, event, minutes) in {
        "ab": (A, B, "ev-1", 60),
        "ac": (A, C, "ev-2", 60),
        "bc": (B, C, "ev-1", 7),    # expires at T0+2min+7min = T0+9min
        "de": (D, E, None, 60),
        "ad": (A, D, "ev-3", 60),
    }.items():
        made[name] = set_masking(client, account, m1, m2, eventId=event, expiry_duration=minutes)
        clock.advance(minutes=1)
    clock.set(T0 + timedelta(minutes=10))
    ok(client, UNSET, {**account, "m1": D, "m2": E})
    return made


def order(history, *names) -> list[int]:
    return [history[name]["id"] for name in names]


# ---------------------------------------------------------------- get

def test_get_returns_the_masking_with_its_status_now(client, account, history):
    view = ok(client, GET, {**account, "id": history["ab"]["id"]})
    assert view == {**history["ab"], "status": "active"}
    assert ok(client, GET, {**account, "id": history["bc"]["id"]})["status"] == "expired"
    ended = ok(client, GET, {**account, "id": history["de"]["id"]})
    assert ended["status"] == "ended" and ended["ended_at"] == iso(T0 + timedelta(minutes=10))


def test_get_accepts_a_digit_string_id(client, account, history):
    assert ok(client, GET, {**account, "id": str(history["ac"]["id"])})["id"] == history["ac"]["id"]
    assert ok(client, GET, {**account, "id": f" {history['ac']['id']} "})["id"] == history["ac"]["id"]


@pytest.mark.parametrize("masking_id, detail", [
    (None, "id is required"),
    ("", "id is required"),
    ("abc", "id must be a positive whole number"),
    (0, "id must be a positive whole number"),
    (-1, "id must be a positive whole number"),
    (1.0, "id must be a positive whole number"),
    (True, "id must be a whole number"),
    ({"id": 1}, "id must be a positive whole number"),
    ([1], "id must be a positive whole number"),
    (2 ** 63, "id must be a positive whole number"),
])
def test_get_bad_id_is_1000(client, account, history, masking_id, detail):
    payload = {**account, "id": masking_id}
    if masking_id is None:
        del payload["id"]
    assert err(client, GET, payload, 1000)["detail"] == detail


def test_get_unknown_id_is_1506(client, account, history):
    err(client, GET, {**account, "id": 999_999}, 1506)


def test_get_other_accounts_masking_is_1506(client, app, account, history):
    other = make_account(app, "other")
    payload = err(client, GET, {**other, "id": history["ab"]["id"]}, 1506)
    assert history["ab"]["mask"] not in str(payload)


def test_read_only_account_gets_and_lists_the_maskings_of_the_account_it_reads_for(client, app, account, history):
    reader = make_account(app, "reader", can_write=False, reads_for=account)
    assert listing(client, reader) == listing(client, account)  # the same page, filters and all
    assert listed_ids(client, reader, status="ended") == order(history, "de")
    assert ok(client, GET, {**reader, "id": history["ab"]["id"]}) == ok(client, GET, {**account, "id": history["ab"]["id"]})
    # Through an ssid too.
    ssid = {"ssid": ok(client, "/api/v2/Auth/login", reader)["ssid"]}
    assert listed_ids(client, ssid) == listed_ids(client, account)

    # Nothing of another account.
    other = make_account(app, "other")
    theirs = set_masking(client, other, PARTIES[10], PARTIES[11])
    payload = err(client, GET, {**reader, "id": theirs["id"]}, 1506)
    assert "the account this one reads for" in payload["detail"]
    assert theirs["id"] not in listed_ids(client, reader)
    # A reader of the other account sees only that one's.
    assert listed_ids(client, make_account(app, "their reader", can_write=False, reads_for=other)) == [theirs["id"]]


def test_a_reader_of_a_revoked_account_reads_nothing_more(client, app, account, history):
    """Revoking an integration ends every access to its maskings, its readers' too (before, they
    went on reading them); creating a reader for a revoked account was refused already."""
    from masking import accounts
    from masking.web.extensions import db

    reader = make_account(app, "reader", can_write=False, reads_for=account)
    ssid = {"ssid": ok(client, "/api/v2/Auth/login", reader)["ssid"]}
    assert listed_ids(client, ssid) == listed_ids(client, account)
    with app.app_context():
        accounts.revoke_account(db.session(), accounts.find_account(db.session(), account["userId"]), T0)
        db.session.commit()
    for credentials in (reader, ssid):
        for path, body in ((LIST, {}), (GET, {"id": history["ab"]["id"]})):
            payload = err(client, path, {**credentials, **body}, 1014)
            assert payload["detail"] == "the account this one reads for was revoked, so it reads nothing more"
    err(client, "/api/v2/Auth/login", reader, 1014)
    # A reader of another, active account still reads.
    other = make_account(app, "other")
    theirs = set_masking(client, other, PARTIES[10], PARTIES[11])
    assert listed_ids(client, make_account(app, "their reader", can_write=False, reads_for=other)) == [theirs["id"]]


def test_read_only_account_reading_for_no_one_reads_nothing(client, app, account, history):
    """Read-only accounts made before they could read for another (migration 0004)."""
    reader = make_account(app, "reader", can_write=False)
    assert listing(client, reader) == {"maskings": [], "next_cursor": None}
    err(client, GET, {**reader, "id": history["ab"]["id"]}, 1506)


# ---------------------------------------------------------------- list

def test_list_is_newest_first_with_every_field(client, account, history):
    data = listing(client, account)
    assert data["next_cursor"] is None
    assert [m["id"] for m in data["maskings"]] == order(history, "ad", "de", "bc", "ac", "ab")
    by_id = {m["id"]: m for m in data["maskings"]}
    assert by_id[history["ab"]["id"]] == {**history["ab"], "status": "active"}


@pytest.mark.parametrize("filters, expected", [
    ({"m1": A}, ["ad", "ac", "ab"]),
    ({"m2": A}, ["ad", "ac", "ab"]),              # a party matches on either side
    ({"m1": C}, ["bc", "ac"]),
    ({"m1": "09876543200"}, ["ad", "ac", "ab"]),   # any notation
    ({"m1": A, "m2": C}, ["ac"]),
    ({"m1": C, "m2": A}, ["ac"]),
    ({"m1": A, "m2": E}, []),
    ({"eventId": "ev-1"}, ["bc", "ab"]),
    ({"eventId": "nope"}, []),
    ({"eventId": "ev-1", "m1": C}, ["bc"]),
    ({"status": "active"}, ["ad", "ac", "ab"]),
    ({"status": "expired"}, ["bc"]),
    ({"status": "ended"}, ["de"]),
    ({"status": "active", "m1": D}, ["ad"]),
    ({"m1": "", "m2": "", "eventId": "", "status": "", "mask": ""}, ["ad", "de", "bc", "ac", "ab"]),
])
def test_list_filters(client, account, history, filters, expected):
    assert listed_ids(client, account, **filters) == order(history, *expected)


def test_list_filters_by_mask(client, account, history):
    mask = history["ab"]["mask"]
    expected = [m["id"] for m in reversed(history.values()) if m["mask"] == mask]
    assert expected and listed_ids(client, account, mask=mask) == expected
    assert listed_ids(client, account, mask=POOL[60]) == []


@pytest.mark.parametrize("filters, expected", [
    ({"created_from": iso(T0 + timedelta(minutes=2))}, ["ad", "de", "bc"]),      # inclusive
    ({"created_to": iso(T0 + timedelta(minutes=2))}, ["bc", "ac", "ab"]),        # inclusive
    ({"created_from": iso(T0 + timedelta(minutes=1)), "created_to": iso(T0 + timedelta(minutes=3))},
     ["de", "bc", "ac"]),
    ({"created_from": "2030-01-01 12:02:00"}, ["ad", "de", "bc"]),               # Asia/Kolkata
    ({"created_from": int((T0 + timedelta(minutes=4) - datetime(1970, 1, 1)).total_seconds())}, ["ad"]),
    ({"created_from": "2030-01-01T06:32:00.5Z"}, ["ad", "de"]),
    ({"created_to": iso(T0 - timedelta(seconds=1))}, []),
])
def test_list_created_between(client, account, history, filters, expected):
    assert listed_ids(client, account, **filters) == order(history, *expected)


@pytest.mark.parametrize("filters, detail", [
    ({"status": "live"}, "status must be one of active, expired, ended"),
    ({"status": "ACTIVE"}, "status must be one of active, expired, ended"),
    ({"status": ["active"]}, "status must be one of active, expired, ended"),
    ({"created_from": "last week"}, "created_from"),
    ({"created_to": True}, "created_to"),
    ({"created_to": 1893479400000}, "milliseconds"),
    ({"m1": "12345"}, "m1 is not a valid phone number"),
    ({"mask": "x"}, "mask is not a phone number"),
    ({"eventId": {"a": 1}}, "eventId must be a string"),
    ({"limit": 0}, "limit must be a positive whole number"),
    ({"limit": -5}, "limit must be a positive whole number"),
    ({"limit": 501}, "limit must be at most 500"),
    ({"limit": "ten"}, "limit must be a positive whole number"),
    ({"limit": 2.5}, "limit must be a positive whole number"),
    ({"limit": True}, "limit must be a whole number"),
    ({"cursor": "abc"}, "cursor must be a positive whole number"),
    ({"cursor": 0}, "cursor must be a positive whole number"),
])
def test_list_bad_filters_are_1000(client, account, history, filters, detail):
    assert detail in err(client, LIST, {**account, **filters}, 1000)["detail"]


def test_keyset_pagination_walks_every_masking_once(client, account, history):
    seen, cursor, pages = [], None, 0
    while True:
        data = listing(client, account, limit=2, **({"cursor": cursor} if cursor else {}))
        pages += 1
        seen += [m["id"] for m in data["maskings"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor == str(data["maskings"][-1]["id"])
    assert pages == 3
    assert seen == order(history, "ad", "de", "bc", "ac", "ab")


def test_pagination_is_stable_while_maskings_are_added(client, account, history, clock):
    first = listing(client, account, limit=2)
    set_masking(client, account, B, E)  # newer than every page
    second = listing(client, account, limit=2, cursor=first["next_cursor"])
    assert [m["id"] for m in second["maskings"]] == order(history, "bc", "ac")


def test_pagination_with_filters_and_exact_page(client, account, history):
    data = listing(client, account, m1=A, limit=3)
    assert [m["id"] for m in data["maskings"]] == order(history, "ad", "ac", "ab")
    assert data["next_cursor"] is None  # exactly one page: no empty page to fetch
    data = listing(client, account, m1=A, limit=2)
    assert data["next_cursor"] == str(history["ac"]["id"])
    rest = listing(client, account, m1=A, limit=2, cursor=data["next_cursor"])
    assert [m["id"] for m in rest["maskings"]] == order(history, "ab") and rest["next_cursor"] is None


def test_limit_bounds_and_default(client, app, account, clock):
    clock.set(T0)
    add_pool(app, POOL[0], POOL[1])
    for i in range(50):
        set_masking(client, account, PARTIES[2 * i], PARTIES[2 * i + 1])
    set_masking(client, account, PARTIES[0], "+442079460958")
    default = listing(client, account)
    assert len(default["maskings"]) == 50 and default["next_cursor"] is not None
    assert len(listing(client, account, limit=500)["maskings"]) == 51
    assert len(listing(client, account, limit="1")["maskings"]) == 1


def test_list_shows_only_the_callers_maskings(client, app, account, history, clock):
    other = make_account(app, "other")
    theirs = set_masking(client, other, B, D)
    assert listed_ids(client, other) == [theirs["id"]]
    assert theirs["id"] not in listed_ids(client, account)
    assert listed_ids(client, other, m1=A) == []
    assert listed_ids(client, other, eventId="ev-1") == []


def test_status_follows_the_clock_in_lists(client, account, history, clock):
    clock.set(T0 + timedelta(minutes=60) - timedelta(microseconds=1))  # ab expires at T0+60min
    assert history["ab"]["id"] in listed_ids(client, account, status="active")
    clock.set(T0 + timedelta(minutes=60))
    assert history["ab"]["id"] in listed_ids(client, account, status="expired")
    assert history["ab"]["id"] not in listed_ids(client, account, status="active")
