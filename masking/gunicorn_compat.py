"""Gunicorn compatibility shim: accept the vendor clients' empty ``Content-Length:`` header.

The vendor's client examples (Python http.client, Node axios and http, Java OkHttp, PHP,
...) send ``Content-Length:`` with an EMPTY value, followed by the body. Strict HTTP says
such a request has no determinable length, and gunicorn answers 400 "Invalid HTTP Header:
CONTENT-LENGTH" before the app is ever called. Those examples must work against us
unchanged, so this module teaches gunicorn one narrow exception:

    a request whose only Content-Length header is empty (or whitespace), and which has
    no Transfer-Encoding, gets as its body the bytes the client has sent after the
    headers, read until the client stops sending; and the connection is closed after
    the response (no keep-alive).

How the end of the body is found (there is no length to go by):

* take what gunicorn already buffered with the headers (usually the whole body: most
  clients write headers and body in one segment);
* stop at once when those bytes are a complete JSON object (every body our API takes
  is one, so nothing more can be coming);
* otherwise wait for more bytes, at most ``IDLE_SECONDS`` for each next segment and
  ``MAX_WAIT_SECONDS`` in all, and never read more than the API's body limit (+1, so
  the app can still answer "too large").

Why closing is required: we cannot know where this request really ends, so whatever
follows on the connection must never be parsed as a further request (that would be
request smuggling). ``force_close()`` makes gunicorn answer ``Connection: close`` and
drop the connection after the response.

Both of gunicorn's HTTP/1 parsers are covered:

* the Python parser hands the empty value to ``set_body_reader``, which refuses it: we
  wrap ``Request.set_body_reader``;
* the fast C parser (``gunicorn_h1c``, used automatically when installed) refuses the
  empty value itself, inside ``Request._parse_fast``: when it refuses a Content-Length,
  we re-parse the same bytes with gunicorn's own Python parser, which then meets the
  wrapped ``set_body_reader``. Any other bad Content-Length is still refused by it.

Everything else (a proper Content-Length, chunked bodies, no body) takes gunicorn's
unchanged code path. This module imports gunicorn and the plain-Python masking.settings, never
Flask; ``install()`` is called from gunicorn.conf.py, in the master process, before workers fork.
"""
from __future__ import annotations

import json
import os
import socket
import time

from gunicorn.http import message
from gunicorn.http.errors import InvalidHeader

from masking.settings import max_body_bytes

# Waiting for the rest of a body that is not (yet) a complete JSON object.
IDLE_SECONDS = 0.5       # longest wait for the next segment
MAX_WAIT_SECONDS = 2.0   # longest wait in all, however the client trickles
# Same setting, default and check as the app's own body limit (masking.settings, API_MAX_BODY_BYTES).
MAX_BODY_BYTES = max_body_bytes(os.environ.get("API_MAX_BODY_BYTES"))

_HEADER = "CONTENT-LENGTH"


def _has_empty_content_length(headers) -> bool:
    """True for exactly one Content-Length, empty or blank, and no Transfer-Encoding."""
    lengths = [value for name, value in headers if name == _HEADER]
    has_transfer_encoding = any(name == "TRANSFER-ENCODING" for name, _ in headers)
    return len(lengths) == 1 and not lengths[0].strip() and not has_transfer_encoding


def _is_json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data.decode("utf-8-sig")), dict)
    except ValueError:  # includes UnicodeDecodeError and an incomplete document
        return False


def read_arrived_body(unreader, limit: int = MAX_BODY_BYTES) -> bytes:
    """The bytes the client sent after the headers, up to ``limit + 1`` of them."""
    body = bytearray(unreader.take_buffered())
    sock = getattr(unreader, "sock", None)
    prior_timeout = sock.gettimeout() if sock is not None else None
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    try:
        while len(body) <= limit and not _is_json_object(bytes(body)):
            remaining = min(IDLE_SECONDS, deadline - time.monotonic())
            if remaining <= 0:
                break
            if sock is not None:
                sock.settimeout(remaining)
            try:
                chunk = unreader.read()
            except (socket.timeout, TimeoutError):
                break  # the client has stopped sending: that was the body
            if not chunk:
                break  # the client shut down its sending side
            body += chunk
    finally:
        if sock is not None:
            try:
                sock.settimeout(prior_timeout)
            except OSError:
                pass
    # Anything past limit + 1 is dropped: the app refuses the body as too large, and the
    # connection closes, so no byte of it is ever read as a request.
    return bytes(body[: limit + 1])


def install() -> None:
    """Patch gunicorn's HTTP/1 request class. Idempotent."""
    request_class = message.Request
    if getattr(request_class, "_masking_empty_content_length", False):
        return
    request_class._masking_empty_content_length = True
    original_set_body_reader = request_class.set_body_reader
    original_parse_fast = request_class._parse_fast

    def set_body_reader(self):
        if _has_empty_content_length(self.headers):
            body = read_arrived_body(self.unreader)
            self.unreader.unread(body)
            # Give the request the length it really had, for gunicorn's body reader
            # and for the app (CONTENT_LENGTH in the WSGI environ).
            self.headers = [(name, str(len(body)) if name == _HEADER else value)
                            for name, value in self.headers]
            self.force_close()
        original_set_body_reader(self)

    def _parse_fast(self, unreader, buf):
        try:
            return original_parse_fast(self, unreader, buf)
        except InvalidHeader as exc:
            # gunicorn_h1c says "Invalid Content-Length value" for an empty one. ``buf``
            # still holds every byte read so far: parse them again the Python way,
            # which refuses every bad Content-Length except the empty one.
            if "content-length" not in str(exc.hdr).lower():
                raise
            self.headers = []
            return self._parse_python(unreader, buf)

    request_class.set_body_reader = set_body_reader
    request_class._parse_fast = _parse_fast
