"""The HTTP surface: body parsing whatever the Content-Type, the vendor's envelope byte for byte,
CORS headers, case-insensitive paths, 404/405/413."""
import io
import json
from datetime import datetime
from urllib.parse import urlencode

import pytest

from masking.models import Masking
from tests.api_helpers import (
    ENDPOINTS,
    SET,
    assert_error_envelope,
    assert_success_envelope,
    configured_app,
    count,
    ok,
    post,
)
from tests.conftest import PARTIES, POOL, add_pool, make_account

A, B = PARTIES[:2]
T0 = datetime(2030, 1, 1, 6, 30, 0)

SEED_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS, PATCH, DELETE",
    "Access-Control-Allow-Headers": "X-Requested-With, content-type",
    "Access-Control-Allow-Credentials": "true",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


def assert_seed_headers(response) -> None:
    for name, value in SEED_HEADERS.items():
        assert response.headers[name] == value, name
    assert "Origin" in [v.strip() for v in response.headers["Vary"].split(",")]
    assert "Set-Cookie" not in response.headers  # the API never opens a browser session


@pytest.fixture
def now(clock):
    clock.set(T0)
    return clock


def set_body(account, **extra) -> dict:
    return {**account, "m1": A, "m2": B, "expiry_duration": 30, **extra}


# ---------------------------------------------------------------- the envelope, byte for byte

def test_1505_body_is_the_seeds_67_bytes_when_details_are_off(database_url, clock):
    clock.set(T0)
    with configured_app(database_url, clock, API_ERROR_DETAIL="false") as application:
        response = application.test_client().post(SET, json=set_body(make_account(application)))
        assert response.status_code == 200
        assert response.get_data() == b'{"status":"error","message":"Masking No not available","code":1505}'
        assert response.headers["Content-Length"] == "67"
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert_seed_headers(response)
        assert response.headers["ETag"]


def test_detail_follows_code_when_details_are_on(client, account, now):
    response = post(client, SET, set_body(account))
    assert response.get_data(as_text=True) == (
        '{"status":"error","message":"Masking No not available","code":1505,'
        '"detail":"the pool has no active number"}')


@pytest.mark.parametrize("code, body", [
    (1000, lambda acc: {**acc, "m1": "1", "m2": B}),
    (1014, lambda acc: {"ssid": "mss_wrong", "m1": A, "m2": B}),
    (1047, lambda acc: "[]"),
    (1501, lambda acc: {**acc, "m1": A, "m2": A}),
    (1502, lambda acc: {**acc, "m1": A, "m2": B, "expiry_duration": 1.5}),
    (1505, lambda acc: {**acc, "m1": A, "m2": B}),
    (1507, lambda acc: {**acc, "m1": A, "m2": B, "expiry_time": "never"}),
])
def test_client_errors_answer_http_200_in_the_exact_shape(client, account, now, code, body):
    response = post(client, SET, body(account))
    assert response.status_code == 200
    payload = assert_error_envelope(response, code)
    assert set(payload) == {"status", "message", "code", "detail"}


def test_success_envelope_shape(client, account, pool_of_three, now):
    response = post(client, SET, set_body(account))
    payload = assert_success_envelope(response)
    assert payload["message"] == "Masking set successfully"
    assert response.get_data(as_text=True).startswith('{"status":"success","message":"Masking set successfully","data":{')
    assert_seed_headers(response)
    assert response.headers["ETag"].startswith('"') or response.headers["ETag"].startswith('W/"')


def test_non_ascii_is_sent_as_utf8_not_escaped(client, account, pool_of_three, now):
    response = post(client, SET, set_body(account, eventId="café ☎"))
    assert "café ☎".encode() in response.get_data()


# ---------------------------------------------------------------- reading the body whatever its label

@pytest.mark.parametrize("content_type", [
    None, "application/json", "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
    "application/octet-stream", "application/xml", "text/html", "application/json; charset=latin-1",
])
def test_json_is_read_whatever_the_content_type_says(client, account, pool_of_three, now, content_type):
    kwargs = {"content_type": content_type} if content_type else {}
    response = client.post(SET, data=json.dumps(set_body(account)), **kwargs)
    assert assert_success_envelope(response)["data"]["m1"] == A


