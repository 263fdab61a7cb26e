"""The OpenAPI 3.1 description of the service, served at ``/api/v2/openapi.json``.

Plain Python data, no Flask. What can drift is generated from the code:

* the paths from the API's dispatch table (``ENDPOINTS`` in ``masking.web.api``, passed in);
  an endpoint served but not described here makes ``document()`` fail loudly;
* the error codes, their messages and HTTP statuses from ``masking.errors.CODES``;
* limits (maximum expiry, list page size, eventId length) from the settings and ``masking.service``.

``tests/test_openapi.py`` validates the document and checks real answers against its schemas.
"""
from __future__ import annotations

from collections.abc import Iterable

from masking import readiness
from masking.errors import CODES
from masking.service import LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, MAX_EVENT_ID
from masking.settings import MaskingSettings

OPENAPI_VERSION = "3.1.0"
API_PREFIX = "/api/v2/"
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
ISO_UTC_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"


def _ref(name: str, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


# ---------------------------------------------------------------- the endpoints

# Codes every API endpoint can answer, whatever it does (1014: every call checks credentials;
# 1511: every account's calls count against API_RATE_LIMIT when it is set).
COMMON_CODES = (1000, 1009, 1010, 1014, 1047, 1510, 1511)

# One entry per key of ENDPOINTS (the lower-case path below /api/v2/).
OPERATIONS: dict[str, dict] = {
    "masking/set": {
        "tag": "Masking",
        "summary": "Mask two numbers behind a pool number (the vendor's call)",
        "description": (
            "Creates a masking between m1 and m2 on a pool number that neither party already holds, "
            "preferring a number of m1's country and the least recently given one.\n\n"
            "* `m1`, `m2`: any notation (E.164, national, `00` prefix, spaces), as a string or a bare JSON "
            "number; a national number takes the configured default region ({region}). Stored and returned in "
            "E.164. Invalid (or with letters in it, or one of the pool's own active or reserved masking numbers): "
            "1000 with a `detail` naming the field. The same number twice: 1501.\n"
            "* `expiry_duration`: whole minutes, 1..{max_minutes}, as a JSON integer or a digit string; "
            "anything else (fractions, booleans, words, empty strings, objects) or out of range: 1502.\n"
            "* `expiry_time`: ISO 8601 with an offset, `YYYY-MM-DD HH:MM:SS` in the configured time zone "
            "({timezone}), or Unix seconds; unreadable, not in the future, or beyond {max_minutes} minutes "
            "from now: 1507. When both are given, each must be valid and `expiry_time` wins; when neither, "
            "the masking lasts {default_minutes} minutes.\n"
            "* An active masking for the same pair (in either order): 1503, its `data` naming the masking "
            "number and expiry when the pair is this account's. No pool number fits: 1505, its `data` giving "
            "how many of the active pool numbers each party holds through this account's maskings "
            "(`active_numbers`, `m1_holds`, `m2_holds`; none when the pool is empty)."
        ),
        "body": "SetRequest",
        "success": "SetSuccess",
        "codes": (1015, 1501, 1502, 1503, 1504, 1505, 1507),
        "examples": {
            "vendor": {
                "summary": "The vendor's example (numbers as bare JSON numbers)",
                "value": {"ssid": "mss_EXAMPLE", "m1": 9876543210, "m2": 9876543211,
                          "eventId": "customer_support_123", "expiry_duration": 1440},
            },
            "token": {
                "summary": "userId and token, E.164 strings, an expiry instant",
                "value": {"userId": "u0123456789abcdef", "token": "mtk_EXAMPLE", "m1": "+919876543210",
                          "m2": "+91 98765 43211", "expiry_time": "2030-01-31 18:00:00"},
            },
        },
    },
    "masking/unset": {
        "tag": "Masking",
        "summary": "End or re-time active maskings (the vendor's call)",
        "description": (
            "Picks this account's active maskings by `mask`, `m1` and `m2` (at least one, else 1000; "
            "several narrow; a number given as m1 or m2 matches either party). With no expiry field, or "
            "a negative or zero `expiry_duration`, they end at once (`action` \"ended\"); a positive "
            "`expiry_duration` (minutes, 1..{max_minutes}) or an `expiry_time` sets a new expiry "
            "(`action` \"extended\"), with the rules of `set` (1502, 1507). None matches: 1506."
        ),
        "body": "UnsetRequest",
        "success": "UnsetSuccess",
        "codes": (1015, 1502, 1506, 1507),
        "examples": {
            "vendor": {
                "summary": "The vendor's example: end by masking number",
                "value": {"ssid": "mss_EXAMPLE", "mask": 918041234500, "expiry_duration": -1},
            },
            "extend": {
                "summary": "Extend a pair's masking by two hours",
                "value": {"userId": "u0123456789abcdef", "token": "mtk_EXAMPLE", "m1": "9876543210",
                          "m2": "9876543211", "expiry_duration": "120"},
            },
        },
    },
    "masking/get": {
        "tag": "Masking",
        "summary": "One masking of this account by id",
        "description": ("Any masking this account created, active or not; for a read-only account, any the "
                        "account it reads for created. Another account's, or none: 1506."),
        "body": "GetRequest",
        "success": "GetSuccess",
        "codes": (1506,),
        "examples": {"by_id": {"summary": "By id", "value": {"ssid": "mss_EXAMPLE", "id": 42}}},
    },
    "masking/list": {
        "tag": "Masking",
        "summary": "This account's maskings, newest first, filtered, one page at a time",
        "description": (
            "A read-only account lists the maskings of the account it reads for. "
            "Filters narrow together: `m1`/`m2` (either party), `mask`, `eventId`, `status`, `created_from`, "
            "`created_to` (inclusive; the formats of `expiry_time`). Keyset pagination: pass a page's "
            "`next_cursor` as `cursor` for the next page; null means the last page. Page size `limit`, "
            "1..{list_max}, default {list_default}. Bad filters: 1000 with a `detail`."
        ),
        "body": "ListRequest",
        "success": "ListSuccess",
        "codes": (),
        "examples": {
            "active": {"summary": "Active maskings of one party",
                       "value": {"ssid": "mss_EXAMPLE", "m1": "9876543210", "status": "active", "limit": 20}},
            "next_page": {"summary": "The next page",
                          "value": {"ssid": "mss_EXAMPLE", "cursor": "41"}},
        },
    },
    "auth/login": {
        "tag": "Auth",
        "summary": "Exchange userId and token for an ssid",
        "description": (
            "The ssid stands for the account's userId and token in later calls until it expires "
            "(`expires_at`) or is revoked (Auth/logout, the account's revocation, or a new token for the account "
            "that ends the old one at once). Send userId and token "
            "only, not an ssid (1000). Wrong or revoked credentials: 1014."
        ),
        "body": "LoginRequest",
        "success": "LoginSuccess",
        "codes": (),
        "examples": {"login": {"summary": "Log in",
                               "value": {"userId": "u0123456789abcdef", "token": "mtk_EXAMPLE"}}},
    },
    "auth/logout": {
        "tag": "Auth",
        "summary": "Revoke an ssid",
        "description": "The ssid is refused (1014) from now on. A missing ssid: 1000; an invalid one: 1014.",
        "body": "LogoutRequest",
        "success": "LogoutSuccess",
        "codes": (),
        "examples": {"logout": {"summary": "Log out", "value": {"ssid": "mss_EXAMPLE"}}},
    },
}


def api_path(endpoint: str) -> str:
    """'masking/set' -> '/api/v2/Masking/set' (the vendor's spelling; paths match in any case)."""
    group, _, action = endpoint.partition("/")
    return f"{API_PREFIX}{group.capitalize()}/{action}"


def operation_codes(endpoint: str) -> list[int]:
    """Every error code the endpoint can answer, in numeric order."""
    spec = OPERATIONS[endpoint]
    return sorted({*COMMON_CODES, *spec["codes"]})


# ---------------------------------------------------------------- schemas

def _phone(description: str) -> dict:
    return {
        "type": ["string", "integer"],
        "description": description + " Any notation (E.164, national, `00` prefix, spaces), as a string "
                                     "or a bare JSON number; a national number takes DEFAULT_REGION.",
        "examples": ["+919876543210", "09876543210", 9876543210],
    }


def _duration(max_minutes: int, *, allow_end: bool) -> dict:
    if allow_end:
        integer = {"type": "integer", "maximum": max_minutes}
        string = {"type": "string", "pattern": r"^\s*[+-]?[0-9]{1,12}\s*$"}
        text = (f"Whole minutes from now, at most {max_minutes}, as a JSON integer or a digit string. "
                "Zero or negative ends the matching maskings at once.")
    else:
        integer = {"type": "integer", "minimum": 1, "maximum": max_minutes}
        string = {"type": "string", "pattern": r"^\s*\+?[0-9]{1,12}\s*$"}
        text = (f"Whole minutes from now, 1..{max_minutes}, as a JSON integer or a digit string (\"1440\"). "
                "Fractions, booleans, words, empty strings, objects, zero, negative or above the maximum: 1502.")
    return {"description": text, "anyOf": [integer, string], "examples": [1440, "60"]}


def _instant(field: str, settings: MaskingSettings, rule: str) -> dict:
    return {
        "type": ["string", "integer"],
        "description": (
            f"`{field}`: ISO 8601 with an offset (`2030-01-31T18:00:00+05:30`, `...Z`), "
            f"`YYYY-MM-DD HH:MM:SS` (or `YYYY-MM-DDTHH:MM:SS`, or without seconds) in {settings.timezone}, "
            f"or Unix seconds (integer or digit string). {rule}"
        ),
        "examples": ["2030-01-31T18:00:00+05:30", "2030-01-31 18:00:00", 1896087600],
    }


def _schemas(settings: MaskingSettings) -> dict:
    max_minutes = settings.max_expiry_minutes
    expiry_time_rule = f"Must be in the future and at most {max_minutes} minutes from now, else 1507."
    event_id = {"type": ["string", "integer"], "maxLength": MAX_EVENT_ID,
                "description": f"Your reference for the masking, at most {MAX_EVENT_ID} characters.",
                "examples": ["customer_support_123"]}
    return {
        # -- credentials
        "Credentials": {
            "description": "Either `ssid` (from Auth/login), or `userId` with `token`; never both. Missing: "
                           "1000; wrong, expired or revoked: 1014.",
            "type": "object",
            "properties": {
                "ssid": {"type": "string", "description": "Session id from Auth/login."},
                "userId": {"type": "string", "description": "The account's userId."},
                "token": {"type": "string", "description": (
                    "The account's token (shown once, when it is made). After the account is given a new one, "
                    "the old token works only during its grace period, if any.")},
            },
            "oneOf": [
                {"title": "ssid", "required": ["ssid"],
                 "not": {"anyOf": [{"required": ["userId"]}, {"required": ["token"]}]}},
                {"title": "userId and token", "required": ["userId", "token"], "not": {"required": ["ssid"]}},
            ],
        },
        # -- requests
        "SetRequest": {
            "allOf": [_ref("Credentials")],
            "type": "object",
            "required": ["m1", "m2"],
            "properties": {
                "m1": _phone("First party."),
                "m2": _phone("Second party; not the same number as m1 (1501)."),
                "eventId": event_id,
                "expiry_duration": _duration(max_minutes, allow_end=False),
                "expiry_time": _instant("expiry_time", settings, expiry_time_rule + " Wins over expiry_duration."),
            },
        },
        "UnsetRequest": {
            "allOf": [_ref("Credentials")],
            "type": "object",
            "anyOf": [{"required": ["mask"]}, {"required": ["m1"]}, {"required": ["m2"]}],
            "properties": {
                "mask": _phone("The masking number."),
                "m1": _phone("A party (matches either party)."),
                "m2": _phone("A party (matches either party)."),
                "expiry_duration": _duration(max_minutes, allow_end=True),
                "expiry_time": _instant("expiry_time", settings, expiry_time_rule + " Wins over expiry_duration."),
            },
        },
        "GetRequest": {
            "allOf": [_ref("Credentials")],
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"anyOf": [{"type": "integer", "minimum": 1},
                                            {"type": "string", "pattern": r"^\s*[0-9]+\s*$"}],
                                  "description": "The masking's id."}},
        },
        "ListRequest": {
            "allOf": [_ref("Credentials")],
            "type": "object",
            "properties": {
                "m1": _phone("Either party."),
                "m2": _phone("Either party."),
                "mask": _phone("The masking number."),
                "eventId": event_id,
                "status": {"type": "string", "enum": ["active", "expired", "ended"]},
                "created_from": _instant("created_from", settings, "Inclusive."),
                "created_to": _instant("created_to", settings, "Inclusive."),
                "limit": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": LIST_MAX_LIMIT},
                                    {"type": "string", "pattern": r"^\s*[0-9]+\s*$"}],
                          "description": f"Page size, 1..{LIST_MAX_LIMIT}, default {LIST_DEFAULT_LIMIT}."},
                "cursor": {"anyOf": [{"type": "integer", "minimum": 1},
                                     {"type": "string", "pattern": r"^\s*[0-9]+\s*$"}],
                           "description": "`next_cursor` of the previous page."},
            },
        },
        "LoginRequest": {
            "type": "object",
            "required": ["userId", "token"],
            "not": {"required": ["ssid"]},
            "properties": {"userId": {"type": "string", "minLength": 1}, "token": {"type": "string", "minLength": 1}},
        },
        "LogoutRequest": {
            "type": "object",
            "required": ["ssid"],
            "properties": {"ssid": {"type": "string", "minLength": 1, "description": "The ssid to revoke."}},
        },
        # -- answers
        "Masking": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "mask", "m1", "m2", "eventId", "status", "created_at", "expires_at", "ended_at"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "mask": {"type": "string", "pattern": E164_PATTERN, "description": "The masking number (E.164)."},
                "m1": {"type": "string", "pattern": E164_PATTERN},
                "m2": {"type": "string", "pattern": E164_PATTERN},
                "eventId": {"type": ["string", "null"]},
                "status": {"type": "string", "enum": ["active", "expired", "ended"],
                           "description": "At the moment of the answer: ended if ended early, expired once "
                                          "expires_at has passed, else active."},
                "created_at": {"type": "string", "format": "date-time", "pattern": ISO_UTC_PATTERN},
                "expires_at": {"type": "string", "format": "date-time", "pattern": ISO_UTC_PATTERN},
                "ended_at": {"type": ["string", "null"], "format": "date-time", "pattern": ISO_UTC_PATTERN},
            },
        },
        "SetSuccess": _success("Masking set successfully", _ref("Masking")),
        "UnsetSuccess": _success(["Masking ended", "Masking expiry updated"], {
            "type": "object",
            "additionalProperties": False,
            "required": ["action", "count", "maskings"],
            "properties": {
                "action": {"type": "string", "enum": ["ended", "extended"]},
                "count": {"type": "integer", "minimum": 1},
                "maskings": {"type": "array", "minItems": 1, "items": _ref("Masking")},
            },
        }),
        "GetSuccess": _success("Masking found", _ref("Masking")),
        "ListSuccess": _success("Maskings listed", {
            "type": "object",
            "additionalProperties": False,
            "required": ["maskings", "next_cursor"],
            "properties": {
                "maskings": {"type": "array", "items": _ref("Masking"), "maxItems": LIST_MAX_LIMIT},
                "next_cursor": {"type": ["string", "null"], "pattern": "^[0-9]+$"},
            },
        }),
        "LoginSuccess": _success("Logged in", {
            "type": "object",
            "additionalProperties": False,
            "required": ["ssid", "expires_at"],
            "properties": {"ssid": {"type": "string", "minLength": 1},
                           "expires_at": {"type": "string", "format": "date-time", "pattern": ISO_UTC_PATTERN}},
        }),
        "LogoutSuccess": _success("Logged out", {
            "type": "object",
            "additionalProperties": False,
            "required": ["ssid_revoked"],
            "properties": {"ssid_revoked": {"const": True}},
        }),
        "Error": _error_schema(),
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["ok", "error"]}, "message": {"type": "string"},
                           "detail": {"type": "string"}},
        },
    }


