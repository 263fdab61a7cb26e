"""masking/gunicorn_compat.py: an empty ``Content-Length:`` header, on the wire, against the
live server (gunicorn as `make run` serves it); and gunicorn's fast-parser path.

What these prove:

* a body sent with an empty (or blank) Content-Length is read, whether it arrives with the
  headers, in a later segment, or split across segments; the connection is then closed;
* nothing sent after such a request on the same connection is ever served (no smuggling);
* a proper Content-Length, a chunked body, and keep-alive behave as before; every other bad
  Content-Length (empty with Transfer-Encoding, not a number, duplicated) is still a 400;
* a body over the API limit is refused by the app (1510), not read without bound;
* with gunicorn's fast C parser (gunicorn_h1c, which refuses an empty Content-Length inside
  its own parse), the request is parsed again by gunicorn's Python parser and read the same.
"""
from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
import requests

from masking.models import Masking
from tests.api_helpers import count
from tests.conftest import PARTIES

TIMEOUT = 30  # seconds, only so a broken run cannot hang


def set_body(account: dict, m1: str = PARTIES[0], m2: str = PARTIES[1]) -> bytes:
    return json.dumps({"userId": account["userId"], "token": account["token"], "m1": m1, "m2": m2,
                       "expiry_duration": 60}).encode()


def head(content_length: str = "", extra: str = "") -> bytes:
    return (f"POST /api/v2/Masking/set HTTP/1.1\r\nHost: test\r\nContent-Length:{content_length}\r\n"
            f"{extra}\r\n").encode()


