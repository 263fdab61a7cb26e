"""Input that once made the server answer 500, found by sending every field something hostile:
JSON's lone surrogate escapes, dates at the ends of the calendar, digits that ``isdigit`` accepts
and ``int`` refuses, ids too large for the database, paths and methods the router refuses, a
chunked multipart body, numbers of no country for the pool, digits of other scripts. Each now
gets the API's envelope or the page's own refusal. On SQLite and PostgreSQL."""
from __future__ import annotations

import io
import json
import logging

import pytest

from masking import administration, attempts, pool
from masking.models import MAX_ROW_ID, AttemptAction, AttemptOutcome, PoolNumber
from masking.web.extensions import db, now
from tests.admin_helpers import pool_rows
from tests.api_helpers import assert_error_envelope, err, set_masking
from tests.conftest import PARTIES, POOL
from tests.dashboard_helpers import HX, logged_in_client, text_of

SET, UNSET, GET, LIST = (f"/api/v2/Masking/{name}" for name in ("set", "unset", "get", "list"))
LOGIN, LOGOUT = "/api/v2/Auth/login", "/api/v2/Auth/logout"
BIG_ID = str(MAX_ROW_ID + 1)  # one more than an id column holds (int4 on PostgreSQL)


@pytest.fixture
def app(app):
    app.config["WTF_CSRF_ENABLED"] = False  # the dashboard's CSRF has tests of its own
    return app


def raw_json(**fields) -> bytes:
    """A JSON body written by hand, so that escapes reach the server exactly as written."""
    return ("{" + ",".join(f'"{key}":{value}' for key, value in fields.items()) + "}").encode()


# ---------------------------------------------------------------- the API

@pytest.mark.parametrize("path, fields", [
    (LIST, {"userId": r'"\ud800"', "token": '"x"'}),
    (LIST, {"userId": '"u1"', "token": r'"a\udfffb"'}),
    (LOGIN, {"userId": r'"\uD800"', "token": '"x"'}),
    (LOGOUT, {"ssid": r'"\ud800"'}),
    (SET, {"userId": '"u1"', "token": '"t1"', "m1": f'"{PARTIES[0]}"', "m2": f'"{PARTIES[1]}"', "eventId": r'"\ud83d"'}),
    (LIST, {"userId": '"u1"', "token": '"t1"', "filters": r'{"\udc00": 1}'}),
])
def test_a_lone_surrogate_escape_is_invalid_request_data(client, path, fields):
    payload = err(client, path, raw_json(**fields), 1047)
    assert payload["detail"] == "the body holds a \\u escape that is not a character (a lone surrogate such as \\ud800)"


def test_a_surrogate_pair_is_one_character_and_fine(client, account, pool_of_three):
    body = raw_json(**{key: json.dumps(value) for key, value in account.items()}, m1=f'"{PARTIES[0]}"',
                    m2=f'"{PARTIES[1]}"', eventId=r'"ticket \ud83d\ude00"')
    response = client.post(SET, data=body)
    assert response.get_json()["data"]["eventId"] == "ticket \U0001F600"


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "0001-01-01 00:00:00",
                                    "0001-01-01T00:00:00"])
def test_an_instant_at_the_ends_of_the_calendar_is_refused_in_words(client, account, pool_of_three, moment):
    payload = err(client, SET, {**account, "m1": PARTIES[0], "m2": PARTIES[1], "expiry_time": moment}, 1507)
    assert payload["detail"] == f"expiry_time {moment!r} is outside the range of dates"
    masking = set_masking(client, account, PARTIES[0], PARTIES[1])
    err(client, UNSET, {**account, "mask": masking["mask"], "expiry_time": moment}, 1507)
    payload = err(client, LIST, {**account, "created_from": moment}, 1000)
    assert "outside the range of dates" in payload["detail"]


@pytest.mark.parametrize("path, field", [(GET, "id"), (LIST, "limit"), (LIST, "cursor")])
@pytest.mark.parametrize("value", ["²", "¹²", "①", "9" * 5000, str(MAX_ROW_ID + 1), MAX_ROW_ID + 1, 2**62])
def test_digits_int_cannot_read_are_invalid_parameters(client, account, path, field, value):
    err(client, path, {**account, field: value}, 1000)


@pytest.mark.parametrize("path, field", [(SET, "eventId"), (LIST, "eventId"), (SET, "userId"), (UNSET, "userId"),
                                         (GET, "userId"), (LIST, "userId"), (LOGOUT, "ssid"), (SET, "token")])
