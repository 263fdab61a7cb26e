"""The OpenAPI document served at /api/v2/openapi.json stays true to the service.

* it is valid OpenAPI (openapi-spec-validator);
* it describes exactly the endpoints the dispatch table serves, and each is really served;
* every error code of masking.errors.CODES is in it, with its message and HTTP status;
* its examples, and real answers of the app, validate against its schemas (jsonschema).
"""
from __future__ import annotations

import json
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy.exc import OperationalError

from masking import service
from masking.errors import CODES
from masking.settings import MaskingSettings
from masking.web.api import ENDPOINTS
from masking.web.openapi import OPERATIONS, api_path, document
from tests.api_helpers import GET, LIST, LOGIN, LOGOUT, SET, UNSET, configured_app
from tests.conftest import PARTIES, POOL, add_pool, make_account

SPEC_URI = "urn:masking-openapi"


# ---------------------------------------------------------------- helpers

def _pointer(*parts: str) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Spec:
    """The document plus validators for the schemas it holds (its $refs resolved within it)."""

    def __init__(self, doc: dict):
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(SPEC_URI, resource)

    def validator(self, *parts: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"{SPEC_URI}#{_pointer(*parts)}"}, registry=self.registry,
                                    format_checker=Draft202012Validator.FORMAT_CHECKER)

    def component(self, name: str) -> Draft202012Validator:
        return self.validator("components", "schemas", name)

    def response(self, path: str, status: int, method: str = "post") -> Draft202012Validator:
        responses = self.doc["paths"][path][method]["responses"]
        assert str(status) in responses, f"{method.upper()} {path} does not document HTTP {status}"
        return self.validator("paths", path, method, "responses", str(status), "content", "application/json",
                              "schema")

    def request(self, path: str) -> Draft202012Validator:
        return self.validator("paths", path, "post", "requestBody", "content", "application/json", "schema")

    def check_answer(self, path: str, response) -> dict:
        """``response`` (a Flask test response) matches what the document says of ``path``."""
        body = json.loads(response.get_data(as_text=True))
        self.response(path, response.status_code).validate(body)
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        if body["status"] == "error":
            operation = self.doc["paths"][path]["post"]
            assert body["code"] in operation["x-error-codes"], f"{path} answered an undocumented {body['code']}"
        return body


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec(document(ENDPOINTS))


# ---------------------------------------------------------------- the document itself