class Connection:
    """A raw client socket: send pieces, read HTTP responses, see whether the server closed."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.reader = self.sock.makefile("rb")

    def send(self, *pieces: bytes, pause: float = 0.1) -> None:
        """Each piece in its own TCP segment (TCP_NODELAY, a pause between them)."""
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index, piece in enumerate(pieces):
            if index:
                time.sleep(pause)
            self.sock.sendall(piece)

    def response(self) -> tuple[int, dict, bytes]:
        reader = self.reader

        class _Unclosable:  # HTTPResponse closes its file when done; ours serves the next one
            def __getattr__(_self, name):
                return getattr(reader, name)

            def close(_self):
                pass

        class _Sock:  # HTTPResponse wants makefile(): hand it our one buffered reader
            def makefile(_self, *_args, **_kwargs):
                return _Unclosable()

        response = http.client.HTTPResponse(_Sock())
        response.begin()
        return response.status, dict(response.getheaders()), response.read()

    def closed_by_server(self) -> bool:
        return self.reader.read() == b""  # EOF (times out, and fails, if the server keeps it open)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def connect(live_server):
    opened = []

    def _connect() -> Connection:
        opened.append(Connection(live_server.port))
        return opened[-1]

    yield _connect
    for connection in opened:
        connection.close()


def assert_success(status: int, body: bytes, pool: list[str]) -> dict:
    reply = json.loads(body)
    assert (status, reply["status"]) == (200, "success"), reply
    assert reply["data"]["mask"] in pool
    return reply["data"]


@pytest.mark.parametrize("blank", ["", " ", "   \t"])
def test_body_with_the_headers(app, connect, account, pool_of_three, blank):
    conn = connect()
    conn.send(head(blank) + set_body(account))
    status, headers, body = conn.response()
    assert_success(status, body, pool_of_three)
    assert headers["Connection"] == "close"
    assert conn.closed_by_server()
    assert count(app, Masking) == 1


def test_body_in_a_later_segment(app, connect, account, pool_of_three):
    conn = connect()
    conn.send(head(), set_body(account))
    status, _, body = conn.response()
    assert_success(status, body, pool_of_three)
    assert conn.closed_by_server()


def test_body_split_across_segments(app, connect, account, pool_of_three):
    body = set_body(account)
    conn = connect()
    conn.send(head() + body[:7], body[7:30], body[30:])
    status, _, reply = conn.response()
    assert_success(status, reply, pool_of_three)


def test_form_body_is_read_until_the_client_stops(app, connect, account, pool_of_three):
    """Not JSON, so the shim cannot tell it is complete: it waits until no more arrives."""
    form = f"userId={account['userId']}&token={account['token']}&m1=9876543210&m2=9876543211".encode()
    conn = connect()
    conn.send(head(" "), form[:20], form[20:])
    status, _, reply = conn.response()
    assert_success(status, reply, pool_of_three)
    assert conn.closed_by_server()


def test_a_request_pipelined_behind_is_never_served(app, connect, account, pool_of_three):
    """No smuggling: what follows an empty-Content-Length request is part of its body, or dropped."""
    smuggled = head(str(len(set_body(account, PARTIES[2], PARTIES[3])))) + set_body(account, PARTIES[2], PARTIES[3])
    conn = connect()
    conn.send(head() + set_body(account) + smuggled)
    status, headers, reply = conn.response()
    assert status == 200 and json.loads(reply)["code"] == 1047  # one body that is not JSON
    assert headers["Connection"] == "close"
    assert conn.closed_by_server()  # exactly one response, then EOF
    assert count(app, Masking) == 0

    conn = connect()  # the same, with the second request in a later segment
    conn.send(head() + set_body(account), smuggled)
    status, _, reply = conn.response()
    assert_success(status, reply, pool_of_three)
    assert conn.closed_by_server()
    assert count(app, Masking) == 1


def test_too_large_a_body_is_refused_not_read_forever(app, connect, account, pool_of_three):
    conn = connect()
    conn.send(head() + b'{"pad": "' + b"x" * 70_000 + b'"}')
    status, headers, reply = conn.response()
    assert (status, json.loads(reply)["code"]) == (200, 1510)
    assert headers["Connection"] == "close"


def test_proper_content_length_keeps_the_connection_alive(app, connect, account, pool_of_three):
    conn = connect()
    first, second = set_body(account, PARTIES[0], PARTIES[1]), set_body(account, PARTIES[2], PARTIES[3])
    conn.send(head(f" {len(first)}") + first)
    status, headers, reply = conn.response()
    assert_success(status, reply, pool_of_three)
    assert headers.get("Connection", "keep-alive") != "close"
    conn.send(head(f" {len(second)}") + second)
    status, _, reply = conn.response()
    assert_success(status, reply, pool_of_three)
    assert count(app, Masking) == 2


def test_chunked_body_as_before(app, live_server, account, pool_of_three):
    reply = requests.post(live_server.url + "/api/v2/Masking/set", data=iter([set_body(account)]),
                          timeout=TIMEOUT)  # a generator: requests sends it chunked
    assert reply.request.headers["Transfer-Encoding"] == "chunked"
    assert_success(reply.status_code, reply.content, pool_of_three)


@pytest.mark.parametrize("bad_head", [
    head("", "Transfer-Encoding: chunked\r\n"),
    head(" abc"),
    head("", "Content-Length: 5\r\n"),
    head(" 5", "Content-Length:\r\n"),
])
def test_other_bad_content_lengths_are_still_refused(app, connect, account, pool_of_three, bad_head):
    conn = connect()
    conn.send(bad_head + set_body(account))
    status, _, _ = conn.response()
    assert status == 400
    assert count(app, Masking) == 0


# ---------------------------------------------------------------- gunicorn's fast C parser

class _FakeH1C:
    """Stands in for gunicorn_h1c, refusing an empty Content-Length the way it does
    (gunicorn_h1c 0.6.10 raises InvalidHeader("Invalid Content-Length value") from
    parse_request). Checked by hand against the real package too; it is not a dependency."""

    class ParseError(Exception):
        pass

    class IncompleteError(ParseError):
        pass

    class InvalidHeader(ParseError):
        pass

    class InvalidHeaderName(ParseError):
        pass

    class InvalidRequestMethod(ParseError):
        pass

    class InvalidHTTPVersion(ParseError):
        pass

    class LimitRequestLine(ParseError):
        pass

    class LimitRequestHeaders(ParseError):
        pass

    calls = 0

    @classmethod
    def parse_request(cls, data, **_limits):
        cls.calls += 1
        if b"\r\n\r\n" not in data:
            raise cls.IncompleteError()
        raise cls.InvalidHeader("Invalid Content-Length value")


def test_fast_parser_path(monkeypatch):
    from gunicorn.config import Config
    from gunicorn.http import message
    from gunicorn.http.unreader import IterUnreader

    from masking import gunicorn_compat

    gunicorn_compat.install()
    monkeypatch.setattr(message, "_fast_parser_available", True)
    monkeypatch.setattr(message, "_fast_parser_module", _FakeH1C)
    body = b'{"m1": 9876543210}'
    raw = b"POST /api/v2/Masking/set HTTP/1.1\r\nHost: test\r\nContent-Length: \r\n\r\n" + body
    # In two pieces, as off a socket: the fast parser first asks for more, then refuses.
    request = message.Request(Config(), IterUnreader([raw[:20], raw[20:]]), ("127.0.0.1", 1))
    assert _FakeH1C.calls == 2
    assert request.body.read() == body
    assert ("CONTENT-LENGTH", str(len(body))) in request.headers
    assert request.should_close()

    with pytest.raises(message.InvalidHeader):  # any other bad value: still refused
        message.Request(Config(), IterUnreader([raw.replace(b"Length: ", b"Length: x")]), ("127.0.0.1", 1))
