"""The error codes of the vendor's Masking API v2, and ours (from 1506 on).

One exception type carries a code and an optional ``detail``; the HTTP layer turns it
into the vendor's envelope. The HTTP status follows the vendor's habit: 200 for errors
the client caused (its examples print the body only on 200), 5xx for our own failures.
One exception: 1511 (over the rate limit) answers 429 with Retry-After, which HTTP clients'
retry helpers understand and honour.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    code: int
    message: str
    http_status: int
    when: str  # for the README and the OpenAPI description


_CODES = [
    # The vendor's, common to its v2 APIs.
    ErrorCode(1000, "Invalid parameters", 200, "a parameter is missing or invalid, or credentials are missing"),
    ErrorCode(1009, "Something went wrong", 500, "unexpected server error"),
    ErrorCode(1010, "Error in DB connect", 503, "the database is not reachable"),
    ErrorCode(1014, "Invalid token", 200, "token or ssid wrong, expired or revoked"),
    ErrorCode(1015, "Permission denied", 200, "the account may not perform this action"),
    ErrorCode(1047, "Invalid Request Data", 200, "request body empty, or not a JSON object or form"),
    # The vendor's, specific to masking.
    ErrorCode(1501, "m1 and m2 cannot be the same", 200, "m1 and m2 are one number once normalised"),
    ErrorCode(1502, "Expiry must be an integer value", 200,
              "expiry_duration is not a whole number of minutes, or is out of range"),
    ErrorCode(1503, "Your masking request could not be expired until now. So you cannot make another request",
              200, "the pair already has an active masking"),
    ErrorCode(1504, "Masking could not be inserted", 500, "the database refused to store the masking"),
    ErrorCode(1505, "Masking No not available", 200, "no pool number can serve this pair now"),
    # Ours.
    ErrorCode(1506, "Masking not found", 200, "no masking of this account matches (unset: no active one; get: none with that id)"),
    ErrorCode(1507, "Invalid expiry time", 200,
              "expiry_time unreadable, not in the future, or beyond the maximum expiry"),
    ErrorCode(1508, "Unknown endpoint", 200, "no API endpoint at this path"),
    ErrorCode(1509, "Method not allowed", 200, "the endpoint takes POST (and OPTIONS)"),
    ErrorCode(1510, "Request too large", 200, "the body is larger than the API accepts"),
    ErrorCode(1511, "Too many requests", 429,
              "the account is over API_RATE_LIMIT; retry after the Retry-After header's seconds"),
]

CODES: dict[int, ErrorCode] = {c.code: c for c in sorted(_CODES, key=lambda c: c.code)}  # in code order

INVALID_PARAMETERS = 1000
SERVER_ERROR = 1009
DB_UNAVAILABLE = 1010
INVALID_TOKEN = 1014
PERMISSION_DENIED = 1015
INVALID_REQUEST_DATA = 1047
SAME_NUMBERS = 1501
BAD_DURATION = 1502
PAIR_ACTIVE = 1503
NOT_INSERTED = 1504
NO_NUMBER = 1505
NOT_FOUND = 1506
BAD_EXPIRY_TIME = 1507
UNKNOWN_ENDPOINT = 1508
METHOD_NOT_ALLOWED = 1509
TOO_LARGE = 1510
TOO_MANY_REQUESTS = 1511


class MaskingError(Exception):
    """A refusal with one of the codes above. ``detail`` says which field and why."""

    def __init__(self, code: int, detail: str | None = None, data: dict | None = None):
        super().__init__(f"{code}: {detail or CODES[code].message}")
        self.code = code
        self.detail = detail
        self.data = data

    @property
    def message(self) -> str:
        return CODES[self.code].message

    @property
    def http_status(self) -> int:
        return CODES[self.code].http_status


def text_field(body: dict, field: str) -> str | None:
    """A body field that must be text; None when absent or empty. A bare JSON number is read as
    its digits (the vendor's examples send ids that way); anything else is a 1000."""
    value = body.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MaskingError(INVALID_PARAMETERS, f"{field} must be a string")
    if isinstance(value, str) and "\x00" in value:  # PostgreSQL stores no NUL in text: refused alike everywhere
        raise MaskingError(INVALID_PARAMETERS, f"{field} must not contain a NUL character (\\u0000)")
    return str(value)
