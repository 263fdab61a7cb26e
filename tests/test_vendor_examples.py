"""Every client example of the vendor's seed document, its request body exactly as the example
sends it (raw text, m1/m2 as bare JSON numbers), labelled as that client labels it, through the
Flask test client. (tests/test_live_vendor_clients.py runs the examples' code against a server.)

The bodies are the seed's templates, placeholders and whitespace kept; only ``{{ssid}}``,
``{{m1}}`` and ``{{m2}}`` are replaced, as a user of the document would replace them.
"""
import io
import json
from datetime import datetime, timedelta

import pytest

from tests.api_helpers import (
    LOGIN,
    SET,
    UNSET,
    assert_error_envelope,
    assert_success_envelope,
    check_invariants,
    configured_app,
    iso,
    ok,
)
from tests.conftest import POOL, add_pool, make_account

T0 = datetime(2030, 1, 1, 6, 30, 0)

# Node (axios), PHP (HTTP_Request2), Python (http.client): one compact line.
COMPACT = ('{"ssid": "{{ssid}}","m1": {{m1}},"m2": {{m2}},"eventId": "customer_support_123",'
           '"expiry_duration": 1440}')
# Every other example: the same object, pretty-printed with four spaces and LF line ends.
PRETTY = ('{\n    "ssid": "{{ssid}}",\n    "m1": {{m1}},\n    "m2": {{m2}},\n'
          '    "eventId": "customer_support_123",\n    "expiry_duration": 1440\n}')
# C# RestSharp builds the same text from verbatim strings joined by "\n".
CSHARP = "{" + "\n" + '    "ssid": "{{ssid}}",' + "\n" + '    "m1": {{m1}},' + "\n" + '    "m2": {{m2}},' + \
         "\n" + '    "eventId": "customer_support_123",' + "\n" + '    "expiry_duration": 1440' + "\n" + "}"
# PowerShell: `n inside a double-quoted string is a line feed.
POWERSHELL = "{`n    `\"ssid`\": `\"{{ssid}}`\",`n    `\"m1`\": {{m1}},`n    `\"m2`\": {{m2}},`n    " \
             "`\"eventId`\": `\"customer_support_123`\",`n    `\"expiry_duration`\": 1440`n}" \
             .replace("`n", "\n").replace('`"', '"')

FORM = "application/x-www-form-urlencoded"

# (example, body template, Content-Type the client sends or None, extra headers)
EXAMPLES = [
    ("node-axios", COMPACT, FORM, {"Content-Length": ""}),       # axios labels a string body as a form
    ("php-http-request2", COMPACT, None, {"Content-Length": ""}),
    ("python-http-client", COMPACT, None, {"Content-Length": ""}),
    ("csharp-restsharp", CSHARP, "text/plain", {}),
    ("curl-data-raw", PRETTY, FORM, {}),                          # curl --data-raw
    ("dart-http", PRETTY, "text/plain; charset=utf-8", {}),
    ("go-net-http", PRETTY, None, {}),
    ("raw-http", PRETTY, None, {}),
    ("java-okhttp", PRETTY, "text/plain", {"Content-Length": ""}),
    ("javascript-fetch", PRETTY, "text/plain;charset=UTF-8", {"Content-Length": ""}),
    ("c-libcurl", PRETTY, FORM, {"Content-Length": ""}),          # CURLOPT_POSTFIELDS
    ("objc-nsurlsession", PRETTY, FORM, {"Content-Length": ""}),
    ("ocaml-cohttp", PRETTY, None, {"Content-Length": ""}),
    ("powershell", POWERSHELL, FORM, {"Content-Length": ""}),     # Invoke-RestMethod with a string body
    ("ruby-net-http", PRETTY, FORM, {"Content-Length": ""}),
    ("httpie", PRETTY, "application/json", {}),
    ("swift-urlsession", PRETTY, None, {"Content-Length": ""}),
]

M1, M2 = 9876543210, 9876543211


def fill(template: str, ssid: str, m1=M1, m2=M2) -> str:
    return template.replace("{{ssid}}", ssid).replace("{{m1}}", str(m1)).replace("{{m2}}", str(m2))


def send(client, path: str, body: str, content_type, headers):
    """POST ``body`` as the example does.

    An example that sets ``Content-Length:`` empty reaches the app with no length at all
    (the WSGI server, see masking/gunicorn_compat.py, hands over the bytes that arrived and
    marks the input as terminated); that is what is simulated here, since the test client
    would otherwise compute a length of its own.
    """
    kwargs = {"content_type": content_type} if content_type else {}
    if headers.get("Content-Length") == "":
        kwargs.update(input_stream=io.BytesIO(body.encode("utf-8")),
                      environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""})
        response = client.post(path, **kwargs)
        assert response.request.environ["CONTENT_LENGTH"] == ""  # no length reached the app
        return response
    return client.post(path, data=body.encode("utf-8"), **kwargs)


