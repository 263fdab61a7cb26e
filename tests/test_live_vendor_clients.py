"""The vendor's client examples (../shared/seeds/000_acd9177845b95b64.txt), run FOR REAL
against the app served by gunicorn as `make run` serves it.

Each example's code is copied verbatim from the seed; only the placeholders are replaced:
``{{brand}}`` by the live server, ``{{ssid}}`` by an ssid from POST /api/v2/Auth/login,
``{{m1}}``/``{{m2}}`` by real ten-digit Indian mobile numbers. Each test asserts on what the
example prints: the success envelope, with a masking number from the pool.

What we found about the examples (the tests below hold these facts):

* Python http.client sends ``Content-Length:`` EMPTY with the body. Gunicorn alone answers
  400; masking/gunicorn_compat.py makes it work. The example uses ``HTTPSConnection``, so it
  is run unchanged over TLS: a small TLS terminator in this module forwards the decrypted
  bytes verbatim to gunicorn, and the example trusts a throw-away certificate through
  ``SSL_CERT_FILE``.
* The raw HTTP request's ``Content-Length: 130`` is the length of the body WITH THE
  PLACEHOLDERS LEFT IN (``{{ssid}}``, ``{{m1}}``, ``{{m2}}``, LF line ends): the vendor's
  tool measured its template. With a real ssid the body is longer, so the example is sent
  with its Content-Length set to the real body length (sent with 130, the server reads a
  truncated body and answers 1047).
* curl: the command sets no Content-Length of its own; it works as it is.
* Node's ``fetch`` example CANNOT work against any server: Node 20's fetch (undici) refuses
  the empty Content-Length header while building the request ("invalid content-length
  header", UND_ERR_INVALID_ARG) and never opens a connection. The test asserts exactly that.
  The axios example sends the same header through Node's ``http`` module; axios is not
  installed here, so its path is exercised with ``http.request`` itself, which sends the
  empty header and the body, and works against us.
* httpie: not run. It is not in the pinned requirements, and installing it pulls about
  fifteen packages (43 MB, including its own pip and setuptools) into the environment, which
  is not cheap. For the record: httpie reads ``Content-Length:`` (empty value) as "unset that
  header", and then sends the Content-Length it computed itself (133 for the example's body),
  so it needs nothing from the shim.
"""
from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from masking.models import Masking
from tests.api_helpers import count

TIMEOUT = 60  # seconds, only so a broken run cannot hang the suite

M1, M2 = "9876543210", "9876543211"

# ---------------------------------------------------------------- the examples, verbatim

PYTHON_HTTP_CLIENT = r'''import http.client

conn = http.client.HTTPSConnection("{{brand}}")
payload = "{\"ssid\": \"{{ssid}}\",\"m1\": {{m1}},\"m2\": {{m2}},\"eventId\": \"customer_support_123\",\"expiry_duration\": 1440}"
headers = {
 'Content-Length': ''
}
conn.request("POST", "/api/v2/Masking/set", payload, headers)
res = conn.getresponse()
data = res.read()
print(data.decode("utf-8"))
'''

CURL = r"""curl --location -g --request POST '{{brand}}/api/v2/Masking/set' \
--data-raw '{
    "ssid": "{{ssid}}",
    "m1": {{m1}},
    "m2": {{m2}},
    "eventId": "customer_support_123",
    "expiry_duration": 1440
}'"""

RAW_HTTP = """POST /api/v2/Masking/set HTTP/1.1
Host: {{brand}}
Content-Length: 130

{
    "ssid": "{{ssid}}",
    "m1": {{m1}},
    "m2": {{m2}},
    "eventId": "customer_support_123",
    "expiry_duration": 1440
}"""

NODE_FETCH = r'''var myHeaders = new Headers();
myHeaders.append("Content-Length", "");

var raw = "{\n    \"ssid\": \"{{ssid}}\",\n    \"m1\": {{m1}},\n    \"m2\": {{m2}},\n    \"eventId\": \"customer_support_123\",\n    \"expiry_duration\": 1440\n}";

var requestOptions = {
   method: 'POST',
   headers: myHeaders,
   body: raw,
   redirect: 'follow'
};

fetch("{{brand}}/api/v2/Masking/set", requestOptions)
   .then(response => response.text())
   .then(result => console.log(result))
   .catch(error => console.log('error', error));
'''

# The axios example's request (same data string, same headers) through Node's http module,
# which is what axios uses in Node.
NODE_HTTP = r'''var http = require('http');
var data = '{"ssid": "{{ssid}}","m1": {{m1}},"m2": {{m2}},"eventId": "customer_support_123","expiry_duration": 1440}';

var req = http.request('{{brand}}/api/v2/Masking/set', {
  method: 'post',
  headers: { 'Content-Length': '' }
}, function (res) {
  var chunks = [];
  res.on('data', function (chunk) { chunks.push(chunk); });
  res.on('end', function () { console.log(Buffer.concat(chunks).toString()); });
});
req.on('error', function (error) { console.log(error); });
req.write(data);
req.end();
'''


# ---------------------------------------------------------------- helpers

def fill(template: str, brand: str, ssid: str, m1: str = M1, m2: str = M2) -> str:
    return (template.replace("{{brand}}", brand).replace("{{ssid}}", ssid)
            .replace("{{m1}}", m1).replace("{{m2}}", m2))