def _success(message, data: dict) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["status", "message", "data"],
        "properties": {
            "status": {"const": "success"},
            "message": {"enum": message} if isinstance(message, list) else {"const": message},
            "data": data,
        },
    }


def _error_schema() -> dict:
    """The vendor's error envelope; each code comes with its one message (from CODES)."""
    return {
        "description": "`{\"status\":\"error\",\"message\":\"...\",\"code\":N}`: compact JSON, keys in this "
                       "order. `detail` (which field is wrong and why) and `data` follow when the server "
                       "shows details (API_ERROR_DETAIL).",
        "type": "object",
        "additionalProperties": False,
        "required": ["status", "message", "code"],
        "properties": {
            "status": {"const": "error"},
            "message": {"type": "string"},
            "code": {"type": "integer", "enum": list(CODES)},
            "detail": {"type": "string"},
            "data": {"type": "object", "description": "With 1503: the pair's existing masking "
                                                      "(id, mask, expires_at) when it is this account's."},
        },
        "oneOf": [
            {"title": f"{c.code} {c.message}", "description": c.when,
             "properties": {"code": {"const": c.code}, "message": {"const": c.message}}}
            for c in CODES.values()
        ],
    }


def _error_with(codes: Iterable[int]) -> dict:
    codes = sorted(codes)
    return {"allOf": [_ref("Error")], "properties": {"code": {"enum": codes}}}


