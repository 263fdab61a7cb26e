"""The HTTP face of the masking rules: the vendor's Masking API v2 and our additions.

Thin: read the body, authenticate, call ``masking.service``, answer in the vendor's envelope.
Every path under /api/v2/ is matched case-insensitively through one dispatch table.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import generate_etag

from masking import accounts, driver, errors, readiness, service
from masking.clock import iso_utc
from masking.db import write_transaction
from masking.errors import MaskingError
from masking.phone import redact
from masking.web.extensions import db, now as utcnow, settings
from masking.web.openapi import API_PREFIX
from masking.web.service_client import dashboard_user_ids

PATH_PREFIX = API_PREFIX  # "/api/v2/", as the OpenAPI document names the paths
bp = Blueprint("api", __name__, url_prefix=PATH_PREFIX.rstrip("/"))
log = logging.getLogger("masking.api")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS, PATCH, DELETE",
    "Access-Control-Allow-Headers": "X-Requested-With, content-type",
    "Access-Control-Allow-Credentials": "true",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


# Every envelope carries these, built once.
ENVELOPE_HEADERS = [("Content-Type", "application/json; charset=utf-8"), *CORS_HEADERS.items(), ("Vary", "Origin")]


@dataclass
class Call:
    """What the log line says of one API call; filled in as the call goes."""

    endpoint: str
    started: float
    code: int | str = "-"
    account: str = "-"
    numbers: tuple[str, ...] = ()
    mask: str | None = None


def _call() -> Call:
    return g.api_call


# ---------------------------------------------------------------- envelope

def envelope(payload: dict, status: int = 200) -> Response:
    """Compact JSON, keys in the order given (the vendor's clients compare bytes)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    response = Response(body, status=status, headers=ENVELOPE_HEADERS)
    response.set_etag(generate_etag(body))
    return response


def success(message: str, data) -> Response:
    _call().code = 0
    return envelope({"status": "success", "message": message, "data": data})


def failure(error: MaskingError) -> Response:
    _call().code = error.code
    payload = {"status": "error", "message": error.message, "code": error.code}
    if current_app.config["API_ERROR_DETAIL"]:
        if error.detail:
            payload["detail"] = error.detail
        if error.data:
            payload["data"] = error.data
    response = envelope(payload, error.http_status)
    if error.code == errors.METHOD_NOT_ALLOWED:
        response.headers["Allow"] = "POST, OPTIONS"
    elif error.code == errors.TOO_MANY_REQUESTS:
        response.headers["Retry-After"] = str(error.data["retry_after"])
    return response


def _unknown_endpoint(endpoint: str) -> MaskingError:
    return MaskingError(errors.UNKNOWN_ENDPOINT, f"no endpoint {PATH_PREFIX}{endpoint[:60]}")


def _method_not_allowed() -> MaskingError:
    return MaskingError(errors.METHOD_NOT_ALLOWED, f"use POST, not {request.method[:20]}")


# ---------------------------------------------------------------- reading the body

def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_body() -> dict:
    """The request body as a dict, whatever the Content-Type says.

    JSON first (the vendor's examples send JSON as text/plain or unlabelled); a body that
    is not JSON is tried as a urlencoded form; multipart forms are read as forms. Anything
    else, empty or not an object: 1047.
    """
    limit = current_app.config["API_MAX_BODY_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise MaskingError(errors.TOO_LARGE, f"the body must be at most {limit} bytes")
    if request.mimetype == "multipart/form-data":
        request.max_content_length = limit  # also for a chunked body, which has no Content-Length
        try:
            return _non_empty(request.form.to_dict())
        except RequestEntityTooLarge:
            raise MaskingError(errors.TOO_LARGE, f"the body must be at most {limit} bytes") from None
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise MaskingError(errors.TOO_LARGE, f"the body must be at most {limit} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MaskingError(errors.INVALID_REQUEST_DATA, "the body is not UTF-8 text") from None
    if not text.strip():
        raise MaskingError(errors.INVALID_REQUEST_DATA, "the request body is empty")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise MaskingError(errors.INVALID_REQUEST_DATA, "the JSON body is nested too deeply") from None
    except ValueError:
        value = _form(text)
    if not isinstance(value, dict):
        raise MaskingError(errors.INVALID_REQUEST_DATA, "the body must be a JSON object")
    if "\\u" in text and not _encodable(value):
        raise MaskingError(errors.INVALID_REQUEST_DATA, "the body holds a \\u escape that is not a character "
                                                        "(a lone surrogate such as \\ud800)")
    return _non_empty(value)


def _encodable(value) -> bool:
    """Can every string in ``value`` be written as UTF-8? JSON's \\ud800 escape makes one that cannot,
    and it would fail later, wherever the text is hashed, logged or stored."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _form(text: str) -> dict:
    try:
        pairs = parse_qsl(text.strip(), keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise MaskingError(errors.INVALID_REQUEST_DATA, "the body is neither JSON nor a urlencoded form") from None
    return dict(pairs)


def _non_empty(value: dict) -> dict:
    if not value:
        raise MaskingError(errors.INVALID_REQUEST_DATA, "the body must not be empty")
    return value


# ---------------------------------------------------------------- endpoints

def _authenticated(body: dict, *, write: bool, conn: driver.DriverConnection | None = None):
    conn = conn or driver.of_session(db.session())
    account = accounts.authenticate(conn, body, utcnow(), write=write)
    _call().account = account.user_id
    _within_rate_limit(account.user_id)
    return account


def _within_rate_limit(user_id: str) -> None:
    """1511 when the account is over API_RATE_LIMIT (masking.rate_limit); counted after the
    credentials are checked, so nobody spends another account's allowance."""
    limit = current_app.extensions["api_rate_limit"]
    if not limit.enabled:
        return
    if user_id in dashboard_user_ids():  # the dashboard's agents are people: their logins are limited
        return
    refusal = limit.hit(user_id)
    if refusal is not None:
        raise MaskingError(errors.TOO_MANY_REQUESTS,
                           f"this account may make {refusal.limit}; try again in {refusal.retry_after} s",
                           data={"retry_after": refusal.retry_after})


def masking_set(body: dict) -> Response:
    # The busiest call: a pooled connection of its own, at the driver level, no ORM session.
    with driver.checkout(db.engine) as conn:
        account = _authenticated(body, write=True, conn=conn)
        now = utcnow()
        req = service.read_set_request(body, now, settings())
        _call().numbers = (req.m1, req.m2)
        masking = service.create_masking(conn, account, req, now, settings())
    _call().mask = masking.mask_number
    return success("Masking set successfully", service.masking_view(masking, now))


def masking_unset(body: dict) -> Response:
    with driver.checkout(db.engine) as conn:  # as set: the other busy call
        account = _authenticated(body, write=True, conn=conn)
        now = utcnow()
        action, maskings = service.update_maskings(conn, account, body, now, settings())
    message = "Masking ended" if action == "ended" else "Masking expiry updated"
    views = [service.masking_view(m, now) for m in maskings]
    _call().numbers = tuple(n for m in maskings[:3] for n in (m.m1, m.m2))  # for the log line, hidden there
    _call().mask = maskings[0].mask_number
    return success(message, {"action": action, "count": len(views), "maskings": views})


def masking_get(body: dict) -> Response:
    account = _authenticated(body, write=False)
    masking = service.get_masking(db.session(), account, body.get("id"))
    return success("Masking found", service.masking_view(masking, utcnow()))


def masking_list(body: dict) -> Response:
    account = _authenticated(body, write=False)
    now = utcnow()
    page, next_cursor = service.list_maskings(db.session(), account, body, now, settings())
    return success("Maskings listed", {
        "maskings": [service.masking_view(m, now) for m in page],
        "next_cursor": str(next_cursor) if next_cursor else None,
    })


def auth_login(body: dict) -> Response:
    user_id, token = body.get("userId"), body.get("token")
    if body.get("ssid") not in (None, ""):
        raise MaskingError(errors.INVALID_PARAMETERS, "log in with userId and token, not ssid")
    if not isinstance(user_id, str) or not isinstance(token, str) or not user_id or not token:
        raise MaskingError(errors.INVALID_PARAMETERS, "userId and token are required strings")
    now = utcnow()
    # Read and write in one write transaction: on SQLite a read transaction that then writes
    # fails at once ("database is locked") when another connection wrote meanwhile.
    with write_transaction(db.session()):
        account = accounts.check_token(driver.of_session(db.session()), user_id, token, now)
        _call().account = account.user_id
        _within_rate_limit(account.user_id)
        ssid, row = accounts.open_session(db.session(), account, now, settings().ssid_ttl_seconds)
    return success("Logged in", {"ssid": ssid, "expires_at": iso_utc(row.expires_at)})


def auth_logout(body: dict) -> Response:
    ssid = body.get("ssid")
    if not isinstance(ssid, str) or not ssid:
        raise MaskingError(errors.INVALID_PARAMETERS, "ssid is required")
    with write_transaction(db.session()):  # as in auth_login: the read that decides the write
        _authenticated(body, write=False)
        accounts.close_session(db.session(), ssid, utcnow())
    return success("Logged out", {"ssid_revoked": True})


# Lower-case path below /api/v2/ -> handler. The OpenAPI document lists the same set.
ENDPOINTS = {
    "masking/set": masking_set,
    "masking/unset": masking_unset,
    "masking/get": masking_get,
    "masking/list": masking_list,
    "auth/login": auth_login,
    "auth/logout": auth_logout,
}


@bp.route("/openapi.json", methods=["GET"])
def openapi():
    from masking.web.openapi import document

    response = Response(json.dumps(document(ENDPOINTS, settings()), indent=2), content_type="application/json")
    response.headers.update(CORS_HEADERS)
    return response


def _roll_back_session() -> None:
    """Undo what a failed call wrote through the ORM session. Set and unset use a connection of
    their own (masking.driver) and open no session: there is none to make and roll back."""
    if db.session.registry.has():
        db.session.rollback()


@bp.route("/", defaults={"endpoint": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
@bp.route("/<path:endpoint>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
def dispatch(endpoint: str):
    call = g.api_call = Call(endpoint.strip("/").lower(), time.perf_counter())
    handler = ENDPOINTS.get(call.endpoint)
    try:
        if handler is None:
            raise _unknown_endpoint(endpoint)
        if request.method == "OPTIONS":  # CORS preflight
            call.code = 0
            response = Response(status=204)
            response.headers.update(CORS_HEADERS)
            return response
        if request.method != "POST":
            raise _method_not_allowed()
        return handler(read_body())
    except MaskingError as exc:
        _roll_back_session()
        return failure(exc)
    except SQLAlchemyError as exc:
        _roll_back_session()
        # No traceback: the error's text may carry the row's values (phone numbers).
        problem = readiness.problem_of(exc)  # down, locked or not migrated
        if problem is not None:
            log.error("database unavailable on %s: %s", call.endpoint, problem)
            return failure(MaskingError(errors.DB_UNAVAILABLE, "the database is not reachable; try again shortly"))
        log.error("database error on %s: %s", call.endpoint, driver.describe_error(exc))
        return failure(MaskingError(errors.SERVER_ERROR))
    except Exception:
        _roll_back_session()
        log.exception("unexpected error on %s", call.endpoint)
        return failure(MaskingError(errors.SERVER_ERROR))


def refused_by_routing(status: int) -> Response:
    """An API path that Flask's routing refused before ``dispatch`` ran: a method no route takes
    (PROPFIND), or a path the route cannot match (one with a newline). The same envelope and log
    line as ``dispatch`` gives (the dashboard's error pages call this for such paths)."""
    endpoint = "".join(ch if ch.isprintable() else "?" for ch in request.path[len(PATH_PREFIX):][:60])  # one log line
    g.api_call = Call(endpoint.strip("/").lower(), time.perf_counter())
    error = _method_not_allowed() if status == 405 else _unknown_endpoint(endpoint)
    return log_call(failure(error))  # no blueprint matched, so the API's after_request does not run


@bp.after_request
def log_call(response: Response) -> Response:
    """One line per API call; phone numbers partly hidden."""
    call = g.get("api_call")
    if call is not None and log.isEnabledFor(logging.INFO):
        log.info(
            "api call account=%s endpoint=%s code=%s http=%s ms=%.1f numbers=[%s] mask=%s",
            call.account, call.endpoint, call.code, response.status_code, (time.perf_counter() - call.started) * 1000,
            " ".join(redact(n) for n in call.numbers), redact(call.mask) or "-",
        )
    return response