def login(base_url: str, account: dict) -> str:
    reply = requests.post(base_url + "/api/v2/Auth/login", timeout=TIMEOUT,
                          json={"userId": account["userId"], "token": account["token"]}).json()
    assert reply["status"] == "success", reply
    return reply["data"]["ssid"]


def assert_masked(printed: str, pool: list[str], m1: str = M1, m2: str = M2) -> dict:
    """What the example printed is the success envelope of a masking from the pool."""
    reply = json.loads(printed)
    assert reply["status"] == "success", reply
    data = reply["data"]
    assert data["mask"] in pool
    assert (data["m1"], data["m2"]) == ("+91" + m1, "+91" + m2)
    assert data["eventId"] == "customer_support_123"
    assert data["status"] == "active"
    return data


def run(command: list[str], **kwargs) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---------------------------------------------------------------- TLS in front of the live server

@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1: (cert, key)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=TIMEOUT)
    return cert, key


class TlsTerminator:
    """Accepts TLS on a free port and forwards the decrypted bytes, unchanged, to the backend
    (as a load balancer would, but without touching the HTTP)."""

    def __init__(self, backend_port: int, cert: Path, key: Path):
        self.backend_port = backend_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(TIMEOUT)
        try:
            tls = self.context.wrap_socket(client, server_side=True)
            backend = socket.create_connection(("127.0.0.1", self.backend_port), timeout=TIMEOUT)
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pump, args=(backend, tls), daemon=True).start()
        self._pump(tls, backend)

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def https_server(live_server, certificate):
    terminator = TlsTerminator(live_server.port, *certificate)
    yield terminator
    terminator.close()


# ---------------------------------------------------------------- the tests

def test_python_http_client_example_over_https(app, live_server, https_server, certificate, account,
                                               pool_of_three):
    assert "'Content-Length': ''" in PYTHON_HTTP_CLIENT  # the case the shim exists for
    ssid = login(live_server.url, account)
    code = fill(PYTHON_HTTP_CLIENT, f"127.0.0.1:{https_server.port}", ssid)
    env = {**os.environ, "SSL_CERT_FILE": str(certificate[0])}
    printed = run([sys.executable, "-c", code], env=env)
    assert_masked(printed, pool_of_three)
    assert count(app, Masking) == 1


def test_curl_example(app, live_server, account, pool_of_three):
    ssid = login(live_server.url, account)
    printed = run(["bash", "-c", fill(CURL, live_server.url, ssid)])
    assert_masked(printed, pool_of_three)
    assert count(app, Masking) == 1


def _send_raw(port: int, request: bytes) -> tuple[int, dict]:
    """Send ``request`` byte for byte; return the first response's status and JSON body."""
    import http.client

    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def test_raw_http_example(app, live_server, account, pool_of_three):
    body_template = RAW_HTTP.split("\n\n", 1)[1]
    # The example's Content-Length is that of its template, placeholders and all.
    assert len(body_template.encode()) == 130

    ssid = login(live_server.url, account)
    head, body = fill(RAW_HTTP, f"127.0.0.1:{live_server.port}", ssid).split("\n\n", 1)
    body_bytes = body.encode()
    assert len(body_bytes) != 130  # so 130 is wrong for any real ssid
    head_lines = head.split("\n")
    assert head_lines[-1] == "Content-Length: 130"

    # As printed, the server reads the first 130 bytes only: not a JSON object.
    as_printed = ("\r\n".join(head_lines) + "\r\n\r\n").encode() + body_bytes
    status, reply = _send_raw(live_server.port, as_printed)
    assert (status, reply["code"]) == (200, 1047)
    assert count(app, Masking) == 0

    # With the real length, the example works.
    head_lines[-1] = f"Content-Length: {len(body_bytes)}"
    fixed = ("\r\n".join(head_lines) + "\r\n\r\n").encode() + body_bytes
    status, reply = _send_raw(live_server.port, fixed)
    assert status == 200
    assert_masked(json.dumps(reply), pool_of_three)
    assert count(app, Masking) == 1


def test_node_fetch_example_cannot_send_an_empty_content_length(app, live_server, account, pool_of_three):
    """Node 20's fetch refuses the example's header itself, before connecting anywhere."""
    ssid = login(live_server.url, account)
    printed = run(["node", "-e", fill(NODE_FETCH, live_server.url, ssid)])
    assert printed.startswith("error TypeError: fetch failed")
    assert "invalid content-length header" in printed
    assert "UND_ERR_INVALID_ARG" in printed
    assert count(app, Masking) == 0

    # Against any server: pointed at a bare listening socket, it never even connects.
    # (A connection would have completed in the kernel's accept queue before node exited.)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        brand = f"http://127.0.0.1:{listener.getsockname()[1]}"
        printed = run(["node", "-e", fill(NODE_FETCH, brand, ssid)])
        assert "invalid content-length header" in printed
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_node_http_module_with_the_axios_examples_request(app, live_server, account, pool_of_three):
    ssid = login(live_server.url, account)
    printed = run(["node", "-e", fill(NODE_HTTP, live_server.url, ssid)])
    assert_masked(printed, pool_of_three)
    assert count(app, Masking) == 1
