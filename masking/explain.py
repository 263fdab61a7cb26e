"""Every answer of the masking service, in plain words that say what to do next. No Flask.

The dashboard shows these next to its form; supervisors' pages can reuse ``SHORT`` for
labels of failure codes. ``Problem`` is what went wrong with one call (a service error
code, or no usable answer at all); ``explain`` turns it into an ``Explanation``: the text,
and the form field it is about (None: the whole request).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from .humanize import local_time, minutes_label, parse_iso_utc, phone, time_left

# Kinds of problem.
SERVICE_ERROR = "error"  # the service answered with an error code
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
GARBLED = "garbled"  # something answered, but not the API
MISCONFIGURED = "misconfigured"  # the dashboard has no usable URL or credentials

# Short labels for lists and filters (supervisors' history).
SHORT = {
    1000: "invalid input",
    1009: "service error",
    1010: "service database down",
    1014: "dashboard credentials refused",
    1015: "dashboard not allowed",
    1047: "unreadable request",
    1501: "same numbers",
    1502: "bad duration",
    1503: "pair already masked",
    1504: "could not save",
    1505: "no number free",
    1506: "mask not found",
    1507: "bad end time",
    1508: "wrong service address",
    1509: "wrong request method",
    1510: "request too large",
    1511: "too many requests",
    None: "service unreachable",
}

FIELD_NAMES = {"m1": "first number", "m2": "second number", "event_id": "reference", "expiry": "expiry"}
_CONTACT_ADMIN = "Nothing was changed. Please contact an admin; this is not something you can fix from here."


@dataclass(frozen=True)
class Problem:
    kind: str
    code: int | None = None
    message: str = ""
    detail: str | None = None
    data: dict | None = field(default=None, hash=False)


@dataclass(frozen=True)
class Explanation:
    text: str
    field: str | None = None  # m1, m2, event_id, expiry, or None


def short_label(code: int | None) -> str:
    return SHORT.get(code, f"code {code}")


def code_label(code: int | None) -> str:
    """A failure's code with its short words ("1505 no number free"); None is an unreachable service."""
    if code is None:
        return SHORT[None]
    return f"{code} {SHORT[code]}" if code in SHORT else f"code {code}"


def number_problem(field: str, reason: str, typed: str | None = None) -> str:
    """Plain words for a phone field refused by the service or the inline check; ``reason`` is
    masking.phone's ("is not a valid phone number"), ``typed`` what the agent typed."""
    label = FIELD_NAMES[field].capitalize()
    if reason in ("is empty", "is required"):
        return f"Enter the {FIELD_NAMES[field]}."
    if "masking numbers" in reason:  # service.py: one of the pool's own numbers
        pooled = re.search(r"\((\+\d+)\)", reason)
        ours = f" ({phone(pooled.group(1))})" if pooled else ""
        return f"{label} is one of our own masking numbers{ours}: enter the party's own number."
    if reason.startswith("has letters"):
        return f"{label} has letters in it: type digits only."
    if (typed or "").strip().startswith(("+", "00")):
        return f"{label} {reason}. Check the digits."
    return f"{label} {reason}. Check the digits; for a number from abroad, start with + and its country code."


def _field_of(detail: str | None) -> str | None:
    if not detail:
        return None
    head = detail.split(" ", 1)[0]
    return {"m1": "m1", "m2": "m2", "eventId": "event_id", "expiry_duration": "expiry",
            "expiry_time": "expiry"}.get(head)