def test_json_with_a_byte_order_mark_and_whitespace(client, account, pool_of_three, now):
    raw = b"\xef\xbb\xbf \r\n\t" + json.dumps(set_body(account), indent=4).encode() + b"\n\n"
    assert assert_success_envelope(client.post(SET, data=raw))["data"]["m2"] == B


def test_urlencoded_form_body(client, account, pool_of_three, now):
    form = urlencode({**account, "m1": A, "m2": "09876543201", "expiry_duration": "30", "eventId": "form"})
    data = assert_success_envelope(client.post(SET, data=form, content_type="application/x-www-form-urlencoded"))["data"]
    assert (data["m1"], data["m2"], data["eventId"]) == (A, B, "form")


def test_urlencoded_form_with_an_unencoded_plus(client, account, pool_of_three, now):
    # curl -d 'm1=+919876543200&...': the '+' arrives as a space; the number must still be read.
    form = f"userId={account['userId']}&token={account['token']}&m1=+919876543200&m2=+919876543201"
    data = assert_success_envelope(client.post(SET, data=form))["data"]
    assert (data["m1"], data["m2"]) == (A, B)


def test_multipart_form_body(client, account, pool_of_three, now):
    fields = {**account, "m1": A, "m2": B, "attachment": (io.BytesIO(b"ignored"), "note.txt")}
    response = client.post(SET, data=fields, content_type="multipart/form-data")
    assert assert_success_envelope(response)["data"]["mask"] == POOL[0]


def test_form_values_are_strings_and_follow_the_same_rules(client, account, pool_of_three, now):
    form = urlencode({**account, "m1": A, "m2": B, "expiry_duration": "1.5"})
    assert_error_envelope(client.post(SET, data=form), 1502)
    form = urlencode({**account, "m1": A, "m2": A})
    assert_error_envelope(client.post(SET, data=form), 1501)


@pytest.mark.parametrize("raw, detail", [
    (b"", "empty"),
    (b"   \n\t ", "empty"),
    (b"{}", "must not be empty"),
    (b"[]", "JSON object"),
    (b'[{"m1": "9876543200"}]', "JSON object"),
    (b'"text"', "JSON object"),
    (b"42", "JSON object"),
    (b"null", "JSON object"),
    (b"true", "JSON object"),
    (b"hello", "neither JSON nor a urlencoded form"),
    (b'{"m1": 9876543200, "m2": NaN}', "neither JSON nor a urlencoded form"),
    (b'{"m1": Infinity}', "neither JSON nor a urlencoded form"),
    (b'{"expiry_duration": -Infinity}', "neither JSON nor a urlencoded form"),
    (b'{"m1": "9876543200",}', "neither JSON nor a urlencoded form"),
    (b"{'m1': '9876543200'}", "neither JSON nor a urlencoded form"),
    (b'{"a": ' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
    (b"[" * 20000 + b"]" * 20000, "nested too deeply"),
    (b'\xff\xfe{\x00"\x00}\x00', "not UTF-8"),
    (b'{"m1": "\xe9"}', "not UTF-8"),
    (b"&", "neither JSON nor a urlencoded form"),
])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_unusable_bodies_are_1047(client, path, raw, detail):
    for content_type in (None, "application/json", "text/plain"):
        kwargs = {"content_type": content_type} if content_type else {}
        payload = assert_error_envelope(client.post(path, data=raw, **kwargs), 1047)
        assert detail in payload["detail"], payload


def test_nan_body_with_credentials_stores_nothing(client, account, pool_of_three, now):
    raw = '{"userId": "%s", "token": "%s", "m1": %s, "m2": %s, "expiry_duration": NaN}' % (
        account["userId"], account["token"], A[3:], B[3:])
    assert_error_envelope(client.post(SET, data=raw), 1047)
    assert count(client.application, Masking) == 0


def test_large_float_is_not_a_number_field(client, account, pool_of_three, now):
    raw = '{"userId": "%s", "token": "%s", "m1": 9876543200, "m2": 9876543201, "expiry_duration": 1e400}' % (
        account["userId"], account["token"])
    assert_error_envelope(client.post(SET, data=raw), 1502)


def test_duplicate_keys_take_the_last_value(client, account, pool_of_three, now):
    raw = '{"userId": "%s", "token": "%s", "m1": "1", "m1": "%s", "m2": "%s"}' % (
        account["userId"], account["token"], A, B)
    assert assert_success_envelope(client.post(SET, data=raw))["data"]["m1"] == A


# ---------------------------------------------------------------- size: 413

def test_body_at_the_limit_is_read_and_one_byte_more_is_1510(database_url, clock):
    clock.set(T0)
    with configured_app(database_url, clock, API_MAX_BODY_BYTES=1024) as application:
        add_pool(application, POOL[0])
        client = application.test_client()
        base = json.dumps({**make_account(application), "m1": A, "m2": B, "pad": ""})
        exact = base.replace('"pad": ""', '"pad": "' + "x" * (1024 - len(base)) + '"')
        assert len(exact.encode()) == 1024
        assert_success_envelope(client.post(SET, data=exact))
        over = exact.replace('"pad": "', '"pad": "y')
        payload = assert_error_envelope(client.post(SET, data=over), 1510)
        assert payload["detail"] == "the body must be at most 1024 bytes"


def test_oversized_body_is_1510_with_http_200(client):
    response = client.post(SET, data=b'{"m1": "' + b"9" * 70000 + b'"}')
    assert response.status_code == 200
    assert_error_envelope(response, 1510)


def test_oversized_body_without_content_length_is_1510(client):
    # Chunked uploads carry no Content-Length; the limit must hold while reading.
    response = client.post(SET, input_stream=io.BytesIO(b'{"m1": "' + b"9" * 70000 + b'"}'),
                           environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""})
    assert_error_envelope(response, 1510)