def test_a_nul_character_is_invalid_parameters(client, account, pool_of_three, path, field):
    """PostgreSQL stores no NUL in text: a NUL that reached a query answered 1504 or 1009 with a 500."""
    body = {**account, "m1": PARTIES[0], "m2": PARTIES[1], "id": 1} if field != "ssid" else {}
    body[field] = body.get(field, "ticket") + "\u0000x"
    payload = err(client, path, json.dumps(body), 1000)
    assert payload["detail"] == f"{field} must not contain a NUL character (\\u0000)"


def test_a_nul_in_a_login_user_id_is_a_wrong_login(client, account):
    payload = err(client, LOGIN, json.dumps({"userId": account["userId"] + "\u0000", "token": account["token"]}), 1014)
    assert payload["detail"] == "userId and token do not match an account"


def test_digits_of_another_script_are_read_as_a_number(client, account, pool_of_three):
    masking = set_masking(client, account, PARTIES[0], PARTIES[1])
    arabic_indic = "".join(chr(0x0660 + int(digit)) for digit in str(masking["id"]))
    response = client.post(GET, json={**account, "id": arabic_indic})
    assert response.get_json()["data"]["id"] == masking["id"]


@pytest.mark.parametrize("method, path, code", [
    ("POST", "/api/v2/Masking/list%0a", 1508),
    ("GET", "/api/v2/openapi.json%0A", 1508),
    ("POST", "/API/V2/masking/set%0d%0a", 1508),
    ("PROPFIND", "/api/v2/Masking/list", 1509),
    ("BREW", "/api/v2/Masking/set", 1509),
])
def test_a_path_or_method_the_router_refuses_gets_the_api_envelope(client, caplog, method, path, code):
    caplog.set_level(logging.INFO, logger="masking.api")
    response = client.open(path, method=method, data=b"{}")
    payload = assert_error_envelope(response, code)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    if code == 1509:
        assert response.headers["Allow"] == "POST, OPTIONS"
        assert payload["detail"] == f"use POST, not {method}"
    else:
        assert payload["detail"].startswith("no endpoint /api/v2/") and "\n" not in payload["detail"]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "masking.api"]
    assert f"code={code} http=200" in line and "\n" not in line and "\r" not in line