def explain(problem: Problem, *, zone: ZoneInfo, now: datetime, action: str = "set",
            m1: str | None = None, m2: str | None = None, max_minutes: int | None = None,
            timeout_seconds: float | None = None) -> Explanation:
    """Plain words for ``problem``, given what was asked (``action``: set, unset or extend)."""
    nothing = "Nothing was masked." if action == "set" else "The mask was not changed."
    if problem.kind == UNREACHABLE:
        return Explanation(f"The masking service cannot be reached right now. {nothing} Try again in a minute; "
                           "if it keeps happening, tell an admin.")
    if problem.kind == TIMEOUT:
        seconds = f" within {timeout_seconds:g} seconds" if timeout_seconds else " in time"
        if action == "set":
            return Explanation(f"The masking service did not answer{seconds}. The mask may or may not have been "
                               "made: if the service makes it late, the dashboard finds it and adds it to My active "
                               "masks, so look at My active masks before trying again.")
        return Explanation(f"The masking service did not answer{seconds}. If the service makes the change late, "
                           "the dashboard finds it: look at My active masks to see whether the change was made, "
                           "then try again if needed.")
    if problem.kind == GARBLED:
        return Explanation("The address the dashboard uses for the masking service answers, but not as the masking "
                           f"service. {_CONTACT_ADMIN}")
    if problem.kind == MISCONFIGURED:
        return Explanation(f"The dashboard is not set up to reach the masking service. {_CONTACT_ADMIN}")

    code, detail, data = problem.code, problem.detail, problem.data or {}
    if code == 1000:
        which = _field_of(detail)
        if which in ("m1", "m2"):
            reason = detail.split(" ", 1)[1] if detail and " " in detail else "is not valid"
            return Explanation(number_problem(which, reason, m1 if which == "m1" else m2), which)
        if which == "event_id":
            return Explanation("The reference is not accepted: use at most 255 characters.", "event_id")
        if detail and any(word in detail for word in ("credential", "userId", "token", "ssid")):
            return Explanation(f"The dashboard's connection to the masking service is missing its credentials. "
                               f"{_CONTACT_ADMIN}")
        return Explanation("The masking service did not accept the request" + (f" ({detail})" if detail else "") +
                           ". Check what you typed and try again.")
    if code == 1501:
        same = f" ({phone(m1)})" if m1 else ""
        return Explanation(f"Both numbers are the same{same}. Enter two different numbers.", "m2")
    if code == 1502:
        most = f" and {minutes_label(max_minutes)}" if max_minutes else ""
        return Explanation(f"The duration must be a whole number of minutes between 1 minute{most}. "
                           "Choose another duration.", "expiry")
    if code == 1503:
        expires = parse_iso_utc(data.get("expires_at"))
        pair = f" {phone(m1)} and {phone(m2)}" if m1 and m2 else ""
        if expires is not None:
            behind = f" behind {phone(data['mask'])}" if data.get("mask") else ""
            return Explanation(
                f"These two numbers{pair} are already masked{behind} until {local_time(expires, zone, now)} "
                f"({time_left(expires, now)}); end that mask first or wait.")
        return Explanation(f"These two numbers{pair} already have an active mask; end that mask first or wait "
                           "until it expires.")
    if code == 1504:
        return Explanation(f"The masking service could not save the mask. {nothing} Try again; if it happens again, "
                           "tell an admin.")
    if code == 1505:
        return Explanation(_no_number_free(detail, data, m1, m2))
    if code == 1506:
        return Explanation("This mask is no longer active: it has already ended or expired. It has been taken off "
                           "your list.")
    if code == 1507:
        most = f" and at most {minutes_label(max_minutes)} from now" if max_minutes else ""
        return Explanation(f"The end time must be in the future{most}. Pick another time.", "expiry")
    if code == 1009:
        return Explanation(f"The masking service had an unexpected problem. {nothing} Try again in a moment; if it "
                           "keeps happening, tell an admin.")
    if code == 1010:
        return Explanation(f"The masking service cannot reach its database right now. {nothing} Wait a minute and "
                           "try again.")
    if code == 1014:
        return Explanation(f"The masking service refused the dashboard's credentials. {_CONTACT_ADMIN}")
    if code == 1015:
        return Explanation(f"The dashboard's account at the masking service may not create or change masks. "
                           f"{_CONTACT_ADMIN}")
    if code == 1511:
        wait = data.get("retry_after")
        when = f"in {wait} second{'s' if wait != 1 else ''}" if isinstance(wait, int) and wait > 0 else "in a moment"
        return Explanation(f"The masking service is receiving more requests from the dashboard than its limit allows. "
                           f"{nothing} Try again {when}; if it keeps happening, tell an admin.")
    if code in (1047, 1508, 1509, 1510):
        return Explanation(f"The dashboard and the masking service do not understand each other (code {code}). "
                           f"{_CONTACT_ADMIN}")
    message = f": {problem.message}" if problem.message else ""
    return Explanation(f"The masking service refused the request (code {code}{message}). {nothing} "
                       "If this keeps happening, tell an admin.")


def _no_number_free(detail: str | None, data: dict, m1: str | None, m2: str | None) -> str:
    """1505 in words: an empty pool, or (from the service's ``data``) which of the two parties
    already has masks on the pool's numbers, so the agent knows whose masks to look at."""
    add = "ask an admin to add numbers to the pool"
    if detail and detail.startswith("the pool has no active number"):
        where = " for this country" if " in " in detail else ""
        return f"The pool has no masking numbers to give out{where}. Nothing was masked: {add}."
    total = data.get("active_numbers")
    holders = [(label, number, data.get(key)) for label, number, key in
               (("first number", m1, "m1_holds"), ("second number", m2, "m2_holds"))]
    holders = [(label, number, n) for label, number, n in holders if isinstance(n, int) and n > 0]
    if not isinstance(total, int) or not holders:
        return ("No masking number is free for these two numbers right now: every number in the pool is already in "
                f"use by one of them. End one of their other masks, or {add}.")
    who = " and ".join(f"the {label}{f' ({phone(number)})' if number else ''} has masks on {n}"
                       for label, number, n in holders)
    return (f"No masking number is free for these two numbers right now: {who} of the {total} numbers in the pool "
            "(live, or ended in the last few minutes and not yet given out again). End one of their other masks, "
            f"or {add}.")


def made_late(*, mask: str | None, m1: str | None, m2: str | None, expires_at: datetime | None, zone: ZoneInfo,
              now: datetime) -> str:
    """A set answered 1503 because the agent's own earlier request, which timed out, had made the
    mask after all (the dashboard has just taken it into the agent's list)."""
    pair = f" ({phone(m1)} and {phone(m2)})" if m1 and m2 else ""
    until = f", until {local_time(expires_at, zone, now)} ({time_left(expires_at, now)})" if expires_at else ""
    return (f"These numbers{pair} were already masked by your earlier request that timed out: "
            f"{phone(mask)}{until}. It is in My active masks now; nothing new was masked.")


def found_late(*, sets: list, changes: list, zone: ZoneInfo, now: datetime) -> str | None:
    """What My active masks says when it has found calls that timed out carried out after all:
    ``sets`` the adopted set rows, ``changes`` (set row, ``attempts.ENDED``/``EXTENDED``/``EXPIRED``)."""
    parts = []
    for row in sets:
        parts.append(f"Your request for {phone(row.m1)} and {phone(row.m2)} timed out, but the masking service made "
                     f"the mask after all: {phone(row.mask)}, until {local_time(row.expires_at, zone, now)}.")
    for row, what in changes:
        if what == "ended":
            parts.append(f"The mask on {phone(row.mask)} has ended at the masking service.")
        elif what == "extended":
            parts.append(f"The mask on {phone(row.mask)} ends at {local_time(row.expires_at, zone, now)} "
                         f"({time_left(row.expires_at, now)}) at the masking service.")
        elif what == "expired":
            parts.append(f"The mask on {phone(row.mask)} has expired at the masking service.")
    return " ".join(parts) or None