@pytest.fixture
def ssid(app, client, clock) -> str:
    clock.set(T0)
    return ok(client, LOGIN, make_account(app, "vendor-example"))["ssid"]


def test_the_templates_are_the_seeds():
    # The raw HTTP example's Content-Length (130) is that of the template, placeholders included.
    assert len(PRETTY.encode()) == 130
    assert CSHARP == PRETTY == POWERSHELL
    assert json.loads(fill(COMPACT, "s")) == json.loads(fill(PRETTY, "s")) == {
        "ssid": "s", "m1": M1, "m2": M2, "eventId": "customer_support_123", "expiry_duration": 1440}


@pytest.mark.parametrize("name, template, content_type, headers", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_set_example(app, client, ssid, pool_of_three, name, template, content_type, headers):
    response = send(client, SET, fill(template, ssid), content_type, headers)
    data = assert_success_envelope(response)["data"]
    assert data["m1"] == "+919876543210" and data["m2"] == "+919876543211"
    assert data["mask"] == POOL[0]
    assert data["eventId"] == "customer_support_123"
    assert data["created_at"] == iso(T0)
    assert data["expires_at"] == iso(T0 + timedelta(minutes=1440))
    assert data["status"] == "active"
    # The examples read status and code from the body; the same request again is the vendor's 1503.
    again = assert_error_envelope(send(client, SET, fill(template, ssid), content_type, headers), 1503)
    assert again["data"]["mask"] == POOL[0]
    check_invariants(app, T0)


@pytest.mark.parametrize("m1, m2", [
    (9876543210, 9876543211),        # ten-digit national numbers
    (919876543210, 919876543211),    # with the country code, still bare
    ('"09876543210"', '"+91 98765 43211"'),  # quoted, as strings
])
def test_bare_and_quoted_number_forms(client, ssid, pool_of_three, m1, m2):
    response = send(client, SET, fill(PRETTY, ssid, m1, m2), "text/plain", {})
    data = assert_success_envelope(response)["data"]
    assert (data["m1"], data["m2"]) == ("+919876543210", "+919876543211")


def test_same_bare_number_twice_is_1501(client, ssid, pool_of_three):
    assert_error_envelope(send(client, SET, fill(PRETTY, ssid, M1, M1), None, {}), 1501)


def test_example_with_the_pool_exhausted_answers_the_seeds_example_response(database_url, clock):
    clock.set(T0)
    with configured_app(database_url, clock, API_ERROR_DETAIL="false") as application:
        client = application.test_client()
        ssid = ok(client, LOGIN, make_account(application))["ssid"]
        response = send(client, SET, fill(PRETTY, ssid), None, {"Content-Length": ""})
        assert response.status_code == 200  # the PHP example prints the body only on 200
        assert response.get_data() == b'{"status":"error","message":"Masking No not available","code":1505}'
        assert response.headers["Content-Length"] == "67"
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_userid_token_variant_of_the_example(app, client, pool_of_three, clock):
    clock.set(T0)
    account = make_account(app)
    body = PRETTY.replace('"ssid": "{{ssid}}"', f'"userId": "{account["userId"]}",\n    "token": "{account["token"]}"')
    data = assert_success_envelope(send(client, SET, fill(body, ""), "text/plain", {}))["data"]
    assert data["mask"] == POOL[0]


@pytest.mark.parametrize("content_type", [None, "text/plain", FORM])
def test_unset_example_ends_by_bare_mask_number(app, client, ssid, content_type):
    add_pool(app, POOL[0])
    created = assert_success_envelope(send(client, SET, fill(COMPACT, ssid), None, {}))["data"]
    bare_mask = created["mask"][3:]  # '+918041234500' -> 8041234500, sent as a JSON number
    body = '{"ssid": "%s", "mask": %s, "expiry_duration": -1}' % (ssid, bare_mask)
    data = assert_success_envelope(send(client, UNSET, body, content_type, {"Content-Length": ""}))["data"]
    assert data["action"] == "ended" and data["count"] == 1
    assert data["maskings"][0]["id"] == created["id"]
    assert data["maskings"][0]["status"] == "ended"
    check_invariants(app, T0)