def _error_example(code: int, detail: str | None = None, data: dict | None = None) -> dict:
    value = {"status": "error", "message": CODES[code].message, "code": code}
    if detail:
        value["detail"] = detail
    if data:
        value["data"] = data
    return {"summary": f"{code} {CODES[code].message}", "value": value}


# ---------------------------------------------------------------- examples of answers

EXAMPLE_MASKING = {
    "id": 42, "mask": "+918041234500", "m1": "+919876543210", "m2": "+919876543211",
    "eventId": "customer_support_123", "status": "active", "created_at": "2030-01-30T12:30:00Z",
    "expires_at": "2030-01-31T12:30:00Z", "ended_at": None,
}

SUCCESS_EXAMPLES = {
    "masking/set": {"status": "success", "message": "Masking set successfully", "data": EXAMPLE_MASKING},
    "masking/unset": {"status": "success", "message": "Masking ended", "data": {
        "action": "ended", "count": 1,
        "maskings": [{**EXAMPLE_MASKING, "status": "ended", "ended_at": "2030-01-30T13:00:00Z"}]}},
    "masking/get": {"status": "success", "message": "Masking found", "data": EXAMPLE_MASKING},
    "masking/list": {"status": "success", "message": "Maskings listed",
                     "data": {"maskings": [EXAMPLE_MASKING], "next_cursor": "42"}},
    "auth/login": {"status": "success", "message": "Logged in",
                   "data": {"ssid": "mss_EXAMPLE", "expires_at": "2030-01-31T12:30:00Z"}},
    "auth/logout": {"status": "success", "message": "Logged out", "data": {"ssid_revoked": True}},
}

