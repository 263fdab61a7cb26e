"""masking.client.MaskingClient against the real server (gunicorn, as `make run` serves it),
and against servers that fail: a closed port, one that never answers, one that answers HTML."""
from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from masking.client import MaskingAPIError, MaskingClient, MaskingClientError, MaskingUnavailable
from tests.conftest import PARTIES, free_port, make_account


@pytest.fixture
def http_session():
    """A requests session closed after the test (no socket is left to the garbage collector)."""
    session = requests.Session()
    yield session
    session.close()


def _client(url: str, session: requests.Session, **credentials) -> MaskingClient:
    return MaskingClient(url, session=session, **credentials)


def _api_error(call, *args, **kwargs) -> MaskingAPIError:
    with pytest.raises(MaskingAPIError) as caught:
        call(*args, **kwargs)
    assert isinstance(caught.value, MaskingClientError)
    return caught.value


# ---------------------------------------------------------------- against the real server

def test_calls_return_the_api_data(live_server, account, pool_of_three, http_session):
    client = _client(live_server.url, http_session, user_id=account["userId"], token=account["token"])

    # The vendor's style: bare numbers, national notation.
    first = client.set(9876543200, "09876543201", expiry_duration=60, event_id="ticket-42")
    assert first["mask"] in pool_of_three
    assert (first["m1"], first["m2"], first["eventId"], first["status"]) == (
        PARTIES[0], PARTIES[1], "ticket-42", "active")
    assert first["ended_at"] is None
    created = datetime.fromisoformat(first["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00"))
    assert (expires - created.replace(microsecond=0)).total_seconds() == 3600

    until = int(time.time()) + 7200
    second = client.set(PARTIES[2], PARTIES[3], expiry_time=until)
    assert second["expires_at"] == datetime.fromtimestamp(until, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert second["eventId"] is None

    assert client.get(first["id"]) == first
    assert client.get(str(second["id"]))["id"] == second["id"]

    page = client.list(limit=1)
    assert [m["id"] for m in page["maskings"]] == [second["id"]]
    assert page["next_cursor"] == str(second["id"])
    rest = client.list(limit=1, cursor=page["next_cursor"])
    assert [m["id"] for m in rest["maskings"]] == [first["id"]] and rest["next_cursor"] is None
    assert [m["id"] for m in client.list(eventId="ticket-42")["maskings"]] == [first["id"]]

    extended = client.unset(mask=first["mask"], m1=PARTIES[0], expiry_duration=5)
    assert extended["action"] == "extended" and extended["count"] == 1
    assert extended["maskings"][0]["id"] == first["id"] and extended["maskings"][0]["status"] == "active"

    ended = client.unset(m1=PARTIES[2])
    assert (ended["action"], ended["count"]) == ("ended", 1)
    assert ended["maskings"][0]["status"] == "ended" and ended["maskings"][0]["ended_at"] is not None
    assert [m["id"] for m in client.list(status="active")["maskings"]] == [first["id"]]

    ssid = client.login()
    assert ssid.startswith("mss_") and client.credentials == {"ssid": ssid}
    assert client.get(first["id"])["id"] == first["id"]  # now through the ssid

    by_ssid = _client(live_server.url, http_session, ssid=ssid)
    assert [m["id"] for m in by_ssid.list(status="ended")["maskings"]] == [second["id"]]
    # The vendor's unset example: end by masking number with a negative duration.
    assert by_ssid.unset(mask=first["mask"], expiry_duration=-1)["action"] == "ended"


def test_refusals_raise_api_errors_with_code_message_detail(live_server, app, account, pool_of_three,
                                                            http_session):
    client = _client(live_server.url, http_session, user_id=account["userId"], token=account["token"])

    same = _api_error(client.set, "9876543210", "+91 98765 43210")
    assert (same.code, same.message, same.http_status) == (1501, "m1 and m2 cannot be the same", 200)
    assert "m1 and m2 are both" in same.detail
    assert str(same).startswith("1501 m1 and m2 cannot be the same: ")

    bad_number = _api_error(client.set, "12", PARTIES[1])
    assert (bad_number.code, bad_number.message) == (1000, "Invalid parameters")
    assert bad_number.detail.startswith("m1 ")

    bad_duration = _api_error(client.set, PARTIES[0], PARTIES[1], expiry_duration=1.5)
    assert (bad_duration.code, bad_duration.message) == (1502, "Expiry must be an integer value")
    assert "1.5" in bad_duration.detail

    masking = client.set(PARTIES[0], PARTIES[1], expiry_duration=30)
    again = _api_error(client.set, PARTIES[1], PARTIES[0])
    assert again.code == 1503
    assert again.message == ("Your masking request could not be expired until now. "
                             "So you cannot make another request")
    assert again.data == {"id": masking["id"], "mask": masking["mask"], "expires_at": masking["expires_at"]}
    assert masking["mask"] in again.detail

    # Party 0 holds every number of the pool of three once it has three maskings.
    client.set(PARTIES[0], PARTIES[4])
    client.set(PARTIES[0], PARTIES[5])
    exhausted = _api_error(client.set, PARTIES[0], PARTIES[6])
    assert (exhausted.code, exhausted.message, exhausted.http_status) == (1505, "Masking No not available", 200)
    assert exhausted.detail

    missing = _api_error(client.unset, mask=pool_of_three[0], m1=PARTIES[7])
    assert (missing.code, missing.message) == (1506, "Masking not found")
    assert _api_error(client.get, 10**9).code == 1506

    late = _api_error(client.set, PARTIES[7], PARTIES[8], expiry_time="2001-01-01 00:00:00")
    assert (late.code, late.detail) == (1507, "expiry_time must be in the future")

    wrong_token = _client(live_server.url, http_session, user_id=account["userId"], token="mtk_wrong")
    refused = _api_error(wrong_token.set, PARTIES[7], PARTIES[8])
    assert (refused.code, refused.message, refused.detail) == (
        1014, "Invalid token", "userId and token do not match an account")
    assert _api_error(wrong_token.login).code == 1014
    assert wrong_token.credentials == {"userId": account["userId"], "token": "mtk_wrong"}  # unchanged

    stale_ssid = _client(live_server.url, http_session, ssid="mss_never-issued")
    assert _api_error(stale_ssid.list).code == 1014

    reader = make_account(app, "reader", can_write=False)
    read_only = _client(live_server.url, http_session, user_id=reader["userId"], token=reader["token"])
    denied = _api_error(read_only.set, PARTIES[7], PARTIES[8])
    assert (denied.code, denied.message) == (1015, "Permission denied")
    assert read_only.list() == {"maskings": [], "next_cursor": None}


def test_an_unknown_endpoint_is_an_api_error(live_server, account, http_session):
    client = _client(live_server.url, http_session, user_id=account["userId"], token=account["token"])
    unknown = _api_error(client.call, "Masking/frobnicate", {})
    assert (unknown.code, unknown.http_status) == (1508, 200)


def test_credentials_are_required():
    with pytest.raises(ValueError):
        MaskingClient("http://127.0.0.1:1", user_id="u1")
    with pytest.raises(ValueError):
        MaskingClient("http://127.0.0.1:1", token="t")


# ---------------------------------------------------------------- servers that fail

def test_a_closed_port_is_unavailable(http_session):
    url = f"http://127.0.0.1:{free_port()}"  # bound a moment ago, now nobody listens
    client = _client(url, http_session, ssid="mss_x", timeout=2)
    with pytest.raises(MaskingUnavailable) as caught:
        client.list()
    assert "cannot be reached" in str(caught.value)
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert not isinstance(caught.value, MaskingAPIError)


class SilentServer:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            self.accepted.append(conn)
            self.serve(conn)

    def serve(self, conn: socket.socket) -> None:
        """Say nothing."""

    def close(self):
        self.stopping.set()
        self.thread.join()
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


def test_a_server_that_never_answers_times_out(silent_server, http_session):
    client = _client(silent_server.url, http_session, user_id="u1", token="t", timeout=(2, 0.3))
    with pytest.raises(MaskingUnavailable) as caught:
        client.set(PARTIES[0], PARTIES[1])
    assert "did not answer in time" in str(caught.value)
    assert isinstance(caught.value.__cause__, requests.Timeout)
    assert silent_server.accepted, "the client never connected: this was not a read timeout"


class StallingServer(SilentServer):
    """Answers the headers and the start of a body, then stalls."""

    def serve(self, conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 67\r\n\r\n"
                     b'{"status":"er')


def test_a_server_that_stalls_mid_answer_times_out(http_session):
    server = StallingServer()
    try:
        client = _client(server.url, http_session, ssid="mss_x", timeout=(2, 0.3))
        with pytest.raises(MaskingUnavailable) as caught:
            client.list()
    finally:
        server.close()
    assert "did not answer in time" in str(caught.value)


def test_the_client_closes_its_session(silent_server):
    session = requests.Session()
    closed = []
    session.close = lambda: closed.append(True)
    with MaskingClient(silent_server.url, ssid="mss_x", session=session) as client:
        assert client.http is session
    assert closed == [True]


class CannedHandler(BaseHTTPRequestHandler):
    """Answers every POST with the server's canned (status, content type, body)."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, content_type, body = self.server.canned
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def canned_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), CannedHandler)
    server.canned = (200, "text/html", "")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.mark.parametrize("status, content_type, body", [
    (200, "text/html", "<html><body><h1>Welcome to nginx!</h1></body></html>"),
    (502, "text/html", "<html><head><title>502 Bad Gateway</title></head></html>"),
    (200, "application/json", ""),
])
def test_a_non_json_answer_is_unavailable(canned_server, http_session, status, content_type, body):
    canned_server.canned = (status, content_type, body)
    client = _client(f"http://127.0.0.1:{canned_server.server_port}", http_session, ssid="mss_x")
    with pytest.raises(MaskingUnavailable) as caught:
        client.get(1)
    assert f"HTTP {status} without a JSON body" in str(caught.value)


@pytest.mark.parametrize("body", ['{"status":"ok"}', "[1, 2]", "null", '"success"'])
def test_json_that_is_not_the_envelope_is_unavailable(canned_server, http_session, body):
    canned_server.canned = (200, "application/json", body)
    client = _client(f"http://127.0.0.1:{canned_server.server_port}", http_session, ssid="mss_x")
    with pytest.raises(MaskingUnavailable) as caught:
        client.list()
    assert "not the API's envelope" in str(caught.value)


def test_a_server_error_envelope_is_an_api_error(canned_server, http_session):
    canned_server.canned = (500, "application/json; charset=utf-8",
                            '{"status":"error","message":"Something went wrong","code":1009}')
    client = _client(f"http://127.0.0.1:{canned_server.server_port}", http_session, ssid="mss_x")
    error = _api_error(client.set, PARTIES[0], PARTIES[1])
    assert (error.code, error.message, error.detail, error.http_status) == (1009, "Something went wrong", None, 500)
    assert str(error) == "1009 Something went wrong"