def test_oversized_multipart_is_1510(client):
    response = client.post(SET, data={"m1": A, "f": (io.BytesIO(b"x" * 70000), "big.bin")},
                           content_type="multipart/form-data")
    assert_error_envelope(response, 1510)


# ---------------------------------------------------------------- paths, methods, CORS

@pytest.mark.parametrize("path", [
    "/api/v2/Masking/set", "/api/v2/masking/set", "/api/v2/MASKING/SET", "/API/V2/Masking/set",
    "/Api/V2/masking/Set", "/api/v2/Masking/set/",
])
def test_paths_match_case_insensitively(client, account, pool_of_three, now, path):
    assert ok(client, path, set_body(account))["m1"] == A


@pytest.mark.parametrize("path", ["/api/v2/masking/list", "/API/V2/MASKING/LIST", "/api/v2/auth/LOGIN"])
def test_other_endpoints_case_insensitively(client, account, path):
    assert_success_envelope(post(client, path, {**account, "limit": 1}
                                 if "list" in path.lower() else account))


@pytest.mark.parametrize("path", ["/api/v2/", "/api/v2/Masking/nothing", "/api/v2/Masking", "/api/v2/Masking/set/extra",
                                  "/api/v2/masking/set2", "/API/V2/unknown"])
def test_unknown_endpoint_is_1508_with_http_200(client, account, path):
    response = post(client, path, account)
    assert response.status_code == 200
    assert_error_envelope(response, 1508)
    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_other_methods_are_1509_with_http_200(client, account, pool_of_three, method, path):
    response = client.open(path, method=method, json={**account, "m1": A, "m2": B})
    assert response.status_code == 200
    assert response.headers["Allow"] == "POST, OPTIONS"
    assert_error_envelope(response, 1509)
    assert method in response.get_json()["detail"]
    assert count(client.application, Masking) == 0


def test_head_is_answered_without_a_body(client):
    response = client.head(SET)
    assert response.status_code == 200
    assert response.headers["Allow"] == "POST, OPTIONS"
    assert response.get_data() == b""


@pytest.mark.parametrize("path", ENDPOINTS + ["/api/v2/masking/SET"])
def test_cors_preflight(client, path):
    response = client.options(path, headers={"Origin": "https://dashboard.example",
                                             "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "content-type"})
    assert response.status_code == 204
    assert response.get_data() == b""
    for name, value in SEED_HEADERS.items():
        assert response.headers[name] == value


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_reply_carries_the_cors_headers(client, path):
    assert_seed_headers(client.post(path, data=""))