ERROR_EXAMPLES = {
    1000: ("m2 is not a valid phone number", None),
    1014: ("userId and token do not match an account", None),
    1015: ("this account may read maskings but not change them", None),
    1047: ("the request body is empty", None),
    1501: ("m1 and m2 are both +91 98XXXXX210", None),
    1502: ("expiry_duration must be a whole number of minutes, got 'soon'", None),
    1503: ("these two numbers are already masked behind +918041234500 until 2030-01-31T12:30:00Z",
           {"id": 42, "mask": "+918041234500", "expires_at": "2030-01-31T12:30:00Z"}),
    1505: (None, None),  # exactly the vendor's example body
    1506: ("no active masking of this account matches mask=+91 80XXXXX500", None),
    1507: ("expiry_time must be in the future", None),
    1511: ("this account may make 30 per 1 second; try again in 1 s", {"retry_after": 1}),
}


# ---------------------------------------------------------------- paths

def _json_body(schema_name: str, examples: dict) -> dict:
    schema = _ref(schema_name)
    return {
        "required": True,
        "description": "A JSON object, read as JSON whatever the Content-Type says (the vendor's clients send "
                       "it as text/plain, unlabelled, or with an empty Content-Length header); a body that is "
                       "not JSON is read as a urlencoded form (multipart forms are read as forms). Unknown keys "
                       "are ignored. Empty, or not an object: 1047.",
        "content": {
            "application/json": {"schema": schema, "examples": examples},
            "text/plain": {"schema": schema},
            "application/x-www-form-urlencoded": {"schema": schema},
        },
    }