def test_served_document_is_valid_openapi(client):
    response = client.get("/api/v2/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    served = response.get_json()
    validate_openapi(served)
    assert served["openapi"].startswith("3.")
    # Served with this app's settings, the same as the module builds from the same settings.
    assert served == json.loads(json.dumps(document(ENDPOINTS, MaskingSettings())))


def test_document_is_valid_openapi_without_flask():
    validate_openapi(document())


def test_served_document_shows_configured_limits(database_url, clock):
    with configured_app(database_url, clock, MAX_EXPIRY_MINUTES=90, DEFAULT_EXPIRY_MINUTES=30,
                        TIMEZONE="Europe/Paris", DEFAULT_REGION="FR") as app:
        served = app.test_client().get("/api/v2/openapi.json").get_json()
    duration = served["components"]["schemas"]["SetRequest"]["properties"]["expiry_duration"]
    assert {"type": "integer", "minimum": 1, "maximum": 90} in duration["anyOf"]
    assert "Europe/Paris" in served["info"]["description"]
    set_text = served["paths"]["/api/v2/Masking/set"]["post"]["description"]
    assert "1..90" in set_text and "(FR)" in set_text and "lasts 30 minutes" in set_text


def test_documents_exactly_the_dispatch_table():
    doc = document(ENDPOINTS)
    api_paths = {p[len("/api/v2/"):].lower() for p in doc["paths"] if p.startswith("/api/v2/")}
    assert api_paths - {"openapi.json"} == set(ENDPOINTS)
    assert set(OPERATIONS) == set(ENDPOINTS)
    for endpoint in ENDPOINTS:
        assert set(doc["paths"][api_path(endpoint)]) == {"post", "options"}


def test_an_endpoint_without_a_description_is_refused():
    with pytest.raises(LookupError, match="masking/frobnicate"):
        document([*ENDPOINTS, "masking/frobnicate"])


def test_every_documented_operation_is_served(client):
    for path, item in document(ENDPOINTS)["paths"].items():
        for method in item:
            response = client.open(path, method=method.upper())
            assert response.status_code != 404, f"{method.upper()} {path} is documented but not served"
            assert str(response.status_code) in item[method]["responses"], (method, path, response.status_code)
            if method == "post":  # an empty body reaches the endpoint, which refuses it with 1047
                assert response.get_json()["code"] == 1047, (path, response.get_json())


def test_every_error_code_is_documented(spec):
    doc = spec.doc
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["code"]["enum"] == sorted(CODES)
    assert {(b["properties"]["code"]["const"], b["properties"]["message"]["const"]) for b in error["oneOf"]} == {
        (c.code, c.message) for c in CODES.values()}
    assert [(c["code"], c["message"], c["http_status"]) for c in doc["x-error-codes"]] == [
        (c.code, c.message, c.http_status) for c in sorted(CODES.values(), key=lambda c: c.code)]
    for code in CODES.values():
        assert f"| {code.code} | {code.message} | {code.http_status} |" in doc["info"]["description"]

    answered = set()
    for endpoint in ENDPOINTS:
        operation = doc["paths"][api_path(endpoint)]["post"]
        answered.update(operation["x-error-codes"])
        for code in operation["x-error-codes"]:
            response = operation["responses"][str(CODES[code].http_status)]
            assert str(code) in response["description"], (endpoint, code)
            assert f"| {code} | {CODES[code].message} |" in operation["description"]
    # Only the dispatcher's own refusals (unknown path, wrong method) belong to no documented operation.
    assert set(CODES) - answered == {1508, 1509}


def test_error_schema_ties_each_code_to_its_message(spec):
    error = spec.component("Error")
    error.validate({"status": "error", "message": "Masking No not available", "code": 1505})
    for wrong in (
        {"status": "error", "message": "Invalid token", "code": 1000},  # another code's message
        {"status": "error", "message": "Something", "code": 4242},  # unknown code
        {"status": "error", "code": 1000},  # no message
        {"status": "error", "message": "Invalid parameters", "code": "1000"},  # code as text
        {"status": "error", "message": "Invalid parameters", "code": 1000, "extra": 1},
    ):
        with pytest.raises(ValidationError):
            error.validate(wrong)


def test_masking_schema_refuses_what_the_api_never_answers(spec):
    masking = spec.component("Masking")
    good = {"id": 1, "mask": "+918041234500", "m1": "+919876543210", "m2": "+919876543211", "eventId": None,
            "status": "active", "created_at": "2030-01-30T12:30:00Z", "expires_at": "2030-01-31T12:30:00Z",
            "ended_at": None}
    masking.validate(good)
    for change in ({"mask": "9876543210"}, {"status": "gone"}, {"expires_at": "tomorrow"}, {"id": "1"}):
        with pytest.raises(ValidationError):
            masking.validate({**good, **change})
    with pytest.raises(ValidationError):
        masking.validate({k: v for k, v in good.items() if k != "mask"})


def test_examples_match_their_schemas(spec):
    checked = 0
    for path, item in spec.doc["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            for example in body.get("examples", {}).values():
                spec.request(path).validate(example["value"])
                checked += 1
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json", {})
                examples = [e["value"] for e in content.get("examples", {}).values()]
                examples += [content["example"]] if "example" in content else []
                for example in examples:
                    spec.validator("paths", path, method, "responses", status, "content", "application/json",
                                   "schema").validate(example)
                    checked += 1
    assert checked > 30


def test_the_vendor_example_error_is_documented_byte_for_byte():
    doc = document(ENDPOINTS)
    examples = doc["paths"][SET]["post"]["responses"]["200"]["content"]["application/json"]["examples"]
    vendor = json.dumps(examples["error_1505"]["value"], separators=(",", ":"))
    assert vendor == '{"status":"error","message":"Masking No not available","code":1505}'


def test_request_schemas_follow_the_rules(spec):
    set_request = spec.request(SET)
    creds = {"userId": "u1", "token": "t"}
    set_request.validate({**creds, "m1": 9876543210, "m2": "+919876543211", "expiry_duration": "1440"})
    set_request.validate({"ssid": "s", "m1": "9876543210", "m2": "9876543211", "expiry_time": 1896087600})
    for wrong in (
        {"m1": "9876543210", "m2": "9876543211"},  # no credentials
        {**creds, "ssid": "s", "m1": "9876543210", "m2": "9876543211"},  # both kinds
        {"userId": "u1", "m1": "9876543210", "m2": "9876543211"},  # userId without token
        {**creds, "m1": "9876543210"},  # no m2
        {**creds, "m1": "9876543210", "m2": "9876543211", "expiry_duration": 1.5},
        {**creds, "m1": "9876543210", "m2": "9876543211", "expiry_duration": 0},
        {**creds, "m1": "9876543210", "m2": "9876543211", "expiry_duration": 43201},
        {**creds, "m1": "9876543210", "m2": "9876543211", "expiry_duration": "soon"},
        {**creds, "m1": "9876543210", "m2": "9876543211", "expiry_duration": True},
    ):
        with pytest.raises(ValidationError):
            set_request.validate(wrong)
    unset_request = spec.request(UNSET)
    unset_request.validate({**creds, "mask": 918041234500, "expiry_duration": -1})
    with pytest.raises(ValidationError):
        unset_request.validate({**creds, "expiry_duration": -1})  # nothing picks a masking
    with pytest.raises(ValidationError):
        spec.request(LOGIN).validate({"ssid": "s", "userId": "u", "token": "t"})


# ---------------------------------------------------------------- real answers against the schemas

def test_real_answers_match_the_documented_schemas(client, spec, clock, pool_of_three):
    account = make_account(client.application, "openapi")
    creds = {"userId": account["userId"], "token": account["token"]}

    def post(path, body, *, valid_request=True, raw=None):
        if valid_request and raw is None:
            spec.request(path).validate(body)  # what we send is what the document describes
        response = client.post(path, data=raw if raw is not None else json.dumps(body),
                               content_type="text/plain")
        return spec.check_answer(path, response)

    login = post(LOGIN, creds)
    assert login["status"] == "success"
    ssid = {"ssid": login["data"]["ssid"]}

    # The vendor's example, as it sends it: bare numbers, JSON labelled text/plain.
    raw = ('{"ssid": "%s","m1": 9876543200,"m2": 9876543201,"eventId": "customer_support_123",'
           '"expiry_duration": 1440}' % ssid["ssid"])
    created = post(SET, None, raw=raw)
    assert created["status"] == "success" and created["data"]["mask"] in pool_of_three
    masking = created["data"]

    with_time = post(SET, {**creds, "m1": PARTIES[2], "m2": PARTIES[3], "expiry_time": "2099-01-01 10:00:00",
                           "expiry_duration": "30"}, valid_request=False)  # > MAX: expiry_time, refused
    assert with_time["code"] == 1507
    assert post(SET, {**creds, "m1": PARTIES[2], "m2": PARTIES[3], "expiry_duration": "30"})["status"] == "success"

    errors = {
        1501: post(SET, {**ssid, "m1": "9876543210", "m2": "+91 98765 43210"}),
        1502: post(SET, {**ssid, "m1": PARTIES[4], "m2": PARTIES[5], "expiry_duration": 1.5}, valid_request=False),
        1503: post(SET, {**ssid, "m1": PARTIES[1], "m2": PARTIES[0]}),
        1000: post(SET, {**ssid, "m1": "12", "m2": PARTIES[5]}),
        1014: post(SET, {"userId": account["userId"], "token": "mtk_wrong", "m1": PARTIES[4], "m2": PARTIES[5]}),
        1047: post(SET, None, raw=""),
        1506: post(GET, {**ssid, "id": 999999}),
    }
    for code, body in errors.items():
        assert body["code"] == code, body
    assert errors[1503]["data"]["mask"] == masking["mask"]

    # A pool of three: the third pair with the same party exhausts it.
    post(SET, {**ssid, "m1": PARTIES[0], "m2": PARTIES[6]})
    post(SET, {**ssid, "m1": PARTIES[0], "m2": PARTIES[7]})
    assert post(SET, {**ssid, "m1": PARTIES[0], "m2": PARTIES[8]})["code"] == 1505

    got = post(GET, {**ssid, "id": masking["id"]})
    assert got["data"] == {**masking, "status": "active"}

    listed = post(LIST, {**ssid, "limit": 2})
    assert len(listed["data"]["maskings"]) == 2 and listed["data"]["next_cursor"] is not None
    rest = post(LIST, {**ssid, "cursor": listed["data"]["next_cursor"]})
    assert rest["data"]["next_cursor"] is None
    assert post(LIST, {**ssid, "status": "gone"}, valid_request=False)["code"] == 1000

    extended = post(UNSET, {**creds, "mask": masking["mask"], "m1": masking["m1"], "expiry_duration": 120})
    assert extended["data"]["action"] == "extended"
    ended = post(UNSET, {**ssid, "mask": int(masking["mask"][1:]), "expiry_duration": -1})
    assert ended["data"]["action"] == "ended" and ended["data"]["count"] >= 1
    assert post(UNSET, {**ssid, "mask": masking["mask"], "m1": masking["m1"]})["code"] == 1506
    assert post(SET, {**ssid, "m1": PARTIES[9], "m2": PARTIES[10], "expiry_time": "soon"})["code"] == 1507

    clock.advance(minutes=121)
    later = post(GET, {**creds, "id": masking["id"]})
    assert later["data"]["status"] == "ended" and later["data"]["ended_at"] is not None

    reader = make_account(client.application, "reader", can_write=False)
    assert post(SET, {**reader, "m1": PARTIES[11], "m2": PARTIES[12]})["code"] == 1015
    assert post(LIST, {**reader})["data"] == {"maskings": [], "next_cursor": None}

    assert post(LOGOUT, ssid)["data"] == {"ssid_revoked": True}
    assert post(LIST, ssid)["code"] == 1014
    assert post(LOGOUT, {"token": "x"}, valid_request=False)["code"] == 1000


def test_a_form_body_is_described_too(client, spec, pool_of_three):
    account = make_account(client.application, "form")
    response = client.post(SET, data={**account, "m1": "9876543210", "m2": "9876543211", "expiry_duration": "5"},
                           content_type="application/x-www-form-urlencoded")
    assert spec.check_answer(SET, response)["status"] == "success"


def test_server_failures_match_the_documented_schemas(client, spec, monkeypatch, pool_of_three):
    account = make_account(client.application, "failures")
    body = {**account, "m1": PARTIES[0], "m2": PARTIES[1]}

    def boom(*args, **kwargs):
        raise RuntimeError("unexpected")

    def db_down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(service, "create_masking", boom)
    response = client.post(SET, json=body)
    assert response.status_code == 500
    assert spec.check_answer(SET, response)["code"] == 1009

    monkeypatch.setattr(service, "create_masking", db_down)
    response = client.post(SET, json=body)
    assert response.status_code == 503
    assert spec.check_answer(SET, response)["code"] == 1010

    response = client.post(LIST, data=json.dumps({**account, "eventId": "x" * 70000}), content_type="text/plain")
    assert response.status_code == 200
    assert spec.check_answer(LIST, response)["code"] == 1510


def test_dispatcher_refusals_use_the_error_envelope(client, spec):
    error = spec.component("Error")
    unknown = client.post("/api/v2/Masking/frobnicate", json={})
    assert unknown.status_code == 200
    error.validate(unknown.get_json())
    wrong_method = client.get(SET)
    assert wrong_method.status_code == 200
    error.validate(wrong_method.get_json())
    assert (unknown.get_json()["code"], wrong_method.get_json()["code"]) == (1508, 1509)


def test_health_answer_matches(client, spec):
    response = client.get("/healthz")
    assert response.status_code == 200
    spec.response("/healthz", 200, "get").validate(response.get_json())


def test_foreign_numbers_come_back_in_e164(client, spec):
    """Numbers of other countries are answered in E.164 and still match the schema."""
    add_pool(client.application, POOL[10])
    account = make_account(client.application, "geo")
    response = client.post(SET, json={**account, "m1": "+1 201-555-0123", "m2": "+44 7400 123456"})
    body = spec.check_answer(SET, response)
    assert body["status"] == "success", body
    assert (body["data"]["m1"], body["data"]["m2"]) == ("+12015550123", "+447400123456")