def test_a_chunked_multipart_body_over_the_limit_is_too_large(app, client, account):
    limit = app.config["API_MAX_BODY_BYTES"]
    body = (b"--x\r\nContent-Disposition: form-data; name=\"userId\"\r\n\r\n" + b"u" * (limit + 10)
            + b"\r\n--x--\r\n")
    response = client.post(LIST, input_stream=io.BytesIO(body), content_type="multipart/form-data; boundary=x",
                           environ_overrides={"wsgi.input_terminated": True})  # no Content-Length, as when chunked
    assert response.status_code == 200
    assert response.get_json() == {"status": "error", "message": "Request too large", "code": 1510,
                                   "detail": f"the body must be at most {limit} bytes"}
    small = (b"--x\r\nContent-Disposition: form-data; name=\"userId\"\r\n\r\n" + account["userId"].encode()
             + b"\r\n--x\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n" + account["token"].encode()
             + b"\r\n--x--\r\n")
    response = client.post(LIST, input_stream=io.BytesIO(small), content_type="multipart/form-data; boundary=x",
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.get_json()["status"] == "success"


# ---------------------------------------------------------------- the dashboard

@pytest.mark.parametrize("method, path", [
    ("post", f"/history/{BIG_ID}/reveal"),
    ("post", f"/masks/{BIG_ID}/end"),
    ("post", f"/masks/{BIG_ID}/extend"),
    ("post", f"/admin/users/{BIG_ID}/disable"),
    ("post", f"/admin/users/{BIG_ID}/role"),
    ("post", f"/admin/pool/{BIG_ID}/status"),
    ("post", f"/admin/credentials/{BIG_ID}/revoke"),
    ("post", f"/masks/{2**63}/end"),  # beyond SQLite's integers too
    ("post", "/masks/0/end"),
    ("post", "/admin/users/-1/disable"),
])
def test_an_id_the_database_cannot_hold_is_not_found(app, method, path):
    client = logged_in_client(app, "admin")
    response = getattr(client, method)(path, data={"minutes": "15", "role": "agent", "status": "retired"},
                                       headers=HX)
    assert response.status_code == 404


def test_the_largest_id_the_database_holds_is_looked_up(app):
    client = logged_in_client(app, "admin")
    response = client.post(f"/masks/{MAX_ROW_ID}/end", headers=HX)
    assert response.status_code == 404  # looked up and not there


def test_minutes_in_superscript_are_a_form_error_with_the_input_kept(app):
    client = logged_in_client(app, "agent")
    response = client.post("/masks", data={"m1": PARTIES[0], "m2": PARTIES[1], "expiry": "custom",
                                           "custom_minutes": "²"}, headers=HX)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Enter the number of minutes as a whole number, 1 or more." in text_of(page)
    assert f'value="{PARTIES[0]}"' in page and 'value="²"' in page


@pytest.mark.parametrize("minutes", ["²", "9" * 5000])
def test_extend_minutes_int_cannot_read_are_refused_in_words(app, minutes):
    client = logged_in_client(app, "agent")
    with app.app_context():
        agent_id = db.session.scalar(db.select(db.text("id")).select_from(db.text("users")))
        mask = attempts.record(db.session(), user_id=agent_id, action=AttemptAction.SET, now=now(),
                               outcome=AttemptOutcome.SUCCESS, m1=PARTIES[0], m2=PARTIES[1], mask=POOL[0],
                               requested_minutes=60, expires_at=now().replace(year=now().year + 1), masking_id=1)
        db.session.commit()
        mask_id = mask.id
    response = client.post(f"/masks/{mask_id}/extend", data={"minutes": minutes}, headers=HX)
    assert response.status_code == 200
    assert "should last from now" in text_of(response.get_data(as_text=True))


@pytest.mark.parametrize("before", ["²", str(MAX_ROW_ID + 1), "9" * 18])
def test_an_audit_cursor_the_database_cannot_hold_shows_the_first_page(app, before):
    client = logged_in_client(app, "admin")
    assert client.get("/admin/audit", query_string={"before": before}).status_code == 200


def test_history_digits_of_another_script_find_the_number(app):
    client = logged_in_client(app, "supervisor")
    with app.app_context():
        agent_id = db.session.scalar(db.select(db.text("id")).select_from(db.text("users")))
        attempts.record(db.session(), user_id=agent_id, action=AttemptAction.SET, now=now(),
                        outcome=AttemptOutcome.SUCCESS, m1=PARTIES[0], m2=PARTIES[1], mask=POOL[0],
                        requested_minutes=60, expires_at=now(), masking_id=1)
        db.session.commit()
    typed = "".join(chr(0x0660 + int(digit)) for digit in PARTIES[0][3:8])  # '٩٨٧٦٥'
    page = text_of(client.get("/history", query_string={"number": typed}).get_data(as_text=True))
    assert "No attempts match these filters" not in page and "1 attempt" in page


# ---------------------------------------------------------------- the pool

NON_GEOGRAPHIC = "+80012345678"  # international freephone: valid, but of no one country


def test_a_number_of_no_country_is_refused_for_the_pool(app, runner):
    result = runner.invoke(args=["pool", "add", NON_GEOGRAPHIC, POOL[0]])
    assert result.exit_code == 1
    assert "argument 1: '+80012345678' is not a number of any one country (such as +800 or +882), so it cannot " \
           "be a masking number" in result.stderr
    assert set(pool_rows(app)) == {POOL[0]}
    with app.app_context():
        assert db.session.scalar(db.select(PoolNumber.country).where(PoolNumber.number == POOL[0])) == "IN"
        report = pool.import_csv(db.session(), f"number\n{NON_GEOGRAPHIC}\n".encode(), now(), "IN")
        db.session.commit()
    assert report.added == [] and report.rejected[0][0] == 2


def test_the_audit_entry_of_a_big_import_names_some_numbers_not_all(app):
    numbers = [f"+9180411{i:05d}" for i in range(administration.AUDIT_LIST_LIMIT + 7)]
    with app.app_context():
        report = administration.add_numbers(db.session(), None, numbers + ["nonsense"], now(), "IN")
        db.session.commit()
        detail = db.session.scalar(db.text("SELECT detail FROM audit_log WHERE action = 'pool.add'"))
    assert len(report.added) == len(numbers)
    shown = " ".join(numbers[:administration.AUDIT_LIST_LIMIT])
    assert detail == (f"{len(numbers)} added ({shown} and 7 more), 0 already in the pool, "
                      f"1 rejected (argument {len(numbers) + 1})")