_ENVELOPE_HEADERS = {
    "Access-Control-Allow-Origin": {"schema": {"type": "string", "const": "*"}},
    "ETag": {"schema": {"type": "string"}},
}


_RETRY_AFTER = {"Retry-After": {"description": "Whole seconds to wait before the call can succeed.",
                                "schema": {"type": "integer", "minimum": 1}}}


def _operation(endpoint: str, fill: dict) -> dict:
    spec = OPERATIONS[endpoint]
    codes = operation_codes(endpoint)
    by_status: dict[int, list[int]] = {}
    for code in codes:
        by_status.setdefault(CODES[code].http_status, []).append(code)

    responses = {}
    client_codes = by_status.pop(200, [])
    examples = {"success": {"summary": "Success", "value": SUCCESS_EXAMPLES[endpoint]}}
    for code in client_codes:
        if code in ERROR_EXAMPLES:
            detail, data = ERROR_EXAMPLES[code]
            examples[f"error_{code}"] = _error_example(code, detail, data)
    responses["200"] = {
        "description": "Success, or an error the request caused (the vendor answers those with HTTP 200 too): "
                       + ", ".join(f"{c} {CODES[c].message}" for c in client_codes) + ".",
        "headers": _ENVELOPE_HEADERS,
        "content": {"application/json": {
            "schema": {"oneOf": [_ref(spec["success"]), _error_with(client_codes)]},
            "examples": examples,
        }},
    }
    for status, status_codes in sorted(by_status.items()):
        responses[str(status)] = {
            "description": "; ".join(f"{c} {CODES[c].message}: {CODES[c].when}" for c in status_codes) + ".",
            "headers": {**_ENVELOPE_HEADERS, **(_RETRY_AFTER if status == 429 else {})},
            "content": {"application/json": {
                "schema": _error_with(status_codes),
                "examples": {f"error_{c}": _error_example(c, *ERROR_EXAMPLES.get(c, (None, None)))
                             for c in status_codes},
            }},
        }

    table = "\n".join(f"| {c} | {CODES[c].message} | {CODES[c].http_status} | {CODES[c].when} |" for c in codes)
    return {
        "tags": [spec["tag"]],
        "operationId": endpoint.replace("/", "_"),
        "summary": spec["summary"],
        "description": (spec["description"].format(**fill)
                        + "\n\n| code | message | HTTP | when |\n|---|---|---|---|\n" + table),
        "requestBody": _json_body(spec["body"], spec["examples"]),
        "responses": responses,
        "x-error-codes": codes,
    }


def _preflight(endpoint: str) -> dict:
    return {
        "tags": [OPERATIONS[endpoint]["tag"]],
        "operationId": endpoint.replace("/", "_") + "_preflight",
        "summary": "CORS preflight",
        "responses": {"204": {"description": "No content; CORS headers as on every API answer.",
                              "headers": {"Access-Control-Allow-Methods": {"schema": {"type": "string"}}}}},
    }


def _fixed_paths() -> dict:
    return {
        "/healthz": {"get": {
            "tags": ["Health"],
            "operationId": "healthz",
            "summary": "Readiness: does the database answer, with this version's schema?",
            "description": "Not in the vendor's envelope: `{\"status\":\"ok\"}` or 503. A database that answers but was "
                           "never migrated, or is behind the code, is not ready: `message` is `database not migrated` "
                           "and `detail` says what to run.",
            "responses": {
                "200": {"description": "The database answers and is migrated.", "content": {"application/json": {
                    "schema": _ref("Health"), "example": {"status": "ok"}}}},
                "503": {"description": "The database does not answer, or is not migrated.", "content": {"application/json": {
                    "schema": _ref("Health"), "examples": {
                        "unreachable": {"value": {"status": "error", "message": "database unreachable"}},
                        "not_migrated": {"value": {"status": "error", "message": "database not migrated",
                                                   "detail": readiness.NOT_MIGRATED}}}}}},
            },
        }},
        "/api/v2/openapi.json": {"get": {
            "tags": ["Health"],
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": {"description": "The OpenAPI description of the service.",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}},
        }},
    }


# ---------------------------------------------------------------- the document

def _info(settings: MaskingSettings) -> dict:
    codes = "\n".join(f"| {c.code} | {c.message} | {c.http_status} | {c.when} |"
                      for c in CODES.values())
    return {
        "title": "Masking API v2",
        "version": "2.0",
        "description": (
            "Phone-number masking compatible with the vendor's Masking API v2 (set, unset), plus get, "
            "list and Auth/login, logout in the same style.\n\n"
            "* Every API call is a POST whose body is a JSON object, read as JSON whatever the Content-Type "
            "header says; a body that is not JSON is read as a urlencoded form.\n"
            "* Credentials travel in the body: `ssid`, or `userId` with `token` (never both).\n"
            "* Paths match case-insensitively (`/api/v2/masking/set` works too). OPTIONS answers CORS "
            "preflights; other methods: 1509 (HTTP 405). Unknown paths below /api/v2/: 1508 (HTTP 404).\n"
            "* Successes: `{\"status\":\"success\",\"message\":\"...\",\"data\":{...}}`. Errors: "
            "`{\"status\":\"error\",\"message\":\"...\",\"code\":N}` (compact, keys in that order) with an "
            "optional `detail`. Errors the request caused answer HTTP 200, as the vendor's clients expect; "
            "failures of the server answer 5xx with the same envelope.\n"
            f"* Times are answered in ISO 8601 UTC; naive times sent are read in {settings.timezone}; national "
            f"numbers are read in region {settings.default_region}.\n\n"
            "| code | message | HTTP | when |\n|---|---|---|---|\n" + codes
        ),
    }


def document(endpoints: Iterable[str] | None = None, settings: MaskingSettings | None = None) -> dict:
    """The OpenAPI document for ``endpoints`` (the keys of the API's dispatch table).

    ``settings`` supplies the limits shown (maximum expiry, time zone); the defaults otherwise.
    """
    settings = settings or MaskingSettings()
    endpoints = sorted(OPERATIONS if endpoints is None else endpoints)
    undocumented = [e for e in endpoints if e not in OPERATIONS]
    if undocumented:
        raise LookupError(f"endpoints served but not described in masking/web/openapi.py: {undocumented}")
    fill = {"max_minutes": settings.max_expiry_minutes, "default_minutes": settings.default_expiry_minutes,
            "timezone": settings.timezone, "region": settings.default_region, "list_max": LIST_MAX_LIMIT, "list_default": LIST_DEFAULT_LIMIT}

    paths = {}
    for endpoint in endpoints:
        paths[api_path(endpoint)] = {"post": _operation(endpoint, fill), "options": _preflight(endpoint)}
    paths.update(_fixed_paths())

    return {
        "openapi": OPENAPI_VERSION,
        "info": _info(settings),
        "tags": [
            {"name": "Masking", "description": "Maskings: the vendor's set and unset, and our get and list."},
            {"name": "Auth", "description": "Sessions (ssid) for an account's userId and token."},
            {"name": "Health", "description": "Service checks."},
        ],
        "paths": paths,
        "components": {
            "schemas": _schemas(settings),
        },
        "x-error-codes": [
            {"code": c.code, "message": c.message, "http_status": c.http_status, "when": c.when}
            for c in CODES.values()
        ],
    }
